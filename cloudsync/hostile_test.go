package cloudsync

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/catalog"
	"github.com/mephstore/mephstore/internal/cloudgen"
	"github.com/mephstore/mephstore/internal/fetch"
	"github.com/mephstore/mephstore/internal/pgp"
	"github.com/mephstore/mephstore/internal/testcheck"
	"github.com/mephstore/mephstore/internal/testtree"
	"github.com/mephstore/mephstore/publish"
	"github.com/mephstore/mephstore/snapshot"
)

func blobCount(t *testing.T, r *snapshot.Repo) int {
	ss, err := r.Store().Reader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	n := 0
	ss.Blobs(func(cas.Blob) error { n++; return nil })
	return n
}

// One image whose item lies (or whose file is gone) fails alone: the
// others are built and committed as one snapshot, the failure listed
// with its reason. Never a built image from bytes that do not verify.
func TestOneFailingImage(t *testing.T) {
	for _, brk := range []string{"sha256", "size", "missing"} {
		t.Run(brk, func(t *testing.T) {
			u := serveUpstream(t, cloudgen.Spec{Releases: []string{"noble"}, Arches: []string{"amd64", "arm64"},
				Versions: []string{"20261201"}, Break: map[string]string{cloudgen.Key("noble", "arm64", "20261201"): brk}}, nil)
			r := newRepo(t, "daily")
			rep, err := Run(ctx, r, u.options(t, true))
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Built) != 1 || len(rep.Failed) != 1 || rep.Failed[0].Arch != "arm64" || rep.Committed == nil {
				t.Fatalf("built %v failed %v", rep.Built, rep.Failed)
			}
			if vs := versionsOf(t, r, "daily"); len(vs) != 1 || !strings.Contains(vs[0], ":amd64:") {
				t.Fatalf("daily holds %v", vs)
			}
			if strings.Contains(rep.Failed[0].Err, "\n") {
				t.Fatalf("failure reason of more than one line: %q", rep.Failed[0].Err)
			}
		})
	}
}

// Hostile or broken sources change nothing in the store.
func TestHostileSources(t *testing.T) {
	one := cloudgen.Spec{Releases: []string{"noble"}, Arches: []string{"amd64"}, Versions: []string{"20261201"}}
	with := func(f func(*cloudgen.Spec)) cloudgen.Spec { s := one; f(&s); return s }
	stall := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, ".squashfs") {
				<-r.Context().Done() // accept, then never answer
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	huge := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, ".sjson") {
				w.Header().Set("Content-Length", "1099511627776")
				w.Write([]byte("{"))
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	for _, tc := range []struct {
		name    string
		spec    cloudgen.Spec
		wrap    func(http.Handler) http.Handler
		otherKR bool
		want    error  // Run's error, or nil: the one image fails
		failMsg string // the failure's reason then
	}{
		{name: "signed by another key", spec: one, otherKR: true, want: pgp.ErrBadSignature},
		{name: "tampered after signing", spec: with(func(s *cloudgen.Spec) { s.Hostile = "tamper" }), want: pgp.ErrBadSignature},
		{name: "not JSON", spec: with(func(s *cloudgen.Spec) { s.Hostile = "not-json" }), want: catalog.ErrBadCatalog},
		{name: "far too large", spec: one, wrap: huge, want: snapshot.ErrTooLarge},
		{name: "dotdot path", spec: with(func(s *cloudgen.Spec) {
			s.Break = map[string]string{cloudgen.Key("noble", "amd64", "20261201"): "dotdot-path"}
		}), failMsg: "stay inside"},
		{name: "absolute path", spec: with(func(s *cloudgen.Spec) {
			s.Break = map[string]string{cloudgen.Key("noble", "amd64", "20261201"): "abs-path"}
		}), failMsg: "relative"},
		{name: "bad version name", spec: with(func(s *cloudgen.Spec) { s.Hostile = "version-name" }), failMsg: "serial \"2026-12-01\""},
		{name: "stalled server", spec: one, wrap: stall, failMsg: "server stalled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := serveUpstream(t, tc.spec, tc.wrap)
			r := newRepo(t, "daily")
			blobs := blobCount(t, r)
			o := u.options(t, true)
			o.Client = &fetch.Client{Backoff: time.Millisecond, Retries: -1, Stall: time.Second}
			if tc.otherKR {
				other, _ := pgp.ReadKeyring(otherKeyring(t))
				o.Keyring = other
			}
			rep, err := Run(ctx, r, o)
			if tc.want != nil {
				if !errors.Is(err, tc.want) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
			} else {
				if err != nil || len(rep.Failed) != 1 || len(rep.Built) != 0 || !strings.Contains(rep.Failed[0].Err, tc.failMsg) {
					t.Fatalf("got %v, report %+v, want one failure mentioning %q", err, rep, tc.failMsg)
				}
			}
			if versionsOf(t, r, "daily") != nil || head(t, r).Seq != 1 || blobCount(t, r) != blobs {
				t.Fatal("the store changed")
			}
		})
	}
}

func otherKeyring(t *testing.T) string { return testtree.KeysFor(t, "other").Keyring }

// The published tree of a sync validates as MAAS and the reference
// client read it, and a config release the source lacks is a warning.
func TestSyncAndPublish(t *testing.T) {
	u := serveUpstream(t, cloudgen.Spec{Releases: []string{"noble"}, Arches: []string{"amd64"}, Versions: []string{"20261201", "20261202"}}, nil)
	r := newRepo(t, "daily")
	o := u.options(t, true)
	o.Plan.Max = 2
	signer, err := pgp.GenerateKey("sync test", "s@example.invalid")
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "pub")
	o.Publish = &publish.Options{Root: root, Signer: signer}
	rep, err := Run(ctx, r, o)
	if err != nil || len(rep.Built) != 2 || rep.Published == nil {
		t.Fatalf("sync --publish: %+v %v", rep, err)
	}
	if len(rep.Plan.Warnings) != 1 || !strings.Contains(rep.Plan.Warnings[0], "jammy") {
		t.Fatalf("warnings %v, want one about jammy", rep.Plan.Warnings)
	}
	kr := filepath.Join(t.TempDir(), "kr.gpg")
	f, _ := os.Create(kr)
	signer.WritePublic(f, false)
	f.Close()
	testcheck.Validate(t, filepath.Join(root, "daily"), kr)
}
