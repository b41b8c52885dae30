package snapshot

import (
	cmpp "cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/catalog"
	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/internal/fetch"
	"github.com/mephstore/mephstore/internal/jsonc"
	"github.com/mephstore/mephstore/internal/pgp"
	"github.com/mephstore/mephstore/internal/progress"
)

// ErrBadItem is wrapped when an item lacks what mephstore needs to fetch it.
var ErrBadItem = errors.New("bad item")

// InsertOptions tune Insert.
type InsertOptions struct {
	Keyring pgp.Keyring // required unless NoVerify
	Verify  bool        // read index.sjson and check every signature
	Filters []catalog.Filter
	DryRun  bool
	Jobs    int // parallel downloads (default 4 for URLs, 1 for directories)
	Meters  progress.Factory
	Client  *fetch.Client
}

// InsertResult adds data figures to Result.
type InsertResult struct {
	Result
	Files      int   `json:"files"`       // distinct files the new versions refer to
	Fetched    int   `json:"fetched"`     // of those, read from the source
	FetchBytes int64 `json:"fetch_bytes"` // bytes read from the source
}

// candidate is a source version the stream lacks.
type candidate struct {
	cid     string
	header  []jsonc.Field
	product string
	pfields []jsonc.Field // the source product's fields (for a product new to the stream)
	version string
	raw     []byte
}

type fileRef struct {
	path string
	size int64
	md5  string // "" when the items give none
}

// versionNames lists the versions of a product of the snapshot.
func versionNames(doc *Doc, cid, name string) map[string]bool {
	out := map[string]bool{}
	if cat := doc.Catalog(cid); cat != nil {
		if ref := cat.Ref(name); ref != nil {
			for _, v := range ref.VersionNames {
				out[v] = true
			}
		}
	}
	return out
}

