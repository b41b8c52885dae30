package cas

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mephstore/mephstore/internal/digest"
)

// newStore makes an empty store in a temp dir with a short lock wait.
func newStore(t testing.TB) *Store {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	if err := Init(dir); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, Options{Wait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// randBytes returns n deterministic pseudo-random bytes.
func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n - n%8; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

func sha(b []byte) digest.Digest {
	return digest.FromBytes(b)
}

// ingest stages and commits b in one writer session.
func ingest(t testing.TB, s *Store, b []byte, exp Expect) (Committed, error) {
	t.Helper()
	ctx := context.Background()
	st, err := s.Stage(ctx, bytes.NewReader(b), exp, nil)
	if err != nil {
		return Committed{}, err
	}
	ss, err := s.Writer(ctx, "test")
	if err != nil {
		st.Discard()
		t.Fatal(err)
	}
	defer ss.Close()
	out, err := ss.Commit(context.Background(), st)
	if err != nil {
		return Committed{}, err
	}
	return out[0], nil
}

// check runs Check and returns its problems.
func check(t testing.TB, s *Store, deep bool) []Problem {
	t.Helper()
	rep, err := s.Check(context.Background(), CheckOptions{Deep: deep})
	if err != nil {
		t.Fatal(err)
	}
	return rep.Problems
}

// entries lists the names in dir.
func entries(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func countRecords(t testing.TB, s *Store) int {
	t.Helper()
	ss, err := s.Reader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	n := 0
	if err := ss.Blobs(func(Blob) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}
