package snapshot

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/mephstore/mephstore/catalog"
	"github.com/mephstore/mephstore/internal/digest"
)

// prefetchAhead is how many products a prefetcher reads ahead of its
// caller: the memory of a prefetch is that many parsed products.
const prefetchAhead = 4

// prefetcher reads, checks and parses products ahead of the caller, in the
// order given, on up to two goroutines: reading a product and hashing and
// parsing its bytes overlap each other and the caller's editing and
// encoding of the one before (a change reads every product it touches).
type prefetcher[T any] struct {
	slots  []chan fetched[T] // one per ref, filled once
	tokens chan struct{}     // a token per product read and not yet taken
	stop   chan struct{}
	done   sync.WaitGroup
	pos    int
	failed bool
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

// startPrefetch reads refs with read, in order of taking, on up to two
// goroutines (read must be safe for concurrent use).
func startPrefetch[T any](refs []*ProductRef, read func(*ProductRef) (T, error)) *prefetcher[T] {
	pf := &prefetcher[T]{
		slots:  make([]chan fetched[T], len(refs)),
		tokens: make(chan struct{}, prefetchAhead),
		stop:   make(chan struct{}),
	}
	for i := range pf.slots {
		pf.slots[i] = make(chan fetched[T], 1)
	}
	var claimed atomic.Int64
	work := func() {
		defer pf.done.Done()
		for {
			select {
			case pf.tokens <- struct{}{}:
			case <-pf.stop:
				return
			}
			i := int(claimed.Add(1)) - 1
			if i >= len(refs) {
				return
			}
			var f fetched[T]
			if refs[i] != nil {
				f.p, f.err = read(refs[i])
			}
			pf.slots[i] <- f
		}
	}
	workers := min(2, runtime.GOMAXPROCS(0))
	pf.done.Add(workers)
	for range workers {
		go work()
	}
	return pf
}

// next returns the next product of the list (nil for a nil ref).
func (pf *prefetcher[T]) next() (T, error) {
	var zero T
	switch {
	case pf.failed:
		return zero, fmt.Errorf("prefetch: read past a failed product")
	case pf.pos == len(pf.slots):
		return zero, fmt.Errorf("prefetch: read past the last product")
	}
	f := <-pf.slots[pf.pos]
	pf.pos++
	<-pf.tokens
	pf.failed = f.err != nil
	return f.p, f.err
}

// close stops the reading and waits for its goroutines.
func (pf *prefetcher[T]) close() {
	close(pf.stop)
	pf.done.Wait()
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
// and parsed ahead of the caller (see Repo.ReadAhead).
type ProductReader struct{ pf *prefetcher[*Ahead] }

// Ahead is a product read ahead, with the versions it shares byte for byte
// with the earlier blob of it that the caller named (nil if none).
type Ahead struct {
	*catalog.Product
	Same map[string]bool
}

// ReadAhead starts reading the products refs for a caller that walks them
// in order (a publish renders every product of a snapshot): reading and
// parsing the next products overlaps the caller's work on this one. Where
// earlier (which may be nil) names an earlier blob of a product, the
// reader also compares their versions (sameVersions), on its goroutine.
// Take each with Next; Close when done, also when stopping early.
func (r *Repo) ReadAhead(refs []ProductRef, earlier func(*ProductRef) digest.Digest) *ProductReader {
	ptrs := make([]*ProductRef, len(refs))
	for i := range refs {
		ptrs[i] = &refs[i]
	}
	load := func(ref *ProductRef) (*Ahead, error) {
		p, versions, err := r.readProduct(ref)
		if err != nil {
			return nil, err
		}
		a := &Ahead{Product: p}
		if earlier != nil {
			if d := earlier(ref); d != "" {
				a.Same, _ = r.sameVersions(ref.Name, d, versions) // nil on error: nothing known
			}
		}
		return a, nil
	}
	return &ProductReader{startPrefetch(ptrs, load)}
}

// Next returns the next product of the list.
func (pr *ProductReader) Next() (*Ahead, error) { return pr.pf.next() }

// Close stops the reading and waits for it.
func (pr *ProductReader) Close() { pr.pf.close() }
