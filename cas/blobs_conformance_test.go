package cas_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/cas/blobtest"
)

// The local pool passes the blob-store contract.
func TestBlobsConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) cas.BlobStore {
		dir := filepath.Join(t.TempDir(), "store")
		if err := cas.InitWith(dir, 0); err != nil {
			t.Fatal(err)
		}
		s, err := cas.Open(dir, cas.Options{Wait: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return s.Blobs()
	})
}
