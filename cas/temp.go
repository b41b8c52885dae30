package cas

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/internal/progress"
)

// Temp is a file in the pool's ingest directory that a tool writes itself
// (tar2sqfs seeks back to write its superblock, so its output cannot be
// streamed through Stage). It is locked like a stage in progress, so that
// recovery leaves it alone while its writer lives. Stage it once written,
// or Discard it.
type Temp struct {
	path string
	f    *os.File
	s    *Store
}

// Path is the file a tool writes; it is the local pool's own, and known
// only to what asked for it through cas.TempFiles.
func (t *Temp) Path() string { return t.path }

// CreateTemp creates an empty Temp in the pool's ingest directory.
func (s *Store) CreateTemp() (*Temp, error) {
	path, f, err := s.createTempFile()
	if err != nil {
		return nil, fmt.Errorf("ingest: create temp file: %w", err)
	}
	return &Temp{path: path, f: f, s: s}, nil
}

// Stage hashes what was written to the temp file and makes it a staged
// blob, ready for Commit, without copying it: the file itself moves into
// the pool. meter (may be nil) is advanced by the bytes hashed.
func (t *Temp) Stage(ctx context.Context, meter progress.Meter) (*Staged, error) {
	if t.f == nil {
		return nil, errors.New("ingest: temp file already staged or discarded")
	}
	// The writer may have replaced the file (a tool writing to a path):
	// read what is at the path now, through a fresh descriptor.
	f, err := os.Open(t.path)
	if err != nil {
		t.Discard()
		return nil, fmt.Errorf("ingest: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			t.Discard()
			return nil, fmt.Errorf("ingest: %w", err)
		}
		k, err := f.Read(buf)
		h.Write(buf[:k])
		n += int64(k)
		if meter != nil {
			meter.Add(int64(k))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Discard()
			return nil, fmt.Errorf("ingest: read %s: %w", t.path, err)
		}
	}
	if err := os.Chmod(t.path, 0o444); err != nil {
		t.Discard()
		return nil, fmt.Errorf("ingest: %w", err)
	}
	if err := f.Sync(); err != nil {
		t.Discard()
		return nil, fmt.Errorf("ingest: fsync %s: %w", t.path, err)
	}
	st := &Staged{
		Digest: digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil))),
		Size:   n,
		f:      t.f,
		path:   t.path,
		synced: true,
	}
	t.f = nil
	if t.s != nil && t.s.remote != nil {
		return t.s.upload(ctx, st)
	}
	return st, nil
}

// Discard removes the temp file.
func (t *Temp) Discard() error {
	if t.f == nil {
		return nil
	}
	os.Remove(t.path)
	err := t.f.Close()
	t.f = nil
	return err
}
