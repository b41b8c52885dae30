package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mephstore/mephstore/internal/s3test"
	"github.com/mephstore/mephstore/internal/testref"
	"github.com/mephstore/mephstore/internal/testtree"
	"github.com/mephstore/mephstore/s3store"
)

// machine is one working directory of a store on a bucket: its own cache,
// sharing only the bucket with the others.
type machine struct {
	t    *testing.T
	args []string
}

func newMachine(t *testing.T, store string) machine {
	return machine{t: t, args: []string{"--store", store, "--cache", filepath.Join(t.TempDir(), "cache")}}
}

func (m machine) run(args ...string) result {
	m.t.Helper()
	r := cli(m.t, nil, append(append([]string{}, m.args...), args...)...)
	if r.code != 0 {
		m.t.Fatalf("%v: %+v", args, r)
	}
	return r
}

// TestWholeStoreOnS3 is the local end-to-end scenario on a store that
// lives on a bucket, run from two working directories that share only the
// bucket: init (making the bucket), insert on one, promote and publish on
// the other, read back over anonymous HTTP (mephstore's verify, and the
// shared ss-validate and the reference sstream-query where present),
// rollback, gc, fsck.
func TestWholeStoreOnS3(t *testing.T) {
	srv := s3test.Start(t)
	srv.Env(t)
	store := "s3://images/store?endpoint=" + srv.Endpoint()
	if r := cli(t, nil, "init", "s3://images/store", "--endpoint", srv.Endpoint()); r.code == 0 || !strings.Contains(r.stderr, "bucket does not exist") {
		t.Fatalf("init in a missing bucket: %+v", r)
	}
	if r := cli(t, nil, "init", "s3://images/store", "--endpoint", srv.Endpoint(), "--create-bucket"); r.code != 0 || !strings.Contains(r.stdout, store) {
		t.Fatalf("init: %+v", r)
	}
	if r := cli(t, nil, "init", store); r.code == 0 || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("second init: %+v", r)
	}
	a, b := newMachine(t, store), newMachine(t, store)
	tree := testtree.Make(t, nil, "--releases", "2", "--arches", "2", "--versions", "3")
	keys := filepath.Join(t.TempDir(), "keys")
	a.run("stream", "create", "daily")
	a.run("stream", "create", "stable")
	a.run("insert", "--no-verify", tree, "daily")
	b.run("key", "generate", "--out", keys)
	b.run("promote", "daily", "stable", "20240101")
	bk, err := s3store.Open(context.Background(), mustRoot(t, "s3://images", srv.Endpoint()))
	if err != nil {
		t.Fatal(err)
	}
	if err := bk.AllowPublicRead(context.Background(), "www"); err != nil {
		t.Fatal(err)
	}
	root := "s3://images/www?endpoint=" + srv.Endpoint()
	url := srv.Endpoint() + "/images/www/stable/"
	keyring := filepath.Join(keys, "keyring.gpg")
	b.run("publish", "stable", "--publish-root", root, "--sign-key", filepath.Join(keys, "signing-key.asc"))
	validateURL(t, keyring, url)
	sstreamQuery(t, keyring, url, 1)

	// A sees what B did, and goes on from there.
	var log []struct{ Operation string }
	if err := json.Unmarshal([]byte(a.run("log", "stable", "--json").stdout), &log); err != nil || len(log) < 2 || !strings.HasPrefix(log[0].Operation, "promote") {
		t.Fatalf("log on the other machine: %v %+v", err, log)
	}
	a.run("promote", "daily", "stable", "20240102")
	a.run("publish", "stable") // root and key are settings: shared
	validateURL(t, keyring, url)
	sstreamQuery(t, keyring, url, 2)
	b.run("rollback", "stable")
	b.run("publish", "stable")
	validateURL(t, keyring, url)
	sstreamQuery(t, keyring, url, 1)

	// gc: A finds what nothing refers to and records when it saw it;
	// B's gc goes by those records (the age gate is shared, by the
	// server's clock), and reaps them once they are old enough. The
	// store and the tree stay whole for both.
	a.run("remove", "daily", "20240103")
	a.run("remove", "daily", "20240102")
	first := gcFigures(t, a.run("gc", "--older", "1h", "--keep-history", "1", "--json").stdout)
	if first.recorded == 0 || first.deleted != 0 {
		t.Fatalf("first gc: %+v", first)
	}
	if again := gcFigures(t, b.run("gc", "--older", "1h", "--keep-history", "1", "--json").stdout); again.deleted != 0 || again.recorded != 0 {
		t.Fatalf("gc on the other machine ignored the first-seen records: %+v", again)
	}
	if reap := gcFigures(t, b.run("gc", "--older", "0s", "--keep-history", "1", "--json").stdout); reap.deleted != first.recorded {
		t.Fatalf("reaped %d of %d orphans", reap.deleted, first.recorded)
	}
	b.run("fsck", "--deep")
	a.run("fsck")
	validateURL(t, keyring, url)
	if q := b.run("query", "daily").stdout; strings.Contains(q, "20240103") || !strings.Contains(q, "20240101") {
		t.Fatalf("query after remove on the other machine:\n%s", q)
	}
}

