package snapshot

import (
	"reflect"
	"testing"

	"github.com/mephstore/mephstore/internal/testtree"
)

// TestRoundTrip100k inserts a generated tree of 100,000 items and queries
// it back: every item present with the same size, sha256 and path.
func TestRoundTrip100k(t *testing.T) {
	tree := testtree.Make(t, nil, "--releases", "5", "--arches", "4", "--kernels", "5", "--versions", "250")
	r := newRepo(t, "daily")
	res := mustInsert(t, r, tree, "daily", unsignedOpts())
	if c := counts(t, r, "daily"); c != (Counts{Products: 100, Versions: 25000, Items: 100000}) {
		t.Fatalf("counts %+v", c)
	}
	if res.Fetched != res.Files || res.Files < 59000 {
		t.Fatalf("fetched %d of %d files", res.Fetched, res.Files)
	}
	got := queryAll(t, r, "daily")
	want := sourceItems(t, tree, "daily")
	if !reflect.DeepEqual(got, want) {
		n := 0
		for p, vs := range want {
			for v, items := range vs {
				for i, it := range items {
					if got[p][v][i] != it && n < 5 {
						t.Errorf("%s %s %s: got %+v, want %+v", p, v, i, got[p][v][i], it)
						n++
					}
				}
			}
		}
		t.Fatal("query differs from the source tree")
	}
}
