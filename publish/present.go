package publish

import (
	"context"
	"fmt"
	"path"
	"strconv"
	"sync"
	"sync/atomic"
)

// prefetchAbove is the number of items not linked by the previous publish
// above which a publish lists every data directory of a local root at once,
// on a few goroutines, while it renders (a publish that checks this many
// items looks in every one of the 256 directories anyway).
const prefetchAbove = 2000

// prefetch lists the 256 data directories of a target in the background;
// dir waits for one of them.
type prefetch struct {
	dirs [256]struct {
		done  chan struct{}
		names map[string]bool
		err   error
	}
	stop atomic.Bool
	wg   sync.WaitGroup
}

// startPrefetch starts listing stream's data directories of nl (their
// parent is the directory of DataPath) on jobs goroutines.
func startPrefetch(ctx context.Context, nl nameLister, dataDir func(i int) string, jobs int) *prefetch {
	pf := &prefetch{}
	next := make(chan int, 256)
	for i := range pf.dirs {
		pf.dirs[i].done = make(chan struct{})
		next <- i
	}
	close(next)
	for range jobs {
		pf.wg.Go(func() {
			for i := range next {
				d := &pf.dirs[i]
				d.names = map[string]bool{}
				if pf.stop.Load() {
					d.err = context.Canceled
				} else {
					d.err = nl.ListNames(ctx, dataDir(i), func(name string) error { d.names[name] = true; return nil })
				}
				close(d.done)
			}
		})
	}
	return pf
}

// dir waits for the listing of the directory of sum.
func (pf *prefetch) dir(ctx context.Context, sum string) (map[string]bool, error) {
	i, err := strconv.ParseUint(sum[:2], 16, 8)
	if err != nil {
		return nil, fmt.Errorf("data file %s: %w", sum, ErrNoSHA256)
	}
	d := &pf.dirs[i]
	select {
	case <-d.done:
		return d.names, d.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// close ends the listings still to start and waits for those running.
func (pf *prefetch) close() {
	pf.stop.Store(true)
	pf.wg.Wait()
}

// maybePrefetch starts a prefetch of the data directories when the target
// lists names (a local root) and the publish has more than prefetchAbove
// items to check; else nil (directories are listed as they are needed).
func (p *publisher) maybePrefetch(ctx context.Context) *prefetch {
	nl, ok := p.t.(nameLister)
	if !ok {
		return nil
	}
	if _, ok := p.t.(fileLister); ok {
		return nil
	}
	n := 0
	for ci := range p.doc.Catalogs {
		for _, pr := range p.doc.Catalogs[ci].Products {
			if !p.linked[pr.Digest] {
				n += pr.Items
			}
		}
	}
	if n <= prefetchAbove {
		return nil
	}
	dataDir := func(i int) string { return path.Dir(p.t.DataPath(p.stream, fmt.Sprintf("%02x", i))) }
	return startPrefetch(ctx, nl, dataDir, 3)
}
