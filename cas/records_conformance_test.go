package cas_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/cas/recordtest"
)

// The embedded record store (a writer session's badger) passes the
// record-store contract.
func TestRecordsConformance(t *testing.T) {
	recordtest.Run(t, func(t *testing.T) cas.Records {
		dir := filepath.Join(t.TempDir(), "store")
		if err := cas.InitWith(dir, 0); err != nil {
			t.Fatal(err)
		}
		s, err := cas.Open(dir, cas.Options{Wait: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ss, err := s.Writer(context.Background(), "conformance")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ss.Close() })
		return ss
	})
}
