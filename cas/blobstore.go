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
	"time"

	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/internal/fsx"
)

// BlobStore holds the pool's bytes: blobs keyed by the sha256 of their
// contents, each written once. It knows bytes, not records: the store
// keeps its blob records (Records) beside it and orders the two for crash
// safety (intents, then renames, then records). The local pool (a
// directory of files, LocalPool) is one implementation; blobtest.Run is
// the contract every implementation passes.
//
// Contract: a blob becomes visible under its digest only when a writer
// commits it, after its size and digest were checked against what the
// writer was told to expect and against the bytes themselves; a blob that
// is visible is whole, and is never replaced (committing bytes the store
// holds changes nothing). A writer that is cancelled, fails or dies
// leaves nothing visible. Stat and Open of a missing blob wrap
// ErrBlobNotFound; Delete of one is no error. Walk sees every visible blob
// once, in no promised order.
type BlobStore interface {
	Stat(ctx context.Context, d digest.Digest) (BlobInfo, error)
	Open(ctx context.Context, d digest.Digest) (BlobFile, error)
	Create(ctx context.Context) (BlobWriter, error)
	Delete(ctx context.Context, d digest.Digest) error
	Walk(ctx context.Context, fn func(BlobInfo) error) error
}

// BlobInfo is what a blob store says of a blob.
type BlobInfo struct {
	Digest  digest.Digest
	Size    int64
	ModTime time.Time
}

// BlobFile is an open blob: sequential and ranged reads.
type BlobFile interface {
	io.ReadSeekCloser
	io.ReaderAt
	Size() int64
}

// BlobWriter writes one blob, hashing as it goes.
type BlobWriter interface {
	io.Writer
	// Commit checks the bytes written against exp (a negative size and
	// an empty digest mean "anything") and makes them visible under their
	// digest. It returns the blob and whether the store held it already.
	Commit(ctx context.Context, exp Expect) (BlobInfo, bool, error)
	// Cancel drops what was written. After Commit it does nothing.
	Cancel() error
}

// LocalFiles is the optional capability of a blob store whose blobs are
// files of this machine: what needs a file (a hard link into a published
// tree, a build that reads its source by path) asks for it; a store
// without it is read through Open.
type LocalFiles interface {
	// BlobFilePath is the file of a visible blob (ErrBlobNotFound).
	BlobFilePath(d digest.Digest) (string, error)
	// LinkBlob hard-links the file of a visible blob to dst, whose
	// directory exists: ErrBlobNotFound when the blob is missing,
	// fs.ErrExist when dst exists; one system call, no stat.
	LinkBlob(d digest.Digest, dst string) error
}

// TempFiles is the optional capability of a blob store that can give a
// tool a file of its own to write by path (tar2sqfs seeks back to write
// its superblock, so its output cannot be streamed), moved into the store
// afterwards with no copy. Without it, a caller writes a file of its own
// and streams it in (build.ToolFile does either).
type TempFiles interface {
	CreateTemp() (*Temp, error)
}

// LocalPool is the local implementation: STORE/pool/sha256/ab/ab12…,
// written through flocked temp files in STORE/pool/.ingest.
type LocalPool struct{ s *Store }

// Blobs is the store's blob store.
// On a store with a remote it is the remote's pool (with temp files for
// tools in the local staging area).
func (s *Store) Blobs() BlobStore {
	if s.remote != nil {
		return remotePool{BlobStore: s.remote.Pool(), s: s}
	}
	return &LocalPool{s: s}
}

var _ BlobStore = (*LocalPool)(nil)
var _ LocalFiles = (*LocalPool)(nil)
var _ TempFiles = (*LocalPool)(nil)

// CreateTemp is a file in the pool's ingest directory (Store.CreateTemp).
func (p *LocalPool) CreateTemp() (*Temp, error) { return p.s.CreateTemp() }

