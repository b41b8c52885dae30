package snapshot

import (
	"fmt"

	"github.com/mephstore/mephstore/catalog"
)

// prefetchAhead is how many parsed products a prefetcher holds ready: the
// memory of a prefetch is that many products.
const prefetchAhead = 4

// prefetcher reads, checks and parses products on one goroutine, in the
// order given, ahead of the caller: reading a product and hashing and
// parsing its bytes overlap the caller's editing and encoding of the one
// before (a change reads every product it touches).
type prefetcher[T any] struct {
	ch   chan fetched[T]
	stop chan struct{}
	left int
}

type fetched[T any] struct {
	p   T
	err error
}

// prefetch starts reading refs. The caller takes each with next, in order,
// and calls close when done (also when it stops early). A nil ref is read
// as a nil product: callers pass one entry per product they walk and nil
// for those they need not read.
func (r *Repo) prefetch(refs []*ProductRef) *prefetcher[*shallow] {
	return startPrefetch(refs, r.shallow)
}

// startPrefetch reads refs with read, in order, on one goroutine.
func startPrefetch[T any](refs []*ProductRef, read func(*ProductRef) (T, error)) *prefetcher[T] {
	pf := &prefetcher[T]{ch: make(chan fetched[T], prefetchAhead), stop: make(chan struct{}), left: len(refs)}
	go func() {
		defer close(pf.ch)
		for _, ref := range refs {
			var f fetched[T]
			if ref != nil {
				f.p, f.err = read(ref)
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
func (pf *prefetcher[T]) next() (T, error) {
	var zero T
	if pf.left == 0 {
		return zero, fmt.Errorf("prefetch: read past the last product")
	}
	f, ok := <-pf.ch
	if !ok {
		return zero, fmt.Errorf("prefetch: read past a failed product")
	}
	pf.left--
	return f.p, f.err
}

// close stops the reading and waits for its goroutine.
func (pf *prefetcher[T]) close() {
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

// ProductReader hands out the products of a list in order, read, checked
// and parsed one goroutine ahead of the caller (see Repo.ReadAhead).
type ProductReader struct{ pf *prefetcher[*catalog.Product] }

// ReadAhead starts reading the products refs for a caller that walks them
// in order (a publish renders every product of a snapshot): reading and
// parsing the next products overlaps the caller's work on this one. Take
// each with Next; Close when done, also when stopping early.
func (r *Repo) ReadAhead(refs []ProductRef) *ProductReader {
	ptrs := make([]*ProductRef, len(refs))
	for i := range refs {
		ptrs[i] = &refs[i]
	}
	return &ProductReader{startPrefetch(ptrs, r.Product)}
}

// Next returns the next product of the list.
func (pr *ProductReader) Next() (*catalog.Product, error) { return pr.pf.next() }

// Close stops the reading and waits for it.
func (pr *ProductReader) Close() { pr.pf.close() }
