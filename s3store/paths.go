package s3store

import (
	"strings"

	"github.com/mephstore/mephstore/internal/digest"
)

// The layout on a bucket. A whole store under a prefix (mephstore init
// s3://bucket/prefix; Store):
//
//	s3://bucket/prefix/
//	├── format                           {"format":"mephstore-store 1 s3","id":…}: written
//	│                                    once by init (If-None-Match: *); a store has it
//	├── log/00000000000000000001         the record transactions, in order: entry n is
//	├── log/00000000000000000002 …       written only if no entry n exists (If-None-Match:
//	│                                    *), so two writers never both commit entry n.
//	│                                    Blob records, stream heads and history, leases,
//	│                                    gc's first-seen records, settings: all live here,
//	│                                    and each machine replays them into a badger cache
//	├── checkpoint/00000000000000001000  every record as of log entry 1000 (then 2000, …):
//	│                                    a new cache loads the newest and replays the
//	│                                    entries after it
//	├── .locks/store/x                   the writer lock (Bucket.Lock): host, pid, expiry
//	│                                    by the server's clock, renewed while held
//	└── pool/
//	    ├── sha256/ab/ab12…ef            a blob, named by the sha256 of its bytes;
//	    │                                written once, checked before it is visible
//	    └── .ingest/<id>.part            a large upload with an unknown digest, in
//	                                     flight; removed after its copy (one a
//	                                     killed writer left: AbortUploads, gc)
//
// A published tree on a bucket (publish --publish-root s3://bucket/www,
// publish.S3Target) is the directory tree of publish.Layout, except that
// each stream holds its own data (no links on a bucket), and its locks are
// objects:
//
//	s3://bucket/www/
//	├── .locks/root/x, .locks/root/s-<id>    gc's exclusive, publishes' shared lock
//	├── .locks/stream-<stream>/x             one publish of a stream at a time
//	└── <stream>/
//	    ├── streams/v1/index.json            written last
//	    ├── streams/v1/index.sjson, .gpg     written before index.json
//	    ├── streams/v1/<products>.json       named by content, written first
//	    └── data/sha256/ab/ab12…ef           copied server-side from the pool
const (
	formatKey     = "format"
	logDir        = "log/"
	checkpointDir = "checkpoint/"
	locksDir      = ".locks"
	poolBlobs     = "pool/sha256/"
	poolIngest    = "pool/.ingest/"
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