// Stat reports a visible blob.
func (p *LocalPool) Stat(ctx context.Context, d digest.Digest) (BlobInfo, error) {
	if err := d.Validate(); err != nil {
		return BlobInfo{}, fmt.Errorf("digest %q: %w", d, ErrBadDigest)
	}
	fi, err := os.Stat(p.s.BlobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return BlobInfo{}, fmt.Errorf("%s: %w", d, ErrBlobNotFound)
	}
	if err != nil {
		return BlobInfo{}, err
	}
	return BlobInfo{Digest: d, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// localFile is an open pool file.
type localFile struct {
	*os.File
	size int64
}

func (f localFile) Size() int64 { return f.size }

// Open opens a visible blob for reading.
func (p *LocalPool) Open(ctx context.Context, d digest.Digest) (BlobFile, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("digest %q: %w", d, ErrBadDigest)
	}
	f, err := p.s.openPoolFile(d)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// BlobFilePath is the pool file of a visible blob.
func (p *LocalPool) BlobFilePath(d digest.Digest) (string, error) {
	path := p.s.BlobPath(d)
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%s: %w", d, ErrBlobNotFound)
	}
	return path, nil
}

// LinkBlob hard-links the blob's file to dst (LocalFiles).
func (p *LocalPool) LinkBlob(d digest.Digest, dst string) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("digest %q: %w", d, ErrBadDigest)
	}
	err := os.Link(p.s.BlobPath(d), dst)
	if errors.Is(err, fs.ErrNotExist) {
		if _, derr := os.Stat(filepath.Dir(dst)); derr != nil {
			return err
		}
		return fmt.Errorf("%s: %w", d, ErrBlobNotFound)
	}
	return err
}

// Delete removes a blob's file and syncs its directory.
func (p *LocalPool) Delete(ctx context.Context, d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("digest %q: %w", d, ErrBadDigest)
	}
	path := p.s.BlobPath(d)
	err := os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return fsx.SyncDir(filepath.Dir(path))
}

// Walk lists the pool's blobs, directory by directory.
func (p *LocalPool) Walk(ctx context.Context, fn func(BlobInfo) error) error {
	subs, err := os.ReadDir(p.s.blobsPath())
	if err != nil {
		return err
	}
	for _, sub := range subs {
		if err := ctx.Err(); err != nil {
			return err
		}
		ents, err := os.ReadDir(filepath.Join(p.s.blobsPath(), sub.Name()))
		if err != nil {
			return err
		}
		for _, e := range ents {
			d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
			if d.Validate() != nil {
				continue // not a blob (fsck reports it)
			}
			fi, err := e.Info()
			if err != nil {
				continue // removed meanwhile
			}
			if err := fn(BlobInfo{Digest: d, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
				return err
			}
		}
	}
	return nil
}

// localWriter writes a flocked temp file in the ingest directory.
type localWriter struct {
	p    *LocalPool
	f    *os.File
	h    hash.Hash
	n    int64
	done bool
}

// Create starts a blob.
func (p *LocalPool) Create(ctx context.Context) (BlobWriter, error) {
	_, f, err := p.s.createTempFile()
	if err != nil {
		return nil, fmt.Errorf("blob: create temp file: %w", err)
	}
	return &localWriter{p: p, f: f, h: sha256.New()}, nil
}

func (w *localWriter) Write(b []byte) (int, error) {
	if w.done {
		return 0, errors.New("blob: write after commit or cancel")
	}
	n, err := w.f.Write(b)
	w.h.Write(b[:n])
	w.n += int64(n)
	return n, err
}

// Commit checks, makes the file read-only and durable, and renames it into
// place without replacing a file there.
func (w *localWriter) Commit(ctx context.Context, exp Expect) (BlobInfo, bool, error) {
	if w.done {
		return BlobInfo{}, false, errors.New("blob: committed or cancelled already")
	}
	defer w.Cancel()
	d := digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(w.h.Sum(nil)))
	if err := exp.check("blob", w.n, d, nil); err != nil {
		return BlobInfo{}, false, err
	}
	if err := w.f.Chmod(0o444); err != nil {
		return BlobInfo{}, false, err
	}
	if err := w.f.Sync(); err != nil {
		return BlobInfo{}, false, err
	}
	dst := w.p.s.BlobPath(d)
	if err := fsx.MkdirDurable(filepath.Dir(dst), 0o755); err != nil {
		return BlobInfo{}, false, err
	}
	created, err := renameNoReplace(w.f.Name(), dst)
	if err != nil {
		return BlobInfo{}, false, err
	}
	if err := fsx.SyncDir(filepath.Dir(dst)); err != nil {
		return BlobInfo{}, false, err
	}
	info, err := w.p.Stat(ctx, d)
	return info, !created, err
}

// Cancel removes the temp file (a committed one has moved: nothing to do).
func (w *localWriter) Cancel() error {
	if w.done {
		return nil
	}
	w.done = true
	os.Remove(w.f.Name())
	return w.f.Close()
}
