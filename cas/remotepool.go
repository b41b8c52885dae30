package cas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	digest "github.com/opencontainers/go-digest"
)

// OpenRemote opens the store whose truth is r, with dir as this machine's
// cache of it (made on first use; a cache that is lost is rebuilt from
// r's log, one that is behind catches up when a session opens).
func OpenRemote(dir string, r Remote, opts Options) (*Store, error) {
	if _, err := os.Stat(filepath.Join(dir, formatFile)); err != nil {
		if err := InitWith(dir, 0); err != nil {
			return nil, fmt.Errorf("cache of %s: %w", r, err)
		}
	}
	if opts.Now == nil {
		opts.Now = r.Now
	}
	s, err := Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("cache of %s: %w", r, err)
	}
	s.remote = r
	return s, nil
}

// Remote is the store's remote, or nil for a store on this machine.
func (s *Store) Remote() Remote { return s.remote }

// Location names the store: its directory, or its remote.
func (s *Store) Location() string {
	if s.remote != nil {
		return s.remote.String()
	}
	return s.dir
}

// ExpectingCreator is the optional capability of a blob store that writes
// faster when it knows the digest before the bytes (it can put them under
// their final name at once, as an S3 pool does).
type ExpectingCreator interface {
	CreateExpecting(ctx context.Context, exp Expect) (BlobWriter, error)
}

// remotePool is the blob store of a store with a remote: the remote's
// pool, plus temp files in the cache's staging area for tools that write
// by path (TempFiles); Commit uploads them.
type remotePool struct {
	BlobStore
	s *Store
}

func (p remotePool) CreateTemp() (*Temp, error) { return p.s.CreateTemp() }

var _ TempFiles = remotePool{}

// upload puts a staged blob in the remote's pool and drops its temp file:
// it is then pooled, and Commit records it. Bytes the pool holds already
// are not sent again.
func (s *Store) upload(ctx context.Context, st *Staged) (*Staged, error) {
	if st.pooled {
		return st, nil
	}
	defer st.Discard()
	out := &Staged{Digest: st.Digest, Size: st.Size, synced: true, pooled: true}
	pool := s.remote.Pool()
	if info, err := pool.Stat(ctx, st.Digest); err == nil && info.Size == st.Size {
		return out, nil
	}
	if _, err := st.f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("upload %s: %w", st.Digest, err)
	}
	exp := Expect{Digest: st.Digest, Size: st.Size}
	var w BlobWriter
	var err error
	if ec, ok := pool.(ExpectingCreator); ok {
		w, err = ec.CreateExpecting(ctx, exp)
	} else {
		w, err = pool.Create(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("upload %s: %w", st.Digest, err)
	}
	if _, err := io.Copy(w, ctxReader{ctx, st.f}); err != nil {
		w.Cancel()
		return nil, fmt.Errorf("upload %s: %w", st.Digest, err)
	}
	if _, _, err := w.Commit(ctx, exp); err != nil {
		w.Cancel()
		return nil, fmt.Errorf("upload %s: %w", st.Digest, err)
	}
	return out, nil
}

// uploadAll uploads staged blobs, a few at a time, replacing each with
// its pooled stand-in; on error every one left is discarded.
func (s *Store) uploadAll(ctx context.Context, staged []*Staged) error {
	const jobs = 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, jobs)
	)
	for i := range staged {
		if staged[i].pooled {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			up, err := s.upload(ctx, staged[i])
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			staged[i] = up
		}(i)
	}
	wg.Wait()
	return errors.Join(errs...)
}

// poolFileSize is the size of the pool's copy of d, or -1 when it has
// none.
func (s *Store) poolFileSize(ctx context.Context, d digest.Digest) int64 {
	if s.remote == nil {
		if fi, err := os.Stat(s.BlobPath(d)); err == nil {
			return fi.Size()
		}
		return -1
	}
	if info, err := s.remote.Pool().Stat(ctx, d); err == nil {
		return info.Size
	}
	return -1
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// context is the context of a writer session's remote requests.
func (ss *Session) context() context.Context {
	if ss.ctx != nil {
		return ss.ctx
	}
	return context.Background()
}

// openBlobFile opens a visible blob wherever the pool is.
func (s *Store) openBlobFile(ctx context.Context, d digest.Digest) (BlobFile, error) {
	if s.remote != nil {
		return s.remote.Pool().Open(ctx, d)
	}
	f, err := s.openPoolFile(d)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Unwrap is the remote's own pool (for what it can do beyond BlobStore,
// such as server-side copies).
func (p remotePool) Unwrap() BlobStore { return p.BlobStore }

// DefaultCacheDir is where a store on shared storage keeps this machine's
// cache of it by default: /var/cache/mephstore/<name> for root,
// $XDG_CACHE_HOME/mephstore/<name> (~/.cache/mephstore/<name>) otherwise.
func DefaultCacheDir(getenv func(string) string, euid int, name string) string {
	if euid == 0 {
		return filepath.Join("/var/cache/mephstore", name)
	}
	if x := getenv("XDG_CACHE_HOME"); x != "" {
		return filepath.Join(x, "mephstore", name)
	}
	return filepath.Join(getenv("HOME"), ".cache", "mephstore", name)
}
