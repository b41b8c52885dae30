package publish

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mephstore/mephstore/catalog"
	"github.com/mephstore/mephstore/internal/fetch"
	"github.com/mephstore/mephstore/internal/testtree"
	"github.com/mephstore/mephstore/snapshot"
)

// The longest names and values insert lets in still make signed files
// that gpgv accepts (it refuses clear-signed lines of about 20,000 bytes).
func TestLongestNamesSignForGpgv(t *testing.T) {
	if _, err := exec.LookPath("gpgv"); err != nil {
		t.Fatal("gpgv is needed (scripts/deps installs it)")
	}
	f := newFixture(t, "1", "daily", "long")
	tree := testtree.Make(t, nil, "--versions", "1", "--arches", "amd64")
	pf := filepath.Join(tree, "streams", "v1", "com.ubuntu.maas:daily:v3:download.json")
	b, _ := os.ReadFile(pf)
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, p := range doc["products"].(map[string]any) {
		vs := p.(map[string]any)["versions"].(map[string]any)
		renamed := map[string]any{}
		for _, v := range vs { // one version each (--versions 1)
			v.(map[string]any)["notes"] = strings.Repeat("n", catalog.MaxValueLen-2) // quoted: 4096 bytes
			renamed["20240101."+strings.Repeat("9", catalog.MaxNameLen-9)] = v       // a serial MAAS reads, 200 bytes
		}
		p.(map[string]any)["versions"] = renamed
	}
	out, _ := json.MarshalIndent(doc, "", " ")
	os.WriteFile(pf, out, 0o644)
	if _, err := f.r.Insert(ctx, tree, "long", snapshot.InsertOptions{Client: &fetch.Client{}}); err != nil {
		t.Fatal(err)
	}
	f.publish(t, "long", true)
	dir := filepath.Join(f.root, "long", "streams", "v1")
	home := t.TempDir()
	sjsons, _ := filepath.Glob(filepath.Join(dir, "*.sjson"))
	if len(sjsons) != 2 {
		t.Fatalf("published %v", sjsons)
	}
	for _, sj := range sjsons {
		for _, args := range [][]string{{sj}, {strings.TrimSuffix(sj, ".sjson") + ".json.gpg", strings.TrimSuffix(sj, ".sjson") + ".json"}} {
			if strings.HasSuffix(sj, "index.sjson") && len(args) == 2 {
				args = []string{filepath.Join(dir, "index.json.gpg"), filepath.Join(dir, "index.json")}
			}
			cmd := exec.Command("gpgv", append([]string{"--homedir", home, "--keyring", f.keyring}, args...)...)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("gpgv %v: %v\n%s", args, err, out)
			}
		}
	}
	ssValidate(t, filepath.Join(f.root, "long"), f.keyring)
}
