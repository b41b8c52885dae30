package snapshot

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/catalog"
	"github.com/mephstore/mephstore/internal/fetch"
	"github.com/mephstore/mephstore/internal/pgp"
	"github.com/mephstore/mephstore/internal/testtree"
)

var ctx = context.Background()

// newRepo makes a store with the given streams (name=label pairs allowed).
func newRepo(t testing.TB, streams ...string) *Repo {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	if err := cas.Init(dir); err != nil {
		t.Fatal(err)
	}
	s, err := cas.Open(dir, cas.Options{Wait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r := New(s)
	for _, st := range streams {
		if _, err := r.CreateStream(ctx, st, ""); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func keyring(t testing.TB, k *testtree.Keys) pgp.Keyring {
	t.Helper()
	kr, err := pgp.ReadKeyring(k.Keyring)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func signedOpts(t testing.TB, k *testtree.Keys) InsertOptions {
	return InsertOptions{Keyring: keyring(t, k), Verify: true, Client: &fetch.Client{Backoff: time.Millisecond}}
}

func unsignedOpts() InsertOptions {
	return InsertOptions{Client: &fetch.Client{Backoff: time.Millisecond}}
}

func mustInsert(t testing.TB, r *Repo, src, stream string, o InsertOptions) *InsertResult {
	t.Helper()
	res, err := r.Insert(ctx, src, stream, o)
	if err != nil {
		t.Fatalf("insert %s into %s: %v", src, stream, err)
	}
	return res
}

func head(t testing.TB, r *Repo, stream string) *Stream {
	t.Helper()
	st, err := r.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func counts(t testing.TB, r *Repo, stream string) Counts {
	t.Helper()
	doc, err := r.Doc(head(t, r, stream).Head)
	if err != nil {
		t.Fatal(err)
	}
	return doc.Counts()
}

// srcItem is an item as the source products file has it.
type srcItem struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Path   string `json:"path"`
}

// sourceItems reads a generated tree's products file with encoding/json:
// product -> version -> item -> fields.
func sourceItems(t testing.TB, tree, label string) map[string]map[string]map[string]srcItem {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(tree, "streams", "v1", "com.ubuntu.maas:"+label+":v3:download.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pf struct {
		Products map[string]struct {
			Versions map[string]struct {
				Items map[string]srcItem `json:"items"`
			} `json:"versions"`
		} `json:"products"`
	}
	if err := json.Unmarshal(b, &pf); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]map[string]srcItem{}
	for p, prod := range pf.Products {
		out[p] = map[string]map[string]srcItem{}
		for v, ver := range prod.Versions {
			out[p][v] = ver.Items
		}
	}
	return out
}

// queryAll returns every item of the stream's head: product -> version ->
// item -> size/sha256/path.
func queryAll(t testing.TB, r *Repo, stream string, filters ...string) map[string]map[string]map[string]srcItem {
	t.Helper()
	fs, err := catalog.ParseFilters(filters)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]map[string]srcItem{}
	err = r.Query(ctx, head(t, r, stream).Head, QueryOptions{Filters: fs}, func(s *catalog.Scope) error {
		var it srcItem
		b, err := catalog.FlatJSON(s)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &it); err != nil {
			return err
		}
		if out[s.Product.Name] == nil {
			out[s.Product.Name] = map[string]map[string]srcItem{}
		}
		if out[s.Product.Name][s.Version.Name] == nil {
			out[s.Product.Name][s.Version.Name] = map[string]srcItem{}
		}
		out[s.Product.Name][s.Version.Name][s.Item.Name] = it
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
