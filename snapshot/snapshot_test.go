package snapshot

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/catalog"
	"github.com/mephstore/mephstore/internal/pgp"
	"github.com/mephstore/mephstore/internal/testtree"
)

func blobCount(t *testing.T, r *Repo) int {
	t.Helper()
	ss, err := r.s.Reader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	n := 0
	ss.Blobs(func(cas.Blob) error { n++; return nil })
	return n
}

func TestInsertSignedTree(t *testing.T) {
	k := testtree.KeysFor(t, "good")
	tree := testtree.Make(t, k, "--versions", "3")
	r := newRepo(t, "daily")
	res := mustInsert(t, r, tree, "daily", signedOpts(t, k))
	if c := counts(t, r, "daily"); c != (Counts{Products: 2, Versions: 6, Items: 24}) || len(res.Added) != 6 {
		t.Fatalf("counts %+v, added %d", c, len(res.Added))
	}
	if !reflect.DeepEqual(queryAll(t, r, "daily"), sourceItems(t, tree, "daily")) {
		t.Fatal("query does not give back the source items")
	}
	// Every data file is in the pool under its sha256.
	for _, vs := range sourceItems(t, tree, "daily") {
		for _, items := range vs {
			for _, it := range items {
				d, _ := cas.ParseDigest(it.SHA256)
				b, err := r.s.ReadBlob(d)
				want, _ := os.ReadFile(filepath.Join(tree, it.Path))
				if err != nil || string(b) != string(want) {
					t.Fatalf("blob of %s: %v", it.Path, err)
				}
			}
		}
	}
	// The same tree again adds nothing.
	if _, err := r.Insert(ctx, tree, "daily", signedOpts(t, k)); !errors.Is(err, ErrNothingToDo) {
		t.Fatalf("second insert: %v", err)
	}
	if head(t, r, "daily").Seq != 2 {
		t.Fatal("second insert moved the head")
	}
}

func TestInsertRefusesOtherKeyAndChangesNothing(t *testing.T) {
	good := testtree.KeysFor(t, "good")
	other := testtree.KeysFor(t, "other")
	tree := testtree.Make(t, other)
	r := newRepo(t, "daily")
	before := head(t, r, "daily")
	blobs := blobCount(t, r)
	_, err := r.Insert(ctx, tree, "daily", signedOpts(t, good))
	if !errors.Is(err, pgp.ErrBadSignature) || !strings.Contains(err.Error(), "index.sjson") {
		t.Fatalf("insert of a tree signed by another key: %v", err)
	}
	if after := head(t, r, "daily"); after.Head != before.Head || after.Seq != before.Seq {
		t.Fatal("stream changed")
	}
	if blobCount(t, r) != blobs {
		t.Fatal("blobs were added")
	}
}

func TestInsertBrokenTrees(t *testing.T) {
	k := testtree.KeysFor(t, "good")
	for _, tc := range []struct {
		brk    string
		signed bool
		want   error
		msg    string
	}{
		{"data", true, cas.ErrDigestMismatch, "boot-kernel"},
		{"sha256", true, cas.ErrDigestMismatch, "boot-kernel"},
		{"size", true, cas.ErrSizeMismatch, "boot-kernel"},
		{"md5", true, cas.ErrDigestMismatch, "md5"},
		{"missing", true, os.ErrNotExist, "boot-kernel"},
		{"size-string", true, ErrBadItem, "size \"64\""},
		{"no-sha256", true, ErrBadItem, "sha256"},
		{"dotdot-path", true, ErrBadSource, ".."},
		{"abs-path", true, ErrBadSource, "relative"},
		{"tamper", true, pgp.ErrBadSignature, ".sjson"},
		{"json-path", true, ErrBadSource, "unsigned"},
		{"bom", true, pgp.ErrNotSigned, ".sjson"},
		{"content-id", false, ErrBadSource, "content_id"},
		{"escape-path", true, ErrBadSource, "stay inside"},
		{"content-id-dir", true, catalog.ErrBadMetadataName, "content_id \"com.ubuntu.maas:../../x\""},
		{"product-dir", true, catalog.ErrBadMetadataName, "product name \"com.ubuntu.maas:../../x\""},
		{"long-name", true, catalog.ErrBadMetadataName, "version name"},
	} {
		t.Run(tc.brk, func(t *testing.T) {
			tree := testtree.Make(t, k, "--break", tc.brk)
			r := newRepo(t, "daily")
			o := signedOpts(t, k)
			if !tc.signed {
				o = unsignedOpts()
			}
			blobs := blobCount(t, r)
			_, err := r.Insert(ctx, tree, "daily", o)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %v mentioning %q", err, tc.want, tc.msg)
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || len(msg) > 600 {
				t.Fatalf("error is not one short line: %d bytes", len(msg))
			}
			if head(t, r, "daily").Seq != 1 {
				t.Fatal("stream changed")
			}
			// The products staged while the data was fetched are gone
			// with the failed fetch's temp files.
			if left, _ := os.ReadDir(filepath.Join(r.s.Dir(), "pool", ".ingest")); len(left) != 0 {
				t.Fatalf("%d temp files left in the pool", len(left))
			}
			if tc.want != cas.ErrDigestMismatch && tc.want != cas.ErrSizeMismatch && tc.want != os.ErrNotExist && blobCount(t, r) != blobs {
				t.Fatal("a metadata error still fetched data")
			}
		})
	}
}