type gcResult struct{ recorded, deleted int }

// gcFigures reads the blob figures of gc --json.
func gcFigures(t *testing.T, out string) gcResult {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("gc --json: %v\n%s", err, out)
	}
	num := func(k string) int { f, _ := v[k].(float64); return int(f) }
	r := gcResult{recorded: num("new_orphans"), deleted: num("reaped")}
	t.Logf("gc: %+v", r)
	return r
}

func mustRoot(t *testing.T, loc, endpoint string) s3store.Config {
	t.Helper()
	cfg, err := s3store.ParseRoot(loc, endpoint)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// sstreamQuery reads the published stream with the reference client's
// sstream-query (signature checked against keyring) and checks how many
// versions of one product it lists, when the shared tools are present.
func sstreamQuery(t *testing.T, keyring, url string, versions int) {
	t.Helper()
	s := testref.Shared()
	if s == "" {
		return
	}
	py := testref.Python(t, "yaml", "requests")
	ref := filepath.Join(s, "reference", "simplestreams")
	cmd := exec.Command(py, filepath.Join(ref, "bin", "sstream-query"), "--keyring", keyring,
		"--output-format", "%(version_name)s %(ftype)s %(sha256)s", url+"streams/v1/index.sjson", "ftype=squashfs")
	cmd.Env = append(os.Environ(), "PYTHONPATH="+ref)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sstream-query %s: %v\n%s", url, err, out)
	}
	seen := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[1] == "squashfs" && len(f[2]) == 64 {
			seen[f[0]] = true
		}
	}
	if len(seen) != versions {
		t.Fatalf("sstream-query lists versions %v, want %d:\n%s", seen, versions, out)
	}
}

// newS3Store makes a store on a fresh bucket of a real server and returns
// its --store location.
func newS3Store(t *testing.T) string {
	t.Helper()
	srv := s3test.Start(t)
	srv.Env(t)
	if r := cli(t, nil, "init", "s3://images/store", "--endpoint", srv.Endpoint(), "--create-bucket"); r.code != 0 {
		t.Fatalf("init: %+v", r)
	}
	return "s3://images/store?endpoint=" + srv.Endpoint()
}

// versionTree is a one-version tree of version v.
func versionTree(t *testing.T, v string) string {
	return testtree.Make(t, nil, "--releases", "1", "--arches", "2", "--versions", v+".1")
}

