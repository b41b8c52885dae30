package gc

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/catalog"
	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/snapshot"
)

var ctx = context.Background()

// clock is an injected clock for the store: tests move it instead of
// sleeping.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time       { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration)  { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }
func newClock() *clock                { return &clock{now: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)} }
func (f *fixture) at(d time.Duration) { f.clock.Add(d) }

// fixture is a store built blob by blob: data blobs named by a label,
// products made of data, snapshots made of products, stream histories.
type fixture struct {
	t     *testing.T
	clock *clock
	r     *snapshot.Repo
	s     *cas.Store
	data  map[string]digest.Digest // label -> data blob
	names map[digest.Digest]string // blob -> label (data, products, snapshots)
	nprod int
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	if err := cas.Init(dir); err != nil {
		t.Fatal(err)
	}
	c := newClock()
	s, err := cas.Open(dir, cas.Options{Wait: 10 * time.Second, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, clock: c, r: snapshot.New(s), s: s, data: map[string]digest.Digest{}, names: map[digest.Digest]string{}}
}

func (f *fixture) writer(fn func(ss *cas.Session)) {
	f.t.Helper()
	ss, err := f.s.Writer(ctx, "test fixture")
	if err != nil {
		f.t.Fatal(err)
	}
	fn(ss)
	if err := ss.Close(); err != nil {
		f.t.Fatal(err)
	}
}

// blob stores data blobs (the bytes are the label) and returns the digest
// of the first.
func (f *fixture) blob(labels ...string) digest.Digest {
	f.t.Helper()
	var first digest.Digest
	f.writer(func(ss *cas.Session) {
		for _, l := range labels {
			ds, err := ss.PutBytes(ctx, []byte("data "+l))
			if err != nil {
				f.t.Fatal(err)
			}
			f.data[l], f.names[ds[0]] = ds[0], l
			if first == "" {
				first = ds[0]
			}
		}
	})
	return first
}

// product stores a product blob whose one version has an item per data
// label, and returns its ref.
func (f *fixture) product(label string, data ...string) snapshot.ProductRef {
	f.t.Helper()
	f.nprod++
	items := ""
	for i, l := range data {
		d, ok := f.data[l]
		if !ok {
			d = f.blob(l)
		}
		if i > 0 {
			items += ","
		}
		items += fmt.Sprintf(`"i%d":{"ftype":"squashfs","path":"data/%s","sha256":"%s","size":%d}`, i, l, d.Encoded(), len("data "+l))
	}
	name := "com.ubuntu.maas.daily:v3:boot:24.04:amd64:" + label
	p, err := catalog.ParseProduct(name, []byte(`{"arch":"amd64","versions":{"20240101":{"items":{`+items+`}}}}`))
	if err != nil {
		f.t.Fatal(err)
	}
	b, err := p.Blob()
	if err != nil {
		f.t.Fatal(err)
	}
	var ref snapshot.ProductRef
	f.writer(func(ss *cas.Session) {
		ds, err := ss.PutBytes(ctx, b)
		if err != nil {
			f.t.Fatal(err)
		}
		ref = snapshot.ProductRef{Name: name, Digest: ds[0], Versions: 1, Items: len(data), VersionNames: []string{"20240101"}}
		f.names[ds[0]] = "product " + label
	})
	return ref
}

// commit makes a snapshot of the products the new head of the stream
// (created on first use) and returns its digest.
func (f *fixture) commit(stream, label string, prods ...snapshot.ProductRef) digest.Digest {
	f.t.Helper()
	if _, err := f.r.Stream(ctx, stream); err != nil {
		if _, err := f.r.CreateStream(ctx, stream, ""); err != nil {
			f.t.Fatal(err)
		}
	}
	slices.SortFunc(prods, func(a, b snapshot.ProductRef) int { return strings.Compare(a.Name, b.Name) })
	doc := &snapshot.Doc{Operation: "fixture " + label, Catalogs: []snapshot.Catalog{{
		ContentID: "com.ubuntu.maas:daily:v3:download", Header: []byte(`{"content_id":"com.ubuntu.maas:daily:v3:download","datatype":"image-ids","format":"products:1.0"}`),
		Products: prods}}}
	if len(prods) == 0 {
		doc.Catalogs = nil
	}
	var d digest.Digest
	f.writer(func(ss *cas.Session) {
		var err error
		if d, err = snapshot.CommitDoc(ctx, ss, stream, doc); err != nil {
			f.t.Fatal(err)
		}
	})
	f.names[d] = "snapshot " + label
	return d
}

// present lists the labels of the blobs the store has (unnamed ones by
// digest), sorted.
func (f *fixture) present() []string {
	f.t.Helper()
	ss, err := f.s.Reader(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	defer ss.Close()
	var out []string
	if err := ss.Blobs(func(b cas.Blob) error {
		if n, ok := f.names[b.Digest]; ok {
			out = append(out, n)
		} else {
			out = append(out, "unnamed "+b.Digest.Encoded()[:12])
		}
		return nil
	}); err != nil {
		f.t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// orphans counts the blob orphan records.
func (f *fixture) orphans() int {
	f.t.Helper()
	ss, err := f.s.Reader(ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	defer ss.Close()
	n := 0
	ss.View(func(txn cas.Txn) error {
		return blobOrphans().Scan(txn, func(Sum, time.Time) error { n++; return nil })
	})
	return n
}

func (f *fixture) gc(o Options) *Report {
	f.t.Helper()
	rep, err := Run(ctx, f.r, o)
	if err != nil {
		f.t.Fatalf("gc: %v", err)
	}
	return rep
}

// gone reports the labels in before that are not in after.
func gone(before, after []string) []string {
	var out []string
	for _, b := range before {
		if !slices.Contains(after, b) {
			out = append(out, b)
		}
	}
	return out
}

func (f *fixture) fsck() {
	f.t.Helper()
	rep, err := f.s.Check(ctx, cas.CheckOptions{Deep: true})
	if err != nil {
		f.t.Fatal(err)
	}
	if len(rep.Problems) > 0 {
		f.t.Fatalf("fsck: %v", rep.Problems)
	}
}
