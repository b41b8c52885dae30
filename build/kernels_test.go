package build

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mephstore/mephstore/catalog"
	"github.com/mephstore/mephstore/internal/testref"
	"github.com/mephstore/mephstore/snapshot"
)

// nobleKernels are the kernel packages of meph-v3's six noble/amd64 rows,
// each bringing its own kernel version.
var nobleKernels = []struct{ pkg, kver string }{
	{"linux-generic", "6.8.0-31-generic"},
	{"linux-image-lowlatency", "6.8.0-31-lowlatency"},
	{"linux-generic-hwe-24.04", "6.11.0-19-generic"},
	{"linux-lowlatency-hwe-24.04", "6.11.0-19-lowlatency"},
	{"linux-generic-hwe-24.04-edge", "6.14.0-10-generic"},
	{"linux-lowlatency-hwe-24.04-edge", "6.14.0-10-lowlatency"},
}

// nobleProducts are the products meph2-build makes for noble/amd64 with
// meph-v3.yaml (its build_image.py says so too).
var nobleProducts = []string{"ga-24.04", "ga-24.04-lowlatency", "hwe-24.04", "hwe-24.04-edge", "hwe-24.04-lowlatency", "hwe-24.04-lowlatency-edge"}

// kernelsRoot is a tiny noble root whose dpkg status and /boot hold the
// kernel packages given (each meta package depends on linux-image-<kver>
// through a middle package, as Ubuntu's do).
func kernelsRoot(t testing.TB, skip ...string) string {
	t.Helper()
	tt := time.Unix(fixtureTime, 0)
	var status strings.Builder
	status.WriteString("Package: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 13ubuntu10\n\n")
	es := []fixEntry{
		{h: tar.Header{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755, ModTime: tt}},
		{h: tar.Header{Typeflag: tar.TypeDir, Name: "./boot/", Mode: 0o755, ModTime: tt}},
	}
	for _, k := range nobleKernels {
		if slices.Contains(skip, k.pkg) {
			continue
		}
		mid := k.pkg + "-image"
		fmt.Fprintf(&status, "Package: %s\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\nDepends: %s (= 1)\n\n", k.pkg, mid)
		fmt.Fprintf(&status, "Package: %s\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\nDepends: linux-image-%s | linux-image-unsigned-%s\n\n", mid, k.kver, k.kver)
		fmt.Fprintf(&status, "Package: linux-image-%s\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n\n", k.kver)
		for _, f := range []string{"vmlinuz-", "initrd.img-"} {
			body := f + k.kver + "\n"
			es = append(es, fixEntry{h: tar.Header{Typeflag: tar.TypeReg, Name: "./boot/" + f + k.kver, Mode: 0o600, Size: int64(len(body)), ModTime: tt}, body: body})
		}
	}
	for _, d := range []string{"./var/", "./var/lib/", "./var/lib/dpkg/"} {
		es = append(es, fixEntry{h: tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: tt}})
	}
	body := status.String()
	es = append(es, fixEntry{h: tar.Header{Typeflag: tar.TypeReg, Name: "./" + StatusPath, Mode: 0o644, Size: int64(len(body)), ModTime: tt}, body: body})
	p := filepath.Join(t.TempDir(), "noble.tar")
	if err := os.WriteFile(p, writeTar(t, es), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// sharedConf is maas-images' conf/NAME from the shared reference, or nil
// when there is none.
func sharedConf(t testing.TB, name string) []byte {
	s := testref.Shared()
	if s == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(s, "reference", "maas-images", "conf", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// mephV3 is the real maas-images conf/meph-v3.yaml when the shared
// reference is there, else the built-in config (the same noble/amd64 rows).
func mephV3(t testing.TB) (string, []byte) {
	if b := sharedConf(t, "meph-v3.yaml"); b != nil {
		return "meph-v3.yaml", b
	}
	return "built-in config", DefaultConfig()
}

func nobleOptions(t testing.TB, skipMissing bool) Options {
	name, b := mephV3(t)
	di, _ := ReadDistroInfo(DistroInfoPath)
	c, err := ParseConfig(name, b, di)
	if err != nil {
		t.Fatal(err)
	}
	c.Compressor = "gzip"
	return Options{Arch: "amd64", Release: "noble", Serial: "20261122", Config: c, Jobs: 2, SkipMissingKernels: skipMissing}
}

func TestBuildSixKernels(t *testing.T) {
	repo := newRepo(t)
	res, err := Build(ctx, repo, kernelsRoot(t), nobleOptions(t, false))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range res.Pending.Products {
		got = append(got, p.Name)
		kernel := p.Items["boot-kernel"]
		dir := "noble/amd64/20261122/" + p.Fields["subarch"] + "/" + p.Fields["kflavor"] + "/"
		if kernel.Path != dir+"boot-kernel" || p.Items["boot-initrd"].Path != dir+"boot-initrd" {
			t.Errorf("%s: boot items %v", p.Name, p.Items)
		}
	}
	var want []string
	for _, s := range nobleProducts {
		want = append(want, "com.ubuntu.maas.daily:v3:boot:24.04:amd64:"+s)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("products\n got %v\nwant %v", got, want)
	}
	// Each product has its own kernel: six different kernels and initrds.
	kernels := map[string]bool{}
	for _, p := range res.Pending.Products {
		kernels[p.Items["boot-kernel"].SHA256] = true
	}
	if len(kernels) != 6 {
		t.Fatalf("%d distinct kernels, want 6", len(kernels))
	}
	if _, err := CommitPending(ctx, repo, "daily"); err != nil {
		t.Fatal(err)
	}
	publishValid(t, repo)
}

func TestBuildSkipMissingKernels(t *testing.T) {
	src := kernelsRoot(t, "linux-lowlatency-hwe-24.04")
	res, err := Build(ctx, newRepo(t), src, nobleOptions(t, true))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Pending.Products) != 5 {
		t.Fatalf("%d products, want 5 (one row skipped)", len(res.Pending.Products))
	}
	for _, p := range res.Pending.Products {
		if strings.HasSuffix(p.Name, ":hwe-24.04-lowlatency") {
			t.Fatalf("the row whose package is missing was built: %s", p.Name)
		}
	}
	// Without the flag the build asks for a customisation, which needs root.
	if os.Geteuid() != 0 {
		if _, err := Build(ctx, newRepo(t), src, nobleOptions(t, false)); !errors.Is(err, ErrNeedsRoot) {
			t.Fatalf("a missing kernel without --skip-missing-kernels: %v", err)
		}
	}
	// An image with none of the rows' kernels is an error even so.
	var all []string
	for _, k := range nobleKernels {
		all = append(all, k.pkg)
	}
	if _, err := Build(ctx, newRepo(t), kernelsRoot(t, all...), nobleOptions(t, true)); !errors.Is(err, ErrNoKernel) {
		t.Fatalf("no kernel at all: %v", err)
	}
}

// TestSameAsMeph2Build runs the real meph2-build (from the shared
// reference) and mephstore on the same config, release, arch and serial
// and compares the products documents field by field: only sizes,
// checksums and dates may differ.
func TestSameAsMeph2Build(t *testing.T) {
	ref := testref.Dir(t, "reference")
	py := testref.Python(t, "yaml", "distro_info", "requests")
	conf := filepath.Join(ref, "maas-images", "conf", "meph-v3.yaml")
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			m2 := meph2Build(t, py, ref, conf, arch)
			o := nobleOptions(t, true)
			o.Arch = arch
			ms := mephstoreItems(t, o)
			if len(m2) == 0 || !slices.Equal(slices.Sorted(maps.Keys(m2)), slices.Sorted(maps.Keys(ms))) {
				t.Fatalf("items differ:\nmeph2-build %v\nmephstore   %v", slices.Sorted(maps.Keys(m2)), slices.Sorted(maps.Keys(ms)))
			}
			for key, want := range m2 {
				got := ms[key]
				for _, f := range slices.Sorted(maps.Keys(want)) {
					if !differs[f] && fmt.Sprint(got[f]) != fmt.Sprint(want[f]) {
						t.Errorf("%s %s: mephstore %v, meph2-build %v", key, f, got[f], want[f])
					}
				}
				for f := range got {
					if _, ok := want[f]; !ok && !differs[f] {
						t.Errorf("%s: mephstore adds %s=%v", key, f, got[f])
					}
				}
			}
		})
	}
}

