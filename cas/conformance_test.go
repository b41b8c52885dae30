package cas_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/mephstore/mephstore/cas"
)

// freshStore is an empty store (no reserve) for a conformance run.
func freshStore(t *testing.T) *cas.Store {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	if err := cas.InitWith(dir, 0); err != nil {
		t.Fatal(err)
	}
	s, err := cas.Open(dir, cas.Options{Wait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
