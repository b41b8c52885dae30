package build

import (
	"archive/tar"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/internal/testcheck"
	"github.com/mephstore/mephstore/publish"
	"github.com/mephstore/mephstore/snapshot"
)

// lsMode renders a mode the way ls -l (and unsquashfs -lln) does.
func lsMode(typ byte, mode int64) string {
	kinds := map[byte]byte{tar.TypeReg: '-', tar.TypeDir: 'd', tar.TypeSymlink: 'l', tar.TypeChar: 'c', tar.TypeBlock: 'b', tar.TypeFifo: 'p'}
	b := []byte{kinds[typ]}
	rwx := "rwxrwxrwx"
	for i := range 9 {
		if mode&(1<<(8-i)) != 0 {
			b = append(b, rwx[i])
		} else {
			b = append(b, '-')
		}
	}
	special := func(bit int64, pos int, set, unset byte) {
		if mode&bit != 0 {
			if b[pos] == '-' {
				b[pos] = unset
			} else {
				b[pos] = set
			}
		}
	}
	special(0o4000, 3, 's', 'S')
	special(0o2000, 6, 's', 'S')
	special(0o1000, 9, 't', 'T')
	return string(b)
}

// expectedListing is what unsquashfs -lln should print for the entries.
func expectedListing(es []fixEntry) []string {
	byName := map[string]tar.Header{}
	var out []string
	for _, e := range es {
		h := e.h
		name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		if h.Typeflag == tar.TypeLink {
			t := byName[strings.TrimPrefix(h.Linkname, "./")]
			h.Typeflag, h.Mode, h.Uid, h.Gid, h.Size, h.Linkname = t.Typeflag, t.Mode, t.Uid, t.Gid, t.Size, ""
		}
		byName[name] = h
		size := fmt.Sprint(h.Size)
		switch h.Typeflag {
		case tar.TypeDir:
			size = "-" // squashfs's own directory size
		case tar.TypeFifo:
			size = "0"
		case tar.TypeSymlink:
			size = fmt.Sprint(len(h.Linkname))
		case tar.TypeChar, tar.TypeBlock:
			size = fmt.Sprintf("%d,%d", h.Devmajor, h.Devminor)
		}
		p := "squashfs-root"
		if name != "" {
			p += "/" + name
		}
		line := fmt.Sprintf("%s %d/%d %s %s %s", lsMode(h.Typeflag, h.Mode), h.Uid, h.Gid, size, time.Unix(fixtureTime, 0).UTC().Format("2006-01-02 15:04"), p)
		if h.Typeflag == tar.TypeSymlink {
			line += " -> " + h.Linkname
		}
		out = append(out, line)
	}
	slices.Sort(out)
	return out
}

var lsRe = regexp.MustCompile(`^(\S{10}) (\d+)/(\d+)\s+(\d+|\d+,\s*\d+) (\d{4}-\d\d-\d\d \d\d:\d\d) (.*)$`)

// listing runs unsquashfs -lln on an image, normalised like expectedListing.
func listing(t testing.TB, image string) []string {
	t.Helper()
	cmd := exec.Command("unsquashfs", "-lln", image)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("unsquashfs -lln: %v", err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		m := lsRe.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		size := strings.ReplaceAll(m[4], " ", "")
		if m[1][0] == 'd' {
			size = "-"
		}
		out = append(out, fmt.Sprintf("%s %s/%s %s %s %s", m[1], m[2], m[3], size, m[5], m[6]))
	}
	slices.Sort(out)
	return out
}