func TestInsertFiltersAndDryRun(t *testing.T) {
	tree := testtree.Make(t, nil, "--arches", "amd64,arm64,s390x", "--versions", "2")
	r := newRepo(t, "daily")
	o := unsignedOpts()
	o.Filters, _ = catalog.ParseFilters([]string{"arch!=arm64", "arch~^(amd|s3)"})
	o.DryRun = true
	blobs := blobCount(t, r)
	res := mustInsert(t, r, tree, "daily", o)
	if len(res.Added) != 4 || res.Fetched != 16 || head(t, r, "daily").Seq != 1 || blobCount(t, r) != blobs {
		t.Fatalf("dry run: %+v", res)
	}
	o.DryRun = false
	mustInsert(t, r, tree, "daily", o)
	got := queryAll(t, r, "daily")
	if len(got) != 2 {
		t.Fatalf("products %v", slices.Collect(mapKeys(got)))
	}
	for p := range got {
		if strings.Contains(p, "arm64") {
			t.Fatalf("filtered product inserted: %s", p)
		}
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestInsertFromURLWithBrokenTransfers(t *testing.T) {
	k := testtree.KeysFor(t, "good")
	tree := testtree.Make(t, k, "--versions", "2", "--data-size", "300000")
	var served, broken atomic.Int32
	files := http.FileServer(http.Dir(tree))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		served.Add(1)
		// Every third request for a data file is cut off half-way.
		if !strings.Contains(req.URL.Path, "streams") && req.Header.Get("Range") == "" && served.Load()%3 == 0 {
			broken.Add(1)
			fi, _ := os.Stat(filepath.Join(tree, req.URL.Path))
			b, _ := os.ReadFile(filepath.Join(tree, req.URL.Path))
			w.Header().Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
			w.Header().Set("Last-Modified", fi.ModTime().UTC().Format(http.TimeFormat))
			w.Write(b[:len(b)/2])
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		files.ServeHTTP(w, req)
	}))
	defer srv.Close()
	for _, u := range []string{srv.URL, srv.URL + "/streams/v1/index.sjson"} {
		r := newRepo(t, "daily")
		mustInsert(t, r, u, "daily", signedOpts(t, k))
		if !reflect.DeepEqual(queryAll(t, r, "daily"), sourceItems(t, tree, "daily")) {
			t.Fatalf("insert from %s: items differ", u)
		}
	}
	if broken.Load() == 0 {
		t.Fatal("no transfer was broken: the test tested nothing")
	}
}

