package cas

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func TestCheckFindsEveryKindOfProblem(t *testing.T) {
	for _, tc := range []struct {
		name   string
		deep   bool
		break_ func(t *testing.T, s *Store, blobs []Committed) (kind, what string)
	}{
		{"flipped byte (deep)", true, func(t *testing.T, s *Store, b []Committed) (string, string) {
			flipByte(t, s.BlobPath(b[1].Digest), 77)
			return ProblemCorrupt, string(b[1].Digest)
		}},
		{"missing file", false, func(t *testing.T, s *Store, b []Committed) (string, string) {
			os.Remove(s.BlobPath(b[0].Digest))
			return ProblemMissing, string(b[0].Digest)
		}},
		{"truncated file", false, func(t *testing.T, s *Store, b []Committed) (string, string) {
			os.Chmod(s.BlobPath(b[2].Digest), 0o644)
			os.Truncate(s.BlobPath(b[2].Digest), 3)
			os.Chmod(s.BlobPath(b[2].Digest), 0o444)
			return ProblemSize, string(b[2].Digest)
		}},
		{"writable blob", false, func(t *testing.T, s *Store, b []Committed) (string, string) {
			os.Chmod(s.BlobPath(b[0].Digest), 0o644)
			return ProblemMode, string(b[0].Digest)
		}},
		{"unrecorded file", false, func(t *testing.T, s *Store, b []Committed) (string, string) {
			d := sha([]byte("dropped in by hand"))
			p := s.BlobPath(d)
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, []byte("dropped in by hand"), 0o444)
			return ProblemUnrecorded, string(d)
		}},
		{"stray file in pool", false, func(t *testing.T, s *Store, b []Committed) (string, string) {
			p := filepath.Join(s.poolPath(), "README")
			os.WriteFile(p, nil, 0o644)
			return ProblemStray, p
		}},
		{"stray directory in sha256", false, func(t *testing.T, s *Store, b []Committed) (string, string) {
			p := filepath.Join(s.blobsPath(), "tmp")
			os.Mkdir(p, 0o755)
			return ProblemStray, p
		}},
		{"misnamed file", false, func(t *testing.T, s *Store, b []Committed) (string, string) {
			hex := b[0].Digest.Encoded()
			p := filepath.Join(s.blobsPath(), hex[:2], hex[:10]+".bak")
			os.WriteFile(p, nil, 0o444)
			return ProblemStray, p
		}},
		{"symlink in the pool", false, func(t *testing.T, s *Store, b []Committed) (string, string) {
			hex := strings.Repeat("ab", 32)
			os.MkdirAll(filepath.Join(s.blobsPath(), "ab"), 0o755)
			p := filepath.Join(s.blobsPath(), "ab", hex)
			os.Symlink("/etc/passwd", p)
			return ProblemStray, p
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			var blobs []Committed
			for i := range 3 {
				c, err := ingest(t, s, randBytes(1000*(i+1), uint64(100+i)), Unknown)
				if err != nil {
					t.Fatal(err)
				}
				blobs = append(blobs, c)
			}
			if p := check(t, s, true); len(p) != 0 {
				t.Fatalf("clean store has problems: %v", p)
			}
			kind, what := tc.break_(t, s, blobs)
			probs := check(t, s, tc.deep)
			if len(probs) != 1 {
				t.Fatalf("problems %v, want exactly one %s", probs, kind)
			}
			p := probs[0]
			if p.Kind != kind || !strings.Contains(p.String(), what) {
				t.Fatalf("problem %q, want %s naming %s", p, kind, what)
			}
		})
	}
}

func TestCheckWithoutDeepMissesContentOnly(t *testing.T) {
	s := newStore(t)
	c, _ := ingest(t, s, randBytes(4096, 9), Unknown)
	flipByte(t, s.BlobPath(c.Digest), 0)
	if p := check(t, s, false); len(p) != 0 {
		t.Fatalf("shallow fsck read contents: %v", p)
	}
	rep, err := s.Check(t.Context(), CheckOptions{Deep: true, Jobs: 3})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Hashed != 1 || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0].Detail, "content hashes to sha256:") {
		t.Fatalf("deep fsck: %+v", rep)
	}
}

func TestCheckManyBlobsMergeOrder(t *testing.T) {
	s := newStore(t)
	var staged []*Staged
	for i := range 300 {
		st, err := s.Stage(t.Context(), bytes.NewReader(randBytes(i+1, uint64(i))), Unknown, nil)
		if err != nil {
			t.Fatal(err)
		}
		staged = append(staged, st)
	}
	ss, err := s.Writer(t.Context(), "test")
	if err != nil {
		t.Fatal(err)
	}
	out, err := ss.Commit(context.Background(), staged...)
	ss.Close()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, c := range out {
		want = append(want, string(c.Digest))
	}
	// Drop every 7th file: the merge walk must name exactly those.
	sort.Strings(want)
	var missing []string
	for i, d := range want {
		if i%7 == 0 {
			dd, _ := ParseDigest(d)
			os.Remove(s.BlobPath(dd))
			missing = append(missing, d)
		}
	}
	probs := check(t, s, true)
	var got []string
	for _, p := range probs {
		if p.Kind != ProblemMissing {
			t.Fatalf("unexpected problem %v", p)
		}
		got = append(got, string(p.Digest))
	}
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(missing, ",") {
		t.Fatalf("missing %d blobs reported as %d", len(missing), len(got))
	}
}
