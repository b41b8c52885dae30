package main

import (
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

	"github.com/mephstore/mephstore/build"
	"github.com/mephstore/mephstore/internal/cloudgen"
	"github.com/mephstore/mephstore/internal/testtree"
)

// syncUpstream serves a signed cloud-images-like tree and returns the sync
// arguments that read it (source, keyring, config, fake builder).
func syncUpstream(t *testing.T, s cloudgen.Spec) []string {
	t.Helper()
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(cfgPath, []byte(cloudgen.TestConfig), 0o644)
	cfg, err := build.ParseConfig("test", []byte(cloudgen.TestConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	k := testtree.KeysFor(t, "cloud")
	s.Config, s.Signer = cfg, k.Signer
	dir := t.TempDir()
	if _, err := cloudgen.Write(dir, s); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)
	return []string{"sync", "--source", srv.URL + "/streams/v1/" + cloudgen.ContentID + ".sjson", "--keyring", k.Keyring,
		"--config", cfgPath, "--arches", "amd64,arm64", "--fake-builder", "--retries", "1"}
}

func TestSyncCommandLine(t *testing.T) {
	spec := cloudgen.Spec{Releases: []string{"noble", "jammy"}, Arches: []string{"amd64", "arm64"}, Versions: []string{"20261201", "20261202"},
		Break: map[string]string{cloudgen.Key("jammy", "amd64", "20261202"): "sha256"}}
	up := syncUpstream(t, spec)
	_, s := newCLIStore(t)
	cli(t, nil, append(s, "stream", "create", "daily")...)
	// The plan as JSON, changing nothing.
	r := cli(t, nil, append(append(s, up...), "--dry-run", "--json")...)
	var plan struct {
		Builds []struct{ Release, Arch, Version, Reason, SHA256 string }
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &plan) != nil || len(plan.Builds) != 3 {
		t.Fatalf("dry run: %+v", r)
	}
	// One image fails (its sha256 lies): the others are committed, exit 3.
	r = cli(t, nil, append(s, up...)...)
	if r.code != exitPartial || !strings.Contains(r.stdout, "2 images built") || !strings.Contains(r.stdout, "FAILED  jammy amd64 20261202") {
		t.Fatalf("sync with one bad image: %+v", r)
	}
	if rows := streamList(t, s); rows["daily"].Versions != 2 {
		t.Fatalf("daily: %+v", rows["daily"])
	}
	// Usage errors.
	for _, bad := range [][]string{
		{"--rebuild", "20261201"}, {"--target", "elsewhere"}, {"--max", "0"}, {"release~("},
	} {
		if r := cli(t, nil, append(append(s, up...), bad...)...); r.code != exitUsage || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%v: %+v", bad, r)
		}
	}
	if r := cli(t, nil, append(s, "sync", "--source", "/nonexistent")...); r.code != exitUsage || !strings.Contains(r.stderr, "--keyring") {
		t.Errorf("no --keyring: %+v", r)
	}
	// Nothing could run: exit 1.
	if r := cli(t, nil, append(append(s, up...), "--source", "http://127.0.0.1:1/x.sjson")...); r.code != exitFailure {
		t.Errorf("unreachable source: %+v", r)
	}
}

// A sync killed at random moments (downloads, builds, the commit) leaves
// the store consistent each time; the runs after it build only what is
// missing, and the stream ends with every image exactly once.
func TestSyncSurvivesSIGKILL(t *testing.T) {
	spec := cloudgen.Spec{Releases: []string{"noble", "jammy"}, Arches: []string{"amd64", "arm64"}, Versions: []string{"20261201", "20261202", "20261203", "20261204"}}
	up := append(syncUpstream(t, spec), "--max", "4", "-j", "1")
	const want = 12 // noble amd64+arm64, jammy amd64; 4 versions each
	// An uninterrupted run, to time the kills.
	_, s0 := newCLIStore(t)
	cli(t, nil, append(s0, "stream", "create", "daily")...)
	var rs runs
	start := time.Now()
	if out, err := exec.Command(binary, append(s0, up...)...).CombinedOutput(); err != nil {
		t.Fatalf("sync: %v %s", err, out)
	}
	rs = append(rs, time.Since(start))
	full := rs[0]
	_, s := newCLIStore(t)
	cli(t, nil, append(s, "stream", "create", "daily")...)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	const kills = 8
	killed := 0
	for i := range kills {
		// Within the first half of a whole run: a resumed run has less
		// left to do, and a kill after its end proves nothing.
		delay := time.Duration(rng.Int64N(int64(rs.median()/2) + 1))
		if runKilled(t, exec.Command(binary, append(s, up...)...), delay, &rs) {
			killed++
		}
		if out, err := exec.Command(binary, append(s, "fsck")...).CombinedOutput(); err != nil {
			t.Fatalf("after kill %d: fsck: %v\n%s", i, err, out)
		}
		if n := streamList(t, s)["daily"].Versions; n != 0 && n > want {
			t.Fatalf("after kill %d: %d versions", i, n)
		}
	}
	r := cli(t, nil, append(s, up...)...)
	if r.code != 0 {
		t.Fatalf("the run after the kills: %+v", r)
	}
	if n := streamList(t, s)["daily"].Versions; n != want {
		t.Fatalf("daily has %d versions, want %d", n, want)
	}
	if r := cli(t, nil, append(s, up...)...); r.code != 0 || !strings.Contains(r.stdout, "nothing built") {
		t.Fatalf("a run with nothing new: %+v", r)
	}
	if killed < 2 {
		t.Fatalf("only %d of %d runs were killed midway (a whole run takes %v)", killed, kills, full)
	}
	t.Logf("%d of %d syncs killed midway; a whole run takes %v", killed, kills, full)
}
