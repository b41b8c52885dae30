package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mephstore/mephstore/internal/testcheck"
)

// rootTarGz is a tiny root with a kernel for linux-generic.
func rootTarGz(t testing.TB) []byte { return rootTarGzWith(t, 0) }

// rootTarGzWith adds a file of bulk random bytes (incompressible).
func rootTarGzWith(t testing.TB, bulk int) []byte {
	t.Helper()
	const kver = "6.8.0-31-generic"
	files := []struct{ name, body string }{
		{"boot/vmlinuz-" + kver, "kernel"},
		{"boot/initrd.img-" + kver, "initrd"},
		{"var/lib/dpkg/status", "Package: linux-generic\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\nDepends: linux-image-" + kver + "\n\n" +
			"Package: linux-image-" + kver + "\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n"},
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	if bulk > 0 {
		r := rand.New(rand.NewPCG(1, 2))
		b := make([]byte, bulk)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		files = append(files, struct{ name, body string }{"usr/lib/bulk", string(b)})
	}
	for _, f := range files {
		h := &tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(f.body)), ModTime: time.Unix(1700000000, 0)}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(f.body))
	}
	tw.Close()
	zw.Close()
	return b.Bytes()
}

const cliBuildConfig = `releases:
  - release: noble
    version: "24.04"
    kernels:
      - [noble, amd64, ga-24.04, generic, linux-generic, [generic, ga-24.04]]
compressor: gzip
`

func TestBuildCommandLine(t *testing.T) {
	_, s := newCLIStore(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "root.tar.gz")
	raw := rootTarGz(t)
	os.WriteFile(src, raw, 0o644)
	cfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfg, []byte(cliBuildConfig), 0o644)
	sum := sha256.Sum256(raw)
	do := func(want int, args ...string) result {
		t.Helper()
		r := cli(t, nil, append(append([]string{}, s...), args...)...)
		if r.code != want {
			t.Fatalf("%v: exit %d, want %d\n%s%s", args, r.code, want, r.stdout, r.stderr)
		}
		return r
	}
	do(0, "stream", "create", "daily")
	// Usage and bad input.
	do(2, "build", "amd64", "noble", "20261122")
	if r := do(1, "build", "--config", cfg, "amd64", "jammy", "20261122", src); !strings.Contains(r.stderr, "release jammy is not in the config") {
		t.Fatalf("unknown release: %s", r.stderr)
	}
	if r := do(1, "build", "--config", cfg, "--sha256", strings.Repeat("0", 64), "amd64", "noble", "20261122", src); !strings.Contains(r.stderr, "checksum mismatch") {
		t.Fatalf("wrong sha256: %s", r.stderr)
	}
	if r := do(1, "build", "--config", cfg, "amd64", "noble", "2026-11-22", src); !strings.Contains(r.stderr, "serial") {
		t.Fatalf("bad serial: %s", r.stderr)
	}
	if r := do(0, "builds"); !strings.Contains(r.stdout, "no pending builds") {
		t.Fatalf("builds after failures: %s", r.stdout)
	}
	// A build, listed, then committed by publish.
	r := do(0, "build", "--config", cfg, "--sha256", hex.EncodeToString(sum[:]), "amd64", "noble", "20261122", src)
	if !strings.Contains(r.stdout, "pending: 'mephstore publish daily' commits it") || !strings.Contains(r.stdout, "boot-kernel") {
		t.Fatalf("build: %s", r.stdout)
	}
	var ps []struct {
		ID, Stream, Serial string
	}
	if err := json.Unmarshal([]byte(do(0, "builds", "--json").stdout), &ps); err != nil || len(ps) != 1 || ps[0].Serial != "20261122" {
		t.Fatalf("builds --json: %v %+v", err, ps)
	}
	// The same source again, from the same path: the same pending build;
	// from a URL: a second one (it names its source).
	do(0, "build", "--config", cfg, "amd64", "noble", "20261122", src)
	if n := strings.Count(do(0, "builds").stdout, "\n"); n != 2 {
		t.Fatalf("builds after a rebuild: %d lines", n)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(raw) }))
	defer srv.Close()
	do(0, "build", "--config", cfg, "--sha256", hex.EncodeToString(sum[:]), "amd64", "noble", "20261122", srv.URL+"/root.tar.gz")
	if n := strings.Count(do(0, "builds").stdout, "\n"); n != 3 {
		t.Fatalf("builds after a build from a URL: %d lines", n)
	}
	do(1, "builds", "drop", "ffffffff")
	if r := do(0, "builds", "drop", "--dry-run", ps[0].ID[:6]); !strings.Contains(r.stdout, "would drop pending build "+ps[0].ID) {
		t.Fatalf("drop --dry-run: %s", r.stdout)
	}
	pub := filepath.Join(dir, "pub")
	r = do(0, "publish", "daily", "--no-sign", "--publish-root", pub)
	if !strings.Contains(r.stdout, "committed 2 pending builds") || !strings.Contains(r.stdout, "1 version added, 1 version already in the stream") {
		t.Fatalf("publish: %s", r.stdout)
	}
	testcheck.Validate(t, filepath.Join(pub, "daily"), "")
	if r := do(0, "builds"); !strings.Contains(r.stdout, "no pending builds") {
		t.Fatalf("builds after publish: %s", r.stdout)
	}
	if r := do(0, "query", "daily", "--json"); !strings.Contains(r.stdout, "noble/amd64/20261122/squashfs") {
		t.Fatalf("query: %s", r.stdout)
	}
	// A second build of the same version is kept out and reported.
	do(0, "build", "--config", cfg, "amd64", "noble", "20261122", src)
	if r := do(0, "publish", "daily", "--no-sign"); !strings.Contains(r.stdout, "kept as it was") {
		t.Fatalf("republish: %s", r.stdout)
	}
	if r := do(0, "build", "default-config"); !strings.Contains(r.stdout, "releases:") {
		t.Fatalf("default-config: %s", r.stdout)
	}
}

