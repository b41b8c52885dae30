package cas

// The layout of a store on disk:
//
//	STORE/
//	├── format                   "mephstore-store 1\n": written last by init; a store has it
//	├── lock                     writers' exclusive flock; holds {pid, host, since, operation}
//	├── db.lock                  gate for badger: exclusive for a writer session, shared for readers
//	├── gc.lock                  held by a running gc (gc.GCLockFile)
//	├── reserve                  32 MiB that gc releases on a full disk (init --reserve)
//	├── db/                      badger: every record kind (Kind in table.go)
//	├── pool/
//	│   ├── sha256/
//	│   │   └── ab/
//	│   │       └── ab12…ef      a blob: mode 0444, named by the sha256 of its bytes
//	│   └── .ingest/
//	│       └── 3f9c…21.part     an ingest in progress (or a cas.Temp a tool writes), flocked
//	│                            by its writer; never served
//	└── work/                    owned by build: customisation trees (STORE/work/<id>/{lock,root})
//
// Keys in the database (one byte of prefix, then binary):
//
//	'b' + sha256[32]  blob record: version byte, uvarint size, varint first-ingested unix ns
//	'i' + random[12]  commit intent of a batch (its sha256s, 32 raw bytes each): written
//	                  before the renames into the pool, dropped with the records; a
//	                  leftover one is resolved by recovery
//	'd' + random[12]  delete intent of a gc batch (its sha256s): written with the
//	                  dropping of the records, before the unlinks; recovery unlinks
//	                  the listed files that have no record
//	'l' + id[8] + 0   a lease (JSON); 'l' + id[8] + 1 + random[8]: a batch of the
//	                  references it protects (kind byte + sha256, 33 bytes each)
//
// The other kinds (streams 's', history 'h', orphans 'o', pending builds
// 'p', settings 'c') are typed tables (table.go) declared by the package
// that owns their values; their key bytes are written by Table alone.

import (
	"path/filepath"

	"github.com/mephstore/mephstore/internal/digest"
)

const (
	formatFile    = "format"
	formatContent = "mephstore-store 1\n"
	lockFile      = "lock"
	dbLockFile    = "db.lock"
	dbDir         = "db"
	poolDir       = "pool"
	blobsDir      = "sha256"
	ingestDir     = ".ingest"
	partSuffix    = ".part"
)

func (s *Store) poolPath() string   { return filepath.Join(s.dir, poolDir) }
func (s *Store) blobsPath() string  { return filepath.Join(s.dir, poolDir, blobsDir) }
func (s *Store) ingestPath() string { return filepath.Join(s.dir, poolDir, ingestDir) }

// BlobPath is the pool file of the blob d (which may not exist).
func (s *Store) BlobPath(d digest.Digest) string {
	h := d.Encoded()
	return filepath.Join(s.dir, poolDir, blobsDir, h[:2], h)
}
