package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mephstore/mephstore/cas"
)

func TestIngestPrintsSha256sumAndDedupes(t *testing.T) {
	store, s := newCLIStore(t)
	big := filepath.Join(t.TempDir(), "big.bin")
	want := writeRandom(t, big, 5<<20+3, 1)
	sum, err := exec.Command("sha256sum", big).Output()
	if err != nil {
		t.Fatal(err)
	}
	if "sha256:"+strings.Fields(string(sum))[0] != want {
		t.Fatal("test helper disagrees with sha256sum")
	}
	r := cli(t, nil, append(s, "ingest", big)...)
	if r.code != 0 || r.stdout != want+" "+strconv.Itoa(5<<20+3)+" "+big+"\n" {
		t.Fatalf("ingest: %+v", r)
	}
	files := poolFiles(t, store)
	fi1, _ := os.Stat(files[0])
	r = cli(t, nil, append(s, "ingest", "--json", big)...)
	var out []cas.Ingested
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &out) != nil || len(out) != 1 || out[0].New || string(out[0].Digest) != want {
		t.Fatalf("second ingest --json: %+v", r)
	}
	files2 := poolFiles(t, store)
	fi2, _ := os.Stat(files2[0])
	if len(files2) != 1 || !os.SameFile(fi1, fi2) {
		t.Fatalf("second ingest changed the pool: %v", files2)
	}
	r = cli(t, nil, append(s, "cat", want)...)
	data, _ := os.ReadFile(big)
	if r.code != 0 || r.stdout != string(data) {
		t.Fatalf("cat gave %d bytes, code %d", len(r.stdout), r.code)
	}
	r = cli(t, nil, append(s, "blobs")...)
	if r.code != 0 || r.stdout != want+" "+strconv.Itoa(5<<20+3)+"\n" {
		t.Fatalf("blobs: %+v", r)
	}
	r = cli(t, nil, append(s, "blobs", "--json")...)
	var blobs []cas.Blob
	if err := json.Unmarshal([]byte(r.stdout), &blobs); err != nil || len(blobs) != 1 || blobs[0].Size != 5<<20+3 {
		t.Fatalf("blobs --json: %v %+v", err, r)
	}
}

func TestIngestManyFilesAndStdin(t *testing.T) {
	_, s := newCLIStore(t)
	dir := t.TempDir()
	var args []string
	want := map[string]string{}
	for i := range 40 {
		p := filepath.Join(dir, "f"+strconv.Itoa(i))
		want[p] = writeRandom(t, p, 100*i, uint64(i))
		args = append(args, p)
	}
	r := cli(t, nil, append(append(s, "ingest"), args...)...)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) != 40 {
		t.Fatalf("ingest of 40 files: %+v", r)
	}
	for i, l := range lines {
		f := strings.Fields(l)
		if f[2] != args[i] || f[0] != want[args[i]] {
			t.Fatalf("line %d %q, want %s for %s", i, l, want[args[i]], args[i])
		}
	}
	var out strings.Builder
	code := run(context.Background(), append(s, "ingest", "-"), env{
		stdin: strings.NewReader("from stdin\n"), stdout: &out, stderr: &out, getenv: func(string) string { return "" },
	})
	if code != 0 || !strings.HasPrefix(out.String(), "sha256:") || !strings.HasSuffix(out.String(), " 11 -\n") {
		t.Fatalf("ingest -: %d %q", code, out.String())
	}
}

func TestStoreFromEnvironment(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "envstore")
	envv := map[string]string{"MEPHSTORE_STORE": dir}
	if r := cli(t, envv, "init"); r.code != 0 || !strings.Contains(r.stdout, dir) {
		t.Fatalf("init via MEPHSTORE_STORE: %+v", r)
	}
	if r := cli(t, envv, "blobs"); r.code != 0 {
		t.Fatalf("blobs via MEPHSTORE_STORE: %+v", r)
	}
	xdg := t.TempDir()
	if r := cli(t, map[string]string{"XDG_DATA_HOME": xdg}, "init"); r.code != 0 || !strings.Contains(r.stdout, filepath.Join(xdg, "mephstore")) {
		t.Fatalf("init in XDG_DATA_HOME: %+v", r)
	}
}

