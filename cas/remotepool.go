package cas

import (
	"bytes"
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/internal/fsx"
	"github.com/mephstore/mephstore/internal/progress"
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
	s.checkpointEvery = cmp.Or(opts.CheckpointEvery, DefaultCheckpointEvery)
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

// stageRemote is stage on a store with a remote. Small bytes (known to
// be under smallFile) are read into memory, checked, and uploaded with no
// temp file: in the background when async (a batch of small blobs, such
// as a change's products: Commit waits for them), at once otherwise.
// Others are staged locally and uploaded before stageRemote returns,
// outside any lock.
func (s *Store) stageRemote(ctx context.Context, r io.Reader, exp Expect, meter progress.Meter, async bool) (*Staged, error) {
	small := exp.Size
	if lr, ok := r.(interface{ Len() int }); ok && small < 0 {
		small = int64(lr.Len())
	}
	if small < 0 || small >= smallFile {
		return s.stageRemoteLarge(ctx, r, exp, meter)
	}
	if meter == nil {
		meter = progress.Factory{}.New("", 0, progress.Bytes)
	}
	buf := make([]byte, small+1)
	n, err := io.ReadFull(ctxReader{ctx, r}, buf)
	switch {
	case err == nil:
		return nil, fmt.Errorf("ingest: more than the %d bytes expected: %w", small, ErrSizeMismatch)
	case err != io.ErrUnexpectedEOF && err != io.EOF:
		return nil, fmt.Errorf("ingest: read: %w", err)
	}
	data := buf[:n]
	meter.Add(int64(n))
	h, md := exp.hashes()
	h.Write(data)
	d := digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil)))
	if err := exp.check("ingest", int64(n), d, md); err != nil {
		return nil, err
	}
	st := &Staged{Digest: d, Size: int64(n), synced: true, pooled: true}
	s.keepCopy(d, data) // metadata written here is read here next
	if !async {
		var err error
		_, st.fresh, err = s.send(ctx, Expect{Digest: d, Size: int64(n)}, bytes.NewReader(data))
		return st, err
	}
	st.upload = make(chan error, 1)
	s.uploading <- struct{}{} // at most cap(uploading) in flight: bounded memory
	go func() {
		_, fresh, err := s.send(context.WithoutCancel(ctx), Expect{Digest: d, Size: int64(n)}, bytes.NewReader(data))
		st.fresh = fresh // read only after the receive below
		<-s.uploading
		st.upload <- err
	}()
	return st, nil
}

// stageRemoteLarge stages large bytes on a store with a remote without a
// local copy where it can: a local file is hashed where it is, then sent
// under its digest; bytes whose digest the caller knows (a download
// named by signed metadata) are sent as they are read. The pool checks
// the digest before the blob is visible either way. Anything else is
// staged locally first, to learn its digest.
func (s *Store) stageRemoteLarge(ctx context.Context, r io.Reader, exp Expect, meter progress.Meter) (*Staged, error) {
	if meter == nil {
		meter = progress.Factory{}.New("", 0, progress.Bytes)
	}
	if f, ok := r.(*os.File); ok && isRegular(f) && exp.Digest == "" {
		var err error
		if exp, err = hashFileExpect(ctx, f, exp); err != nil {
			return nil, err
		}
	}
	if exp.Digest == "" {
		st, err := s.stageLocal(ctx, r, exp, meter, false)
		if err != nil {
			return nil, err
		}
		return s.upload(ctx, st)
	}
	if size, ok := s.pooledAlready(ctx, exp.Digest, exp.Size); ok {
		return &Staged{Digest: exp.Digest, Size: size, synced: true, pooled: true}, nil
	}
	info, fresh, err := s.send(ctx, exp, &meteredReader{ctxReader{ctx, r}, meter})
	if err != nil {
		return nil, err
	}
	return &Staged{Digest: exp.Digest, Size: info.Size, synced: true, pooled: true, fresh: fresh}, nil
}

// hashFileExpect reads f from its start to learn its digest and size
// (with exp's checks), and leaves it at its start again.
func hashFileExpect(ctx context.Context, f *os.File, exp Expect) (Expect, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return exp, err
	}
	h, md := exp.hashes()
	n, err := io.Copy(h, ctxReader{ctx, f})
	if err != nil {
		return exp, fmt.Errorf("ingest: read: %w", err)
	}
	d := digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil)))
	if err := exp.check("ingest", n, d, md); err != nil {
		return exp, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return exp, err
	}
	return Expect{Digest: d, Size: n}, nil
}

