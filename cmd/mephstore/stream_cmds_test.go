package main

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mephstore/mephstore/internal/testtree"
	"github.com/mephstore/mephstore/snapshot"
)

type listRow struct {
	Name     string `json:"name"`
	Label    string `json:"label"`
	Seq      uint64 `json:"seq"`
	Versions int    `json:"versions"`
	Items    int    `json:"items"`
}

func streamList(t *testing.T, s []string) map[string]listRow {
	t.Helper()
	r := cli(t, nil, append(s, "stream", "list", "--json")...)
	var rows []listRow
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &rows) != nil {
		t.Fatalf("stream list: %+v", r)
	}
	out := map[string]listRow{}
	for _, row := range rows {
		out[row.Name] = row
	}
	return out
}

func TestStreamWorkflow(t *testing.T) {
	k := testtree.KeysFor(t, "good")
	tree := testtree.Make(t, k, "--versions", "3")
	_, s := newCLIStore(t)
	must := func(args ...string) result {
		t.Helper()
		r := cli(t, nil, append(s, args...)...)
		if r.code != 0 {
			t.Fatalf("%v: %+v", args, r)
		}
		return r
	}
	must("stream", "create", "daily")
	must("stream", "create", "stable", "--label", "stable")
	r := must("insert", "--keyring", k.Keyring, tree, "daily")
	if !strings.Contains(r.stdout, "daily: +6 versions -> snapshot ") || !strings.Contains(r.stdout, "24 referenced, 24 fetched") {
		t.Fatalf("insert: %q", r.stdout)
	}
	if l := streamList(t, s)["daily"]; l.Versions != 6 || l.Items != 24 || l.Seq != 2 || l.Label != "daily" {
		t.Fatalf("stream list: %+v", l)
	}
	r = must("query", "daily", "--json", "arch=amd64", "--max", "1")
	var items []map[string]any
	if json.Unmarshal([]byte(r.stdout), &items) != nil || len(items) != 4 || items[0]["version_name"] != "20240103" || items[0]["product_name"] == nil {
		t.Fatalf("query --json: %s", r.stdout)
	}
	r = must("query", "daily", "--output-format", "%(version_name)s/%(item_name)s", "ftype=squashfs", "arch=arm64")
	if r.stdout != "20240103/squashfs\n20240102/squashfs\n20240101/squashfs\n" {
		t.Fatalf("query --output-format: %q", r.stdout)
	}
	r = must("promote", "daily", "stable", "20240102", "--dry-run")
	if !strings.Contains(r.stdout, "+ com.ubuntu.maas.stable:v3:boot:24.04:amd64:ga-24.04 20240102") || streamList(t, s)["stable"].Versions != 0 {
		t.Fatalf("promote --dry-run: %q", r.stdout)
	}
	must("promote", "daily", "stable", "20240102")
	r = must("promote", "daily", "stable", "20240102")
	if !strings.Contains(r.stderr, "nothing to do") {
		t.Fatalf("second promote: %+v", r)
	}
	r = must("diff", "daily", "stable", "--json")
	var d snapshot.DiffResult
	if json.Unmarshal([]byte(r.stdout), &d) != nil || len(d.ProductsAdded) != 2 || len(d.ProductsRemoved) != 2 {
		t.Fatalf("diff: %s", r.stdout)
	}
	must("clean-md", "daily", "--max", "1", "--dry-run")
	if streamList(t, s)["daily"].Versions != 6 {
		t.Fatal("clean-md --dry-run changed the stream")
	}
	must("clean-md", "daily", "--max", "1")
	must("remove", "daily", "20240103", "arch=arm64")
	if l := streamList(t, s)["daily"]; l.Versions != 1 {
		t.Fatalf("after clean-md and remove: %+v", l)
	}
	must("rollback", "daily", "--steps", "2")
	if l := streamList(t, s)["daily"]; l.Versions != 6 {
		t.Fatalf("after rollback: %+v", l)
	}
	r = must("log", "daily", "--json")
	var log []snapshot.Entry
	if json.Unmarshal([]byte(r.stdout), &log) != nil || len(log) != 5 || !strings.HasPrefix(log[0].Operation, "rollback") {
		t.Fatalf("log: %s", r.stdout)
	}
	// daily@1 is the state after remove: one amd64 version, no arm64.
	r = must("diff", "daily@1", "daily")
	if r.stdout != "+ com.ubuntu.maas.daily:v3:boot:24.04:arm64:ga-24.04\n~ com.ubuntu.maas.daily:v3:boot:24.04:amd64:ga-24.04: +20240101 +20240102\n" {
		t.Fatalf("diff daily@1 daily: %q", r.stdout)
	}
	must("fsck", "--deep")
}

