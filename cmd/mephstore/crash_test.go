package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestIngestSurvivesSIGKILL kills `mephstore ingest` at random moments, from
// before the first byte to after the commit, and checks after each kill that
// fsck is clean and every pool file hashes to its name.
func TestIngestSurvivesSIGKILL(t *testing.T) {
	store, s := newCLIStore(t)
	dir := t.TempDir()
	const size = 48 << 20
	// Each round ingests a new big file and a few small ones, so kills land
	// in staging, in batched commits and in recovery.
	round := func(i int) []string {
		big := filepath.Join(dir, "big"+strconv.Itoa(i))
		writeRandom(t, big, size, uint64(i))
		args := append(append([]string{}, s...), "ingest", big)
		for j := range 5 {
			p := filepath.Join(dir, "small"+strconv.Itoa(i)+"-"+strconv.Itoa(j))
			writeRandom(t, p, 4096*(j+1), uint64(1000*i+j))
			args = append(args, p)
		}
		syscall.Sync() // the source files' write-back must not slow the ingest
		return args
	}
	// Time uninterrupted rounds to spread the kills over a run's length.
	var rs runs
	for i := range 3 {
		args := round(-1 - i)
		start := time.Now()
		if out, err := exec.Command(binary, args...).CombinedOutput(); err != nil {
			t.Fatalf("ingest: %v %s", err, out)
		}
		rs = append(rs, time.Since(start))
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	kills := 24
	if n, err := strconv.Atoi(os.Getenv("MEPHSTORE_CRASH_ROUNDS")); err == nil && n > 0 {
		kills = n // for soak runs by hand
	}
	killedMidway := 0
	for i := range kills {
		delay := killDelay(i, kills, rs.median(), rng)
		if runKilled(t, exec.Command(binary, round(i)...), delay, &rs) {
			killedMidway++
		}
		fsck := exec.Command(binary, append(s, "fsck")...)
		if fout, err := fsck.CombinedOutput(); err != nil {
			t.Fatalf("round %d (killed after %v): fsck: %v\n%s", i, delay, err, fout)
		}
		checkPoolHashes(t, store)
		if ents, _ := os.ReadDir(filepath.Join(store, "pool", ".ingest")); len(ents) != 0 {
			t.Fatalf("round %d: temp files left after fsck: %d", i, len(ents))
		}
	}
	// The kills must spread over the whole run: some before the end, some
	// after it (so finished commits are checked too).
	if killedMidway < 3 {
		t.Fatalf("%d of %d ingests were killed before finishing (a round takes %v)", killedMidway, kills, rs.median())
	}
	if killedMidway == kills {
		// Under load every run outlasted the schedule: check a finished
		// ingest too.
		if out, err := exec.Command(binary, round(kills)...).CombinedOutput(); err != nil {
			t.Fatalf("ingest: %v %s", err, out)
		}
	}
	// After all that, a deep fsck is clean and a full ingest still works.
	if out, err := exec.Command(binary, append(s, "fsck", "--deep")...).CombinedOutput(); err != nil {
		t.Fatalf("fsck --deep: %v %s", err, out)
	}
	t.Logf("%d of %d ingests killed midway; %d pool files verified", killedMidway, kills, checkPoolHashes(t, store))
}

// TestTwoProcessesIngestAtOnce runs two ingests of overlapping file sets at
// the same time: both succeed, the shared file is stored once.
func TestTwoProcessesIngestAtOnce(t *testing.T) {
	store, s := newCLIStore(t)
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	shared := filepath.Join(dir, "shared")
	b := filepath.Join(dir, "b")
	want := map[string]string{
		a:      writeRandom(t, a, 24<<20, 1),
		shared: writeRandom(t, shared, 24<<20, 2),
		b:      writeRandom(t, b, 24<<20, 3),
	}
	var wg sync.WaitGroup
	outs := make([]string, 2)
	errs := make([]error, 2)
	for i, files := range [][]string{{a, shared}, {shared, b}} {
		wg.Go(func() {
			o, err := exec.Command(binary, append(append(append([]string{}, s...), "--wait", "30s", "ingest"), files...)...).CombinedOutput()
			outs[i], errs[i] = string(o), err
		})
	}
	wg.Wait()
	for i := range 2 {
		if errs[i] != nil {
			t.Fatalf("process %d: %v\n%s", i, errs[i], outs[i])
		}
		for _, line := range strings.Split(strings.TrimSpace(outs[i]), "\n") {
			f := strings.Fields(line)
			if len(f) != 3 || want[f[2]] != f[0] {
				t.Fatalf("process %d printed %q", i, line)
			}
		}
	}
	if n := checkPoolHashes(t, store); n != 3 {
		t.Fatalf("%d pool files, want 3", n)
	}
	r := cli(t, nil, append(s, "blobs")...)
	if strings.Count(r.stdout, "\n") != 3 {
		t.Fatalf("blobs: %q", r.stdout)
	}
	if r := cli(t, nil, append(s, "fsck", "--deep")...); r.code != 0 {
		t.Fatalf("fsck: %+v", r)
	}
}

// killDelay spreads kills over twice the length of a run: kill i of n lands
// at a random moment in its own slot of 2*run/n.
func killDelay(i, n int, run time.Duration, rng *rand.Rand) time.Duration {
	slot := 2 * run / time.Duration(n)
	return time.Duration(i)*slot + time.Duration(rng.Int64N(int64(slot)))
}

// runs keeps the durations of uninterrupted runs; kills are spread over
// twice their median, so the schedule follows the machine's speed as it
// changes (the default suite runs packages in parallel).
type runs []time.Duration

func (r runs) median() time.Duration {
	s := slices.Clone(r)
	slices.Sort(s)
	return s[len(s)/2]
}

// runKilled runs cmd and SIGKILLs it after delay. It reports whether the
// kill interrupted it (false: it finished first, and its duration joins
// rs); any other failure fails the test.
func runKilled(t *testing.T, cmd *exec.Cmd, delay time.Duration, rs *runs) bool {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(delay, func() { cmd.Process.Signal(syscall.SIGKILL) })
	err := cmd.Wait()
	timer.Stop()
	if err == nil {
		*rs = append(*rs, time.Since(start))
		return false
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("%v failed on its own: %v\n%s", cmd.Args[1:], err, out.String())
	}
	return true
}
