package fsx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestListFiles(t *testing.T) {
	root := t.TempDir()
	var want []string
	mk := func(rel string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(rel), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A tree wide and deep enough for every worker to share work.
	for a := range 6 {
		for b := range 7 {
			for c := range 3 {
				rel := fmt.Sprintf("r%d/s%d/v%d/boot-kernel", a, b, c)
				mk(rel)
				want = append(want, rel)
			}
		}
	}
	mk("top.txt")
	want = append(want, "top.txt")
	mk("skipme/x")
	mk(".lock")
	if err := os.MkdirAll(filepath.Join(root, "empty/deeper"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A link to a directory is not followed and not listed; a link to a
	// file and a dangling link are listed.
	if err := os.Symlink(filepath.Join(root, "r0"), filepath.Join(root, "r1/dirlink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("s0/v0/boot-kernel", filepath.Join(root, "r2/filelink")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("nowhere", filepath.Join(root, "r3/dangling")); err != nil {
		t.Fatal(err)
	}
	want = append(want, "r2/filelink", "r3/dangling")
	slices.Sort(want)
	for _, jobs := range []int{0, 1, 2, 8} {
		got, err := ListFiles(context.Background(), root, jobs,
			func(rel string) bool { return rel == "skipme" },
			func(rel string) bool { return strings.HasPrefix(rel, ".") })
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("jobs %d: got %d files %v\nwant %d %v", jobs, len(got), got, len(want), want)
		}
	}
}

func TestListFilesErrors(t *testing.T) {
	if _, err := ListFiles(context.Background(), filepath.Join(t.TempDir(), "missing"), 2, nil, nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing root: %v", err)
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "a/b"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ListFiles(ctx, root, 2, nil, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if os.Getuid() != 0 {
		if err := os.Chmod(filepath.Join(root, "a"), 0); err != nil {
			t.Fatal(err)
		}
		defer os.Chmod(filepath.Join(root, "a"), 0o755)
		if _, err := ListFiles(context.Background(), root, 2, nil, nil); !errors.Is(err, os.ErrPermission) {
			t.Fatalf("unreadable directory: %v", err)
		}
	}
}

func TestMapFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := MapFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != "hello" {
		t.Fatalf("mapped %q", m.Data)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	e := filepath.Join(dir, "empty")
	if err := os.WriteFile(e, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if m, err = MapFile(e); err != nil || len(m.Data) != 0 {
		t.Fatalf("empty: %v %q", err, m.Data)
	}
	if _, err := MapFile(dir); err == nil {
		t.Fatal("mapped a directory")
	}
}

func TestGuardTurnsAFaultIntoAnError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, make([]byte, 1<<16), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := MapFile(p)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	err = Guard(p, func() error {
		var sum byte
		for _, c := range m.Data {
			sum += c
		}
		return fmt.Errorf("read a truncated mapping without a fault (%d)", sum)
	})
	if err == nil || !strings.Contains(err.Error(), "changed while being read") {
		t.Fatalf("got %v", err)
	}
}

func TestOpenRead(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := OpenRead(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil || string(b) != "hello" {
		t.Fatalf("read %q, %v", b, err)
	}
	if _, err := OpenRead(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v, want fs.ErrNotExist", err)
	}
}

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	for _, size := range []int{0, 1, 4096, 1 << 20} {
		p := filepath.Join(dir, fmt.Sprint(size))
		want := []byte(strings.Repeat("x", size))
		if err := os.WriteFile(p, want, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := ReadFile(p)
		if err != nil || string(got) != string(want) {
			t.Fatalf("size %d: read %d bytes, %v", size, len(got), err)
		}
	}
	if _, err := ReadFile(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v, want fs.ErrNotExist", err)
	}
	if _, err := ReadFile(dir); err == nil {
		t.Fatal("a directory read as a file")
	}
	// An endless file (fstat says 0 bytes) is read to one byte past its
	// size, not forever.
	if b, err := ReadFile("/dev/zero"); err != nil || len(b) != 1 {
		t.Fatalf("/dev/zero: %d bytes, %v; want 1", len(b), err)
	}
}

// A scan of a mirror must not dirty the inode of every directory it reads:
// with relatime, a directory whose access time is over a day old gets a
// new one (and a journal write) at each read, daily on a scheduled scan.
func TestListFilesLeavesAccessTimes(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"control", "tree/a/b"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "tree/a/b/f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-72 * time.Hour).Truncate(time.Second)
	for _, d := range []string{"control", "tree", "tree/a", "tree/a/b"} {
		if err := os.Chtimes(filepath.Join(root, d), old, old); err != nil {
			t.Fatal(err)
		}
	}
	atime := func(rel string) time.Time {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(root, rel), &st); err != nil {
			t.Fatal(err)
		}
		return time.Unix(st.Atim.Unix())
	}
	if _, err := os.ReadDir(filepath.Join(root, "control")); err != nil {
		t.Fatal(err)
	}
	if atime("control").Equal(old) {
		t.Skip("this file system does not record access times (mounted noatime): nothing to check")
	}
	files, err := ListFiles(context.Background(), filepath.Join(root, "tree"), 2, nil, nil)
	if err != nil || len(files) != 1 {
		t.Fatalf("ListFiles: %v %v", files, err)
	}
	for _, d := range []string{"tree", "tree/a", "tree/a/b"} {
		if got := atime(d); !got.Equal(old) {
			t.Errorf("%s: access time %v, want %v (left as it was)", d, got, old)
		}
	}
}
