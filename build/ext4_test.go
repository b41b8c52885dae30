package build

import (
	"archive/tar"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// extractTree writes the fixture entries as a directory tree, owners, modes,
// device nodes, xattrs and times included (root only: mknod and chown).
func extractTree(t testing.TB, es []fixEntry, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range es {
		h := e.h
		p := filepath.Join(dir, strings.TrimPrefix(h.Name, "./"))
		switch h.Typeflag {
		case tar.TypeDir:
			must(os.MkdirAll(p, 0o755))
		case tar.TypeReg:
			must(os.WriteFile(p, []byte(e.body), 0o600))
		case tar.TypeSymlink:
			must(os.Symlink(h.Linkname, p))
		case tar.TypeLink:
			must(os.Link(filepath.Join(dir, strings.TrimPrefix(h.Linkname, "./")), p))
			continue
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			mode := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[h.Typeflag]
			must(unix.Mknod(p, mode|uint32(h.Mode), int(unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor)))))
		}
		must(os.Lchown(p, h.Uid, h.Gid))
		if h.Typeflag != tar.TypeSymlink {
			must(os.Chmod(p, os.FileMode(h.Mode&0o777)|modeBits(h.Mode)))
		}
		for k, v := range h.PAXRecords {
			if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				must(unix.Lsetxattr(p, name, []byte(v), 0))
			}
		}
	}
	// Times last, deepest first, so that creating entries does not touch
	// their directories' times again.
	for _, e := range slices.Backward(es) {
		p := filepath.Join(dir, strings.TrimPrefix(e.h.Name, "./"))
		ts := []unix.Timespec{unix.NsecToTimespec(e.h.ModTime.UnixNano()), unix.NsecToTimespec(e.h.ModTime.UnixNano())}
		must(unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW))
	}
}

func modeBits(m int64) os.FileMode {
	var out os.FileMode
	if m&0o4000 != 0 {
		out |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= os.ModeSticky
	}
	return out
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	if b, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, b)
	}
}

// diskFixtures makes ext4 images of the fixture: bare, behind GPT and MBR
// partition tables, and as qcow2 (plain and compressed).
func diskFixtures(t testing.TB, es []fixEntry) map[string]string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the ext4 fixtures need root (device nodes and owners in the tree mkfs.ext4 -d copies)")
	}
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	extractTree(t, es, tree)
	out := map[string]string{}
	mkfs := func(img string, extra ...string) {
		run(t, "mkfs.ext4", append([]string{"-q", "-F", "-d", tree, "-b", "1024", "-I", "256", "-E", "lazy_itable_init=1,nodiscard" + strings.Join(extra, "")}, img)...)
	}
	raw := filepath.Join(dir, "root.img")
	run(t, "truncate", "-s", "16M", raw)
	mkfs(raw)
	out["root.img"] = raw
	for _, label := range []string{"gpt", "dos"} {
		img := filepath.Join(dir, "disk-"+label+".img")
		run(t, "truncate", "-s", "24M", img)
		cmd := exec.Command("/usr/sbin/sfdisk", "-q", img)
		// A small first partition (not ext4), then the root.
		cmd.Stdin = strings.NewReader("label: " + label + "\nsize=2M\nsize=16M\n")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sfdisk: %v\n%s", err, b)
		}
		// Partition 2 starts at 1 MiB + 2 MiB.
		run(t, "mkfs.ext4", "-q", "-F", "-d", tree, "-E", "offset=3145728,nodiscard", img, "16M")
		out["disk-"+label+".img"] = img
	}
	q := filepath.Join(dir, "disk.qcow2")
	run(t, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", out["disk-gpt.img"], q)
	out["disk.qcow2"] = q
	qc := filepath.Join(dir, "disk-compressed.qcow2")
	run(t, "qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=4096", out["disk-gpt.img"], qc)
	out["disk-compressed.qcow2"] = qc
	return out
}

func TestBuildFromDiskImages(t *testing.T) {
	es := fixtureEntries()
	imgs := diskFixtures(t, es)
	want := expectedListing(es)
	// The same tree packed as a tar gives the same squashfs.
	tarSrc := fixtures(t, es)["root.tar"]
	ref, err := Build(ctx, newRepo(t), tarSrc, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"root.img", "disk-gpt.img", "disk-dos.img", "disk.qcow2", "disk-compressed.qcow2"} {
		t.Run(name, func(t *testing.T) {
			repo := newRepo(t)
			res, err := Build(ctx, repo, imgs[name], testOptions(t))
			if err != nil {
				t.Fatal(err)
			}
			var sq string
			for _, it := range res.Items {
				if it.Name == "squashfs" {
					sq = repo.Store().BlobPath(digestOf(it.Digest))
				}
			}
			// mkfs.ext4 adds lost+found, which sets the root's time: both
			// are the image's, not the fixture's.
			notMkfs := func(l string) bool {
				return strings.Contains(l, "lost+found") || strings.HasSuffix(l, " squashfs-root")
			}
			got := slices.DeleteFunc(listing(t, sq), notMkfs)
			want := slices.DeleteFunc(slices.Clone(want), notMkfs)
			if !slices.Equal(got, want) {
				t.Errorf("unsquashfs -lln:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			for i, it := range res.Items {
				if it.Name != "squashfs" && it.Digest != ref.Items[i].Digest {
					t.Errorf("%s: %s, from the tar %s", it.Name, it.Digest, ref.Items[i].Digest)
				}
			}
			if _, err := CommitPending(ctx, repo, "daily"); err != nil {
				t.Fatal(err)
			}
			publishValid(t, repo)
		})
	}
}

func TestBuildRefusesBadDiskImages(t *testing.T) {
	es := fixtureEntries()
	imgs := diskFixtures(t, es)
	dir := t.TempDir()
	cut := func(src string, n int64) string {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.Base(src)+".cut")
		if err := os.WriteFile(p, b[:n], 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	backed := filepath.Join(dir, "backed.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", imgs["disk.qcow2"], "-F", "qcow2", backed)
	noExt4 := filepath.Join(dir, "empty-gpt.img")
	run(t, "truncate", "-s", "8M", noExt4)
	cmd := exec.Command("/usr/sbin/sfdisk", "-q", noExt4)
	cmd.Stdin = strings.NewReader("label: gpt\nsize=4M\n")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, b)
	}
	for _, tc := range []struct {
		name, src, msg string
		want           error
	}{
		{"truncated ext4", cut(imgs["root.img"], 300<<10), "byte", ErrCorrupt},
		{"truncated qcow2", cut(imgs["disk.qcow2"], 400<<10), "", ErrCorrupt},
		{"qcow2 with a backing file", backed, "backing file", nil},
		{"GPT without ext4", noExt4, "no ext4 partition", ErrUnknownFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(ctx, newRepo(t), tc.src, testOptions(t))
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %v (%q)", err, tc.want, tc.msg)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error of more than one line: %q", err)
			}
		})
	}
}