func TestPromoteRenamesAndCopiesNoData(t *testing.T) {
	tree := testtree.Make(t, nil, "--versions", "20240101,20240102")
	r := newRepo(t, "daily", "stable")
	mustInsert(t, r, tree, "daily", unsignedOpts())
	blobs := blobCount(t, r)
	fs, _ := catalog.ParseFilters([]string{"arch=amd64"})
	res, err := r.Promote(ctx, "daily", "stable", PromoteOptions{Version: "20240102", Filters: fs})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Added) != 1 || res.Added[0].Product != "com.ubuntu.maas.stable:v3:boot:24.04:amd64:ga-24.04" {
		t.Fatalf("added %v", res.Added)
	}
	// Promoting everything now skips the amd64 version already there.
	res, err = r.Promote(ctx, "daily", "stable", PromoteOptions{Version: "20240102"})
	if err != nil || len(res.Added) != 1 || len(res.Skipped) != 1 {
		t.Fatalf("second promote: %+v %v", res, err)
	}
	if _, err := r.Promote(ctx, "daily", "stable", PromoteOptions{Version: "20240102"}); !errors.Is(err, ErrNothingToDo) {
		t.Fatalf("third promote: %v", err)
	}
	if _, err := r.Promote(ctx, "daily", "stable", PromoteOptions{Version: "20991231"}); !errors.Is(err, ErrNoSuchVersion) {
		t.Fatalf("promote of a missing version: %v", err)
	}
	// Only metadata blobs were added: product blobs and snapshots.
	doc, _ := r.Doc(head(t, r, "stable").Head)
	if blobCount(t, r) > blobs+3*2+3 || len(doc.Catalogs) != 1 || doc.Catalogs[0].ContentID != "com.ubuntu.maas:stable:v3:download" {
		t.Fatalf("blobs %d -> %d, catalogs %+v", blobs, blobCount(t, r), doc.Catalogs)
	}
	src := queryAll(t, r, "daily")
	n := 0
	err = r.Query(ctx, head(t, r, "stable").Head, QueryOptions{}, func(s *catalog.Scope) error {
		n++
		if s.Text("label") != "stable" || s.Text("content_id") != "com.ubuntu.maas:stable:v3:download" {
			t.Errorf("%s: label %q content id %q", s.Product.Name, s.Text("label"), s.Text("content_id"))
		}
		daily := strings.Replace(s.Product.Name, ".stable:", ".daily:", 1)
		if want := src[daily][s.Version.Name][s.Item.Name]; want.SHA256 != s.Text("sha256") || want.Path != s.Text("path") {
			t.Errorf("item %s changed in promotion", s.Item.Name)
		}
		return nil
	})
	if err != nil || n != 8 {
		t.Fatalf("%d items in stable: %v", n, err)
	}
}

func TestRollbackAndHistory(t *testing.T) {
	tree1 := testtree.Make(t, nil, "--versions", "1") // 20240101
	tree2 := testtree.Make(t, nil, "--versions", "2") // 20240101, 20240102
	r := newRepo(t, "daily")
	mustInsert(t, r, tree1, "daily", unsignedOpts())
	first := head(t, r, "daily").Head
	mustInsert(t, r, tree2, "daily", unsignedOpts())
	second := head(t, r, "daily").Head

	res, err := r.Rollback(ctx, "daily", "", 1, true)
	if err != nil || res.Snapshot != first || head(t, r, "daily").Head != second {
		t.Fatalf("dry run: %+v %v", res, err)
	}
	if _, err := r.Rollback(ctx, "daily", "", 1, false); err != nil {
		t.Fatal(err)
	}
	if st := head(t, r, "daily"); st.Head != first || st.Seq != 4 || counts(t, r, "daily").Versions != 2 {
		t.Fatalf("after rollback: %+v", st)
	}
	// The rollback is history: rolling it back returns to the second insert.
	if _, err := r.Rollback(ctx, "daily", "", 1, false); err != nil {
		t.Fatal(err)
	}
	if head(t, r, "daily").Head != second {
		t.Fatal("rollback of a rollback")
	}
	if _, err := r.Rollback(ctx, "daily", first.Encoded()[:10], 0, false); err != nil || head(t, r, "daily").Head != first {
		t.Fatalf("--to prefix: %v", err)
	}
	if _, err := r.Rollback(ctx, "daily", "", 99, false); !errors.Is(err, ErrNoHistory) {
		t.Fatalf("too many steps: %v", err)
	}
	log, _ := r.Log(ctx, "daily", 0)
	var ops []string
	for _, e := range log {
		ops = append(ops, strings.Fields(e.Operation)[0])
	}
	if strings.Join(ops, ",") != "rollback,rollback,rollback,insert,insert,stream" {
		t.Fatalf("history %v", ops)
	}
	// NAME@N references.
	if d, _ := r.Resolve(ctx, "daily@2"); d != first {
		t.Fatalf("daily@2 = %s", d)
	}
	if d, _ := r.Resolve(ctx, second.Encoded()[:8]); d != second {
		t.Fatalf("prefix resolve = %s", d)
	}
}

