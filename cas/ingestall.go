package cas

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/internal/progress"
)

// Source is one thing to ingest.
type Source struct {
	Name   string                               // shown in output and errors
	Open   func() (io.ReadCloser, int64, error) // the reader and its size (-1 unknown)
	Expect Expect
}

// ReaderSource ingests what r yields, of unknown size.
func ReaderSource(name string, r io.Reader, exp Expect) Source {
	return Source{Name: name, Expect: exp, Open: func() (io.ReadCloser, int64, error) {
		return io.NopCloser(r), -1, nil
	}}
}

// FileSource ingests the file at path.
func FileSource(path string, exp Expect) Source {
	return Source{Name: path, Expect: exp, Open: func() (io.ReadCloser, int64, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, 0, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, err
		}
		if fi.IsDir() {
			f.Close()
			return nil, 0, fmt.Errorf("is a directory")
		}
		return f, fi.Size(), nil
	}}
}

// Ingested is the outcome of ingesting one source.
type Ingested struct {
	Name string `json:"name"`
	Committed
}

// Batching of commits: staged blobs wait for a writer session until this
// many are pending or the oldest has waited this long, so that many small
// files cost one session while large ones are committed as they finish.
const (
	batchMax  = 2048
	batchWait = time.Second
	smallFile = 1 << 20 // files below this size are synced with their batch
)

// IngestAll stages every source, one at a time, without holding the store
// lock, and commits them in short writer sessions. emit is called for each
// source once it is committed, in order. On the first failure, the sources
// staged before it are still committed (and emitted), and the error names
// the source. Each source gets its own progress meter.
func (s *Store) IngestAll(ctx context.Context, srcs []Source, meters progress.Factory, emit func(Ingested) error) error {
	return s.ingest(ctx, srcs, 1, meters, nil, true, emit)
}

// IngestParallel is IngestAll with jobs sources staged at a time (for
// downloads); emit order is not the sources' order. All bytes count on one
// meter (may be nil). On the first failure the others are cancelled and
// nothing more is committed.
func (s *Store) IngestParallel(ctx context.Context, srcs []Source, jobs int, meter progress.Meter, emit func(Ingested) error) error {
	return s.ingest(ctx, srcs, max(jobs, 1), progress.Factory{}, meter, false, emit)
}

type stagedSource struct {
	name string
	st   *Staged
	err  error
}

func (s *Store) ingest(ctx context.Context, srcs []Source, jobs int, meters progress.Factory, shared progress.Meter, keepGood bool, emit func(Ingested) error) error {
	// A lease keeps what this ingest commits from gc until it ends (an
	// insert or a build passes its own).
	if LeaseFrom(ctx) == nil {
		lctx, release, err := s.Hold(ctx, "ingest", nil)
		if err != nil {
			return err
		}
		defer release()
		ctx = lctx
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := s.stageAll(ctx, srcs, jobs, meters, shared)
	b := &batcher{s: s, emit: emit}
	var firstErr error
	fail := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
			cancel()
		}
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for open := true; open; {
		select {
		case r, ok := <-done:
			switch {
			case !ok:
				open = false
			case firstErr != nil:
				if r.st != nil {
					r.st.Discard()
				}
			case r.err != nil:
				fail(r.err)
			default:
				if len(b.pending) == 0 {
					timer.Reset(batchWait)
				}
				if b.add(r.st, r.name) {
					fail(b.flush(ctx))
				}
			}
		case <-timer.C:
			if firstErr == nil {
				fail(b.flush(ctx))
			}
		}
	}
	if firstErr == nil {
		return b.flush(ctx)
	}
	if keepGood && !errors.Is(firstErr, context.Canceled) {
		if err := b.flush(ctx); err != nil {
			s.log.Error("commit of earlier files failed", "err", err)
		}
	}
	b.discard()
	return firstErr
}

// stageAll stages srcs with jobs workers; the results arrive on the
// channel it returns, closed once every worker is done.
func (s *Store) stageAll(ctx context.Context, srcs []Source, jobs int, meters progress.Factory, shared progress.Meter) <-chan stagedSource {
	todo := make(chan Source)
	done := make(chan stagedSource, jobs)
	sizes := &pooledSizes{}
	go func() {
		defer close(todo)
		for _, src := range srcs {
			select {
			case todo <- src:
			case <-ctx.Done():
				return
			}
		}
	}()
	var workers sync.WaitGroup
	for range jobs {
		workers.Go(func() {
			for src := range todo {
				st, err := s.stageSource(ctx, src, sizes, meters, shared)
				done <- stagedSource{src.Name, st, err}
			}
		})
	}
	go func() { workers.Wait(); close(done) }()
	return done
}

// batcher gathers staged blobs and commits them in batches, one short
// writer session each.
type batcher struct {
	s       *Store
	emit    func(Ingested) error
	pending []*Staged
	names   []string
}