func TestStreamCommandErrors(t *testing.T) {
	tree := testtree.Make(t, nil)
	_, s := newCLIStore(t)
	cli(t, nil, append(s, "stream", "create", "daily")...)
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"insert", tree, "daily"}, exitUsage, "--keyring FILE"},
		{[]string{"insert", "--no-verify", "--keyring", "x", tree, "daily"}, exitUsage, "--keyring FILE"},
		{[]string{"insert", "--no-verify", tree, "nosuch"}, exitFailure, `stream "nosuch": no such stream`},
		{[]string{"insert", "--no-verify", tree, "daily", "arch~("}, exitUsage, "bad filter"},
		{[]string{"insert", "--keyring", tree + "/streams/v1/index.json", tree, "daily"}, exitFailure, "bad keyring"},
		{[]string{"stream", "create", "daily"}, exitFailure, "stream exists"},
		{[]string{"stream", "create", "Bad/Name"}, exitFailure, "bad stream name"},
		{[]string{"clean-md", "daily"}, exitUsage, "needs --max"},
		{[]string{"rollback", "daily"}, exitFailure, "not in the stream's history"},
		{[]string{"rollback", "daily", "--to", "abc", "--steps", "2"}, exitUsage, "do not go together"},
		{[]string{"diff", "daily", "nosuch"}, exitFailure, `"nosuch": no such stream`},
		{[]string{"query", "daily", "--json", "--output-format", "x"}, exitUsage, "do not go together"},
		{[]string{"remove", "daily", "20240101"}, exitFailure, "no such version"},
	} {
		r := cli(t, nil, append(s, tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.msg) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%v: code %d stderr %q, want %d with %q", tc.args, r.code, r.stderr, tc.code, tc.msg)
		}
	}
	if l := streamList(t, s)["daily"]; l.Seq != 1 {
		t.Fatalf("failed commands changed the stream: %+v", l)
	}
}

// TestInsertSurvivesSIGKILL kills inserts at moments spread over twice the
// length of one; after each kill the stream is unchanged or fully updated,
// and fsck is clean.
func TestInsertSurvivesSIGKILL(t *testing.T) {
	store, s := newCLIStore(t)
	const full = 2 * 6 * 4 // products * versions * items of each tree
	round := 0
	// Each round inserts a tree of new data (its own seed): a tree whose
	// files are all in the pool already would leave only the metadata
	// commit to interrupt.
	insert := func() *exec.Cmd {
		round++
		name := "r" + strconv.Itoa(round)
		tree := testtree.Make(t, nil, "--versions", "6", "--data-size", "300000", "--seed", strconv.Itoa(round))
		if r := cli(t, nil, append(s, "stream", "create", name)...); r.code != 0 {
			t.Fatal(r)
		}
		exec.Command("sync").Run() // the new tree's write-back must not slow the insert
		return exec.Command(binary, append(s, "insert", "--no-verify", tree, name)...)
	}
	var rs runs
	for range 3 {
		c := insert()
		start := time.Now()
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("insert: %v %s", err, out)
		}
		rs = append(rs, time.Since(start))
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))
	kills := 20
	if n, err := strconv.Atoi(os.Getenv("MEPHSTORE_CRASH_ROUNDS")); err == nil && n > 0 {
		kills = n // for soak runs by hand
	}
	killed := 0
	for i := range kills {
		if runKilled(t, insert(), killDelay(i, kills, rs.median(), rng), &rs) {
			killed++
		}
		if fout, err := exec.Command(binary, append(s, "fsck")...).CombinedOutput(); err != nil {
			t.Fatalf("round %d: fsck: %v\n%s", round, err, fout)
		}
		l := streamList(t, s)["r"+strconv.Itoa(round)]
		if !(l.Seq == 1 && l.Items == 0) && !(l.Seq == 2 && l.Items == full) {
			t.Fatalf("round %d: stream half updated: %+v", round, l)
		}
	}
	if killed < 3 || killed == kills {
		t.Fatalf("%d of %d inserts killed midway (one takes %v)", killed, kills, rs.median())
	}
	if out, err := exec.Command(binary, append(s, "fsck", "--deep")...).CombinedOutput(); err != nil {
		t.Fatalf("fsck --deep: %v %s", err, out)
	}
	checkPoolHashes(t, store)
	t.Logf("%d of %d inserts killed midway; one takes %v", killed, kills, rs.median())
}
