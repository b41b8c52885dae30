package snapshot

import "fmt"

// prefetchAhead is how many parsed products a prefetcher holds ready: the
// memory of a prefetch is that many products.
const prefetchAhead = 4

// prefetcher reads, checks and parses products on one goroutine, in the
// order given, ahead of the caller: reading a product and hashing and
// parsing its bytes overlap the caller's editing and encoding of the one
// before (a change reads every product it touches).
type prefetcher struct {
	ch   chan fetched
	stop chan struct{}
	left int
}

type fetched struct {
	p   *shallow
	err error
}

// prefetch starts reading refs. The caller takes each with next, in order,
// and calls close when done (also when it stops early). A nil ref is read
// as a nil product: callers pass one entry per product they walk and nil
// for those they need not read.
func (r *Repo) prefetch(refs []*ProductRef) *prefetcher {
	pf := &prefetcher{ch: make(chan fetched, prefetchAhead), stop: make(chan struct{}), left: len(refs)}
	go func() {
		defer close(pf.ch)
		for _, ref := range refs {
			var f fetched
			if ref != nil {
				f.p, f.err = r.shallow(ref)
			}
			select {
			case pf.ch <- f:
			case <-pf.stop:
				return
			}
			if f.err != nil {
				return
			}
		}
	}()
	return pf
}

// next returns the next product of the list (nil for a nil ref).
func (pf *prefetcher) next() (*shallow, error) {
	if pf.left == 0 {
		return nil, fmt.Errorf("prefetch: read past the last product")
	}
	f, ok := <-pf.ch
	if !ok {
		return nil, fmt.Errorf("prefetch: read past a failed product")
	}
	pf.left--
	return f.p, f.err
}

// close stops the reading and waits for its goroutine.
func (pf *prefetcher) close() {
	close(pf.stop)
	for range pf.ch {
	}
}

// productRefs lists every product of doc in document order, nil where
// want is false.
func productRefs(doc *Doc, want func(*ProductRef) bool) []*ProductRef {
	var refs []*ProductRef
	for ci := range doc.Catalogs {
		for pi := range doc.Catalogs[ci].Products {
			var ref *ProductRef
			if r := &doc.Catalogs[ci].Products[pi]; want(r) {
				ref = r
			}
			refs = append(refs, ref)
		}
	}
	return refs
}
