package gc

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mephstore/mephstore/internal/testcheck"
	"github.com/mephstore/mephstore/internal/testtree"
)

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestFindAndReapOrphans(t *testing.T) {
	tree := testtree.Make(t, nil, "--versions", "2")
	writeFile(t, filepath.Join(tree, "extra", "deep", "x"), "x")
	writeFile(t, filepath.Join(tree, "noble", "stray"), "stray")
	writeFile(t, filepath.Join(tree, "streams", "v1", "old.json"), "{}") // metadata: never an orphan
	writeFile(t, filepath.Join(tree, ".publish.lock"), "")               // nor DATA_DIR's dot files
	orphans := filepath.Join(t.TempDir(), "orphans.json")
	c := newClock()
	o := TreeOptions{Now: c.Now}

	rep, err := FindOrphans(ctx, orphans, tree, []string{filepath.Join(tree, "streams", "v1", "index.json")}, o)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ReadOrphanFile(orphans)
	if err != nil {
		t.Fatal(err)
	}
	stamp := c.Now().Format(OrphanTimeFormat)
	want := map[string]string{"extra/deep/x": stamp, "noble/stray": stamp}
	if !reflect.DeepEqual(got, want) || rep.NewOrphans != 2 {
		t.Fatalf("orphans %v (%+v), want %v", got, rep, want)
	}
	// meph2-util's layout: one-space indent, one entry a line.
	b, _ := os.ReadFile(orphans)
	if !strings.HasPrefix(string(b), "{\n \"extra/deep/x\": \""+stamp+"\",\n") {
		t.Fatalf("orphan file:\n%s", b)
	}

	// A day later: first-seen times are kept; a file that vanished is
	// dropped; a new one gets the new time.
	c.Add(day)
	os.Remove(filepath.Join(tree, "noble", "stray"))
	writeFile(t, filepath.Join(tree, "late"), "late")
	if _, err := FindOrphans(ctx, orphans, tree, nil, o); err != nil { // DATA_DIR's own streams/v1
		t.Fatal(err)
	}
	got, _ = ReadOrphanFile(orphans)
	want = map[string]string{"extra/deep/x": stamp, "late": c.Now().Format(OrphanTimeFormat)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("second run: %v, want %v", got, want)
	}

	// An entry whose file the streams refer to now (it was orphaned when
	// recorded) must never be deleted.
	got["noble/arm64/20240101/squashfs"] = "Sun, 01 Nov 2026 00:00:00 +0000"
	if err := writeOrphanFile(orphans, got); err != nil {
		t.Fatal(err)
	}
	// Dry run: plans, changes nothing.
	c.Add(2 * day)
	var planned []string
	o.Older, o.DryRun, o.Plan = 3*day-time.Hour, true, func(a Action) { planned = append(planned, a.Name) }
	if _, err := ReapOrphans(ctx, orphans, tree, nil, o); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(planned, []string{"extra/deep/x"}) {
		t.Fatalf("planned %v", planned)
	}
	if _, err := os.Stat(filepath.Join(tree, "extra", "deep", "x")); err != nil {
		t.Fatal("dry run deleted")
	}
	o.DryRun, o.Plan = false, nil
	rep, err = ReapOrphans(ctx, orphans, tree, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Reaped != 1 || rep.Rereferenced != 1 || rep.Orphans != 1 {
		t.Fatalf("reap: %+v", rep)
	}
	if _, err := os.Stat(filepath.Join(tree, "noble", "arm64", "20240101", "squashfs")); err != nil {
		t.Fatal("deleted a file the streams refer to")
	}
	if _, err := os.Stat(filepath.Join(tree, "extra")); !os.IsNotExist(err) {
		t.Fatal("emptied directories kept")
	}
	got, _ = ReadOrphanFile(orphans)
	if !reflect.DeepEqual(got, map[string]string{"late": want["late"]}) {
		t.Fatalf("left %v", got)
	}
	testcheck.Validate(t, tree, "")
}

func TestReapNeverLeavesDataDir(t *testing.T) {
	tree := testtree.Make(t, nil, "--versions", "1")
	data := filepath.Join(t.TempDir(), "data")
	writeFile(t, filepath.Join(data, "a", "b", "c"), "c")
	outside := filepath.Join(t.TempDir(), "outside")
	writeFile(t, outside, "keep me")
	os.Symlink(filepath.Dir(outside), filepath.Join(data, "link"))
	orphans := filepath.Join(t.TempDir(), "o.json")
	c := newClock()
	o := TreeOptions{Now: c.Now}
	if _, err := FindOrphans(ctx, orphans, data, []string{tree}, o); err != nil {
		t.Fatal(err)
	}
	got, _ := ReadOrphanFile(orphans)
	if len(got) != 1 {
		t.Fatalf("orphans %v (a symlinked directory must not be walked)", got)
	}
	c.Add(time.Second)
	if _, err := ReapOrphans(ctx, orphans, data, nil, o); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(data); err != nil {
		t.Fatal("DATA_DIR removed")
	}
	if _, err := os.Stat(filepath.Join(data, "a")); !os.IsNotExist(err) {
		t.Fatal("emptied directory kept")
	}
	// Entries that lead out of DATA_DIR are refused, and nothing goes.
	for _, bad := range []string{"../outside", "link/outside", "/etc/passwd"} {
		writeOrphanFile(orphans, map[string]string{bad: "Sun, 01 Nov 2026 00:00:00 +0000"})
		_, err := ReapOrphans(ctx, orphans, data, nil, o)
		if err == nil {
			t.Errorf("%s: reaped", bad)
		}
		if _, serr := os.Stat(outside); serr != nil {
			t.Fatalf("%s: deleted a file outside DATA_DIR", bad)
		}
	}
	// An empty directory outside, under a symlinked one: not removed as
	// a directory the reap left empty.
	empty := filepath.Join(filepath.Dir(outside), "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	writeOrphanFile(orphans, map[string]string{"link/empty/x": "Sun, 01 Nov 2026 00:00:00 +0000"})
	if _, err := ReapOrphans(ctx, orphans, data, nil, o); err == nil || !strings.Contains(err.Error(), "leads out") {
		t.Errorf("link/empty/x: %v, want a refusal", err)
	}
	if _, err := os.Stat(empty); err != nil {
		t.Fatalf("removed an empty directory outside DATA_DIR: %v", err)
	}
}

func TestBadOrphanFiles(t *testing.T) {
	tree := testtree.Make(t, nil, "--versions", "1")
	dir := t.TempDir()
	for name, body := range map[string]string{
		"malformed": "{not json",
		"list":      `["a"]`,
		"bad time":  `{"a": "yesterday"}`,
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".json")
		writeFile(t, p, body)
		if _, err := ReapOrphans(ctx, p, tree, []string{tree}, TreeOptions{}); !errors.Is(err, ErrBadOrphanFile) {
			t.Errorf("%s: got %v", name, err)
		}
		if _, err := FindOrphans(ctx, p, tree, nil, TreeOptions{}); !errors.Is(err, ErrBadOrphanFile) {
			t.Errorf("find-orphans over %s: got %v", name, err)
		}
	}
	// No record of the streams and none named.
	p := filepath.Join(dir, "meph2.json")
	writeFile(t, p, "{}")
	if _, err := ReapOrphans(ctx, p, tree, nil, TreeOptions{}); err == nil || !strings.Contains(err.Error(), "find-orphans") {
		t.Errorf("got %v", err)
	}
}

func TestFindOrphansSignedTree(t *testing.T) {
	k := testtree.KeysFor(t, "orphans")
	tree := testtree.Make(t, k, "--versions", "1")
	writeFile(t, filepath.Join(tree, "stray"), "s")
	orphans := filepath.Join(t.TempDir(), "o.json")
	if _, err := FindOrphans(ctx, orphans, tree, nil, TreeOptions{Keyring: k.Keyring}); err != nil {
		t.Fatal(err)
	}
	got, _ := ReadOrphanFile(orphans)
	if len(got) != 1 {
		t.Fatalf("%v", got)
	}
	other := testtree.KeysFor(t, "someone-else")
	if _, err := FindOrphans(ctx, orphans, tree, nil, TreeOptions{Keyring: other.Keyring}); err == nil {
		t.Fatal("a tree signed by another key was read")
	}
}

// spreadParents puts the children of different parents next to each
// other, keeps every directory once, and takes each parent's children in
// their order.
func TestSpreadParents(t *testing.T) {
	for _, c := range []struct{ in, want []string }{
		{nil, []string{}},
		{[]string{"a/1"}, []string{"a/1"}},
		{
			[]string{"a/1", "a/2", "a/3", "b/1", "c/1", "c/2"},
			[]string{"a/1", "b/1", "c/1", "a/2", "c/2", "a/3"},
		},
		{
			[]string{"c/x/1", "a/x/1", "a/x/2", "c/y/1", "a/x/3", "top"},
			[]string{"top", "a/x/1", "c/x/1", "c/y/1", "a/x/2", "a/x/3"},
		},
	} {
		if got := spreadParents(c.in); !slices.Equal(got, c.want) {
			t.Errorf("spreadParents(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// unlinkAll removes each directory its removals leave empty, and its
// parents once everything planned below them is done, in the same pass as
// the files: a directory with files of its own and planned children goes
// after both; one with something else in it stays, and so do its
// parents; a planned directory that is not there removes nothing above it.
func TestUnlinkAllRemovesEmptiedDirs(t *testing.T) {
	data := t.TempDir()
	for _, f := range []string{"a/b/c/f1", "a/b/c/f2", "a/b/g", "a/keep", "d/e/f3", "z", "p/q/r/s/f4"} {
		writeFile(t, filepath.Join(data, f), f)
	}
	for _, d := range []string{"d/e2", "x"} {
		if err := os.MkdirAll(filepath.Join(data, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	reap := []string{"a/b/c/f1", "a/b/c/f2", "a/b/g", "d/e/f3", "x/y/gone", "z", "p/q/r/s/f4"}
	for _, jobs := range []int{1, 3, 32} {
		t.Run(fmt.Sprint(jobs), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			if err := os.CopyFS(dir, os.DirFS(data)); err != nil {
				t.Fatal(err)
			}
			freed, gone, err := unlinkAll(ctx, dir, reap, jobs)
			if err != nil || gone != 6 || freed != int64(len("a/b/c/f1a/b/c/f2a/b/gd/e/f3zp/q/r/s/f4")) {
				t.Fatalf("unlinkAll: freed %d, gone %d, %v", freed, gone, err)
			}
			var left []string
			filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if rel, _ := filepath.Rel(dir, p); rel != "." {
					left = append(left, rel)
				}
				return err
			})
			want := []string{"a", "a/keep", "d", "d/e2", "x"}
			if !slices.Equal(left, want) {
				t.Fatalf("left %q, want %q", left, want)
			}
		})
	}
}

// A cancelled reap removes nothing and says why.
func TestUnlinkAllCancelled(t *testing.T) {
	data := t.TempDir()
	writeFile(t, filepath.Join(data, "a", "f"), "f")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, gone, err := unlinkAll(cctx, data, []string{"a/f"}, 4); !errors.Is(err, context.Canceled) || gone != 0 {
		t.Fatalf("gone %d, %v", gone, err)
	}
	if _, err := os.Stat(filepath.Join(data, "a", "f")); err != nil {
		t.Fatal(err)
	}
}
