package publish

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// A publish with more than prefetchAbove items to check lists the data
// directories in the background: a root that lost its index and some data
// files gets exactly those files back.
func TestRepublishWithPrefetchRelinksMissing(t *testing.T) {
	f := newFixture(t, "300", "daily")
	if c := counts(t, f.r, "daily"); c.Items <= prefetchAbove {
		t.Fatalf("fixture has %d items; the test needs more than %d", c.Items, prefetchAbove)
	}
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
	if res.Unchanged || res.DataNew != len(removed) {
		t.Fatalf("republish: unchanged %v, %d data files new, want %d (first publish: %d)", res.Unchanged, res.DataNew, len(removed), first.DataNew)
	}
	for _, p := range removed {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("not linked again: %v", err)
		}
	}
	c := counts(t, f.r, "daily")
	ssValidate(t, filepath.Join(f.root, "daily"), f.keyring, "--expect-items", strconv.Itoa(c.Items))
}

// A prefetch lists the regular files of each data directory.
func TestPrefetchLists(t *testing.T) {
	root := t.TempDir()
	tg, err := NewDirTarget(root)
	if err != nil {
		t.Fatal(err)
	}
	sum := "ab" + strings.Repeat("0123456789", 7)[:62]
	dir := filepath.Join(root, dataPool, "ab")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, sum), nil, 0o644)
	os.Mkdir(filepath.Join(dir, "not-a-file"), 0o755)
	dataDir := func(i int) string { return filepath.Join(dataPool, strconv.FormatInt(int64(i)+0x100, 16)[1:]) }
	pf := startPrefetch(context.Background(), tg, dataDir, 2)
	names, err := pf.dir(context.Background(), sum)
	if err != nil || len(names) != 1 || !names[sum] {
		t.Fatalf("listing of ab: %v, %v", names, err)
	}
	if names, err := pf.dir(context.Background(), "ff"+sum[2:]); err != nil || len(names) != 0 {
		t.Errorf("listing of a missing directory: %v, %v", names, err)
	}
	pf.close()
}