func TestErrorsAreOneLineWithExitCodes(t *testing.T) {
	store, s := newCLIStore(t)
	f := filepath.Join(t.TempDir(), "f")
	os.WriteFile(f, []byte("hello"), 0o644)
	other := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"unknown flag", []string{"ingest", "--bogus", f}, exitUsage, "unknown flag: --bogus"},
		{"unknown command", []string{"frobnicate"}, exitUsage, "unknown command"},
		{"no file given", append(s, "ingest"), exitUsage, "requires at least 1 arg"},
		{"no store", []string{"--store", filepath.Join(other, "nope"), "blobs"}, exitFailure, "no mephstore store here"},
		{"not a store", []string{"--store", other, "blobs"}, exitFailure, "not a mephstore store"},
		{"missing file", append(s, "ingest", filepath.Join(other, "absent")), exitFailure, "absent: open"},
		{"directory", append(s, "ingest", other), exitFailure, "is a directory"},
		{"wrong sha256", append(s, "ingest", "--sha256", strings.Repeat("ab", 32), f), exitFailure, "sha256 mismatch"},
		{"wrong size", append(s, "ingest", "--size", "4", f), exitFailure, "size mismatch"},
		{"bad --sha256", append(s, "ingest", "--sha256", "xyz", f), exitUsage, "bad digest"},
		{"--sha256 with two files", append(s, "ingest", "--sha256", strings.Repeat("ab", 32), f, f), exitUsage, "apply to one file"},
		{"cat unknown", append(s, "cat", strings.Repeat("0", 64)), exitFailure, "blob not found"},
		{"init twice", append(s, "init"), exitFailure, "already exists"},
		{"extra argument", append(s, "blobs", "x"), exitUsage, "takes no arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := cli(t, nil, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.msg) || strings.Count(r.stderr, "\n") != 1 {
				t.Fatalf("got code %d stderr %q, want code %d and one line with %q", r.code, r.stderr, tc.code, tc.msg)
			}
		})
	}
	if files := poolFiles(t, store); len(files) != 0 {
		t.Fatalf("failed commands left pool files: %v", files)
	}
	if r := cli(t, nil, append(s, "fsck")...); r.code != 0 {
		t.Fatalf("fsck after failures: %+v", r)
	}
}

func TestFsckDeepNamesFlippedBlob(t *testing.T) {
	store, s := newCLIStore(t)
	dir := t.TempDir()
	var digests []string
	for i := range 3 {
		p := filepath.Join(dir, strconv.Itoa(i))
		digests = append(digests, writeRandom(t, p, 70_000, uint64(10+i)))
		if r := cli(t, nil, append(s, "ingest", p)...); r.code != 0 {
			t.Fatal(r)
		}
	}
	if r := cli(t, nil, append(s, "fsck", "--deep")...); r.code != 0 || !strings.Contains(r.stdout, "3 blobs") || !strings.Contains(r.stdout, "0 problems") {
		t.Fatalf("fsck --deep on a clean store: %+v", r)
	}
	victim := digests[1]
	p := filepath.Join(store, "pool", "sha256", victim[7:9], victim[7:])
	os.Chmod(p, 0o644)
	b, _ := os.ReadFile(p)
	b[5000] ^= 1
	os.WriteFile(p, b, 0o644)
	os.Chmod(p, 0o444)
	if r := cli(t, nil, append(s, "fsck")...); r.code != 0 {
		t.Fatalf("shallow fsck should not read contents: %+v", r)
	}
	r := cli(t, nil, append(s, "fsck", "--deep")...)
	if r.code != exitFailure || !strings.Contains(r.stdout, "corrupt: "+victim+": content hashes to sha256:") || !strings.Contains(r.stdout, "1 problem") {
		t.Fatalf("fsck --deep: %+v", r)
	}
	r = cli(t, nil, append(s, "fsck", "--deep", "--json")...)
	var rep cas.CheckReport
	if json.Unmarshal([]byte(r.stdout), &rep) != nil || len(rep.Problems) != 1 || string(rep.Problems[0].Digest) != victim {
		t.Fatalf("fsck --json: %+v", r)
	}
	if r := cli(t, nil, append(s, "cat", victim)...); r.code != exitFailure || !strings.Contains(r.stderr, "corrupt blob") {
		t.Fatalf("cat of a corrupt blob: code %d stderr %q", r.code, r.stderr)
	}
}

func TestLockedStoreMessage(t *testing.T) {
	store, _ := newCLIStore(t)
	s, err := cas.Open(store, cas.Options{})
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Writer(context.Background(), "publish stable")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	f := filepath.Join(t.TempDir(), "f")
	os.WriteFile(f, []byte("x"), 0o644)
	start := time.Now()
	r := cli(t, nil, "--store", store, "--wait", "150ms", "ingest", f)
	host, _ := os.Hostname()
	want := "store " + store + " locked by pid " + strconv.Itoa(os.Getpid()) + " on host " + host + " since "
	if r.code != exitFailure || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "(publish stable)") {
		t.Fatalf("got %+v, want %q", r, want)
	}
	if time.Since(start) < 150*time.Millisecond {
		t.Fatal("did not wait")
	}
	if files := poolFiles(t, store); len(files) != 0 {
		t.Fatalf("a refused ingest left %v", files)
	}
	if ents, _ := os.ReadDir(filepath.Join(store, "pool", ".ingest")); len(ents) != 0 {
		t.Fatalf("a refused ingest left temp files")
	}
}

func TestVersionAndCompletion(t *testing.T) {
	if r := cli(t, nil, "--version"); r.code != 0 || r.stdout != "mephstore dev\n" {
		t.Fatalf("--version: %+v", r)
	}
	if r := cli(t, nil, "completion", "bash"); r.code != 0 || !strings.Contains(r.stdout, "__start_mephstore") {
		t.Fatalf("completion bash: code %d", r.code)
	}
}