// Insert adds to the stream the product versions of the source tree that
// match the filters and that the stream does not have, like meph2-util
// insert: a version the stream has is kept as it is. Every file the new
// versions refer to is put in the pool first (files the pool has are not
// read; the others are checked against their size and sha256 as they
// stream); only then is one new snapshot committed. Any failure leaves the
// stream as it was.
func (r *Repo) Insert(ctx context.Context, src, stream string, o InsertOptions) (*InsertResult, error) {
	start := time.Now()
	if !o.DryRun {
		lctx, release, err := r.Hold(ctx, "insert "+src+" "+stream)
		if err != nil {
			return nil, err
		}
		defer release()
		ctx = lctx
	}
	st, err := r.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	source, err := OpenSource(src, o.Client)
	if err != nil {
		return nil, err
	}
	cats, err := source.ReadCatalogs(ctx, o.Keyring, o.Verify)
	if err != nil {
		return nil, err
	}
	r.log.Debug("insert: read source metadata", "catalogs", len(cats), "took", time.Since(start))
	head, err := r.Doc(st.Head)
	if err != nil {
		return nil, err
	}
	res := &InsertResult{Result: Result{Stream: st, DryRun: o.DryRun}}
	cands, files, err := planInsert(ctx, head, cats, o.Filters, res)
	if err != nil {
		return nil, err
	}
	if len(cands) == 0 {
		return nil, fmt.Errorf("stream %s: %w: %s has no version the stream lacks%s", stream, ErrNothingToDo, source, filterNote(o.Filters))
	}
	missing, err := r.checkPool(ctx, files, o.DryRun)
	if err != nil {
		return nil, err
	}
	for _, d := range missing {
		res.Fetched++
		res.FetchBytes += files[d].size
	}
	r.log.Debug("insert: planned", "versions", len(cands), "files", len(files), "missing", len(missing), "took", time.Since(start))
	if o.DryRun {
		res.Summary = summarize(len(res.Added), 0)
		return res, nil
	}
	// The data goes to the pool in short writer sessions while the new
	// snapshot is planned; it is committed only once every file is in.
	op := "insert " + src + " " + stream
	for _, f := range o.Filters {
		op += " " + f.String()
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fetched := make(chan error, 1)
	go func() { fetched <- r.fetchMissing(fctx, source, files, missing, o, res.FetchBytes) }()
	waitData := sync.OnceValue(func() error {
		err := <-fetched
		r.log.Debug("insert: fetched", "files", len(missing), "took", time.Since(start))
		return err
	})
	out, err := r.change(ctx, stream, op, false, func(st *Stream, e *editor) error {
		if err := e.addVersions(ctx, cands); err != nil {
			return err
		}
		return waitData() // data first: the commit that follows refers to it
	})
	if err != nil {
		cancel()
		if ferr := waitData(); ferr != nil && !errors.Is(ferr, context.Canceled) {
			return nil, ferr
		}
		return nil, err
	}
	r.log.Debug("insert: committed", "took", time.Since(start))
	res.Result = *out
	return res, nil
}

// checkPresentMD5 hashes the pooled blobs whose items give an md5 (the pool
// records sha256 and size only) and compares.
func checkPresentMD5(ctx context.Context, s *cas.Store, present []cas.Ref, files map[digest.Digest]fileRef) error {
	for _, ref := range present {
		f := files[ref.Digest]
		if f.md5 == "" {
			continue
		}
		got, err := s.BlobMD5(ctx, ref.Digest)
		if err != nil {
			return err
		}
		if got != f.md5 {
			return fmt.Errorf("%s: %w: md5 %s, but the pooled blob of its sha256 has md5 %s", f.path, cas.ErrDigestMismatch, f.md5, got)
		}
	}
	return nil
}

// planInsert lists the source versions that match the filters and that
// the stream (head) lacks, checking each, and the files they refer to.
func planInsert(ctx context.Context, head *Doc, cats []SourceCatalog, filters []catalog.Filter, res *InsertResult) ([]candidate, map[digest.Digest]fileRef, error) {
	var cands []candidate
	files := map[digest.Digest]fileRef{}
	for ci := range cats {
		sc := &cats[ci]
		for _, pf := range sc.Products {
			if err := ctx.Err(); err != nil {
				return nil, nil, err
			}
			pfields, versions, err := catalog.SplitProduct(pf.Key, pf.Value)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", sc.Path, err)
			}
			have := versionNames(head, sc.ContentID, pf.Key)
			sp := &catalog.Product{Name: pf.Key, Fields: pfields}
			for _, vf := range versions {
				if have[vf.Key] {
					continue
				}
				v, err := catalog.ParseVersion(vf.Key, vf.Value)
				if err != nil {
					return nil, nil, fmt.Errorf("%s: product %s: %w", sc.Path, pf.Key, err)
				}
				if !catalog.VersionMatches(filters, sc.Header, sp, &v) {
					continue
				}
				if err := catalog.CheckVersion(sc.ContentID, sc.Header, pf.Key, pfields, &v); err != nil {
					return nil, nil, fmt.Errorf("%s: %w", sc.Path, badSource(err))
				}
				if err := collectFiles(sc, sp, &v, files); err != nil {
					return nil, nil, err
				}
				cands = append(cands, candidate{cid: sc.ContentID, header: sc.Header, product: pf.Key, pfields: pfields, version: vf.Key, raw: vf.Value})
				res.Added = append(res.Added, VersionRef{Product: pf.Key, Version: vf.Key})
			}
		}
	}
	res.Files = len(files)
	return cands, files, nil
}

// checkPool returns the files the pool lacks. The ones it has are checked
// against what the items say of them (size, md5) and, unless dryRun, added
// to the lease of ctx in a writer session that looks again, so that gc
// cannot reap them before the snapshot refers to them. When the pool has
// none of them (new data), a reader session is enough.
func (r *Repo) checkPool(ctx context.Context, files map[digest.Digest]fileRef, dryRun bool) ([]digest.Digest, error) {
	ss, err := r.s.Reader(ctx)
	if err != nil {
		return nil, err
	}
	missing, present, err := poolHas(ss, files)
	if cerr := ss.Close(); err == nil {
		err = cerr
	}
	if err != nil || len(present) == 0 || dryRun {
		if err == nil {
			err = checkPresentMD5(ctx, r.s, present, files)
		}
		return missing, err
	}
	if ss, err = r.s.Writer(ctx, "insert: plan"); err != nil {
		return nil, err
	}
	missing, present, err = poolHas(ss, files)
	if err == nil {
		err = checkPresentMD5(ctx, r.s, present, files)
	}
	if err == nil {
		err = ss.AddRefs(cas.LeaseFrom(ctx), present...)
	}
	if cerr := ss.Close(); err == nil {
		err = cerr
	}
	return missing, err
}