// send writes r to the remote's pool under exp's digest, and says
// whether it wrote the bytes (false: the pool held them).
func (s *Store) send(ctx context.Context, exp Expect, r io.Reader) (BlobInfo, bool, error) {
	w, err := s.createBlob(ctx, exp)
	if err != nil {
		return BlobInfo{}, false, fmt.Errorf("upload %s: %w", exp.Digest, err)
	}
	info, existed := BlobInfo{}, false
	if _, err = io.Copy(w, r); err == nil {
		info, existed, err = w.Commit(ctx, exp)
	}
	if err != nil {
		w.Cancel()
		return BlobInfo{}, false, fmt.Errorf("upload %s: %w", exp.Digest, err)
	}
	return info, !existed, nil
}

// pooledAlready says whether the remote's pool holds d (of size, when
// size is not negative), and its size: large bytes are not sent twice.
func (s *Store) pooledAlready(ctx context.Context, d digest.Digest, size int64) (int64, bool) {
	info, err := s.remote.Pool().Stat(ctx, d)
	return info.Size, err == nil && (size < 0 || info.Size == size)
}

// createBlob starts a blob in the remote's pool, telling it the digest
// when it can use it.
func (s *Store) createBlob(ctx context.Context, exp Expect) (BlobWriter, error) {
	pool := s.remote.Pool()
	if ec, ok := pool.(ExpectingCreator); ok {
		return ec.CreateExpecting(ctx, exp)
	}
	return pool.Create(ctx)
}

// upload puts a staged blob in the remote's pool and drops its temp file:
// it is then pooled, and Commit records it. Bytes the pool holds already
// are not sent again.
func (s *Store) upload(ctx context.Context, st *Staged) (*Staged, error) {
	if st.pooled {
		return st, nil
	}
	defer st.Discard()
	out := &Staged{Digest: st.Digest, Size: st.Size, synced: true, pooled: true}
	// Large bytes the pool holds already are not sent again; for small
	// ones the conditional write that stores them is as cheap as asking.
	if st.Size >= smallFile {
		if _, ok := s.pooledAlready(ctx, st.Digest, st.Size); ok {
			return out, nil
		}
	}
	if _, err := st.f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("upload %s: %w", st.Digest, err)
	}
	_, fresh, err := s.send(ctx, Expect{Digest: st.Digest, Size: st.Size}, ctxReader{ctx, st.f})
	if err != nil {
		return nil, err
	}
	out.fresh = fresh
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
		if st := staged[i]; st.upload != nil {
			err := <-st.upload
			st.upload = nil
			if err != nil {
				errs = append(errs, err)
			}
			continue
		}
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

// blobCacheDir holds copies of small blobs of a remote's pool
// (ReadBlob), named by digest: CACHE/blobs/ab/ab12….
const blobCacheDir = "blobs"

// maxCachedBlob is the largest blob ReadBlob keeps a local copy of.
const maxCachedBlob = 16 << 20

// readCached is ReadBlob of a store with a remote: from the local copy
// when there is one whose bytes match the digest, else from the pool,
// keeping a copy. A copy is only a cache: written without fsync, checked
// on every read, replaced when it does not match.
func (s *Store) readCached(d digest.Digest) ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("digest %q: %w", d, ErrBadDigest)
	}
	h := d.Encoded()
	p := filepath.Join(s.dir, blobCacheDir, h[:2], h)
	if b, err := fsx.ReadFile(p); err == nil && digest.FromBytes(b) == d {
		return b, nil
	}
	b, err := s.readBlob(d)
	if err != nil {
		return nil, err
	}
	s.keepCopy(d, b)
	return b, nil
}

// keepCopy keeps a local copy of a small blob of the remote's pool (best
// effort: a cache).
func (s *Store) keepCopy(d digest.Digest, b []byte) {
	if len(b) > maxCachedBlob {
		return
	}
	h := d.Encoded()
	p := filepath.Join(s.dir, blobCacheDir, h[:2], h)
	if os.MkdirAll(filepath.Dir(p), 0o755) != nil {
		return
	}
	tmp := p + fsx.TempName(".", ".tmp")
	if os.WriteFile(tmp, b, 0o444) == nil {
		os.Rename(tmp, p)
	}
	os.Remove(tmp)
}
