package verify_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mephstore/mephstore/catalog"
	"github.com/mephstore/mephstore/internal/pgp"
	"github.com/mephstore/mephstore/internal/testref"
	"github.com/mephstore/mephstore/internal/testtree"
	"github.com/mephstore/mephstore/verify"
)

var ctx = context.Background()

func TestMain(m *testing.M) {
	code := m.Run()
	testtree.Cleanup()
	os.Exit(code)
}

func keyring(t *testing.T, k *testtree.Keys) pgp.Keyring {
	kr, err := pgp.ReadKeyring(k.Keyring)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// victim is where streamgen breaks a tree.
const (
	victimProduct = "com.ubuntu.maas.daily:v3:boot:24.04:amd64:ga-24.04"
	victimVersion = "20240102"
)

// cases are the broken trees: the check that must fail, whether the
// problem names the victim item, and a piece of the reason. client says
// whether the reference client (sstream-mirror, what MAAS's import is built
// on) fails the tree too: it checks signatures, paths and data, not the
// fields MAAS reads (as observed with the pinned reference).
var cases = []struct {
	brk, check string
	item       bool
	reason     string
	client     bool
}{
	{"", "", false, "", false},
	{"data", "data", true, "sha256", true},
	{"sha256", "data", true, "sha256", true},
	{"md5", "data", true, "md5", false}, // the client checks the strongest hash only
	{"size", "data", true, "want size", true},
	{"missing", "data", true, "no such file", true},
	{"size-string", "metadata", true, "size \"64\"", true},
	{"no-sha256", "metadata", true, "sha256", false},
	{"dotdot-path", "metadata", true, "inside the tree", true},
	{"abs-path", "metadata", true, "relative", true},
	{"escape-path", "metadata", true, "inside the tree", true},
	{"no-format", "metadata", false, "format", false},
	{"no-datatype", "metadata", false, "datatype", false},
	{"maas-field", "maas", false, "release_title", false},
	{"subarches-list", "maas", false, "subarches", false},
	{"no-manifest", "maas", false, "manifest", false},
	{"version-name", "maas", false, "version name", false},
	{"content-id", "metadata", false, "content_id", false}, // the client does not compare it,
	{"not-json", "metadata", false, "invalid JSON", true},
	{"tamper", "signature", false, "bad signature", true},
	{"bom", "signature", false, "does not start", true},
	{"json-path", "metadata", false, "unsigned", true},
	{"no-detached", "signature", false, "detached", false},
}

func TestBrokenTrees(t *testing.T) {
	k := testtree.KeysFor(t, "verify")
	kr := keyring(t, k)
	for _, tc := range cases {
		name := tc.brk
		if name == "" {
			name = "good"
		}
		t.Run(name, func(t *testing.T) {
			args := []string{"--versions", "2"}
			if tc.brk != "" {
				args = append(args, "--break", tc.brk)
			}
			tree := testtree.Make(t, k, args...)
			rep, err := verify.Verify(ctx, tree, verify.Options{Keyring: kr, RequireDetached: true})
			if err != nil {
				t.Fatal(err)
			}
			if tc.check == "" {
				if !rep.OK() || rep.Products != 2 || rep.Selected != 16 || rep.Files != 16 {
					t.Fatalf("good tree: %+v", rep)
				}
				return
			}
			if rep.OK() {
				t.Fatalf("passed")
			}
			p := rep.Problems[0]
			if p.Check != tc.check || !strings.Contains(p.String(), tc.reason) {
				t.Fatalf("problems %v, want [%s] mentioning %q", rep.Problems, tc.check, tc.reason)
			}
			if tc.item && (p.Product != victimProduct || p.Version != victimVersion || p.Item != "boot-kernel") {
				t.Fatalf("problem %q does not name the product, version and item", p)
			}
			crossCheck(t, tree, k, tc.check, tc.client)
		})
	}
}

// crossCheck runs the shared ss-validate and the reference client on the
// tree, where they are present: their verdicts must be verify's.
func crossCheck(t *testing.T, tree string, k *testtree.Keys, check string, clientFails bool) {
	s := testref.Shared()
	if s == "" {
		return
	}
	ssv := exec.Command("python3", filepath.Join(s, "tools", "ss-validate"), "-q", "--keyring", k.Keyring, "--require-detached", tree)
	if out, err := ssv.CombinedOutput(); err == nil {
		t.Errorf("ss-validate passed a tree verify fails (%s):\n%s", check, out)
	}
	py := testref.Python(t, "yaml", "requests")
	ref := filepath.Join(s, "reference", "simplestreams")
	mirror := exec.Command(py, filepath.Join(ref, "bin", "sstream-mirror"), "--keyring", k.Keyring, tree+"/streams/v1/index.sjson", t.TempDir())
	mirror.Env = append(os.Environ(), "PYTHONPATH="+ref)
	out, err := mirror.CombinedOutput()
	if (err != nil) != clientFails {
		t.Errorf("the reference client's verdict differs (fails: %v, want %v):\n%s", err != nil, clientFails, out)
	}
}

// Over HTTP, with filters and --max: only the selected files are read.
func TestVerifyURLWithSelection(t *testing.T) {
	k := testtree.KeysFor(t, "verify")
	tree := testtree.Make(t, k, "--versions", "3", "--arches", "amd64,arm64,s390x")
	srv := httptest.NewServer(http.FileServer(http.Dir(tree)))
	defer srv.Close()
	fs, _ := catalog.ParseFilters([]string{"arch=amd64"})
	rep, err := verify.Verify(ctx, srv.URL+"/streams/v1/index.sjson", verify.Options{Keyring: keyring(t, k), Max: 1, Filters: fs, Jobs: 3})
	if err != nil || !rep.OK() {
		t.Fatalf("%v %+v", err, rep)
	}
	if rep.Products != 3 || rep.Items != 36 || rep.Selected != 4 || rep.Files != 4 {
		t.Fatalf("report %+v: want 3 products, 36 items, 4 selected and read", rep)
	}
	rep, _ = verify.Verify(ctx, srv.URL+"/", verify.Options{Keyring: keyring(t, k), MetadataOnly: true})
	if !rep.OK() || rep.Files != 0 {
		t.Fatalf("metadata only: %+v", rep)
	}
	// A filter that matches nothing cannot pass.
	fs, _ = catalog.ParseFilters([]string{"arch=riscv64"})
	if rep, _ = verify.Verify(ctx, tree, verify.Options{Filters: fs}); rep.OK() {
		t.Fatal("an empty selection passed")
	}
}

func TestVerifyWrongKey(t *testing.T) {
	tree := testtree.Make(t, testtree.KeysFor(t, "verify"))
	rep, err := verify.Verify(ctx, tree, verify.Options{Keyring: keyring(t, testtree.KeysFor(t, "someone-else"))})
	if err != nil || rep.OK() || rep.Problems[0].Check != "signature" {
		t.Fatalf("%v %+v", err, rep)
	}
	if _, err := verify.Verify(ctx, filepath.Join(t.TempDir(), "nothing"), verify.Options{}); err == nil {
		t.Fatal("a missing directory is not a setup error")
	}
}
