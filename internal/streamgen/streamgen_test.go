package streamgen

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mephstore/mephstore/internal/pgp"
)

func TestSeededTreesAreReproducible(t *testing.T) {
	spec, err := ParseArgs([]string{"--releases", "2", "--arches", "amd64", "--kernels", "3", "--versions", "20240101,20240102", "--seed", "7"})
	if err != nil {
		t.Fatal(err)
	}
	a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	st, err := Write(a, spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Write(b, spec); err != nil {
		t.Fatal(err)
	}
	// 2 releases x 1 arch x 3 kernels; 4 items a version; the squashfs and
	// manifest are shared by a release's kernels.
	if st.Products != 6 || st.Versions != 12 || st.Items != 48 || st.Files != 2*2*(2+3*2) {
		t.Fatalf("stats %+v", st)
	}
	for _, rel := range []string{"streams/v1/com.ubuntu.maas:daily:v3:download.json", "noble/amd64/20240102/squashfs"} {
		x, _ := os.ReadFile(filepath.Join(a, rel))
		y, _ := os.ReadFile(filepath.Join(b, rel))
		if len(x) == 0 || !bytes.Equal(x, y) {
			t.Fatalf("%s differs between two writes of one seed", rel)
		}
	}
	p, _ := os.ReadFile(filepath.Join(a, "streams/v1/com.ubuntu.maas:daily:v3:download.json"))
	if !strings.Contains(string(p), `"com.ubuntu.maas.daily:v3:boot:24.04:amd64:ga-24.04-lowlatency"`) || bytes.Contains(p, []byte("\n-")) {
		t.Fatalf("products file:\n%s", p)
	}
}

func TestSignedTreeAndBadFlags(t *testing.T) {
	s, err := pgp.GenerateKey("t", "t@example.invalid")
	if err != nil {
		t.Fatal(err)
	}
	var pub bytes.Buffer
	s.WritePublic(&pub, false)
	kr, _ := pgp.ReadKeyringBytes(pub.Bytes())
	spec, _ := ParseArgs(nil)
	spec.Signer = s
	dir := filepath.Join(t.TempDir(), "tree")
	if _, err := Write(dir, spec); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"index.sjson", "com.ubuntu.maas:daily:v3:download.sjson"} {
		b, _ := os.ReadFile(filepath.Join(dir, "streams/v1", f))
		if _, err := pgp.VerifyClearsigned(f, b, kr); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"--break", "nope"}, {"--colour"}, {"extra"}, {"--releases", "nosuch"}} {
		if _, err := ParseArgs(args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	spec, _ = ParseArgs([]string{"--break", "tamper"})
	if _, err := Write(filepath.Join(t.TempDir(), "x"), spec); err == nil {
		t.Error("a signed-only break without a signer was accepted")
	}
}
