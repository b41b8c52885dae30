package build

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/snapshot"
)

var ctx = context.Background()

const (
	kver        = "6.8.0-31-generic"
	fixtureTime = 1700000000
)

// fixtureStatus is a dpkg status file: linux-generic brings kernel kver
// through linux-image-generic; a Multi-Arch: same library, a removed
// package with its config files left, and a not-installed one.
const fixtureStatus = `Package: base-files
Status: install ok installed
Priority: required
Architecture: amd64
Multi-Arch: foreign
Version: 13ubuntu10
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy.

Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Version: 2.39-0ubuntu8
Depends: libgcc-s1

Package: linux-generic
Status: install ok installed
Architecture: amd64
Version: 6.8.0-31.31
Depends: linux-image-generic (= 6.8.0-31.31), linux-headers-generic (= 6.8.0-31.31)

Package: linux-image-generic
Status: install ok installed
Architecture: amd64
Version: 6.8.0-31.31
Depends: linux-image-6.8.0-31-generic | linux-image-unsigned-6.8.0-31-generic, linux-firmware

Package: linux-image-6.8.0-31-generic
Status: install ok installed
Architecture: amd64
Version: 6.8.0-31.31
Depends: linux-modules-6.8.0-31-generic

Package: oldpkg
Status: deinstall ok config-files
Architecture: amd64
Version: 1:1.0-1

Package: gone
Status: purge ok not-installed
Architecture: amd64

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2024a-1ubuntu1
`

type fixEntry struct {
	h    tar.Header
	body string
}

// fixtureEntries is a tiny root: owners, setuid, symlinks, a hard link, a
// fifo, device nodes, an xattr, a kernel, an initrd and the dpkg status.
func fixtureEntries() []fixEntry {
	t := time.Unix(fixtureTime, 0)
	dir := func(name string, mode int64) fixEntry {
		return fixEntry{h: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: t}}
	}
	file := func(name string, mode int64, uid, gid int, body string) fixEntry {
		return fixEntry{h: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Uid: uid, Gid: gid, Size: int64(len(body)), ModTime: t}, body: body}
	}
	return []fixEntry{
		dir("./", 0o755),
		dir("./boot/", 0o755),
		file("./boot/vmlinuz-"+kver, 0o600, 0, 0, "KERNEL "+kver+"\n"),
		file("./boot/initrd.img-"+kver, 0o644, 0, 0, "INITRD "+kver+"\n"),
		{h: tar.Header{Typeflag: tar.TypeSymlink, Name: "./boot/vmlinuz", Linkname: "vmlinuz-" + kver, Mode: 0o777, ModTime: t}},
		dir("./dev/", 0o755),
		{h: tar.Header{Typeflag: tar.TypeChar, Name: "./dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: t}},
		{h: tar.Header{Typeflag: tar.TypeBlock, Name: "./dev/sda", Mode: 0o660, Gid: 6, Devmajor: 8, Devminor: 0, ModTime: t}},
		dir("./etc/", 0o755),
		file("./etc/hostname", 0o644, 0, 0, "ubuntu\n"),
		{h: tar.Header{Typeflag: tar.TypeLink, Name: "./etc/hostname.hard", Linkname: "./etc/hostname", ModTime: t}},
		{h: tar.Header{Typeflag: tar.TypeSymlink, Name: "./etc/localtime", Linkname: "/usr/share/zoneinfo/Etc/UTC", Mode: 0o777, ModTime: t}},
		dir("./home/", 0o755),
		dir("./home/ubuntu/", 0o750),
		file("./home/ubuntu/notes", 0o640, 1000, 1000, "hello\n"),
		dir("./run/", 0o755),
		{h: tar.Header{Typeflag: tar.TypeFifo, Name: "./run/initctl", Mode: 0o600, ModTime: t}},
		dir("./tmp/", 0o1777),
		dir("./usr/", 0o755),
		dir("./usr/bin/", 0o755),
		file("./usr/bin/passwd", 0o4755, 0, 0, "#!/bin/sh\n"),
		{h: tar.Header{Typeflag: tar.TypeReg, Name: "./usr/bin/ping", Mode: 0o755, Size: 3, ModTime: t, Format: tar.FormatPAX,
			PAXRecords: map[string]string{"SCHILY.xattr.user.mephstore": "ping"}}, body: "elf"},
		dir("./var/", 0o755),
		dir("./var/lib/", 0o755),
		dir("./var/lib/dpkg/", 0o755),
		file("./var/lib/dpkg/status", 0o644, 0, 0, fixtureStatus),
	}
}

// writeTar writes entries as a tar stream.
func writeTar(t testing.TB, es []fixEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range es {
		h := e.h
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// fixtures writes the fixture root in every form a build reads and returns
// their paths by name.
func fixtures(t testing.TB, es []fixEntry) map[string]string {
	t.Helper()
	dir := t.TempDir()
	raw := writeTar(t, es)
	out := map[string]string{}
	put := func(name string, b []byte) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		out[name] = p
	}
	put("root.tar", raw)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw)
	zw.Close()
	put("root.tar.gz", gz.Bytes())
	var zs bytes.Buffer
	ze, _ := zstd.NewWriter(&zs)
	ze.Write(raw)
	ze.Close()
	put("root.tar.zst", zs.Bytes())
	xzb, err := pipeThrough(raw, "xz", "-c", "-T1")
	if err != nil {
		t.Fatal(err)
	}
	put("root.tar.xz", xzb)
	sq := filepath.Join(dir, "root.squashfs")
	cmd := exec.Command("tar2sqfs", "--quiet", "--force", "--compressor", "gzip", sq)
	cmd.Stdin = bytes.NewReader(raw)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tar2sqfs: %v\n%s", err, b)
	}
	out["root.squashfs"] = sq
	return out
}

func pipeThrough(in []byte, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(in)
	return cmd.Output()
}

// newRepo makes a store with a stream daily.
func newRepo(t testing.TB) *snapshot.Repo {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	if err := cas.Init(dir); err != nil {
		t.Fatal(err)
	}
	s, err := cas.Open(dir, cas.Options{Wait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r := snapshot.New(s)
	if _, err := r.CreateStream(ctx, "daily", ""); err != nil {
		t.Fatal(err)
	}
	return r
}

const testConfig = `
releases:
  - release: noble
    version: "24.04"
    kernels:
      - [noble, amd64, ga-24.04, generic, linux-generic, [generic, ga-24.04]]
`

func testOptions(t testing.TB) Options {
	t.Helper()
	di, err := ReadDistroInfo(DistroInfoPath)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig("test config", []byte(testConfig), di)
	if err != nil {
		t.Fatal(err)
	}
	c.Compressor = "gzip" // fast; the default xz is exercised by the benchmark
	return Options{Arch: "amd64", Release: "noble", Serial: "20261122", Config: c, Jobs: 2}
}
