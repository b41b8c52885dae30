package gc

import (
	"context"
	"encoding/hex"
	"fmt"
	"runtime"
	"sync"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/catalog"
	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/snapshot"
)

// Sum is a raw sha256.
type Sum = [32]byte

func sumOf(d digest.Digest) (Sum, error) {
	var s Sum
	if d.Algorithm() != digest.SHA256 {
		return s, fmt.Errorf("%s: not a sha256 digest", d)
	}
	_, err := hex.Decode(s[:], []byte(d.Encoded()))
	if err != nil || len(d.Encoded()) != 64 {
		return s, fmt.Errorf("%s: bad digest", d)
	}
	return s, nil
}

func digestOf(s Sum) digest.Digest {
	return digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(s[:]))
}

// marker holds the mark set and what has been walked. Marking more roots
// later (under the writer lock) only walks what is new.
type marker struct {
	r        *snapshot.Repo
	jobs     int
	marked   map[Sum]struct{}
	snaps    map[digest.Digest]bool
	products map[digest.Digest]bool
}

func newMarker(r *snapshot.Repo, jobs int) *marker {
	if jobs <= 0 {
		jobs = runtime.GOMAXPROCS(0)
	}
	return &marker{r: r, jobs: jobs, marked: map[Sum]struct{}{}, snaps: map[digest.Digest]bool{}, products: map[digest.Digest]bool{}}
}

func (m *marker) has(s Sum) bool { _, ok := m.marked[s]; return ok }

func (m *marker) add(d digest.Digest) error {
	s, err := sumOf(d)
	if err != nil {
		return err
	}
	m.marked[s] = struct{}{}
	return nil
}

// mark walks roots. A root snapshot or product that cannot be read is an
// error: gc must not sweep on a partial mark.
func (m *marker) mark(ctx context.Context, roots *Roots) error {
	todo, err := m.walkRoots(ctx, roots)
	if err != nil {
		return err
	}
	return m.scanProducts(ctx, todo)
}

// prod is a product blob to scan, and why it is reachable.
type prod struct {
	d   digest.Digest
	why string
}

// walkRoots marks the snapshots and blobs the roots name and lists the
// product blobs not scanned yet.
func (m *marker) walkRoots(ctx context.Context, roots *Roots) ([]prod, error) {
	var todo []prod
	addProduct := func(d digest.Digest, why string) error {
		if m.products[d] {
			return nil
		}
		m.products[d] = true
		todo = append(todo, prod{d, why})
		return m.add(d)
	}
	addSnapshot := func(d digest.Digest, why string) error {
		if m.snaps[d] {
			return nil
		}
		doc, err := m.r.Doc(d)
		if err != nil {
			return fmt.Errorf("%s: snapshot %s cannot be read: %w", why, d, err)
		}
		m.snaps[d] = true
		if err := m.add(d); err != nil {
			return err
		}
		for _, cat := range doc.Catalogs {
			for _, p := range cat.Products {
				if err := addProduct(p.Digest, why+": product "+p.Name); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for d, why := range roots.Snapshots {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := addSnapshot(d, why); err != nil {
			return nil, err
		}
	}
	for _, ref := range roots.Refs {
		var err error
		switch ref.Kind {
		case cas.RefSnapshot:
			err = addSnapshot(ref.Digest, "lease or pending build")
		case cas.RefProduct:
			err = addProduct(ref.Digest, "lease or pending build")
		default:
			err = m.add(ref.Digest)
		}
		if err != nil {
			return nil, err
		}
	}
	return todo, nil
}

// scanProducts reads the product blobs in parallel (checked against their
// sha256) and marks the data blobs their items name.
func (m *marker) scanProducts(ctx context.Context, todo []prod) error {
	type result struct {
		sums []Sum
		err  error
	}
	in := make(chan prod)
	out := make(chan result)
	var wg sync.WaitGroup
	for range min(m.jobs, max(len(todo), 1)) {
		wg.Go(func() {
			for p := range in {
				raw, err := m.r.Store().ReadBlob(p.d)
				if err != nil {
					out <- result{err: fmt.Errorf("%s: cannot be read: %w", p.why, err)}
					continue
				}
				var sums []Sum
				if err := catalog.ItemDigests(raw, func(s Sum) { sums = append(sums, s) }); err != nil {
					out <- result{err: fmt.Errorf("%s (%s): %w", p.why, p.d, err)}
					continue
				}
				out <- result{sums: sums}
			}
		})
	}
	go func() {
		defer close(in)
		for _, p := range todo {
			select {
			case in <- p:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(out) }()
	var firstErr error
	for r := range out {
		if r.err != nil && firstErr == nil {
			firstErr = r.err
		}
		for _, s := range r.sums {
			m.marked[s] = struct{}{}
		}
	}
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}