// add queues a staged blob and says whether the batch is full.
func (b *batcher) add(st *Staged, name string) (full bool) {
	b.pending = append(b.pending, st)
	b.names = append(b.names, name)
	return len(b.pending) >= batchMax
}

// flush commits the queued blobs and tells emit of each.
func (b *batcher) flush(ctx context.Context) error {
	if len(b.pending) == 0 {
		return nil
	}
	batch, names := b.pending, b.names
	b.pending, b.names = nil, nil
	start := time.Now()
	ss, err := b.s.Writer(ctx, "ingest")
	if err != nil {
		for _, st := range batch {
			st.Discard()
		}
		return err
	}
	opened := time.Since(start)
	out, err := ss.Commit(ctx, batch...)
	cerr := ss.Close()
	b.s.log.Debug("committed", "blobs", len(batch), "session_open", opened, "total", time.Since(start))
	if err != nil {
		return err
	}
	if cerr != nil {
		return cerr
	}
	for i, c := range out {
		if err := b.emit(Ingested{Name: names[i], Committed: c}); err != nil {
			return err
		}
	}
	return nil
}

// discard drops the queued blobs.
func (b *batcher) discard() {
	for _, st := range b.pending {
		st.Discard()
	}
	b.pending, b.names = nil, nil
}

func (s *Store) stageSource(ctx context.Context, src Source, sizes *pooledSizes, meters progress.Factory, shared progress.Meter) (*Staged, error) {
	r, size, err := src.Open()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src.Name, err)
	}
	defer r.Close()
	m := shared
	if m == nil {
		m = meters.New("ingest "+filepath.Base(src.Name), size, progress.Bytes)
		defer m.Done()
	}
	start := time.Now()
	if f, ok := r.(*os.File); ok && size >= smallFile && sizes.has(ctx, s, size) {
		// Bytes the pool may hold already: hash them in place first,
		// and stage (a copy of the whole file) only if they are new.
		st, err := s.hashInPlace(ctx, f, size, src.Expect, m)
		if err != nil || st != nil {
			if err != nil {
				err = fmt.Errorf("%s: %w", src.Name, err)
			}
			return st, err
		}
		m = meters.New("ingest "+filepath.Base(src.Name)+" (new bytes)", size, progress.Bytes)
		defer m.Done()
	}
	stage := s.Stage
	if size >= 0 && size < smallFile {
		stage = s.StageUnsynced // the batch's commit syncs them all at once
	}
	st, err := stage(ctx, r, src.Expect, m)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src.Name, err)
	}
	s.log.Debug("staged", "name", src.Name, "bytes", st.Size, "took", time.Since(start))
	return st, nil
}

// pooledSizes is the set of the sizes of the pool's blobs, read once, when
// the first large local file is ingested.
type pooledSizes struct {
	once  sync.Once
	sizes map[int64]bool
}

func (p *pooledSizes) has(ctx context.Context, s *Store, size int64) bool {
	p.once.Do(func() {
		p.sizes = map[int64]bool{}
		ss, err := s.Reader(ctx)
		if err != nil {
			return // then every file is staged, as it always may be
		}
		defer ss.Close()
		ss.Blobs(func(b Blob) error {
			if b.Size >= smallFile {
				p.sizes[b.Size] = true
			}
			return nil
		})
	})
	return p.sizes[size]
}

// hashInPlace hashes f (reading it once, writing nothing) and returns a
// Staged that stands for the pooled blob of the same bytes, or nil (with f
// back at its start) when the pool lacks them.
func (s *Store) hashInPlace(ctx context.Context, f *os.File, size int64, exp Expect, m progress.Meter) (*Staged, error) {
	h, md := exp.hashes()
	buf := s.getBuf()
	defer s.bufs.Put(&buf)
	n, err := io.CopyBuffer(h, &meteredReader{ctxReader{ctx, f}, m}, buf)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	d := digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil)))
	if err := exp.check("ingest", n, d, md); err != nil {
		return nil, err
	}
	if s.poolFileSize(ctx, d) == n {
		return &Staged{Digest: d, Size: n, synced: true, pooled: true}, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return nil, nil
}

// meteredReader advances a progress meter as it reads.
type meteredReader struct {
	r io.Reader
	m progress.Meter
}

func (r *meteredReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.m.Add(int64(n))
	return n, err
}

// DefaultDir is the store used when neither --store nor MEPHSTORE_STORE is
// given: /var/lib/mephstore for root, $XDG_DATA_HOME/mephstore (or
// ~/.local/share/mephstore) for everyone else.
func DefaultDir(getenv func(string) string, euid int) string {
	if euid == 0 {
		return "/var/lib/mephstore"
	}
	if x := getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "mephstore")
	}
	return filepath.Join(getenv("HOME"), ".local", "share", "mephstore")
}