func TestCleanMDOrdersSerialsByNumber(t *testing.T) {
	tree := testtree.Make(t, nil, "--versions", "20240101.9,20240101.10,20240101.2,20231231")
	r := newRepo(t, "daily")
	mustInsert(t, r, tree, "daily", unsignedOpts())
	fs, _ := catalog.ParseFilters([]string{"arch=amd64"})
	res, err := r.CleanMD(ctx, "daily", 2, fs, false)
	if err != nil {
		t.Fatal(err)
	}
	left := queryAll(t, r, "daily")
	var amd, arm []string
	for p, vs := range left {
		for v := range vs {
			if strings.Contains(p, "amd64") {
				amd = append(amd, v)
			} else {
				arm = append(arm, v)
			}
		}
	}
	slices.Sort(amd)
	if strings.Join(amd, ",") != "20240101.10,20240101.9" || len(arm) != 4 || len(res.Removed) != 2 {
		t.Fatalf("amd64 kept %v, arm64 kept %v, removed %v", amd, arm, res.Removed)
	}
	if _, err := r.CleanMD(ctx, "daily", 2, fs, false); !errors.Is(err, ErrNothingToDo) {
		t.Fatalf("second clean-md: %v", err)
	}
}

func TestRemoveAndDiff(t *testing.T) {
	tree := testtree.Make(t, nil, "--versions", "20240101,20240102")
	r := newRepo(t, "daily")
	mustInsert(t, r, tree, "daily", unsignedOpts())
	before := head(t, r, "daily").Head
	fs, _ := catalog.ParseFilters([]string{"arch=arm64"})
	if _, err := r.Remove(ctx, "daily", "20240102", fs, false); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Remove(ctx, "daily", "20240102", fs, false); !errors.Is(err, ErrNoSuchVersion) {
		t.Fatalf("second remove: %v", err)
	}
	d, err := r.Diff(ctx, before, head(t, r, "daily").Head)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Changed) != 1 || !strings.Contains(d.Changed[0].Product, "arm64") || !slices.Equal(d.Changed[0].Removed, []string{"20240102"}) || len(d.ProductsAdded)+len(d.ProductsRemoved) != 0 {
		t.Fatalf("diff %+v", d)
	}
	// Removing the last version of a product drops the product.
	if _, err := r.Remove(ctx, "daily", "20240101", fs, false); err != nil {
		t.Fatal(err)
	}
	d, _ = r.Diff(ctx, before, head(t, r, "daily").Head)
	if len(d.ProductsRemoved) != 1 || len(d.Changed) != 0 {
		t.Fatalf("diff after dropping arm64: %+v", d)
	}
	if d, _ := r.Diff(ctx, before, before); !d.Empty() {
		t.Fatal("a snapshot differs from itself")
	}
}

func TestQueryMaxAndFormat(t *testing.T) {
	tree := testtree.Make(t, nil, "--versions", "20240101,20240102,20240103")
	r := newRepo(t, "daily")
	mustInsert(t, r, tree, "daily", unsignedOpts())
	var lines []string
	fs, _ := catalog.ParseFilters([]string{"ftype=squashfs", "arch=amd64"})
	err := r.Query(ctx, head(t, r, "daily").Head, QueryOptions{Filters: fs, Max: 2}, func(s *catalog.Scope) error {
		l, err := catalog.Format("%(product_name)s %(version_name)s %(os)s %(missing)s|100%%", s)
		lines = append(lines, l)
		return err
	})
	want := []string{
		"com.ubuntu.maas.daily:v3:boot:24.04:amd64:ga-24.04 20240103 ubuntu |100%",
		"com.ubuntu.maas.daily:v3:boot:24.04:amd64:ga-24.04 20240102 ubuntu |100%",
	}
	if err != nil || !slices.Equal(lines, want) {
		t.Fatalf("got %q (%v)", lines, err)
	}
	for _, bad := range []string{"%(x", "%d", "%(x)d"} {
		if _, err := catalog.Format(bad, &catalog.Scope{Product: &catalog.Product{}}); err == nil {
			t.Errorf("format %q accepted", bad)
		}
	}
}

