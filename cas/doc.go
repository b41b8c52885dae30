// Package cas is mephstore's content-addressed blob pool and the store's
// metadata database, and the storage seam above them:
//
//   - BlobStore (blobstore.go): blobs by digest; writers hash while
//     writing and commit only under the expected digest and size; ranged
//     reads; walk. Optional capabilities: LocalFiles (a blob's file, for
//     hard links) and TempFiles (a file a tool writes, moved in without a
//     copy). LocalPool is the local implementation; blobtest.Run is the
//     contract.
//
//   - Records and Txn (txn.go): transactions over ordered keys, a unit of
//     work across record kinds; the local implementation is badger, and
//     this is the only package that imports it; recordtest.Run is the
//     contract. Table (table.go) makes each record kind a typed store with
//     key and value codecs.
//
//   - Remote (remote.go): a store whose truth is on shared storage (a
//     bucket: s3store.Store): its pool, a log of record transactions
//     appended with a conditional write, a writer lock and a clock. The
//     store's directory is then a cache: badger replayed from the log,
//     the staging area, and copies of small blobs. Every Update and Batch
//     of a writer becomes the next log entry before the cache commits it.
//
// Invariants: a blob is visible only once its bytes match its digest, and
// never changes; a record refers only to blobs that are visible; every
// write is durable before the operation that made it returns; recovery on
// the next writer finishes or undoes whatever a crash cut short.
//
// A store is a directory (see paths.go for the drawing). Blobs live in
// pool/sha256/<2 hex>/<64 hex>, named by the sha256 of their bytes, read-only
// and never rewritten. Metadata (blob records, and the records of the other
// packages: streams, orphans, leases, builds) lives in a badger database
// under db/.
//
// # Ingest
//
// Ingest is split in two so that the slow part runs without any lock:
//
//   - Stage reads the source once, hashing while it writes to an unnamed
//     file in pool/.ingest (O_TMPFILE), checks the size and sha256 the
//     caller expects, sets the file read-only and fsyncs it. Nothing names
//     the file until its commit, so a crash or a discard leaves nothing.
//     (Where the file system has no O_TMPFILE, and for the temp files of
//     Temp and the blob writers, the file is pool/.ingest/<pid>-<random>.part,
//     flocked by its writer for as long as it lives, so recovery can tell
//     a live ingest from a crashed one.)
//   - Session.Commit (under the writer lock) records one intent for the
//     batch (its digests), links each unnamed file into place (linkat of
//     /proc/self/fd/N) or renames each temp file (RENAME_NOREPLACE), never
//     replacing anything, syncs the directories, and writes the blob
//     records in the same transaction that drops the intent. Small blobs
//     are staged without fsync; Commit makes a batch of them durable with
//     one syncfs before it links them.
//
// A crash at any point leaves either no blob or a complete, correct one.
// Opening a writer session runs recovery first: stale temp files (whose flock
// is free) are removed, and every leftover intent is resolved by re-hashing
// the pool file it names.
//
// # Locking
//
// Writers hold an exclusive flock on STORE/lock for the length of their
// session and record pid, host, time and operation in it, so a second writer
// that gives up after --wait can say who holds the store. badger allows one
// read-write process or any number of read-only ones; STORE/db.lock gates
// that (exclusive for a writer session, shared for readers), so readers never
// take the writer lock, and writer sessions are kept short: the bytes of an
// ingest are staged before the session opens.
package cas