// poolHas sorts files into those the pool lacks and those it has, checking
// the size of each it has.
func poolHas(ss *cas.Session, files map[digest.Digest]fileRef) (missing []digest.Digest, present []cas.Ref, err error) {
	err = ss.View(func(txn cas.Txn) error {
		for d, f := range files {
			b, err := cas.GetBlob(txn, d)
			switch {
			case errors.Is(err, cas.ErrBlobNotFound):
				missing = append(missing, d)
			case err != nil:
				return err
			case b.Size != f.size:
				// What the metadata says must hold of the bytes we
				// serve, whoever fetched them.
				return fmt.Errorf("%s: %w: size %d, but its sha256 names a pooled blob of %d bytes", f.path, cas.ErrSizeMismatch, f.size, b.Size)
			default:
				present = append(present, cas.Ref{Kind: cas.RefBlob, Digest: d})
			}
		}
		return nil
	})
	return missing, present, err
}

// fetchMissing puts the missing files in the pool, each checked against
// its size, sha256 and md5 as it streams.
func (r *Repo) fetchMissing(ctx context.Context, source *Source, files map[digest.Digest]fileRef, missing []digest.Digest, o InsertOptions, bytes int64) error {
	if len(missing) == 0 {
		return nil
	}
	srcs := make([]cas.Source, len(missing))
	for i, d := range missing {
		f := files[d]
		srcs[i] = cas.Source{Name: f.path, Expect: cas.Expect{Size: f.size, Digest: d, MD5: f.md5},
			Open: func() (io.ReadCloser, int64, error) { return source.Open(ctx, f.path) }}
	}
	jobs := o.Jobs
	if jobs <= 0 {
		// Downloads overlap network latency; a local tree gains nothing
		// from parallel staging, and two threads creating files in the
		// pool's temp directory spin on its lock (measured: 19 s of
		// kernel time against 6 s for 60,000 small files).
		jobs = 1
		if source.url != nil {
			jobs = 4
		}
		if r.s.Remote() != nil {
			jobs = 8 // each stage ends with an upload: overlap them
		}
	}
	m := o.Meters.New("insert: fetch "+fmt.Sprint(len(missing))+" files", bytes, progress.Bytes)
	err := r.s.IngestParallel(ctx, srcs, jobs, m, func(cas.Ingested) error { return nil })
	m.Done()
	if err != nil {
		return fmt.Errorf("insert from %s: %w (the stream is unchanged)", source, err)
	}
	return nil
}

// ItemFile is the file an item names: its path, sha256 and size.
type ItemFile struct {
	Path   string
	SHA256 string // 64 lowercase hex digits
	Size   int64
}

// ReadItemFile reads the file fields of the scope's item (merged, as
// simplestreams reads them) and checks them: a path that stays inside the
// tree, a sha256 of 64 lowercase hex digits, a non-negative integer size.
func ReadItemFile(s *catalog.Scope) (ItemFile, error) {
	pathv, _ := s.Get("path")
	path, ok := jsonc.String(pathv)
	if !ok || path == "" {
		return ItemFile{}, fmt.Errorf("%w: no path", ErrBadItem)
	}
	if err := catalog.CheckItemPath(path); err != nil {
		return ItemFile{Path: path}, badSource(err)
	}
	shav, _ := s.Get("sha256")
	sum, _ := jsonc.String(shav)
	if len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "" {
		return ItemFile{Path: path}, fmt.Errorf("%w: sha256 %q is not 64 lowercase hex digits", ErrBadItem, sum)
	}
	sizev, _ := s.Get("size")
	size, ok := jsonc.Int(sizev)
	if !ok || size < 0 {
		return ItemFile{Path: path}, fmt.Errorf("%w: size %s is not a non-negative integer", ErrBadItem, sizev)
	}
	return ItemFile{Path: path, SHA256: sum, Size: size}, nil
}