// TestBuildSurvivesSIGKILL kills builds at moments spread over twice a
// build's length: afterwards fsck is clean, no temp file is left, and
// there is either no pending build or a complete one; a publish of it
// validates.
func TestBuildSurvivesSIGKILL(t *testing.T) {
	store, s := newCLIStore(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "root.tar.gz")
	os.WriteFile(src, rootTarGzWith(t, 24<<20), 0o644)
	cfg := filepath.Join(dir, "config.yaml")
	os.WriteFile(cfg, []byte(cliBuildConfig), 0o644)
	if out, err := exec.Command(binary, append(s, "stream", "create", "daily")...).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	args := append(append([]string{}, s...), "build", "--config", cfg, "amd64", "noble", "20261122", src)
	var rs runs
	for range 2 {
		start := time.Now()
		if out, err := exec.Command(binary, args...).CombinedOutput(); err != nil {
			t.Fatalf("build: %v %s", err, out)
		}
		rs = append(rs, time.Since(start))
		// Start again from no pending build.
		out, _ := exec.Command(binary, append(s, "builds", "--json")...).Output()
		var ps []struct{ ID string }
		json.Unmarshal(out, &ps)
		for _, p := range ps {
			exec.Command(binary, append(s, "builds", "drop", p.ID)...).Run()
		}
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	kills, midway := 10, 0
	for i := range kills {
		delay := killDelay(i, kills, rs.median(), rng)
		if runKilled(t, exec.Command(binary, args...), delay, &rs) {
			midway++
		}
		if out, err := exec.Command(binary, append(s, "fsck")...).CombinedOutput(); err != nil {
			t.Fatalf("round %d (killed after %v): fsck: %v\n%s", i, delay, err, out)
		}
		if ents, _ := os.ReadDir(filepath.Join(store, "pool", ".ingest")); len(ents) != 0 {
			t.Fatalf("round %d: temp files left after fsck: %d", i, len(ents))
		}
		out, err := exec.Command(binary, append(s, "builds", "--json")...).Output()
		var ps []struct{ ID string }
		if err != nil || json.Unmarshal(out, &ps) != nil || len(ps) > 1 {
			t.Fatalf("round %d: builds: %v %s", i, err, out)
		}
	}
	// Some kills must land midway; the whole build below checks a
	// finished one even when all did.
	if midway < 2 {
		t.Fatalf("%d of %d builds were killed before finishing (a build takes %v)", midway, kills, rs.median())
	}
	if out, err := exec.Command(binary, args...).CombinedOutput(); err != nil {
		t.Fatalf("build after the kills: %v %s", err, out)
	}
	pub := filepath.Join(dir, "pub")
	if out, err := exec.Command(binary, append(s, "publish", "daily", "--no-sign", "--publish-root", pub)...).CombinedOutput(); err != nil {
		t.Fatalf("publish: %v %s", err, out)
	}
	testcheck.Validate(t, filepath.Join(pub, "daily"), "")
	if out, err := exec.Command(binary, append(s, "fsck", "--deep")...).CombinedOutput(); err != nil {
		t.Fatalf("fsck --deep: %v %s", err, out)
	}
	t.Logf("%d of %d builds killed midway", midway, kills)
}
