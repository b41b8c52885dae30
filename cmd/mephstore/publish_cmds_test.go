package main

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mephstore/mephstore/internal/testcheck"
	"github.com/mephstore/mephstore/internal/testtree"
)

// ssValidate checks a published stream signed by the key in keyring.
func ssValidate(t *testing.T, keyring, target string) error {
	t.Helper()
	return testcheck.Check(target, keyring)
}

// TestPublishSurvivesSIGKILL kills publishes of a changing stream at
// moments spread over twice the length of one; after each kill the
// published tree is the last complete one and validates, signatures and
// data included.
func TestPublishSurvivesSIGKILL(t *testing.T) {
	tree := testtree.Make(t, nil, "--releases", "3", "--arches", "3", "--kernels", "3", "--versions", "12")
	_, s := newCLIStore(t)
	keys := filepath.Join(t.TempDir(), "keys")
	pub := filepath.Join(t.TempDir(), "pub")
	for _, args := range [][]string{
		{"stream", "create", "daily"}, {"stream", "create", "stable"},
		{"insert", "--no-verify", tree, "daily"},
		{"key", "generate", "--out", keys},
		{"publish", "stable", "--publish-root", pub, "--sign-key", filepath.Join(keys, "signing-key.asc")},
	} {
		if r := cli(t, nil, append(s, args...)...); r.code != 0 && !strings.Contains(r.stderr, "nothing") {
			t.Fatalf("%v: %+v", args, r)
		}
	}
	versions := []string{}
	for i := 1; i <= 12; i++ {
		versions = append(versions, "202401"+pad(i))
	}
	// Each round changes stable, then publishes it (killed at some moment).
	change := func(i int) {
		args := []string{"promote", "daily", "stable", versions[i%12]}
		if i%4 == 3 {
			args = []string{"clean-md", "stable", "--max", "1"}
		}
		cli(t, nil, append(s, args...)...)
	}
	publish := func() *exec.Cmd { return exec.Command(binary, append(s, "publish", "stable")...) }
	var rs runs
	for i := range 3 {
		change(i)
		c := publish()
		start := time.Now()
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("publish: %v %s", err, out)
		}
		rs = append(rs, time.Since(start))
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	kills := 20
	if n, err := strconv.Atoi(os.Getenv("MEPHSTORE_CRASH_ROUNDS")); err == nil && n > 0 {
		kills = n // for soak runs by hand
	}
	killed := 0
	for i := range kills {
		change(i + 3)
		if runKilled(t, publish(), killDelay(i, kills, rs.median(), rng), &rs) {
			killed++
		}
		if err := ssValidate(t, filepath.Join(keys, "keyring.gpg"), filepath.Join(pub, "stable")); err != nil {
			t.Fatalf("round %d: published tree broken after a kill:\n%s", i, err)
		}
		if r := cli(t, nil, append(s, "fsck")...); r.code != 0 {
			t.Fatalf("round %d: fsck: %+v", i, r)
		}
	}
	if killed < 3 {
		t.Fatalf("%d of %d publishes killed midway (one takes %v)", killed, kills, rs.median())
	}
	if killed == kills {
		// Under load every run outlasted the schedule: check a finished
		// publish too.
		change(kills + 3)
		if out, err := publish().CombinedOutput(); err != nil {
			t.Fatalf("publish: %v %s", err, out)
		}
		if err := ssValidate(t, filepath.Join(keys, "keyring.gpg"), filepath.Join(pub, "stable")); err != nil {
			t.Fatalf("published tree broken after a whole publish:\n%s", err)
		}
	}
	t.Logf("%d of %d publishes killed midway; one takes %v", killed, kills, rs.median())
}

func pad(i int) string {
	if i < 10 {
		return "0" + strconv.Itoa(i)
	}
	return strconv.Itoa(i)
}