// collectFiles adds the files of a version's items to files, checking that
// each has what is needed to fetch and verify it.
func collectFiles(sc *SourceCatalog, p *catalog.Product, v *catalog.Version, files map[digest.Digest]fileRef) error {
	s := catalog.Scope{Header: sc.Header, Product: p, Version: v}
	for i := range v.Items {
		s.Item = &v.Items[i]
		f, err := ReadItemFile(&s)
		if err != nil {
			return fmt.Errorf("%s: product %s version %s item %s: %w", sc.Path, p.Name, v.Name, s.Item.Name, err)
		}
		m := s.Text("md5")
		if m != "" && (len(m) != 32 || strings.Trim(m, "0123456789abcdef") != "") {
			return fmt.Errorf("%s: product %s version %s item %s: %w: md5 %q is not 32 lowercase hex digits", sc.Path, p.Name, v.Name, s.Item.Name, ErrBadItem, catalog.Clip(m))
		}
		d := digest.NewDigestFromEncoded(digest.SHA256, f.SHA256)
		old, seen := files[d]
		if seen && old.size != f.Size {
			return fmt.Errorf("%s: product %s version %s item %s: %w: sha256 %s is listed with sizes %d and %d", sc.Path, p.Name, v.Name, s.Item.Name, ErrBadItem, f.SHA256, old.size, f.Size)
		}
		if seen && old.md5 != "" && m != "" && old.md5 != m {
			return fmt.Errorf("%s: product %s version %s item %s: %w: sha256 %s is listed with md5s %s and %s", sc.Path, p.Name, v.Name, s.Item.Name, ErrBadItem, f.SHA256, old.md5, m)
		}
		if m == "" {
			m = old.md5
		}
		files[d] = fileRef{path: f.Path, size: f.Size, md5: m}
	}
	return nil
}

// addVersions adds the candidates (sorted by content id and product) to
// their products; a version the product already has is reported skipped.
func (e *editor) addVersions(ctx context.Context, cands []candidate) error {
	// One product per run of candidates, read ahead (nil: new to the base).
	var refs []*ProductRef
	for i, c := range cands {
		if i == 0 || c.cid != cands[i-1].cid || c.product != cands[i-1].product {
			refs = append(refs, e.baseRef(c.cid, c.product))
		}
	}
	pf := e.r.prefetch(refs)
	defer pf.close()
	for i := 0; i < len(cands); {
		c := cands[i]
		p, err := pf.next()
		if err != nil {
			return err
		}
		if p == nil {
			p = &shallow{Name: c.product, Fields: c.pfields}
			e.newCatalog(c.cid, c.header)
		}
		for ; i < len(cands) && cands[i].cid == c.cid && cands[i].product == c.product; i++ {
			canon, err := canonicalVersion(cands[i].raw)
			if err != nil {
				return fmt.Errorf("product %s: version %s: %w", c.product, cands[i].version, err)
			}
			ref := VersionRef{Product: c.product, Version: cands[i].version}
			added, err := p.add(cands[i].version, canon)
			if err != nil {
				return err
			}
			if added {
				e.res.Added = append(e.res.Added, ref)
			} else {
				e.res.Skipped = append(e.res.Skipped, ref)
			}
		}
		if err := e.put(ctx, c.cid, p); err != nil {
			return err
		}
	}
	return nil
}

// NewVersion is a version to add to a stream, with what a product new to
// the stream needs: its catalog's header and its fields.
type NewVersion struct {
	ContentID     string
	Header        []jsonc.Field // the catalog's header, for a catalog new to the stream
	Product       string
	ProductFields []jsonc.Field // the product's fields, for a product new to the stream
	Version       string
	Raw           []byte // the version object (with its items)
}

// AddVersions commits the versions into the stream's next snapshot (one
// snapshot for all). A version the stream already has is left as it is
// and reported in Skipped; with none added, the stream is unchanged and
// ErrNothingToDo is returned. The caller holds a lease that protects the
// blobs the versions refer to.
func (r *Repo) AddVersions(ctx context.Context, stream, op string, adds []NewVersion) (*Result, error) {
	cands := make([]candidate, len(adds))
	for i, a := range adds {
		v, err := catalog.ParseVersion(a.Version, a.Raw)
		if err != nil {
			return nil, fmt.Errorf("product %s: %w", a.Product, err)
		}
		if err := catalog.CheckVersion(a.ContentID, a.Header, a.Product, a.ProductFields, &v); err != nil {
			return nil, badSource(err)
		}
		cands[i] = candidate{cid: a.ContentID, header: jsonc.Sort(slices.Clone(a.Header)), product: a.Product,
			pfields: jsonc.Sort(slices.Clone(a.ProductFields)), version: a.Version, raw: a.Raw}
	}
	slices.SortStableFunc(cands, func(a, b candidate) int {
		return cmpp.Or(strings.Compare(a.cid, b.cid), strings.Compare(a.product, b.product), strings.Compare(a.version, b.version))
	})
	return r.change(ctx, stream, op, false, func(st *Stream, e *editor) error {
		return e.addVersions(ctx, cands)
	})
}
