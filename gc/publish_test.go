package gc

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mephstore/mephstore/internal/fetch"
	"github.com/mephstore/mephstore/internal/pgp"
	"github.com/mephstore/mephstore/internal/testcheck"
	"github.com/mephstore/mephstore/internal/testtree"
	"github.com/mephstore/mephstore/publish"
	"github.com/mephstore/mephstore/snapshot"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testtree.Cleanup()
	os.Exit(code)
}

// publishFixture is a fixture store with a real stream, published signed.
type publishFixture struct {
	*fixture
	root, keyring string
	signer        *pgp.Signer
}

func newPublishFixture(t *testing.T, versions string) *publishFixture {
	t.Helper()
	f := &publishFixture{fixture: newFixture(t), root: filepath.Join(t.TempDir(), "pub")}
	if _, err := f.r.CreateStream(ctx, "daily", ""); err != nil {
		t.Fatal(err)
	}
	tree := testtree.Make(t, nil, "--versions", versions)
	if _, err := f.r.Insert(ctx, tree, "daily", snapshot.InsertOptions{Client: &fetch.Client{}}); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.signer, err = pgp.GenerateKey("test", "t@example.invalid"); err != nil {
		t.Fatal(err)
	}
	var kr bytes.Buffer
	f.signer.WritePublic(&kr, false)
	f.keyring = filepath.Join(t.TempDir(), "keyring.gpg")
	os.WriteFile(f.keyring, kr.Bytes(), 0o644)
	return f
}

func (f *publishFixture) publish(stream string) {
	f.t.Helper()
	if _, err := publish.Publish(ctx, f.r, stream, publish.Options{Root: f.root, Signer: f.signer}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *publishFixture) validate(stream string) {
	f.t.Helper()
	testcheck.Validate(f.t, filepath.Join(f.root, stream), f.keyring)
}

func countFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

// TestSweepsPublishRoots: old products files, a killed publish's staging
// directory and pool files nothing refers to are recorded, then reaped after
// the age gate; the published tree validates after every run.
func TestSweepsPublishRoots(t *testing.T) {
	f := newPublishFixture(t, "3")
	f.publish("daily")
	v1 := filepath.Join(f.root, "daily", "streams", "v1")
	first := countFiles(t, v1)
	if _, err := f.r.CleanMD(ctx, "daily", 1, nil, false); err != nil {
		t.Fatal(err)
	}
	f.publish("daily")
	if countFiles(t, v1) != 2*first-3 { // the old products file and its twins stay
		t.Fatalf("v1 holds %d files after two publishes (first %d)", countFiles(t, v1), first)
	}
	dead := filepath.Join(f.root, "daily", "streams", ".v1.killed")
	os.MkdirAll(dead, 0o755)
	os.WriteFile(filepath.Join(dead, "index.json"), []byte("{}"), 0o644)
	dataBefore := countFiles(t, filepath.Join(f.root, "data"))

	rep := f.gc(Options{Older: 3 * day})
	pr := rep.Publish[0]
	if pr.NewOrphans != 4 || pr.ProductsFiles+pr.IndexVersions+pr.DataFiles != 0 || pr.Streams != 1 {
		t.Fatalf("first run: %+v", pr)
	}
	f.validate("daily")

	// Past the gate, with only the head kept: the products files and the
	// staging directory go; the old versions' data is recorded now (the
	// old products file referred to it until this run).
	f.at(3*day + time.Second)
	rep = f.gc(Options{Older: 3 * day, KeepHistory: 1})
	pr = rep.Publish[0]
	if pr.ProductsFiles != 3 || pr.IndexVersions != 1 || pr.DataFiles != 0 || pr.NewOrphans == 0 {
		t.Fatalf("second run: %+v", pr)
	}
	if countFiles(t, v1) != first {
		t.Fatalf("v1 holds %d files, want %d", countFiles(t, v1), first)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Fatal("staging directory kept")
	}
	f.validate("daily")

	f.at(3*day + time.Second)
	rep = f.gc(Options{Older: 3 * day, KeepHistory: 1})
	pr = rep.Publish[0]
	dataAfter := countFiles(t, filepath.Join(f.root, "data"))
	if pr.DataFiles == 0 || dataAfter != dataBefore-pr.DataFiles {
		t.Fatalf("third run: %+v; data files %d -> %d", pr, dataBefore, dataAfter)
	}
	f.validate("daily")
	// Every pool file left is named by the live tree: a fourth run finds
	// nothing.
	if rep := f.gc(Options{Older: 0, KeepHistory: 1}); rep.Publish[0].NewOrphans != 0 {
		t.Fatalf("fourth run: %+v", rep.Publish[0])
	}
	f.fsck()
}

// TestPublishRootOfUnreadableIndexIsRefused: gc does not sweep a root it
// cannot read.
func TestPublishRootOfUnreadableIndexIsRefused(t *testing.T) {
	f := newPublishFixture(t, "1")
	f.publish("daily")
	idx := filepath.Join(f.root, "daily", "streams", "v1", "index.json")
	os.Remove(idx)
	os.WriteFile(idx, []byte("{not json"), 0o644)
	before := countFiles(t, f.root)
	_, err := Run(ctx, f.r, Options{Older: 0})
	if err == nil || !strings.Contains(err.Error(), "index.json") {
		t.Fatalf("got %v", err)
	}
	if countFiles(t, f.root) != before {
		t.Fatal("files deleted from a root whose index is unreadable")
	}
}
