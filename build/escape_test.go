package build

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hostCanary is a directory of the host with one file in it, which no
// build may read, link or write.
func hostCanary(t *testing.T) (dir, file string) {
	dir = t.TempDir()
	file = filepath.Join(dir, "canary")
	os.WriteFile(file, []byte("host secret\n"), 0o644)
	return dir, file
}

func checkCanary(t *testing.T, dir, file string) {
	t.Helper()
	b, err := os.ReadFile(file)
	fi, _ := os.Stat(file)
	ents, _ := os.ReadDir(dir)
	if err != nil || string(b) != "host secret\n" || fi.Sys() == nil || len(ents) != 1 {
		t.Fatalf("the host directory changed: %v %q %d entries", err, b, len(ents))
	}
	if n := nlink(fi); n != 1 {
		t.Fatalf("the host file has %d links", n)
	}
}

// escapeEntries are the tricks of a hostile root tarball: a symlink to a
// host directory, then a hard link or a file reached through it.
func escapeEntries(hostDir string) map[string][]fixEntry {
	tt := time.Unix(fixtureTime, 0)
	sl := fixEntry{h: tar.Header{Typeflag: tar.TypeSymlink, Name: "./sl", Linkname: hostDir, ModTime: tt}}
	return map[string][]fixEntry{
		"hard link through a symlink": {sl,
			{h: tar.Header{Typeflag: tar.TypeLink, Name: "./etc/hl", Linkname: "sl/canary", ModTime: tt}}},
		"hard link through a relative symlink": {
			{h: tar.Header{Typeflag: tar.TypeSymlink, Name: "./up", Linkname: "../../../../../../../../../.." + hostDir, ModTime: tt}},
			{h: tar.Header{Typeflag: tar.TypeLink, Name: "./etc/hl", Linkname: "./up/canary", ModTime: tt}}},
		"file below a directory symlink": {sl,
			{h: tar.Header{Typeflag: tar.TypeReg, Name: "./sl/planted", Size: 4, Mode: 0o644, ModTime: tt}, body: "evil"}},
	}
}

// The plain build (tar stream to tar2sqfs) refuses each trick.
func TestBuildRefusesLinksOutOfTheImage(t *testing.T) {
	hostDir, canary := hostCanary(t)
	for name, extra := range escapeEntries(hostDir) {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "root.tar")
			os.WriteFile(p, writeTar(t, append(fixtureEntries(), extra...)), 0o644)
			_, err := Build(ctx, newRepo(t), p, testOptions(t))
			if !errors.Is(err, ErrEscape) || !strings.Contains(err.Error(), "symbolic link") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want ErrEscape naming the symbolic link", err)
			}
			checkCanary(t, hostDir, canary)
		})
	}
}

// The customised build unpacks the image with extract: each trick is
// refused there too, and nothing of the host is linked, read or written.
func TestExtractRefusesLinksOutOfTheImage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("extract keeps owners and device nodes: root only (CI runs as root)")
	}
	hostDir, canary := hostCanary(t)
	for name, extra := range escapeEntries(hostDir) {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			raw := writeTar(t, append(fixtureEntries(), extra...))
			err := extract(ctx, newTarSource("root.tar", bytes.NewReader(raw), nil), root, nil)
			if !errors.Is(err, ErrEscape) {
				t.Fatalf("got %v, want ErrEscape", err)
			}
			checkCanary(t, hostDir, canary)
		})
	}
}

// listSource hands extract entries as they are, without the tar guard:
// extract's own lookups must still refuse every path through a link.
type listSource struct{ es []*Entry }

func (l *listSource) Next() (*Entry, error) {
	if len(l.es) == 0 {
		return nil, io.EOF
	}
	e := l.es[0]
	l.es = l.es[1:]
	return e, nil
}
func (l *listSource) Close() error { return nil }

func TestExtractWithoutGuardStaysInRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("extract keeps owners and device nodes: root only (CI runs as root)")
	}
	hostDir, canary := hostCanary(t)
	tt := time.Unix(fixtureTime, 0)
	sl := &Entry{Type: TypeSymlink, Path: "sl", Link: hostDir, ModTime: tt}
	for name, es := range map[string][]*Entry{
		"hard link": {sl, {Type: TypeHardlink, Path: "hl", Link: "sl/canary", ModTime: tt}},
		"file":      {sl, {Type: TypeRegular, Path: "sl/planted", Mode: 0o644, Size: 4, Body: strings.NewReader("evil"), ModTime: tt}},
		"directory": {sl, {Type: TypeDir, Path: "sl/newdir", Mode: 0o755, ModTime: tt}},
		"device":    {sl, {Type: TypeChar, Path: "sl/null", Mode: 0o666, DevMajor: 1, DevMinor: 3, ModTime: tt}},
	} {
		t.Run(name, func(t *testing.T) {
			err := extract(ctx, &listSource{es: slices.Clone(es)}, t.TempDir(), nil)
			if !errors.Is(err, ErrEscape) {
				t.Fatalf("got %v, want ErrEscape", err)
			}
			checkCanary(t, hostDir, canary)
		})
	}
}

// What mephstore itself writes and reads in an unpacked image (apt
// sources, the policy-rc.d and resolv.conf swaps, the dpkg status) is
// resolved within the image, as the chroot sees it: an absolute symlink
// to a host directory lands inside the image.
func TestImageFilesResolveInTheImage(t *testing.T) {
	hostDir, canary := hostCanary(t)
	root := t.TempDir()
	os.Symlink(hostDir, filepath.Join(root, "etc"))
	os.Symlink(hostDir, filepath.Join(root, "var"))
	// The link's target, inside the image (the host has it too).
	os.MkdirAll(filepath.Join(root, hostDir), 0o755)
	if err := writeInImage(root, "etc/apt/sources.list.d/mephstore.list", []byte("deb x y z\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, hostDir, "apt", "sources.list.d", "mephstore.list")); err != nil {
		t.Fatalf("not written inside the image: %v", err)
	}
	if _, err := readInImage(root, "var/canary"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("read through an absolute link: %v, want not found inside the image", err)
	}
	w := &workspace{root: root}
	if err := w.swapFile("etc/resolv.conf", []byte("nameserver 127.0.0.1\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.unmount(); err != nil {
		t.Fatal(err)
	}
	checkCanary(t, hostDir, canary)
}

func nlink(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 0
}