func TestBuildEverySourceFormat(t *testing.T) {
	es := fixtureEntries()
	srcs := fixtures(t, es)
	want := expectedListing(es)
	wantManifest := dpkgQuery(t)
	digests := map[string]string{}
	for _, name := range []string{"root.tar", "root.tar.gz", "root.tar.xz", "root.tar.zst", "root.squashfs"} {
		t.Run(name, func(t *testing.T) {
			repo := newRepo(t)
			res, err := Build(ctx, repo, srcs[name], testOptions(t))
			if err != nil {
				t.Fatal(err)
			}
			items := map[string]ItemResult{}
			for _, it := range res.Items {
				items[it.Name] = it
			}
			store := repo.Store()
			read := func(item string) string {
				it, ok := items[item]
				if !ok {
					t.Fatalf("no %s item in %+v", item, res.Items)
				}
				b, err := os.ReadFile(store.BlobPath(digestOf(it.Digest)))
				if err != nil {
					t.Fatal(err)
				}
				return string(b)
			}
			if got := read("boot-kernel"); got != "KERNEL "+kver+"\n" {
				t.Errorf("kernel %q", got)
			}
			if got := read("boot-initrd"); got != "INITRD "+kver+"\n" {
				t.Errorf("initrd %q", got)
			}
			if got := read("manifest"); wantManifest != "" && got != wantManifest {
				t.Errorf("manifest\n%s\nwant (dpkg-query --show)\n%s", got, wantManifest)
			}
			sq := store.BlobPath(digestOf(items["squashfs"].Digest))
			if got := listing(t, sq); !slices.Equal(got, want) {
				t.Errorf("unsquashfs -lln:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if name == "root.squashfs" {
				if !res.Reused {
					t.Error("the upstream squashfs was not used as it is")
				}
				orig, _ := os.ReadFile(srcs[name])
				if got := read("squashfs"); got != string(orig) {
					t.Error("the published squashfs differs from the source squashfs")
				}
			} else {
				digests[name] = items["squashfs"].Digest
				// Read back through sqfs2tar: the xattr survived.
				o, err := Open(ctx, sq)
				if err != nil {
					t.Fatal(err)
				}
				defer o.Close()
				found := false
				for {
					e, err := o.Next()
					if err != nil {
						break
					}
					if e.Path == "usr/bin/ping" {
						found = e.Xattrs["user.mephstore"] == "ping"
					}
				}
				if !found {
					t.Error("usr/bin/ping lost its xattr user.mephstore")
				}
			}
			// Published, the build validates as a MAAS v3 stream.
			c, err := CommitPending(ctx, repo, "daily")
			if err != nil {
				t.Fatal(err)
			}
			if c == nil || len(c.Result.Added) != 1 {
				t.Fatalf("commit: %+v", c)
			}
			publishValid(t, repo)
		})
	}
	// The same tree gives the same squashfs, whatever the compression.
	for name, d := range digests {
		if d != digests["root.tar"] {
			t.Errorf("%s made squashfs %s, root.tar made %s", name, d, digests["root.tar"])
		}
	}
}

// dpkgQuery is what dpkg-query --show prints for the fixture's status.
func dpkgQuery(t testing.TB) string {
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		t.Log("no dpkg-query: manifest compared with the expected text only")
		return "base-files\t13ubuntu10\nlibc6:amd64\t2.39-0ubuntu8\nlinux-generic\t6.8.0-31.31\nlinux-image-6.8.0-31-generic\t6.8.0-31.31\nlinux-image-generic\t6.8.0-31.31\noldpkg\t1:1.0-1\ntzdata\t2024a-1ubuntu1\n"
	}
	dir := t.TempDir()
	for _, d := range []string{"updates", "info"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "status"), []byte(fixtureStatus), 0o644)
	out, err := exec.Command("dpkg-query", "--admindir="+dir, "--show").Output()
	if err != nil {
		t.Fatalf("dpkg-query: %v", err)
	}
	return string(out)
}

