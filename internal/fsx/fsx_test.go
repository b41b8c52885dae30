package fsx

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestWriteFileAtomicReplacesAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	for _, content := range []string{"one", "two-longer"} {
		if err := WriteFileAtomic(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != content {
			t.Fatalf("read back %q, %v; want %q", got, err, content)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries, want only the file", len(ents))
	}
}

func TestWriteFileAtomicMissingDir(t *testing.T) {
	err := WriteFileAtomic(filepath.Join(t.TempDir(), "no", "f"), []byte("x"), 0o644)
	if err == nil {
		t.Fatal("want an error for a missing directory")
	}
}

func TestMkdir(t *testing.T) {
	for name, mk := range map[string]func(string, os.FileMode) error{"MkdirDurable": MkdirDurable, "MkdirPerm": MkdirPerm} {
		t.Run(name, func(t *testing.T) {
			old := unix.Umask(0o077)
			defer unix.Umask(old)
			d := filepath.Join(t.TempDir(), "a", "b", "c")
			if err := mk(d, 0o755); err != nil {
				t.Fatal(err)
			}
			for p := d; p != filepath.Dir(filepath.Dir(filepath.Dir(d))); p = filepath.Dir(p) {
				if fi, err := os.Stat(p); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755 {
					t.Fatalf("stat %s: %v %v, want a directory with mode 0755 whatever the umask", p, fi.Mode(), err)
				}
			}
			if err := mk(d, 0o755); err != nil {
				t.Fatalf("second mkdir: %v", err)
			}
			f := filepath.Join(d, "file")
			os.WriteFile(f, nil, 0o644)
			if err := mk(f, 0o755); !errors.Is(err, fs.ErrExist) {
				t.Fatalf("a file in the way: %v, want fs.ErrExist", err)
			}
		})
	}
}
