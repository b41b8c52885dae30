package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mephstore/mephstore/internal/testtree"
)

// binary is the mephstore binary built once for the process-level tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mephstore-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "mephstore")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build mephstore: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	testtree.Cleanup()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what one in-process run printed.
type result struct {
	code           int
	stdout, stderr string
}

// cli runs mephstore in-process with the given environment variables.
func cli(t testing.TB, envv map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, env{
		stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
		getenv: func(k string) string { return envv[k] }, euid: 1000,
	})
	return result{code, out.String(), errb.String()}
}

// newCLIStore makes a store and returns the --store argument pair.
func newCLIStore(t testing.TB) (string, []string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	if r := cli(t, nil, "--store", dir, "init"); r.code != 0 {
		t.Fatalf("init: %+v", r)
	}
	return dir, []string{"--store", dir}
}

func writeRandom(t testing.TB, path string, n int, seed uint64) string {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, seed+1))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for n > 0 {
		k := min(n, len(buf))
		for i := 0; i < k; i += 8 {
			v := r.Uint64()
			for j := 0; j < 8 && i+j < k; j++ {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		f.Write(buf[:k])
		h.Write(buf[:k])
		n -= k
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// poolFiles lists the blob files of a store.
func poolFiles(t testing.TB, store string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(filepath.Join(store, "pool", "sha256"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// checkPoolHashes verifies that every pool file hashes to its name.
func checkPoolHashes(t testing.TB, store string) int {
	t.Helper()
	files := poolFiles(t, store)
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		io.Copy(h, f)
		f.Close()
		if got := hex.EncodeToString(h.Sum(nil)); got != filepath.Base(p) {
			t.Fatalf("pool file %s hashes to %s", p, got)
		}
	}
	return len(files)
}
