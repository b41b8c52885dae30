package cas_test

import (
	"testing"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/cas/blobtest"
)

// The local pool passes the blob-store contract.
func TestBlobsConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) cas.BlobStore { return freshStore(t).Blobs() })
}
