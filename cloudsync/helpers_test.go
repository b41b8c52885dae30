package cloudsync

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mephstore/mephstore/build"
	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/cloudgen"
	"github.com/mephstore/mephstore/internal/fetch"
	"github.com/mephstore/mephstore/internal/pgp"
	"github.com/mephstore/mephstore/internal/testtree"
	"github.com/mephstore/mephstore/snapshot"
)

var ctx = context.Background()

func TestMain(m *testing.M) {
	code := m.Run()
	testtree.Cleanup()
	os.Exit(code)
}

func config(t testing.TB) *build.Config {
	t.Helper()
	cfg, err := build.ParseConfig("test config", []byte(cloudgen.TestConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

type upstream struct {
	dir, url string
	keys     *testtree.Keys
	kr       pgp.Keyring
}

// serveUpstream writes a signed cloud-images-like tree and serves it on
// loopback; wrap (may be nil) sits in front of the file server.
func serveUpstream(t testing.TB, s cloudgen.Spec, wrap func(http.Handler) http.Handler) *upstream {
	t.Helper()
	k := testtree.KeysFor(t, "cloud")
	if s.Config == nil {
		s.Config = config(t)
	}
	s.Signer = k.Signer
	dir := t.TempDir()
	if _, err := cloudgen.Write(dir, s); err != nil {
		t.Fatal(err)
	}
	var h http.Handler = http.FileServer(http.Dir(dir))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	kr, err := pgp.ReadKeyring(k.Keyring)
	if err != nil {
		t.Fatal(err)
	}
	return &upstream{dir: dir, url: srv.URL + "/streams/v1/" + cloudgen.ContentID + ".sjson", keys: k, kr: kr}
}

func newRepo(t testing.TB, streams ...string) *snapshot.Repo {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	if err := cas.InitWith(dir, 0); err != nil {
		t.Fatal(err)
	}
	s, err := cas.Open(dir, cas.Options{Wait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r := snapshot.New(s)
	for _, st := range streams {
		if _, err := r.CreateStream(ctx, st, ""); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func (u *upstream) options(t testing.TB, fake bool) Options {
	return Options{Source: u.url, Keyring: u.kr, Config: config(t), FakeBuilder: fake, Jobs: 2,
		Plan:   PlanOptions{Arches: []string{"amd64", "arm64"}},
		Client: &fetch.Client{Backoff: time.Millisecond, Retries: 1, Stall: 2 * time.Second}}
}

// versionsOf lists the stream head's versions as "release-version/arch/serial".
func versionsOf(t testing.TB, r *snapshot.Repo, stream string) []string {
	t.Helper()
	st, err := r.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := r.Doc(st.Head)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range doc.Catalogs {
		for _, p := range c.Products {
			for _, v := range p.VersionNames {
				out = append(out, p.Name+"@"+v)
			}
		}
	}
	return out
}
