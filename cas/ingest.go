package cas

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	badger "github.com/dgraph-io/badger/v4"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/mephstore/mephstore/internal/flock"
	"github.com/mephstore/mephstore/internal/fsx"
	"github.com/mephstore/mephstore/internal/progress"
)

// Expect is what the caller knows of the bytes before they are read.
// A zero Digest and a negative Size mean "unknown".
type Expect struct {
	Size   int64
	Digest digest.Digest
}

// Unknown expects nothing.
var Unknown = Expect{Size: -1}

const (
	chunkSize = 1 << 20 // read/hash/write unit
	chunks    = 4       // buffers in flight: memory is chunks*chunkSize
	// Every writebackEvery bytes the written range is handed to the kernel
	// for write-back, and the range before it is waited for, so the final
	// fsync has little left to do and dirty pages stay bounded.
	writebackEvery = 16 << 20
)

// Staged is a blob written to pool/.ingest, hashed, checked and fsynced,
// waiting for Session.Commit. Discard it if it is not committed.
type Staged struct {
	Digest digest.Digest
	Size   int64
	f      *os.File // kept open: its flock marks the temp file as live
	path   string
}

// Stage reads r once, writing it to a temp file in the pool while hashing
// it. Reading, hashing and writing overlap. On a size or digest mismatch
// with exp, or any error, nothing is left behind. meter (may be nil) is
// advanced by the bytes read.
func (s *Store) Stage(ctx context.Context, r io.Reader, exp Expect, meter progress.Meter) (*Staged, error) {
	if meter == nil {
		meter = progress.Factory{}.New("", 0, progress.Bytes)
	}
	if exp.Digest != "" {
		if err := exp.Digest.Validate(); err != nil || exp.Digest.Algorithm() != digest.SHA256 {
			return nil, fmt.Errorf("expected digest %q: %w", exp.Digest, ErrBadDigest)
		}
	}
	path := filepath.Join(s.ingestPath(), fsx.TempName("", partSuffix))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("ingest: create temp file: %w", err)
	}
	st := &Staged{f: f, path: path}
	ok := false
	defer func() {
		if !ok {
			st.Discard()
		}
	}()
	if got, err := flock.TryExclusive(f); err != nil || !got {
		return nil, fmt.Errorf("ingest: lock temp file %s: %v", path, err)
	}
	h := sha256.New()
	n, err := copyHashing(ctx, f, h, r, exp.Size, meter)
	if err != nil {
		return nil, err
	}
	st.Size = n
	st.Digest = digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil)))
	if exp.Size >= 0 && n != exp.Size {
		return nil, fmt.Errorf("ingest: got %d bytes, expected %d: %w", n, exp.Size, ErrSizeMismatch)
	}
	if exp.Digest != "" && st.Digest != exp.Digest {
		return nil, fmt.Errorf("ingest: content is %s, expected %s: %w", st.Digest, exp.Digest, ErrDigestMismatch)
	}
	if err := f.Chmod(0o444); err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("ingest: fsync %s: %w", path, err)
	}
	ok = true
	return st, nil
}

type chunk struct {
	buf []byte
	n   int
	err error
}

