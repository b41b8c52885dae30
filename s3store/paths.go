package s3store

import (
	"strings"

	digest "github.com/opencontainers/go-digest"
)

// The layout of a store on a bucket, under its prefix:
//
//	s3://bucket/prefix/
//	├── mephstore-store                  "mephstore s3 store v1": written last by init
//	├── pool/
//	│   ├── sha256/ab/ab12…ef            a blob, named by the sha256 of its bytes;
//	│   │                                written once, verified before it is visible
//	│   └── .ingest/<id>                 an upload in flight (removed after its copy;
//	│                                    one a killed writer left is reaped by gc)
//	├── log/00000000000000000042         the record log: entry n, created only with
//	│                                    If-None-Match: * (one writer wins each n)
//	├── checkpoint/00000000000000000040  every record as of entry n (replayed from)
//	├── lock/writer                      the writer lease: holder, renewed while held
//	└── heads/<stream>                   a stream's head, mirrored for readers
//	                                     that do not run mephstore (informative)
//
// A published tree on a bucket (publish --root s3://bucket/www) is the
// same tree as on a disk (publish.Layout), its blobs copied server-side
// from the pool.
const (
	formatKey     = "mephstore-store"
	formatContent = "mephstore s3 store v1\n"
	poolBlobs     = "pool/sha256/"
	poolIngest    = "pool/.ingest/"
	logDir        = "log/"
	checkpointDir = "checkpoint/"
	writerLock    = "lock/writer"
	headsDir      = "heads/"
)

// blobKey is a blob's key: pool/sha256/ab/ab12….
func blobKey(d digest.Digest) string {
	e := d.Encoded()
	return poolBlobs + e[:2] + "/" + e
}

// blobFromKey is the digest a pool key names (false for anything else).
func blobFromKey(key string) (digest.Digest, bool) {
	rest, ok := strings.CutPrefix(key, poolBlobs)
	if !ok || len(rest) != 3+64 || rest[2] != '/' || rest[:2] != rest[3:5] {
		return "", false
	}
	d := digest.NewDigestFromEncoded(digest.SHA256, rest[3:])
	return d, d.Validate() == nil
}