// A local tree is read through its root: a symlink that leads out of it
// is refused, one that stays inside is followed.
func TestInsertDirRefusesSymlinksOut(t *testing.T) {
	for _, tc := range []struct {
		name   string
		target func(tree, outside string) string
		ok     bool
	}{
		{"absolute link out", func(tree, outside string) string { return outside }, false},
		{"relative link out", func(tree, outside string) string {
			rel, _ := filepath.Rel(tree, outside)
			return "../../../../../../../" + rel
		}, false},
		{"link inside", func(tree, outside string) string { return "boot-kernel.real" }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree := testtree.Make(t, nil, "--releases", "1", "--arches", "amd64", "--versions", "1")
			items := sourceItems(t, tree, "daily")
			var victim string
			for _, vs := range items {
				for _, its := range vs {
					victim = its["boot-kernel"].Path
				}
			}
			full := filepath.Join(tree, victim)
			// The same bytes outside the tree (or beside the victim), so
			// that only the link decides.
			outside := filepath.Join(t.TempDir(), "host-file")
			b, _ := os.ReadFile(full)
			os.WriteFile(outside, b, 0o644)
			os.WriteFile(full+".real", b, 0o644)
			os.Remove(full)
			target := tc.target(filepath.Dir(full), outside)
			if err := os.Symlink(target, full); err != nil {
				t.Fatal(err)
			}
			r := newRepo(t, "daily")
			_, err := r.Insert(ctx, tree, "daily", unsignedOpts())
			if tc.ok != (err == nil) {
				t.Fatalf("insert with %s -> %s: %v", victim, target, err)
			}
			if !tc.ok && (!errors.Is(err, ErrBadSource) || !strings.Contains(err.Error(), "leads out of the tree")) {
				t.Fatalf("error %v", err)
			}
		})
	}
}

// TestChangesLeaveNoLease: a change ends its lease in its commit session,
// and one that fails releases it; either way none is left behind.
func TestChangesLeaveNoLease(t *testing.T) {
	tree := testtree.Make(t, nil, "--versions", "20240101,20240102")
	r := newRepo(t, "daily", "stable")
	noLeases := func(after string) {
		t.Helper()
		ls, err := r.Store().ListLeases(ctx)
		if err != nil || len(ls) != 0 {
			t.Fatalf("after %s: leases %+v %v", after, ls, err)
		}
	}
	mustInsert(t, r, tree, "daily", unsignedOpts())
	noLeases("insert")
	if _, err := r.Promote(ctx, "daily", "stable", PromoteOptions{Version: "20240102"}); err != nil {
		t.Fatal(err)
	}
	noLeases("promote")
	if _, err := r.Promote(ctx, "daily", "stable", PromoteOptions{Version: "20240102"}); !errors.Is(err, ErrNothingToDo) {
		t.Fatalf("second promote: %v", err)
	}
	noLeases("a promote with nothing to do")
}

// TestChangeKeepsCallersLease: a change run under a caller's lease (sync
// holds one across its builds, commit and publish) leaves that lease
// alive for the caller to use and release.
func TestChangeKeepsCallersLease(t *testing.T) {
	tree := testtree.Make(t, nil, "--versions", "20240101,20240102")
	r := newRepo(t, "daily", "stable")
	lctx, release, err := r.Hold(ctx, "caller")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Insert(lctx, tree, "daily", unsignedOpts()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Promote(lctx, "daily", "stable", PromoteOptions{Version: "20240102"}); err != nil {
		t.Fatal(err)
	}
	ls, err := r.Store().ListLeases(ctx)
	if err != nil || len(ls) != 1 {
		t.Fatalf("the caller's lease after its changes: %+v %v", ls, err)
	}
	if _, _, err := r.Hold(lctx, "caller again", cas.Ref{Kind: cas.RefSnapshot, Digest: head(t, r, "daily").Head}); err != nil {
		t.Fatalf("adding to the caller's lease: %v", err)
	}
	release()
	if ls, _ := r.Store().ListLeases(ctx); len(ls) != 0 {
		t.Fatalf("after the caller's release: %+v", ls)
	}
}
