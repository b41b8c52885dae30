package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mephstore/mephstore/internal/testtree"
)

// gcFixture is a store with daily (versions 1-4 of a 12-version tree) and
// stable, both published signed under pub.
type gcFixture struct {
	tree, keys, pub string
	s               []string
}

func newGCFixture(t *testing.T) *gcFixture {
	t.Helper()
	f := &gcFixture{tree: testtree.Make(t, nil, "--releases", "2", "--arches", "2", "--kernels", "2", "--versions", "12"),
		keys: filepath.Join(t.TempDir(), "keys"), pub: filepath.Join(t.TempDir(), "pub")}
	_, f.s = newCLIStore(t)
	f.s = append(f.s, "--wait", "60s")
	for _, args := range [][]string{
		{"stream", "create", "daily"}, {"stream", "create", "stable"},
		{"insert", "--no-verify", f.tree, "daily", "version_name~^2024010[1-4]$"},
		{"promote", "daily", "stable", "20240104"},
		{"key", "generate", "--out", f.keys},
		{"publish", "daily", "--publish-root", f.pub, "--sign-key", filepath.Join(f.keys, "signing-key.asc")},
		{"publish", "stable"},
	} {
		f.run(t, args...)
	}
	return f
}

func (f *gcFixture) run(t *testing.T, args ...string) result {
	t.Helper()
	r := cli(t, nil, append(append([]string{}, f.s...), args...)...)
	if r.code != 0 && !strings.Contains(r.stderr, "nothing to do") {
		t.Fatalf("%v: %+v", args, r)
	}
	return r
}

// check: fsck is clean, the published trees validate, and every head is
// complete (a publish of each to a new root links every item from the
// store, then validates).
func (f *gcFixture) check(t *testing.T, round int) {
	t.Helper()
	if r := cli(t, nil, append(append([]string{}, f.s...), "fsck")...); r.code != 0 {
		t.Fatalf("round %d: fsck: %+v", round, r)
	}
	kr := filepath.Join(f.keys, "keyring.gpg")
	fresh := f.pub + "-fresh"
	if err := os.RemoveAll(fresh); err != nil {
		t.Fatal(err)
	}
	for _, st := range []string{"daily", "stable"} {
		if err := ssValidate(t, kr, filepath.Join(f.pub, st)); err != nil {
			t.Fatalf("round %d: published %s broken:\n%s", round, st, err)
		}
		f.run(t, "publish", st, "--publish-root", fresh)
		if err := ssValidate(t, kr, filepath.Join(fresh, st)); err != nil {
			t.Fatalf("round %d: head of %s incomplete:\n%s", round, st, err)
		}
	}
	// (The fresh root is remembered as the last one: put the old one back.)
	f.run(t, "publish", "daily", "--publish-root", f.pub)
}

// change makes garbage: a version in, another promoted, old ones cleaned,
// both streams published, and a loose blob.
func (f *gcFixture) change(t *testing.T, i int) {
	t.Helper()
	v := fmt.Sprintf("202401%02d", 5+i%8)
	f.run(t, "insert", "--no-verify", f.tree, "daily", "version_name="+v)
	f.run(t, "promote", "daily", "stable", v)
	f.run(t, "clean-md", "daily", "--max", "2")
	f.run(t, "clean-md", "stable", "--max", "1")
	f.run(t, "publish", "daily")
	f.run(t, "publish", "stable")
	loose := filepath.Join(t.TempDir(), "loose")
	writeRandom(t, loose, 1<<20, uint64(i))
	f.run(t, "ingest", loose)
}

// TestGCSurvivesSIGKILL kills `mephstore gc --older 0s` at moments spread
// over twice the length of a run; after each kill fsck is clean, the
// published trees validate and every head is complete.
func TestGCSurvivesSIGKILL(t *testing.T) {
	f := newGCFixture(t)
	gcCmd := func() *exec.Cmd {
		return exec.Command(binary, append(append([]string{}, f.s...), "gc", "--older", "0s", "--keep-history", "1")...)
	}
	var rs runs
	for i := range 3 {
		f.change(t, i)
		start := time.Now()
		if out, err := gcCmd().CombinedOutput(); err != nil {
			t.Fatalf("gc: %v %s", err, out)
		}
		rs = append(rs, time.Since(start))
	}
	f.check(t, -1)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	kills := 8
	if n, err := strconv.Atoi(os.Getenv("MEPHSTORE_CRASH_ROUNDS")); err == nil && n > 0 {
		kills = n
	}
	killed := 0
	for i := range kills {
		f.change(t, i+3)
		if runKilled(t, gcCmd(), killDelay(i, kills, rs.median(), rng), &rs) {
			killed++
		}
		f.check(t, i)
	}
	// A last, whole run cleans up what the killed ones left.
	start := time.Now()
	if out, err := gcCmd().CombinedOutput(); err != nil {
		t.Fatalf("gc: %v %s", err, out)
	} else {
		t.Logf("last run %v", time.Since(start))
	}
	f.check(t, kills)
	// Some kills must land midway. (That all did is no failure: the whole
	// run above checks a finished gc; under load, as with the end-to-end
	// tests beside it, runs take longer than the ones timed first.)
	if killed < 2 {
		t.Fatalf("%d of %d gc runs killed midway (one takes %v)", killed, kills, rs.median())
	}
	t.Logf("%d of %d gc runs killed midway; one takes %v", killed, kills, rs.median())
}

