package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mephstore/mephstore/internal/pgp"
	"github.com/mephstore/mephstore/internal/s3test"
	"github.com/mephstore/mephstore/internal/testref"
	"github.com/mephstore/mephstore/internal/testtree"
	"github.com/mephstore/mephstore/s3store"
	"github.com/mephstore/mephstore/verify"
)

// publicBucket starts a real S3 server with a bucket "mirror" whose
// prefix www/ anyone may read, points the environment's S3 credentials at
// it and returns it and the bucket.
func publicBucket(t *testing.T) (*s3test.Server, *s3store.Bucket) {
	t.Helper()
	srv := s3test.Start(t)
	srv.MakeBucket("mirror")
	srv.Env(t)
	cfg, err := s3store.ParseRoot("s3://mirror", srv.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	b, err := s3store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.AllowPublicRead(context.Background(), "www"); err != nil {
		t.Fatal(err)
	}
	return srv, b
}

// TestPublishToS3 publishes a signed stream to a bucket prefix of a real
// S3 server and reads it back over anonymous HTTP, the way MAAS and
// sstream-mirror read it: after a first publish, after a promote (a new
// generation replaces the index last) and after gc of the root.
func TestPublishToS3(t *testing.T) {
	srv, b := publicBucket(t)
	tree := testtree.Make(t, nil, "--releases", "2", "--arches", "2", "--versions", "3")
	_, s := newCLIStore(t)
	keys := filepath.Join(t.TempDir(), "keys")
	root := "s3://mirror/www?endpoint=" + srv.Endpoint()
	url := srv.Endpoint() + "/mirror/www/stable/"
	steps := [][]string{
		{"stream", "create", "daily"}, {"stream", "create", "stable"},
		{"insert", "--no-verify", tree, "daily"},
		{"key", "generate", "--out", keys},
		{"promote", "daily", "stable", "20240101"},
		{"publish", "stable", "--publish-root", root, "--sign-key", filepath.Join(keys, "signing-key.asc")},
	}
	for _, args := range steps {
		if r := cli(t, nil, append(s, args...)...); r.code != 0 {
			t.Fatalf("%v: %+v", args, r)
		}
	}
	validateURL(t, filepath.Join(keys, "keyring.gpg"), url)
	// A data file nothing refers to (a publish killed after copying it, a
	// snapshot long gone): gc reaps it from the stream's own data.
	stray := "www/stable/data/sha256/ab/ab" + strings.Repeat("0", 62)
	if _, err := b.Put(context.Background(), stray, []byte("stray"), s3store.Cond{}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"promote", "daily", "stable", "20240103"},
		{"publish", "stable"},
		{"gc", "--older", "0s"},
	} {
		if r := cli(t, nil, append(s, args...)...); r.code != 0 {
			t.Fatalf("%v: %+v", args, r)
		}
		validateURL(t, filepath.Join(keys, "keyring.gpg"), url)
	}
	if _, err := b.Head(context.Background(), stray); !errors.Is(err, s3store.ErrNotFound) {
		t.Fatalf("gc left the unreferenced data file (or: %v)", err)
	}
}

// validateURL checks a published stream over HTTP with mephstore's
// verify and, where the shared tools are present, with ss-validate.
func validateURL(t *testing.T, keyring, url string) {
	t.Helper()
	if err := ssValidate(t, keyring, url); err != nil {
		t.Fatalf("verify %s: %v", url, err)
	}
	sharedValidate(t, keyring, url)
}

// sharedValidate reads url with the shared ss-validate (signed index.sjson,
// products and data, as MAAS reads them) when it is there.
func sharedValidate(t *testing.T, keyring, url string) {
	t.Helper()
	if probs := sharedProblems(t, keyring, url); len(probs) > 0 {
		t.Fatalf("ss-validate %s: %v", url, probs)
	}
}

