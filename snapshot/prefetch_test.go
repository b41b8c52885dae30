package snapshot

import (
	"errors"
	"os"
	"reflect"
	"testing"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/testtree"
)

// prefetchFixture is a stream with a few products and the refs of its head.
func prefetchFixture(t *testing.T) (*Repo, []*ProductRef) {
	t.Helper()
	r := newRepo(t, "daily")
	mustInsert(t, r, testtree.Make(t, nil, "--releases", "2", "--arches", "amd64", "--kernels", "3"), "daily", unsignedOpts())
	doc, err := r.Doc(head(t, r, "daily").Head)
	if err != nil {
		t.Fatal(err)
	}
	var refs []*ProductRef
	for ci := range doc.Catalogs {
		for pi := range doc.Catalogs[ci].Products {
			refs = append(refs, &doc.Catalogs[ci].Products[pi])
		}
	}
	if len(refs) < 3 {
		t.Fatalf("fixture has %d products, want at least 3", len(refs))
	}
	return r, refs
}

func TestPrefetchReturnsProductsInOrder(t *testing.T) {
	r, refs := prefetchFixture(t)
	pf := r.prefetch(refs)
	defer pf.close()
	for i, ref := range refs {
		got, err := pf.next()
		if err != nil {
			t.Fatal(err)
		}
		want, err := r.shallow(ref)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("product %d: prefetched %s, want %s", i, got.Name, want.Name)
		}
	}
	if _, err := pf.next(); err == nil {
		t.Fatal("next past the end: no error")
	}
}

func TestPrefetchStopsAtAMissingProduct(t *testing.T) {
	r, refs := prefetchFixture(t)
	if err := os.Remove(r.Store().BlobPath(refs[1].Digest)); err != nil {
		t.Fatal(err)
	}
	pf := r.prefetch(refs)
	defer pf.close()
	if _, err := pf.next(); err != nil {
		t.Fatal(err)
	}
	if _, err := pf.next(); !errors.Is(err, cas.ErrBlobNotFound) {
		t.Fatalf("next of a product whose blob is gone: %v, want cas.ErrBlobNotFound", err)
	}
	if _, err := pf.next(); err == nil {
		t.Fatal("next after a failed product: no error")
	}
}

func TestPrefetchCloseEarly(t *testing.T) {
	r, refs := prefetchFixture(t)
	for range 20 {
		pf := r.prefetch(refs)
		if _, err := pf.next(); err != nil {
			t.Fatal(err)
		}
		pf.close() // must not block on the products still being read
	}
}

// A clean-md reads only the products over the limit, and a remove only
// the products with the version: with every product blob gone, both find
// nothing to do instead of failing on a blob they never needed.
func TestEditsReadOnlyTheProductsTheyChange(t *testing.T) {
	r, refs := prefetchFixture(t)
	for _, ref := range refs {
		if ref.Versions != 2 {
			t.Fatalf("fixture product %s has %d versions, want 2", ref.Name, ref.Versions)
		}
		if err := os.Remove(r.Store().BlobPath(ref.Digest)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.CleanMD(ctx, "daily", 2, nil, false); !errors.Is(err, ErrNothingToDo) {
		t.Fatalf("clean-md --max 2 of products with 2 versions: %v, want ErrNothingToDo", err)
	}
	if _, err := r.Remove(ctx, "daily", "20991231", nil, false); !errors.Is(err, ErrNoSuchVersion) {
		t.Fatalf("remove of a version no product has: %v, want ErrNoSuchVersion", err)
	}
	// A product that does need changing is read, and its loss is an error.
	if _, err := r.CleanMD(ctx, "daily", 1, nil, false); !errors.Is(err, cas.ErrBlobNotFound) {
		t.Fatalf("clean-md --max 1 without the product blobs: %v, want cas.ErrBlobNotFound", err)
	}
}

// ReadAhead (a publish's reader) hands out the fully parsed products in
// order, the same as Product, and stops at a product whose blob is gone.
func TestReadAheadMatchesProduct(t *testing.T) {
	r, refs := prefetchFixture(t)
	list := make([]ProductRef, len(refs))
	for i, ref := range refs {
		list[i] = *ref
	}
	ahead := r.ReadAhead(list, nil)
	for i := range list {
		got, err := ahead.Next()
		if err != nil {
			t.Fatal(err)
		}
		want, err := r.Product(&list[i])
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Product, want) || got.Same != nil {
			t.Fatalf("product %d: read ahead %s, want %s", i, got.Name, want.Name)
		}
	}
	ahead.Close()
	if err := os.Remove(r.Store().BlobPath(list[0].Digest)); err != nil {
		t.Fatal(err)
	}
	ahead = r.ReadAhead(list, nil)
	defer ahead.Close()
	if _, err := ahead.Next(); !errors.Is(err, cas.ErrBlobNotFound) {
		t.Fatalf("next of a product whose blob is gone: %v, want cas.ErrBlobNotFound", err)
	}
}
