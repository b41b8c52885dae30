package build

import (
	"archive/tar"
	"bytes"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"
)

// FakeRoot is a tiny root tarball (uncompressed) for release and arch of
// the config: for every kernel row, /boot/vmlinuz-KVER and initrd.img-KVER
// of a few bytes and a dpkg status in which the row's kernel package
// brings in linux-image-KVER, plus a few files of a root. It is what
// `sync --fake-builder` builds instead of the upstream image, and what the
// tests serve as small real images: deterministic for its arguments (seed
// varies the contents, as a new upstream version would), built in
// milliseconds, and accepted by Build like any root tarball.
func FakeRoot(cfg *Config, release, arch, seed string) ([]byte, error) {
	rel, err := cfg.Release(release)
	if err != nil {
		return nil, err
	}
	rows := rel.Rows(arch)
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w: release %s has no kernel rows for %s", ErrConfig, release, arch)
	}
	var status strings.Builder
	fmt.Fprintf(&status, "Package: base-files\nStatus: install ok installed\nArchitecture: %s\nVersion: %s\n\n", arch, seed)
	var boot []string
	seen := map[string]bool{}
	for _, k := range rows {
		if seen[k.KPackage] {
			continue
		}
		seen[k.KPackage] = true
		kv := fakeKver(k)
		fmt.Fprintf(&status, "Package: %s\nStatus: install ok installed\nArchitecture: %s\nVersion: 1\nDepends: linux-image-%s\n\n", k.KPackage, arch, kv)
		fmt.Fprintf(&status, "Package: linux-image-%s\nStatus: install ok installed\nArchitecture: %s\nVersion: 1\n\n", kv, arch)
		boot = append(boot, kv)
	}
	t := time.Unix(1700000000, 0)
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	add := func(h tar.Header, body string) {
		h.ModTime, h.Size = t, int64(len(body))
		if h.Typeflag == tar.TypeDir {
			h.Size = 0
		}
		tw.WriteHeader(&h)
		tw.Write([]byte(body))
	}
	dir := func(name string) { add(tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}, "") }
	file := func(name, body string, mode int64) {
		add(tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode}, body)
	}
	for _, d := range []string{"./", "./boot/", "./etc/", "./var/", "./var/lib/", "./var/lib/dpkg/"} {
		dir(d)
	}
	slices.Sort(boot)
	for _, kv := range boot {
		file("./boot/vmlinuz-"+kv, "fake kernel "+kv+" "+seed+"\n", 0o600)
		file("./boot/initrd.img-"+kv, "fake initrd "+kv+" "+seed+"\n", 0o644)
	}
	file("./etc/hostname", "ubuntu\n", 0o644)
	file("./etc/os-release", fmt.Sprintf("NAME=Ubuntu\nVERSION_ID=%q\nVERSION_CODENAME=%s\n", rel.Version, release), 0o644)
	file("./var/lib/dpkg/status", status.String(), 0o644)
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// fakeKver is a kernel version for a row: distinct per kernel package.
func fakeKver(k KernelRow) string {
	h := fnv.New32a()
	h.Write([]byte(k.KPackage))
	flavor := k.Flavor
	if flavor == "" {
		flavor = "generic"
	}
	return fmt.Sprintf("6.8.0-%d-%s", h.Sum32()%1000, flavor)
}