// ssProblem is one problem of ss-validate's JSON report.
type ssProblem struct {
	Check   string `json:"check"`
	File    string `json:"file"`
	Message string `json:"message"`
}

// sharedProblems runs the shared ss-validate on url and returns the
// problems of its report (none when the shared tools are absent); it fails
// the test when ss-validate cannot run or its report cannot be read.
func sharedProblems(t *testing.T, keyring, url string) []ssProblem {
	t.Helper()
	s := testref.Shared()
	if s == "" {
		return nil
	}
	cmd := exec.Command("python3", filepath.Join(s, "tools", "ss-validate"), "-q", "--json", "--keyring", keyring, url)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Logf("ss-validate %s:\n%s%s", url, stderr.Bytes(), lastLine(out))
	var rep struct {
		Result   string      `json:"result"`
		Problems []ssProblem `json:"problems"`
	}
	if jerr := json.NewDecoder(bytes.NewReader(out)).Decode(&rep); jerr != nil {
		t.Fatalf("ss-validate %s: %v (report unreadable: %v)\n%s", url, err, jerr, stderr.Bytes())
	}
	if (rep.Result == "pass") != (err == nil) || (rep.Result == "pass") != (len(rep.Problems) == 0) {
		t.Fatalf("ss-validate %s: result %q, %d problems, exit %v", url, rep.Result, len(rep.Problems), err)
	}
	return rep.Problems
}

// lastLine returns the last non-empty line of out, with its newline.
func lastLine(out []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	return append(lines[len(lines)-1], '\n')
}

// inSwitchWindow reports whether p is one of the problems a kill during
// the switch of the top-level index can leave (docs/s3.md): index.sjson
// and index.json.gpg already the new publish's while index.json is still
// the previous one's, so the twins differ and the detached signature is
// not index.json's.
func inSwitchWindow(p ssProblem) bool {
	switch {
	case p.Check == "twin" && p.File == "streams/v1/index.json":
		return true
	case p.Check == "detached" && p.File == "streams/v1/index.json.gpg":
		return true
	}
	return false
}

// validateAfterKill checks a bucket tree read over HTTP after a publish
// was killed: everything validates (index.sjson, products, data: what
// MAAS and sstream-mirror read), except that a kill between the PUT of
// index.sjson and the PUT of index.json leaves index.json the previous
// publish's (docs/s3.md); it reports whether it found that, and fails on
// any other problem.
func validateAfterKill(t *testing.T, keyring, url string) (inWindow bool) {
	t.Helper()
	kr, err := pgp.ReadKeyring(keyring)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := verify.Verify(context.Background(), url, verify.Options{Keyring: kr})
	if err != nil {
		t.Fatalf("verify %s: %v", url, err)
	}
	for _, p := range rep.Problems {
		if p.Check != "signature" || p.File != "streams/v1/index.json" || !strings.Contains(p.Reason, "index.json.gpg") {
			t.Fatalf("verify %s: %v", url, rep.Problems)
		}
		inWindow = true
	}
	for _, p := range sharedProblems(t, keyring, url) {
		if !inSwitchWindow(p) {
			t.Fatalf("ss-validate %s: %+v", url, p)
		}
		inWindow = true
	}
	return inWindow
}