func TestBuildTwiceAddsNoBytes(t *testing.T) {
	srcs := fixtures(t, fixtureEntries())
	repo := newRepo(t)
	first, err := Build(ctx, repo, srcs["root.tar.gz"], testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	if first.NewBytes == 0 {
		t.Fatal("the first build added nothing")
	}
	second, err := Build(ctx, repo, srcs["root.tar.gz"], testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	if second.NewBytes != 0 || second.Pending.ID != first.Pending.ID {
		t.Fatalf("second build: %d new bytes, id %s (first %s)", second.NewBytes, second.Pending.ID, first.Pending.ID)
	}
	ss, _ := repo.Store().Reader(ctx)
	ps, err := ListPending(ss)
	ss.Close()
	if err != nil || len(ps) != 1 {
		t.Fatalf("pending: %v %v", ps, err)
	}
	// Committed once, a second commit of the same version replaces nothing.
	if _, err := CommitPending(ctx, repo, "daily"); err != nil {
		t.Fatal(err)
	}
	if _, err := Build(ctx, repo, srcs["root.tar.xz"], testOptions(t)); err != nil {
		t.Fatal(err)
	}
	c, err := CommitPending(ctx, repo, "daily")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Result.Added) != 0 || len(c.Result.Skipped) != 1 {
		t.Fatalf("recommit: added %v skipped %v", c.Result.Added, c.Result.Skipped)
	}
}

func TestBuildRefusesBadInput(t *testing.T) {
	good := fixtureEntries()
	tt := time.Unix(fixtureTime, 0)
	with := func(extra ...fixEntry) []fixEntry { return append(slices.Clone(good), extra...) }
	for _, tc := range []struct {
		name    string
		entries []fixEntry
		raw     func([]byte) []byte
		want    error
		msg     string
	}{
		{name: "dotdot", entries: with(fixEntry{h: tar.Header{Typeflag: tar.TypeReg, Name: "./etc/../../evil", ModTime: tt}}), want: ErrEscape, msg: ".. component"},
		{name: "absolute", entries: with(fixEntry{h: tar.Header{Typeflag: tar.TypeReg, Name: "/etc/evil", ModTime: tt}}), want: ErrEscape, msg: "absolute"},
		{name: "through a symlink", entries: with(
			fixEntry{h: tar.Header{Typeflag: tar.TypeSymlink, Name: "./lib", Linkname: "/tmp", ModTime: tt}},
			fixEntry{h: tar.Header{Typeflag: tar.TypeReg, Name: "./lib/evil", ModTime: tt}}), want: ErrEscape, msg: "below the symbolic link"},
		{name: "hard link out", entries: with(fixEntry{h: tar.Header{Typeflag: tar.TypeLink, Name: "./etc/shadow2", Linkname: "../../etc/shadow", ModTime: tt}}), want: ErrEscape},
		{name: "truncated", entries: good, raw: func(b []byte) []byte { return b[:len(b)/2+100] }, want: ErrCorrupt},
		{name: "not an image", entries: good, raw: func([]byte) []byte { return []byte("hello, world\n") }, want: ErrUnknownFormat, msg: "68 65 6c 6c 6f"},
		{name: "no kernel", entries: slices.DeleteFunc(slices.Clone(good), func(e fixEntry) bool { return strings.Contains(e.h.Name, "vmlinuz-") }),
			want: ErrNoKernel, msg: "/boot holds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := writeTar(t, tc.entries)
			if tc.raw != nil {
				raw = tc.raw(raw)
			}
			p := filepath.Join(t.TempDir(), "src")
			os.WriteFile(p, raw, 0o644)
			repo := newRepo(t)
			blobs := func() (n int) {
				ss, _ := repo.Store().Reader(ctx)
				defer ss.Close()
				ss.Blobs(func(b cas.Blob) error { n++; return nil })
				return n
			}
			before := blobs()
			_, err := Build(ctx, repo, p, testOptions(t))
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %v (%q)", err, tc.want, tc.msg)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error of more than one line: %q", err)
			}
			n := blobs() - before
			ss, _ := repo.Store().Reader(ctx)
			ps, _ := ListPending(ss)
			ss.Close()
			if n != 0 || len(ps) != 0 {
				t.Fatalf("a failed build left %d blobs and %d pending builds", n, len(ps))
			}
			left, _ := os.ReadDir(filepath.Join(repo.Store().Dir(), "pool", ".ingest"))
			if len(left) != 0 {
				t.Fatalf("a failed build left temp files: %v", left)
			}
		})
	}
}

func digestOf(hex string) digest.Digest { return digest.NewDigestFromEncoded(digest.SHA256, hex) }

const dtbConfig = `
compressor: gzip
kname: "%(subarch)s"
releases:
  - release: noble
    version: "24.04"
    kernels:
      - [noble, arm64, ga-24.04, generic, linux-generic, [generic, ga-24.04]]
      - [noble, arm64, xgene-uboot, generic, linux-generic, [xgene-uboot], {dtb: "boot/dtbs/{kver}/board.dtb", platform: xgene}]
      - [noble, amd64, ga-24.04, generic, linux-generic]
`

