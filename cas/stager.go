package cas

import (
	"bytes"
	"context"
	"sync"
)

// Stager stages small blobs (StageUnsynced) on one background goroutine
// while its caller goes on working out the next one. A change stages one
// blob per product it touches, and creating each temp file costs the kernel
// an inode allocation: done in the background, that time overlaps the
// caller's parsing and encoding instead of adding to it. One goroutine, not
// more: two threads creating files in the same directory contend on its
// lock (see fetchMissing in snapshot).
//
// Add, Wait and Discard are called from one goroutine.
type Stager struct {
	s       *Store
	ctx     context.Context
	jobs    chan stagerJob
	done    chan struct{}
	staged  []*Staged // written by the worker, read after done is closed
	mu      sync.Mutex
	err     error // the first staging error; Add reads it to stop early
	started bool
}

type stagerJob struct {
	b   []byte
	exp Expect
}

// stagerQueue is how many blobs may wait for the worker: memory is bounded
// by that many blobs.
const stagerQueue = 16

// NewStager returns a Stager for s; nothing runs until the first Add.
func (s *Store) NewStager(ctx context.Context) *Stager {
	return &Stager{s: s, ctx: ctx}
}

func (g *Stager) start() {
	g.jobs = make(chan stagerJob, stagerQueue)
	g.done = make(chan struct{})
	g.started = true
	go g.run()
}

func (g *Stager) run() {
	defer close(g.done)
	for j := range g.jobs {
		if g.failed() != nil {
			continue // drain: the caller learns of the error at Add or Wait
		}
		st, err := g.s.StageUnsynced(g.ctx, bytes.NewReader(j.b), j.exp, nil)
		if err != nil {
			g.mu.Lock()
			g.err = err
			g.mu.Unlock()
			continue
		}
		g.staged = append(g.staged, st)
	}
}

// failed is the first staging error, or nil.
func (g *Stager) failed() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// Add queues b, which must match exp, for staging. The Stager keeps b:
// the caller must not change it. It returns the error of an earlier
// staging, if any; that error comes back from Wait too.
func (g *Stager) Add(b []byte, exp Expect) error {
	if !g.started {
		g.start()
	}
	if err := g.failed(); err != nil {
		return err
	}
	select {
	case g.jobs <- stagerJob{b: b, exp: exp}:
		return nil
	case <-g.ctx.Done():
		return g.ctx.Err()
	}
}

// Wait waits for every queued blob and returns the staged blobs, which the
// caller now owns (commit or discard them). On an error, Wait discards
// what it staged and returns the first error. After Wait the Stager is
// empty and may be used again.
func (g *Stager) Wait() ([]*Staged, error) {
	if !g.started {
		return nil, nil
	}
	close(g.jobs)
	<-g.done
	g.started = false
	staged, err := g.staged, g.err // the worker is done: no lock needed
	g.staged, g.err = nil, nil
	if err != nil {
		for _, st := range staged {
			st.Discard()
		}
		return nil, err
	}
	return staged, nil
}

// Discard waits for the worker and removes everything it staged.
func (g *Stager) Discard() {
	staged, _ := g.Wait()
	for _, st := range staged {
		st.Discard()
	}
}
