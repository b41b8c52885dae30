package publish

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/internal/fetch"
	"github.com/mephstore/mephstore/internal/testtree"
	"github.com/mephstore/mephstore/snapshot"
)

// storeBlob puts body in blobs and returns its digest.
func storeBlob(t *testing.T, blobs cas.BlobStore, body []byte) digest.Digest {
	t.Helper()
	s := sha256.Sum256(body)
	d := digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(s[:]))
	w, err := blobs.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(body)
	if _, _, err := w.Commit(ctx, cas.Expect{Digest: d, Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	return d
}

// noLocalFiles hides a blob store's files: the target must copy.
type noLocalFiles struct{ cas.BlobStore }

// AddBlob adds a data file only where it is missing, and says so: a file
// already there is left alone (not replaced, not copied again), whether
// the blob is linked or copied.
func TestAddBlobAddsOnlyWhatIsMissing(t *testing.T) {
	f := newFixture(t, "1", "daily")
	body := bytes.Repeat([]byte("data "), 1000)
	d := storeBlob(t, f.r.Store().Blobs(), body)
	missing := digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(make([]byte, 32)))
	for _, tc := range []struct {
		name   string
		blobs  cas.BlobStore
		copied bool
	}{
		{"linked", f.r.Store().Blobs(), false},
		{"copied", noLocalFiles{f.r.Store().Blobs()}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			tg, err := NewDirTarget(root)
			if err != nil {
				t.Fatal(err)
			}
			// A new root: no pool when the publish begins.
			if err := tg.Begin(ctx, "daily"); err != nil {
				t.Fatal(err)
			}
			added, copied, err := tg.AddBlob(ctx, "daily", tc.blobs, d)
			if err != nil || !added || copied != tc.copied {
				t.Fatalf("first AddBlob: added %v copied %v, %v; want added, copied %v", added, copied, err, tc.copied)
			}
			p := filepath.Join(root, filepath.FromSlash(Layout{}.DataFile(d.Encoded())))
			before, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			added, copied, err = tg.AddBlob(ctx, "daily", tc.blobs, d)
			if err != nil || added || copied {
				t.Fatalf("second AddBlob: added %v copied %v, %v; want the file left alone", added, copied, err)
			}
			// A later publish's target finds the pool there when it
			// begins and looks with a stat.
			tg2, err := NewDirTarget(root)
			if err != nil {
				t.Fatal(err)
			}
			if err := tg2.Begin(ctx, "daily"); err != nil || tg2.pool.Load() == nil {
				t.Fatalf("Begin of a root with a pool: %v, pool open %v", err, tg2.pool.Load() != nil)
			}
			added, copied, err = tg2.AddBlob(ctx, "daily", tc.blobs, d)
			if err != nil || added || copied {
				t.Fatalf("AddBlob of a later target: added %v copied %v, %v; want the file left alone", added, copied, err)
			}
			after, err := os.Stat(p)
			if err != nil || !os.SameFile(before, after) {
				t.Fatalf("the data file was replaced: %v", err)
			}
			if got, _ := os.ReadFile(p); !bytes.Equal(got, body) {
				t.Fatalf("data file holds %d bytes, want %d", len(got), len(body))
			}
			if _, _, err := tg.AddBlob(ctx, "daily", tc.blobs, missing); !errors.Is(err, cas.ErrBlobNotFound) {
				t.Fatalf("a blob the store does not have: %v, want cas.ErrBlobNotFound", err)
			}
		})
	}
}

// A root that lost its index and some data files gets exactly those
// files back, counted as new; the others are not touched.
func TestRepublishRelinksMissing(t *testing.T) {
	f := newFixture(t, "3", "daily")
	first := f.publish(t, "daily", true)
	pool := filepath.Join(f.root, dataPool)
	var removed []string
	filepath.WalkDir(pool, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && len(removed) < 7 {
			removed = append(removed, p)
		}
		return nil
	})
	for _, p := range removed {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(f.root, Layout{}.Index("daily"))); err != nil {
		t.Fatal(err)
	}
	res := f.publish(t, "daily", true)
	if res.Unchanged || res.DataNew != len(removed) || res.DataBytes <= 0 {
		t.Fatalf("republish: unchanged %v, %d data files new (%d bytes), want %d (first publish: %d)", res.Unchanged, res.DataNew, res.DataBytes, len(removed), first.DataNew)
	}
	for _, p := range removed {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("not linked again: %v", err)
		}
	}
	c := counts(t, f.r, "daily")
	ssValidate(t, filepath.Join(f.root, "daily"), f.keyring, "--expect-items", strconv.Itoa(c.Items))
}

// A digest that is not one names no file: AddBlob refuses it before it
// looks anywhere (a name from metadata must not reach a path).
func TestAddBlobRefusesBadDigest(t *testing.T) {
	f := newFixture(t, "1", "daily")
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, dataPool), 0o755); err != nil {
		t.Fatal(err)
	}
	tg, err := NewDirTarget(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []digest.Digest{"sha256:../../etc/passwd", "sha256:", "md5:00", digest.Digest("sha256:" + strings.Repeat("g", 64))} {
		if _, _, err := tg.AddBlob(ctx, "daily", f.r.Store().Blobs(), d); !errors.Is(err, cas.ErrBadDigest) {
			t.Errorf("AddBlob(%q): %v, want cas.ErrBadDigest", d, err)
		}
	}
}

// After an insert of one version every product has changed, but the
// versions the last publish here had byte for byte are linked already:
// only the new version's items are looked for.
func TestPublishAfterInsertChecksOnlyNewVersions(t *testing.T) {
	f := newFixture(t, "3", "daily")
	first := f.publish(t, "daily", true)
	before := counts(t, f.r, "daily")
	if first.DataChecked != before.Items {
		t.Fatalf("first publish looked for %d items, want all %d", first.DataChecked, before.Items)
	}
	tree := testtree.Make(t, nil, "--versions", "4")
	if _, err := f.r.Insert(ctx, tree, "daily", snapshot.InsertOptions{Client: &fetch.Client{}}); err != nil {
		t.Fatal(err)
	}
	after := counts(t, f.r, "daily")
	added := after.Items - before.Items
	if added <= 0 {
		t.Fatalf("the insert added no items (%d -> %d)", before.Items, after.Items)
	}
	res := f.publish(t, "daily", true)
	// Items of the new version may share data (DataNew counts files).
	if res.DataChecked != added || res.DataNew <= 0 || res.DataNew > added {
		t.Fatalf("publish after the insert looked for %d items and added %d files; want %d items, 1 to %d files", res.DataChecked, res.DataNew, added, added)
	}
	ssValidate(t, filepath.Join(f.root, "daily"), f.keyring, "--expect-items", strconv.Itoa(after.Items))
}