// differs are the fields that may differ from meph2-build's: the data's
// sizes and checksums, the dates.
var differs = map[string]bool{"sha256": true, "size": true, "updated": true, "md5": true}

// meph2Build runs meph2-build with a stand-in image builder that writes a
// small file at every path it is given, and returns the flattened items
// of the products document it writes.
func meph2Build(t *testing.T, py, ref, conf, arch string) map[string]map[string]any {
	dir := t.TempDir()
	stand := filepath.Join(dir, "builder")
	script := `#!/bin/sh
# stand-in for maas-cloudimg2eph2: a file at every path given
for a in "$@"; do
  case "$a" in
    --manifest=*) f=${a#--manifest=}; mkdir -p "$(dirname "$f")"; echo manifest > "$f";;
    --krd-pack=*) IFS=,; set -f; for f in ${a#--krd-pack=}; do case "$f" in */*) mkdir -p "$(dirname "$f")"; echo "$f" > "$f";; esac; done; unset IFS;;
    -*) ;;
    *) out=$a;;
  esac
done
mkdir -p "$(dirname "$out")"; echo root > "$out"; echo squashfs > "$(dirname "$out")/squashfs"
`
	if err := os.WriteFile(stand, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	cmd := exec.Command(py, filepath.Join(ref, "maas-images", "bin", "meph2-build"), "--config", conf, arch, "noble", "20261122", filepath.Join(dir, "src.tar.xz"), out)
	cmd.Env = append(os.Environ(), "MAAS_CLOUDIMG2EPH2="+stand, "PYTHONPATH="+filepath.Join(ref, "simplestreams")+":"+filepath.Join(ref, "maas-images"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("meph2-build: %v\n%s", err, b)
	}
	b, err := os.ReadFile(filepath.Join(out, "streams", "v1", "com.ubuntu.maas:candidate:v3:download.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	items := map[string]map[string]any{}
	top := scalars(doc)
	for pname, p := range doc["products"].(map[string]any) {
		pm := p.(map[string]any)
		for vname, v := range pm["versions"].(map[string]any) {
			vm := v.(map[string]any)
			for iname, it := range vm["items"].(map[string]any) {
				m := map[string]any{}
				for _, src := range []map[string]any{top, scalars(pm), scalars(vm), it.(map[string]any)} {
					maps.Copy(m, src)
				}
				items[pname+" "+vname+" "+iname] = m
			}
		}
	}
	return items
}

func scalars(m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		switch v.(type) {
		case map[string]any, []any:
		default:
			out[k] = v
		}
	}
	return out
}

// mephstoreItems builds the six-kernel root into a stream labelled
// candidate, commits it and returns the snapshot's flattened items.
func mephstoreItems(t *testing.T, o Options) map[string]map[string]any {
	repo := newRepo(t)
	if _, err := repo.CreateStream(ctx, "cand", "candidate"); err != nil {
		t.Fatal(err)
	}
	o.Stream = "cand"
	if _, err := Build(ctx, repo, kernelsRoot(t), o); err != nil {
		t.Fatal(err)
	}
	if _, err := CommitPending(ctx, repo, "cand"); err != nil {
		t.Fatal(err)
	}
	st, err := repo.Stream(ctx, "cand")
	if err != nil {
		t.Fatal(err)
	}
	items := map[string]map[string]any{}
	err = repo.Query(ctx, st.Head, snapshot.QueryOptions{}, func(s *catalog.Scope) error {
		b, err := catalog.FlatJSON(s)
		if err != nil {
			return err
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		items[fmt.Sprint(m["product_name"], " ", m["version_name"], " ", m["item_name"])] = m
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range items {
		delete(m, "product_name")
		delete(m, "version_name")
		delete(m, "item_name")
	}
	return items
}