func TestBuildDTBAndSeveralRows(t *testing.T) {
	tt := time.Unix(fixtureTime, 0)
	es := append(fixtureEntries(),
		fixEntry{h: tar.Header{Typeflag: tar.TypeDir, Name: "./boot/dtbs/", Mode: 0o755, ModTime: tt}},
		fixEntry{h: tar.Header{Typeflag: tar.TypeDir, Name: "./boot/dtbs/" + kver + "/", Mode: 0o755, ModTime: tt}},
		fixEntry{h: tar.Header{Typeflag: tar.TypeReg, Name: "./boot/dtbs/" + kver + "/board.dtb", Mode: 0o644, Size: 3, ModTime: tt}, body: "dtb"},
	)
	src := fixtures(t, es)["root.tar"]
	o := testOptions(t)
	// Without distro-info data the config loads, and a build of a release
	// it cannot complete is refused.
	c, err := ParseConfig("dtb config", []byte(dtbConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	o.Config, o.Arch = c, "arm64"
	if _, err := Build(ctx, newRepo(t), src, o); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "not in distro-info data") {
		t.Fatalf("a release outside distro-info without its titles and dates: %v", err)
	}
	di, _ := ReadDistroInfo(DistroInfoPath)
	c, err = ParseConfig("dtb config", []byte(dtbConfig), di)
	if err != nil {
		t.Fatal(err)
	}
	o.Config, o.Arch = c, "arm64"
	repo := newRepo(t)
	res, err := Build(ctx, repo, src, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Pending.Products) != 2 {
		t.Fatalf("products %+v", res.Pending.Products)
	}
	x := res.Pending.Products[1]
	if !strings.HasSuffix(x.Name, ":v3:boot:24.04:arm64:xgene-uboot") || x.Fields["platform"] != "xgene" || x.Fields["subarches"] != "xgene-uboot" {
		t.Fatalf("xgene product %+v", x)
	}
	dtb, ok := x.Items["boot-dtb"]
	if !ok || dtb.Path != "noble/arm64/20261122/xgene-uboot/generic/boot-dtb" || dtb.Extra["kpackage"] == "" {
		t.Fatalf("boot-dtb item %+v", x.Items)
	}
	if _, ok := res.Pending.Products[0].Items["boot-dtb"]; ok {
		t.Fatal("a row without dtb got one")
	}
	if _, err := CommitPending(ctx, repo, "daily"); err != nil {
		t.Fatal(err)
	}
	publishValid(t, repo)
}

func TestParseConfigRefuses(t *testing.T) {
	di, _ := ReadDistroInfo(DistroInfoPath)
	for name, body := range map[string]string{
		"unquoted version": "releases:\n  - release: noble\n    version: 24.04\n    kernels: [[noble, amd64, ga-24.04, generic, linux-generic]]\n",
		"unknown key":      "colour: blue\nreleases: []\n",
		"short row":        "releases:\n  - release: noble\n    version: \"24.04\"\n    kernels: [[noble, amd64]]\n",
		"no kernels":       "releases:\n  - release: noble\n    version: \"24.04\"\n",
		"bad compressor":   "compressor: lz4\nreleases:\n  - release: noble\n    version: \"24.04\"\n    kernels: [[noble, amd64, ga-24.04, generic, linux-generic]]\n",
		"root image":       "root_image: true\nreleases: []\n",
		"not yaml":         "releases: [\n",
	} {
		if _, err := ParseConfig(name, []byte(body), di); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
	c, err := ParseConfig("default", DefaultConfig(), di)
	if err != nil {
		t.Fatalf("the default config: %v", err)
	}
	r, err := c.Release("noble")
	if err != nil || r.ReleaseTitle != "24.04 LTS" || r.ReleaseCodename != "Noble Numbat" || r.SupportEOL != "2029-05-31" || r.SupportESMEOL != "2034-04-25" {
		t.Fatalf("noble from distro-info: %+v %v", r, err)
	}
}

func TestBuildDropsACLs(t *testing.T) {
	es := append(fixtureEntries(), fixEntry{h: tar.Header{Typeflag: tar.TypeDir, Name: "./var/log/", Mode: 0o755, ModTime: time.Unix(fixtureTime, 0),
		Format: tar.FormatPAX, PAXRecords: map[string]string{
			"SCHILY.xattr.system.posix_acl_default": "\x02\x00\x00\x00\x01\x00\x07\x00\xff\xff\xff\xff",
			"SCHILY.xattr.user.kept":                "yes",
		}}})
	res, err := Build(ctx, newRepo(t), fixtures(t, es[:len(es)-1])["root.tar"], testOptions(t))
	if err != nil || res.DroppedXattrs != 0 {
		t.Fatalf("without ACLs: %v, %d dropped", err, res.DroppedXattrs)
	}
	p := filepath.Join(t.TempDir(), "acl.tar")
	os.WriteFile(p, writeTar(t, es), 0o644)
	res, err = Build(ctx, newRepo(t), p, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.DroppedXattrs != 1 {
		t.Fatalf("dropped %d xattrs, want the one ACL", res.DroppedXattrs)
	}
}

// publishValid publishes daily unsigned and checks it with ss-validate.
func publishValid(t testing.TB, repo *snapshot.Repo) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "pub")
	if _, err := publish.Publish(ctx, repo, "daily", publish.Options{Root: root}); err != nil {
		t.Fatal(err)
	}
	testcheck.Validate(t, filepath.Join(root, "daily"), "")
}