// copyHashing copies r to f and h. A reader goroutine fills buffers; for
// each buffer, the hash runs on a second goroutine while this one writes.
func copyHashing(ctx context.Context, f *os.File, h hash.Hash, r io.Reader, limit int64, meter progress.Meter) (int64, error) {
	free := make(chan []byte, chunks)
	for range chunks {
		free <- make([]byte, chunkSize)
	}
	full := make(chan chunk, chunks)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(full)
		for {
			var buf []byte
			select {
			case buf = <-free:
			case <-stop:
				return
			}
			n, err := io.ReadFull(r, buf)
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			select {
			case full <- chunk{buf, n, err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	hashIn := make(chan []byte)
	hashDone := make(chan struct{})
	defer close(hashIn)
	go func() {
		for b := range hashIn {
			h.Write(b)
			hashDone <- struct{}{}
		}
	}()
	var total, synced int64
	fd := int(f.Fd())
	for c := range full {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("ingest: %w", err)
		}
		if c.n > 0 {
			if limit >= 0 && total+int64(c.n) > limit {
				return total, fmt.Errorf("ingest: more than the %d bytes expected: %w", limit, ErrSizeMismatch)
			}
			data := c.buf[:c.n]
			hashIn <- data
			_, werr := f.Write(data)
			<-hashDone
			if werr != nil {
				return total, fmt.Errorf("ingest: write temp file: %w", werr)
			}
			total += int64(c.n)
			meter.Add(int64(c.n))
			if total-synced >= writebackEvery {
				// Start write-back of what was just written and wait for the
				// range before it: the disk works while we read and hash.
				unix.SyncFileRange(fd, synced, total-synced, unix.SYNC_FILE_RANGE_WRITE)
				if synced >= writebackEvery {
					unix.SyncFileRange(fd, synced-writebackEvery, writebackEvery,
						unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
				}
				synced = total
			}
		}
		if c.err == io.EOF {
			return total, nil
		}
		if c.err != nil {
			return total, fmt.Errorf("ingest: read: %w", c.err)
		}
		free <- c.buf
	}
	return total, nil
}

// Discard removes the temp file of a blob that will not be committed.
func (st *Staged) Discard() error {
	if st.f == nil {
		return nil
	}
	os.Remove(st.path)
	err := st.f.Close()
	st.f = nil
	return err
}

// Committed is the outcome of a commit.
type Committed struct {
	Blob
	New bool `json:"new"` // false when the store already had these bytes
}

// Commit moves staged blobs into the pool and records them, in order. A blob
// already in the pool is left as it is and its temp file removed. Every
// staged blob is consumed (committed or discarded) whatever happens.
func (ss *Session) Commit(staged ...*Staged) ([]Committed, error) {
	defer func() {
		for _, st := range staged {
			st.Discard()
		}
	}()
	if !ss.writable {
		return nil, ErrReadOnly
	}
	// 1. Intents, so recovery can finish or undo a commit cut short.
	if err := ss.db.Update(func(txn *badger.Txn) error {
		for _, st := range staged {
			if err := txn.Set(blobKey(PrefixIntent, st.Digest), nil); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("commit: record intents: %w", err)
	}
	// 2. Files into place, never replacing one.
	out := make([]Committed, len(staged))
	dirs := map[string]bool{}
	for i, st := range staged {
		dst := ss.s.BlobPath(st.Digest)
		if err := fsx.MkdirDurable(filepath.Dir(dst), 0o755); err != nil {
			return nil, fmt.Errorf("commit %s: %w", st.Digest, err)
		}
		created, err := renameNoReplace(st.path, dst)
		if err != nil {
			return nil, fmt.Errorf("commit %s: %w", st.Digest, err)
		}
		if !created {
			fi, err := os.Stat(dst)
			if err != nil {
				return nil, fmt.Errorf("commit %s: %w", st.Digest, err)
			}
			if fi.Size() != st.Size {
				return nil, fmt.Errorf("commit %s: pool file %s has %d bytes, not %d (run 'mephstore fsck'): %w",
					st.Digest, dst, fi.Size(), st.Size, ErrCorrupt)
			}
		}
		dirs[filepath.Dir(dst)] = true
		out[i] = Committed{Blob: Blob{Digest: st.Digest, Size: st.Size, Ingested: ss.s.now().UTC()}, New: created}
	}
	for d := range dirs {
		if err := fsx.SyncDir(d); err != nil {
			return nil, fmt.Errorf("commit: %w", err)
		}
	}
	// 3. Records, dropping the intents. An existing record is kept as it is
	// (it holds the first-ingested time).
	err := ss.db.Update(func(txn *badger.Txn) error {
		for i := range out {
			b, err := GetBlob(txn, out[i].Digest)
			switch {
			case err == nil:
				out[i].Blob, out[i].New = b, false
			case errors.Is(err, ErrBlobNotFound):
				if err := txn.Set(blobKey(PrefixBlob, out[i].Digest), encodeRecord(out[i].Blob)); err != nil {
					return err
				}
				out[i].New = true
			default:
				return err
			}
			if err := txn.Delete(blobKey(PrefixIntent, out[i].Digest)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("commit: record blobs: %w", err)
	}
	return out, nil
}

// renameNoReplace renames src to dst unless dst exists; it reports whether
// it did.
func renameNoReplace(src, dst string) (bool, error) {
	err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EEXIST):
		return false, nil
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS):
		// No RENAME_NOREPLACE on this file system: link(2) fails on an
		// existing name just the same.
		if err := os.Link(src, dst); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return false, nil
			}
			return false, err
		}
		os.Remove(src)
		return true, nil
	default:
		return false, err
	}
}