// TestGCConcurrentWithWriters runs gc --older 0s in a loop in one process
// while inserts, promotes, clean-mds and publishes run in others: nothing
// that is or becomes referenced is deleted.
func TestGCConcurrentWithWriters(t *testing.T) {
	f := newGCFixture(t)
	stop := make(chan struct{})
	var runsDone atomic.Int32
	var wg sync.WaitGroup
	var gcErr error
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			out, err := exec.Command(binary, append(append([]string{}, f.s...), "gc", "--older", "0s", "--keep-history", "1")...).CombinedOutput()
			if err != nil {
				gcErr = fmt.Errorf("gc: %v\n%s", err, out)
				return
			}
			runsDone.Add(1)
		}
	})
	for i := range 8 {
		f.change(t, i)
	}
	close(stop)
	wg.Wait()
	if gcErr != nil {
		t.Fatal(gcErr)
	}
	if runsDone.Load() < 3 {
		t.Fatalf("only %d gc runs overlapped the writers", runsDone.Load())
	}
	f.check(t, 0)
	t.Logf("%d gc runs alongside 8 rounds of writers", runsDone.Load())
}

func TestGCCommandLine(t *testing.T) {
	f := newGCFixture(t)
	for _, bad := range []string{"1.5d", "3x", "-1d", "", "3"} {
		if r := cli(t, nil, append(append([]string{}, f.s...), "gc", "--older", bad)...); r.code != 2 || !strings.Contains(r.stderr, "--older") {
			t.Errorf("--older %q: %+v", bad, r)
		}
	}
	if r := cli(t, nil, append(append([]string{}, f.s...), "gc", "--keep-history", "0")...); r.code != 2 {
		t.Errorf("--keep-history 0: %+v", r)
	}
	f.change(t, 0)
	before := poolFiles(t, f.s[1])
	r := f.run(t, "gc", "--dry-run", "--older", "0s", "--keep-history", "1")
	if !strings.Contains(r.stdout, "would delete sha256:") || !strings.Contains(r.stdout, "would record orphan") {
		t.Fatalf("dry run: %s", r.stdout)
	}
	if after := poolFiles(t, f.s[1]); len(after) != len(before) {
		t.Fatal("dry run deleted")
	}
	// The plan as JSON: what is live, what goes, and why.
	r = f.run(t, "gc", "--dry-run", "--json", "--older", "0s", "--keep-history", "1")
	var plan struct {
		Live []struct{ Snapshot, Why string } `json:"live"`
		Reap []struct {
			Name, Kind, Reason string
			Size               int64
		} `json:"reap"`
		Publish []struct{ Root string } `json:"publish"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &plan); err != nil || len(plan.Live) == 0 || len(plan.Reap) == 0 ||
		plan.Reap[0].Reason == "" || plan.Reap[0].Kind != "blob" || len(plan.Publish) != 1 {
		t.Fatalf("plan json: %v %s", err, r.stdout)
	}
	if after := poolFiles(t, f.s[1]); len(after) != len(before) {
		t.Fatal("dry run deleted")
	}
	r = f.run(t, "gc", "--json", "--older", "0s", "--keep-history", "1")
	var rep struct {
		Reaped  int   `json:"reaped"`
		Freed   int64 `json:"bytes_freed"`
		Publish []struct {
			Root string `json:"root"`
		} `json:"publish"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Reaped == 0 || rep.Freed == 0 || len(rep.Publish) != 1 {
		t.Fatalf("json: %v %s", err, r.stdout)
	}
	// keep-history is remembered.
	r = f.run(t, "gc", "--json")
	if !strings.Contains(r.stdout, `"keep_history": 1`) {
		t.Fatalf("keep-history not remembered: %s", r.stdout)
	}
	if r := f.run(t, "leases"); strings.TrimSpace(r.stdout) != "no leases" {
		t.Fatalf("leases left by finished operations: %s", r.stdout)
	}
	f.check(t, 0)
}
