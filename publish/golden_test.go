package publish

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/fetch"
	"github.com/mephstore/mephstore/internal/testtree"
	"github.com/mephstore/mephstore/snapshot"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from what publish renders now")

// TestPublishedTreeIsGolden renders a fixed snapshot (a fixed tree
// inserted at a fixed time) and compares every metadata file of the
// unsigned publish, byte for byte, with the committed golden tree: a
// faster publish must write exactly what this one writes.
// go test ./publish -run Golden -update rewrites it (then review the diff).
func TestPublishedTreeIsGolden(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	if err := cas.InitWith(dir, 0); err != nil {
		t.Fatal(err)
	}
	fixed := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s, err := cas.Open(dir, cas.Options{Wait: 10 * time.Second, Now: func() time.Time { return fixed }})
	if err != nil {
		t.Fatal(err)
	}
	r := snapshot.New(s)
	if _, err := r.CreateStream(ctx, "daily", ""); err != nil {
		t.Fatal(err)
	}
	tree := testtree.Make(t, nil, "--releases", "2", "--arches", "2", "--kernels", "2", "--versions", "3")
	if _, err := r.Insert(ctx, tree, "daily", snapshot.InsertOptions{Client: &fetch.Client{}}); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if _, err := Publish(ctx, r, "daily", Options{Root: root}); err != nil {
		t.Fatal(err)
	}
	got := filepath.Join(root, "daily", "streams", "v1")
	golden := filepath.Join("testdata", "golden", "streams", "v1")
	if *update {
		os.RemoveAll(golden)
		if err := os.CopyFS(golden, os.DirFS(got)); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadDir(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	have, _ := os.ReadDir(got)
	if len(have) != len(want) {
		t.Fatalf("published %d metadata files, the golden tree has %d", len(have), len(want))
	}
	for _, e := range want {
		w, _ := os.ReadFile(filepath.Join(golden, e.Name()))
		g, err := os.ReadFile(filepath.Join(got, e.Name()))
		if err != nil {
			t.Fatalf("%s: %v", e.Name(), err)
		}
		if !bytes.Equal(g, w) {
			t.Errorf("%s differs from the golden file (%d bytes, golden %d)", e.Name(), len(g), len(w))
		}
	}
}
