package s3store

import (
	"testing"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/cas/blobtest"
)

// The pool on a real S3 server passes the blob-store contract.
func TestPoolConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) cas.BlobStore {
		_, b := testBucket(t, "store")
		return NewPool(b)
	})
}