// Two processes with their own caches insert into the same stream at the
// same time, round after round: every insert succeeds (one waits for the
// bucket's writer lock, or plans again on top of the other), and no
// update is lost.
func TestTwoProcessesInsertIntoOneStreamOnS3(t *testing.T) {
	store := newS3Store(t)
	caches := []string{filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")}
	if out, err := exec.Command(binary, "--store", store, "--cache", caches[0], "stream", "create", "daily").CombinedOutput(); err != nil {
		t.Fatalf("stream create: %v %s", err, out)
	}
	const rounds = 8
	var want []string
	for i := range rounds {
		trees := make([]string, 2)
		for p := range 2 {
			v := fmt.Sprintf("202401%02d", 2*i+p+1)
			want = append(want, v)
			trees[p] = versionTree(t, v)
		}
		var wg sync.WaitGroup
		outs, errs := make([]string, 2), make([]error, 2)
		for p := range 2 {
			wg.Go(func() {
				o, err := exec.Command(binary, "--store", store, "--cache", caches[p], "--wait", "60s",
					"insert", "--no-verify", trees[p], "daily").CombinedOutput()
				outs[p], errs[p] = string(o), err
			})
		}
		wg.Wait()
		for p := range 2 {
			if errs[p] != nil {
				t.Fatalf("round %d, process %d: %v\n%s", i, p, errs[p], outs[p])
			}
		}
	}
	for _, c := range caches {
		out, err := exec.Command(binary, "--store", store, "--cache", c, "log", "daily", "--json").Output()
		if err != nil {
			t.Fatal(err)
		}
		var log []struct{ Operation string }
		if err := json.Unmarshal(out, &log); err != nil {
			t.Fatal(err)
		}
		inserts := 0
		for _, e := range log {
			if strings.HasPrefix(e.Operation, "insert") {
				inserts++
			}
		}
		if inserts != 2*rounds {
			t.Fatalf("%d inserts in the history, want %d", inserts, 2*rounds)
		}
		q, err := exec.Command(binary, "--store", store, "--cache", c, "query", "daily").Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range want {
			if !strings.Contains(string(q), v) {
				t.Fatalf("version %s lost:\n%s", v, q)
			}
		}
	}
}

// Inserts and gcs of a store on a bucket, SIGKILLed at moments spread over
// twice their length: after each kill fsck passes (from another cache too)
// and the stream holds every insert that finished; then everything runs
// to the end and a deep fsck is clean.
func TestInsertAndGCSurviveSIGKILLOnS3(t *testing.T) {
	store := newS3Store(t)
	a := []string{"--store", store, "--cache", filepath.Join(t.TempDir(), "a")}
	b := []string{"--store", store, "--cache", filepath.Join(t.TempDir(), "b")}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(binary, args...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	run(append(a, "stream", "create", "daily")...)
	version := func(i int) string { return fmt.Sprintf("2024%04d", 101+i) }
	op := func(i int) []string {
		if i%3 == 2 {
			return append(append([]string{}, a...), "gc", "--older", "0s", "--keep-history", "1")
		}
		return append(append([]string{}, a...), "insert", "--no-verify", versionTree(t, version(i)), "daily")
	}
	var finished []string // versions whose insert ran to the end
	var rs runs
	for i := range 2 {
		start := time.Now()
		run(op(100 + i)...)
		rs = append(rs, time.Since(start))
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	const kills = 12
	killed := 0
	for i := range kills {
		delay := killDelay(i, kills, rs.median(), rng)
		if runKilled(t, exec.Command(binary, op(i)...), delay, &rs) {
			killed++
		} else if i%3 != 2 {
			finished = append(finished, version(i))
		}
		for _, who := range [][]string{a, b} {
			if out, err := exec.Command(binary, append(who, "fsck")...).CombinedOutput(); err != nil {
				t.Fatalf("round %d (killed after %v): fsck: %v\n%s", i, delay, err, out)
			}
		}
		q, err := exec.Command(binary, append(b, "query", "daily")...).Output()
		if err != nil {
			t.Fatalf("round %d: query: %v", i, err)
		}
		for _, v := range finished {
			if !strings.Contains(string(q), v) {
				t.Fatalf("round %d: the finished insert of %s is lost:\n%s", i, v, q)
			}
		}
	}
	if killed < 3 {
		t.Fatalf("only %d of %d operations were killed midway (one takes %v)", killed, kills, rs.median())
	}
	run(op(kills)...)
	run(append(a, "gc", "--older", "0s", "--keep-history", "1")...)
	run(append(a, "gc", "--older", "0s", "--keep-history", "1")...)
	run(append(b, "fsck", "--deep")...)
	t.Logf("%d of %d operations killed midway", killed, kills)
}