// TestPublishToS3SurvivesSIGKILL kills publishes to a bucket prefix at
// moments spread over twice the length of one: after each kill the tree
// read over HTTP is the last complete one or the new one and validates
// (but for the top-level index's switch window, validateAfterKill); the next
// complete publish leaves a tree that validates in full.
func TestPublishToS3SurvivesSIGKILL(t *testing.T) {
	srv, _ := publicBucket(t)
	tree := testtree.Make(t, nil, "--releases", "3", "--arches", "2", "--kernels", "2", "--versions", "8")
	_, s := newCLIStore(t)
	keys := filepath.Join(t.TempDir(), "keys")
	root := "s3://mirror/www?endpoint=" + srv.Endpoint()
	for _, args := range [][]string{
		{"stream", "create", "daily"}, {"stream", "create", "stable"},
		{"insert", "--no-verify", tree, "daily"},
		{"key", "generate", "--out", keys},
		{"publish", "stable", "--publish-root", root, "--sign-key", filepath.Join(keys, "signing-key.asc")},
	} {
		if r := cli(t, nil, append(s, args...)...); r.code != 0 && !strings.Contains(r.stderr, "nothing") {
			t.Fatalf("%v: %+v", args, r)
		}
	}
	keyring := filepath.Join(keys, "keyring.gpg")
	url := srv.Endpoint() + "/mirror/www/stable/"
	publish := func() *exec.Cmd { return exec.Command(binary, append(s, "publish", "stable")...) }
	change := func(i int) { cli(t, nil, append(s, "promote", "daily", "stable", "202401"+pad(i%8+1))...) }
	var rs runs
	for i := range 2 {
		change(i)
		start := time.Now()
		if out, err := publish().CombinedOutput(); err != nil {
			t.Fatalf("publish: %v %s", err, out)
		}
		rs = append(rs, time.Since(start))
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	kills, killed := 8, 0
	for i := range kills {
		change(i + 2)
		if runKilled(t, publish(), killDelay(i, kills, rs.median(), rng), &rs) {
			killed++
		}
		if validateAfterKill(t, keyring, url) {
			t.Logf("kill %d: index.json is the previous publish's, index.sjson or index.json.gpg the killed one's", i)
		}
	}
	if out, err := publish().CombinedOutput(); err != nil {
		t.Fatalf("publish after the kills: %v %s", err, out)
	}
	validateURL(t, keyring, url)
	if killed == 0 {
		t.Fatalf("no publish killed midway (one takes %v)", rs.median())
	}
	t.Logf("%d of %d publishes killed midway; one takes %v", killed, kills, rs.median())
}

// TestS3SwitchWindowIsOnlyTheTopIndex builds the state a publish killed
// between the PUT of index.sjson and the PUT of index.json leaves (the
// previous index.json beside the new index.sjson and index.json.gpg) and
// checks that validateAfterKill sees it and that nothing but the
// top-level index.json is affected; the next publish mends it.
func TestS3SwitchWindowIsOnlyTheTopIndex(t *testing.T) {
	srv, b := publicBucket(t)
	tree := testtree.Make(t, nil, "--releases", "1", "--arches", "1", "--kernels", "1", "--versions", "3")
	_, s := newCLIStore(t)
	keys := filepath.Join(t.TempDir(), "keys")
	root := "s3://mirror/www?endpoint=" + srv.Endpoint()
	run := func(args ...string) {
		t.Helper()
		if r := cli(t, nil, append(s, args...)...); r.code != 0 {
			t.Fatalf("%v: %+v", args, r)
		}
	}
	run("stream", "create", "daily")
	run("stream", "create", "stable")
	run("insert", "--no-verify", tree, "daily")
	run("key", "generate", "--out", keys)
	run("promote", "daily", "stable", "20240101")
	run("publish", "stable", "--publish-root", root, "--sign-key", filepath.Join(keys, "signing-key.asc"))
	const top = "www/stable/streams/v1/index.json"
	old, _, err := b.Get(context.Background(), top, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	run("promote", "daily", "stable", "20240102")
	run("publish", "stable")
	if _, err := b.Put(context.Background(), top, old, s3store.Cond{}); err != nil {
		t.Fatal(err)
	}
	keyring := filepath.Join(keys, "keyring.gpg")
	url := srv.Endpoint() + "/mirror/www/stable/"
	if !validateAfterKill(t, keyring, url) {
		t.Fatal("the previous index.json beside the new index.sjson was not seen")
	}
	run("promote", "daily", "stable", "20240103")
	run("publish", "stable")
	validateURL(t, keyring, url)
}
