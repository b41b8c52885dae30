package cloudsync

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mephstore/mephstore/build"
	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/cloudgen"
	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/internal/jsonc"
	"github.com/mephstore/mephstore/internal/progress"
)

// What a killed run leaves is used by the next: a source in the pool is
// not fetched again, a pending build is not built again, and the commit
// takes both.
func TestResumeUsesWhatAKilledRunLeft(t *testing.T) {
	u := serveUpstream(t, cloudgen.Spec{Releases: []string{"noble", "jammy"}, Arches: []string{"amd64"}, Versions: []string{"20261201"}}, nil)
	r := newRepo(t, "daily")
	o := u.options(t, true)
	o.DryRun = true
	rep, err := Run(ctx, r, o)
	if err != nil || len(rep.Plan.Builds) != 2 {
		t.Fatalf("plan: %+v %v", rep, err)
	}
	// The first image was fetched (its run died before building it);
	// the second was built into a pending build (its run died before the
	// commit).
	first, second := rep.Plan.Builds[0], rep.Plan.Builds[1]
	b, err := os.ReadFile(filepath.Join(u.dir, first.Path))
	if err != nil {
		t.Fatal(err)
	}
	err = r.Store().IngestAll(ctx, []cas.Source{cas.ReaderSource("src", strings.NewReader(string(b)), cas.Expect{Size: int64(len(b)), Digest: digest.NewDigestFromEncoded(digest.SHA256, first.SHA256)})},
		progress.Factory{}, func(cas.Ingested) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	root, _ := build.FakeRoot(config(t), second.Release, second.Arch, second.Upstream)
	p := filepath.Join(t.TempDir(), "root.tar")
	os.WriteFile(p, root, 0o644)
	if _, err := build.Build(ctx, r, p, build.Options{Stream: "daily", Arch: second.Arch, Release: second.Release, Serial: second.Version, Config: config(t)}); err != nil {
		t.Fatal(err)
	}
	o.DryRun = false
	rep, err = Run(ctx, r, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Plan.Builds) != 1 || rep.Plan.Builds[0].Release != first.Release || rep.Reused != 1 {
		t.Fatalf("plan %+v, reused %d: want only %s, from the pool", rep.Plan.Builds, rep.Reused, first.String())
	}
	if vs := versionsOf(t, r, "daily"); len(vs) != 2 {
		t.Fatalf("daily holds %v, want both images", vs)
	}
}

// The real builder (no fake) on one small real upstream squashfs: the
// squashfs item is the upstream bytes as they are.
func TestRealBuilder(t *testing.T) {
	u := serveUpstream(t, cloudgen.Spec{Releases: []string{"noble"}, Arches: []string{"amd64"}, Versions: []string{"20261201"}}, nil)
	r := newRepo(t, "daily")
	rep, err := Run(ctx, r, u.options(t, false))
	if err != nil || len(rep.Built) != 1 {
		t.Fatalf("%+v %v", rep, err)
	}
	st := head(t, r)
	doc, _ := r.Doc(st.Head)
	pr, err := r.Product(&doc.Catalogs[0].Products[0])
	if err != nil {
		t.Fatal(err)
	}
	var squash string
	for _, it := range pr.Versions[0].Items {
		if it.Name == "squashfs" {
			squash = strings.Trim(string(fieldOf(it.Fields, "sha256")), `"`)
		}
	}
	if squash != rep.Built[0].SHA256 {
		t.Fatalf("squashfs item %s, upstream %s: not used as it is", squash, rep.Built[0].SHA256)
	}
}

func fieldOf(fs []jsonc.Field, k string) []byte { v, _ := jsonc.Get(fs, k); return v }
