package cas

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/internal/fsx"
)

// Deleted is what Delete removed.
type Deleted struct {
	Blobs int
	Bytes int64
}

// Delete removes blobs from the store in this writer session. It is gc's
// sweep; callers decide what may go. keep, when not nil, is asked for each
// blob inside the transaction that drops the records (the caller's last
// check, under the writer lock) and may delete keys of its own there (gc
// drops its orphan record). Blobs without a record are skipped.
//
// The order makes a crash harmless: a transaction (one per deleteChunk
// blobs) records a delete intent (the digests) and drops the records; the
// files are unlinked and their directories synced; the intents are
// dropped. Recovery finishes a
// leftover intent by unlinking every listed file that has no record, so the
// pool never keeps a file that the records do not know, and a record never
// names a missing file.
func (ss *Session) Delete(ctx context.Context, ds []digest.Digest, keep func(txn Txn, b Blob) (bool, error)) (Deleted, error) {
	var res Deleted
	if !ss.writable {
		return res, ErrReadOnly
	}
	// Transactions of deleteChunk blobs (a record and what keep deletes
	// with it each), each with its own intent; one unlink pass for all.
	var gone []digest.Digest
	var ikeys [][]byte
	for lo := 0; lo < len(ds); lo += deleteChunk {
		ikey := deleteIntentKey()
		g, bytes, err := ss.dropRecords(ds[lo:min(lo+deleteChunk, len(ds))], keep, ikey)
		if err != nil {
			return Deleted{}, fmt.Errorf("delete: %w", err)
		}
		if len(g) > 0 {
			gone, ikeys = append(gone, g...), append(ikeys, ikey)
			res.Bytes += bytes
		}
	}
	if len(gone) == 0 {
		return res, nil
	}
	if err := ss.unlinkBlobs(ctx, gone); err != nil {
		return res, err
	}
	if err := ss.update(func(txn Txn) error {
		for _, k := range ikeys {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return res, fmt.Errorf("delete: drop intent: %w", err)
	}
	res.Blobs = len(gone)
	return res, nil
}

// deleteChunk is how many blobs one delete transaction drops: each record
// and the key keep may drop with it stay within maxTxnEntries.
const deleteChunk = maxTxnEntries / 2

// dropRecords drops the records of ds that keep lets go, and records the
// intent ikey naming them, in one transaction; it returns them and their
// bytes.
func (ss *Session) dropRecords(ds []digest.Digest, keep func(txn Txn, b Blob) (bool, error), ikey []byte) ([]digest.Digest, int64, error) {
	var gone []digest.Digest
	var bytes int64
	err := ss.update(func(txn Txn) error {
		for _, d := range ds {
			b, err := GetBlob(txn, d)
			if errors.Is(err, ErrBlobNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if keep != nil {
				k, err := keep(txn, b)
				if err != nil {
					return err
				}
				if k {
					continue
				}
			}
			if err := txn.Delete(blobKey(PrefixBlob, d)); err != nil {
				return err
			}
			gone = append(gone, d)
			bytes += b.Size
		}
		if len(gone) == 0 {
			return nil
		}
		return txn.Set(ikey, encodeDigests(gone))
	})
	return gone, bytes, err
}

// unlinkBlobs removes the pool files of blobs whose records are gone, then
// makes the removals durable.
func (ss *Session) unlinkBlobs(ctx context.Context, ds []digest.Digest) error {
	if ss.s.remote != nil {
		return ss.deleteRemote(ctx, ds)
	}
	dirs := map[string]bool{}
	for _, d := range ds {
		dirs[filepath.Dir(ss.s.BlobPath(d))] = true
	}
	// Unlinks in parallel: each waits on the disk, and the files are
	// spread over 256 directories.
	err := eachParallel(ctx, ds, min(unlinkJobs, 1+len(ds)/64), func(d digest.Digest) error {
		if err := os.Remove(ss.s.BlobPath(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete %s: %w", d, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(dirs) > syncfsAbove {
		return ss.syncfs()
	}
	for d := range dirs {
		if err := fsx.SyncDir(d); err != nil {
			return fmt.Errorf("delete: %w", err)
		}
	}
	return nil
}

const unlinkJobs = 4

// deleteRemote removes blobs from a remote's pool, a few requests at a
// time.
func (ss *Session) deleteRemote(ctx context.Context, ds []digest.Digest) error {
	pool := ss.s.remote.Pool()
	return eachParallel(ctx, ds, 8, func(d digest.Digest) error { return pool.Delete(ctx, d) })
}

// eachParallel calls fn for every digest on jobs goroutines; each stops
// at its first error, and the errors (and ctx's) are joined.
func eachParallel(ctx context.Context, ds []digest.Digest, jobs int, fn func(digest.Digest) error) error {
	next := make(chan digest.Digest)
	errs := make([]error, jobs)
	var wg sync.WaitGroup
	for j := range jobs {
		wg.Go(func() {
			for d := range next {
				if errs[j] == nil {
					errs[j] = fn(d)
				}
			}
		})
	}
	for _, d := range ds {
		if ctx.Err() != nil {
			break
		}
		next <- d
	}
	close(next)
	wg.Wait()
	return errors.Join(append(errs, ctx.Err())...)
}

func deleteIntentKey() []byte {
	var b [12]byte
	rand.Read(b[:])
	return append([]byte{PrefixDelete}, b[:]...)
}

// recoverDeletes finishes the deletes a crash cut short.
func (ss *Session) recoverDeletes(ctx context.Context) (int, error) {
	intents, err := ss.readIntents(PrefixDelete)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, in := range intents {
		var orphaned []digest.Digest
		err := ss.View(func(txn Txn) error {
			for _, d := range in.ds {
				if _, err := GetBlob(txn, d); errors.Is(err, ErrBlobNotFound) {
					orphaned = append(orphaned, d)
				} else if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return n, err
		}
		if err := ss.unlinkBlobs(ctx, orphaned); err != nil {
			return n, err
		}
		if err := ss.update(func(txn Txn) error { return txn.Delete(in.key) }); err != nil {
			return n, err
		}
		n += len(orphaned)
	}
	return n, nil
}
