package snapshot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/catalog"
	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/internal/jsonc"
)

// Repo works on the streams and snapshots of a store.
type Repo struct {
	s   *cas.Store
	log *slog.Logger
}

// New returns a Repo on the store.
func New(s *cas.Store) *Repo { return &Repo{s: s, log: s.Logger()} }

// Store is the underlying store.
func (r *Repo) Store() *cas.Store { return r.s }

func (r *Repo) view(ctx context.Context, fn func(txn cas.Txn) error) error {
	ss, err := r.s.Reader(ctx)
	if err != nil {
		return err
	}
	defer ss.Close()
	return ss.View(fn)
}

// Stream reads a stream's record.
func (r *Repo) Stream(ctx context.Context, name string) (*Stream, error) {
	var st *Stream
	err := r.view(ctx, func(txn cas.Txn) error {
		var err error
		st, err = GetStream(txn, name)
		return err
	})
	return st, err
}

// Streams lists every stream.
func (r *Repo) Streams(ctx context.Context) ([]*Stream, error) {
	var out []*Stream
	err := r.view(ctx, func(txn cas.Txn) error {
		var err error
		out, err = Streams(txn)
		return err
	})
	return out, err
}

// Log returns up to max history entries of the stream (0 for all), newest
// first.
func (r *Repo) Log(ctx context.Context, name string, max int) ([]Entry, error) {
	var out []Entry
	err := r.view(ctx, func(txn cas.Txn) error {
		if _, err := GetStream(txn, name); err != nil {
			return err
		}
		return History(txn, name, func(e Entry) bool {
			out = append(out, e)
			return max <= 0 || len(out) < max
		})
	})
	return out, err
}

// Doc reads a snapshot document.
func (r *Repo) Doc(d digest.Digest) (*Doc, error) {
	b, err := r.s.ReadBlob(d)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", d, err)
	}
	return decodeDoc(d, b)
}

// Product reads a product blob.
func (r *Repo) Product(ref *ProductRef) (*catalog.Product, error) {
	p, _, err := r.readProduct(ref)
	return p, err
}

// readProduct reads and parses a product blob, and returns its versions
// as raw canonical JSON too.
func (r *Repo) readProduct(ref *ProductRef) (*catalog.Product, []jsonc.Field, error) {
	b, err := r.s.ReadBlob(ref.Digest)
	if err != nil {
		return nil, nil, fmt.Errorf("product %s: %w", ref.Name, err)
	}
	return catalog.ParseBlob(ref.Name, b)
}

// CreateStream makes a stream with an empty first snapshot.
func (r *Repo) CreateStream(ctx context.Context, name, label string) (*Stream, error) {
	if label == "" {
		label = name
	}
	if err := ValidStreamName(name); err != nil {
		return nil, err
	}
	if err := ValidName("label", label); err != nil {
		return nil, err
	}
	ss, err := r.s.Writer(ctx, "stream create "+name)
	if err != nil {
		return nil, err
	}
	defer ss.Close()
	now := r.s.Now().UTC()
	st := &Stream{Name: name, Label: label, Created: now}
	doc := &Doc{Format: DocFormat, Stream: name, Time: now, Operation: "stream create " + name, Summary: "empty", Catalogs: []Catalog{}}
	b, err := doc.encode()
	if err != nil {
		return nil, err
	}
	err = ss.Update(func(txn cas.Txn) error {
		if _, err := GetStream(txn, name); err == nil {
			return fmt.Errorf("stream %q: %w", name, ErrStreamExists)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return st, putHead(ctx, ss, st, b, doc)
}

// Result is what a change did.
type Result struct {
	Stream   *Stream       `json:"stream"`
	Snapshot digest.Digest `json:"snapshot,omitempty"` // the new head; "" on a dry run
	Summary  string        `json:"summary"`
	Counts   Counts        `json:"counts"`
	Added    []VersionRef  `json:"added"`   // versions added
	Removed  []VersionRef  `json:"removed"` // versions removed
	Skipped  []VersionRef  `json:"skipped"` // versions asked for and already there
	DryRun   bool          `json:"dry_run"`
}

// VersionRef names a version of a product.
type VersionRef struct {
	Product string `json:"product"`
	Version string `json:"version"`
}

func (v VersionRef) String() string { return v.Product + " " + v.Version }

// editor builds a new snapshot from a base one. Changed products are
// encoded and staged in the pool as soon as they are final (their temp
// files are committed with the snapshot), so memory holds one product at a
// time.
type editor struct {
	r       *Repo
	base    *Doc
	cats    map[string]*catEdit
	stager  *cas.Stager   // stages changed products in the background
	staged  []*cas.Staged // what the stager staged, once waited for
	res     *Result
	dryRun  bool
	headers map[string][]jsonc.Field
}

type catEdit struct {
	header  []jsonc.Field // set for a catalog new to the stream
	changed map[string]*ProductRef
	removed map[string]bool
}

func newEditor(ctx context.Context, r *Repo, base *Doc, res *Result, dryRun bool) *editor {
	return &editor{r: r, base: base, cats: map[string]*catEdit{}, res: res, dryRun: dryRun, headers: map[string][]jsonc.Field{},
		stager: r.s.NewStager(ctx)}
}

// load returns a product of the base snapshot for editing, or nil.
func (e *editor) load(contentID, name string) (*shallow, error) {
	ref := e.baseRef(contentID, name)
	if ref == nil {
		return nil, nil
	}
	return e.r.shallow(ref)
}

// baseRef is the base snapshot's reference to a product, or nil.
func (e *editor) baseRef(contentID, name string) *ProductRef {
	cat := e.base.Catalog(contentID)
	if cat == nil {
		return nil
	}
	return cat.Ref(name)
}

// shallow reads a product blob for editing.
func (r *Repo) shallow(ref *ProductRef) (*shallow, error) {
	b, err := r.s.ReadBlob(ref.Digest)
	if err != nil {
		return nil, fmt.Errorf("product %s: %w", ref.Name, err)
	}
	return parseShallow(ref.Name, b, ref.Items)
}

// header returns the header fields of a catalog of the base, or nil.
func (e *editor) header(contentID string) ([]jsonc.Field, error) {
	if h, ok := e.headers[contentID]; ok {
		return h, nil
	}
	cat := e.base.Catalog(contentID)
	if cat == nil {
		return nil, nil
	}
	h, err := cat.HeaderFields()
	if err != nil {
		return nil, err
	}
	e.headers[contentID] = h
	return h, nil
}

func (e *editor) cat(contentID string) *catEdit {
	c := e.cats[contentID]
	if c == nil {
		c = &catEdit{changed: map[string]*ProductRef{}, removed: map[string]bool{}}
		e.cats[contentID] = c
	}
	return c
}

// newCatalog records the header of a catalog the base does not have.
func (e *editor) newCatalog(contentID string, header []jsonc.Field) {
	if e.base.Catalog(contentID) == nil && e.cat(contentID).header == nil {
		e.cat(contentID).header = header
		e.headers[contentID] = header
	}
}

// put records the final state of a product: staged as a blob, or removed
// when it has no versions left.
func (e *editor) put(ctx context.Context, contentID string, p *shallow) error {
	c := e.cat(contentID)
	if len(p.Versions) == 0 {
		delete(c.changed, p.Name)
		c.removed[p.Name] = true
		return nil
	}
	delete(c.removed, p.Name)
	b, items, err := p.blob()
	if err != nil {
		return err
	}
	ref := &ProductRef{Name: p.Name, Versions: len(p.Versions), Items: items, Digest: digest.FromBytes(b), VersionNames: p.names()}
	if e.dryRun {
		c.changed[p.Name] = ref
		return nil
	}
	if cat := e.base.Catalog(contentID); cat != nil {
		if old := cat.Ref(p.Name); old != nil && old.Digest == ref.Digest {
			return nil // unchanged
		}
	}
	if err := e.stage(b, ref.Digest); err != nil {
		return err
	}
	c.changed[p.Name] = ref
	return nil
}

// stage hands the blob b, of digest d, to the background stager; the
// change's commit commits it.
func (e *editor) stage(b []byte, d digest.Digest) error {
	return e.stager.Add(b, cas.Expect{Size: int64(len(b)), Digest: d})
}

// wait waits for the products being staged.
func (e *editor) wait() error {
	staged, err := e.stager.Wait()
	e.staged = append(e.staged, staged...)
	return err
}

func (e *editor) discard() {
	e.stager.Discard()
	for _, st := range e.staged {
		st.Discard()
	}
	e.staged = nil
}

// doc builds the new snapshot document.
func (e *editor) doc(op, summary string) (*Doc, error) {
	d := &Doc{Format: DocFormat, Stream: e.base.Stream, Operation: op, Summary: summary, Time: e.r.s.Now().UTC()}
	ids := map[string]bool{}
	for _, c := range e.base.Catalogs {
		ids[c.ContentID] = true
	}
	for id := range e.cats {
		ids[id] = true
	}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		var cat Catalog
		if old := e.base.Catalog(id); old != nil {
			cat = Catalog{ContentID: id, Header: old.Header, Products: slices.Clone(old.Products)}
		} else {
			h, err := encodeHeader(e.cats[id].header)
			if err != nil {
				return nil, err
			}
			cat = Catalog{ContentID: id, Header: h}
		}
		if c := e.cats[id]; c != nil {
			cat.Products = slices.DeleteFunc(cat.Products, func(p ProductRef) bool { return c.removed[p.Name] || c.changed[p.Name] != nil })
			for _, ref := range c.changed {
				cat.Products = append(cat.Products, *ref)
			}
			slices.SortFunc(cat.Products, func(a, b ProductRef) int { return strings.Compare(a.Name, b.Name) })
		}
		if len(cat.Products) > 0 {
			d.Catalogs = append(d.Catalogs, cat)
		}
	}
	if d.Catalogs == nil {
		d.Catalogs = []Catalog{}
	}
	return d, nil
}

// change runs a change of the stream: plan computes the edits from the head
// (outside any lock), then the new snapshot is committed in one writer
// session if the head has not moved; if it has, plan runs again on the new
// head (a few times at most).
func (r *Repo) change(ctx context.Context, name, op string, dryRun bool, plan func(st *Stream, e *editor) error) (*Result, error) {
	var own *cas.Lease
	var held *Stream // the stream as the lease's transaction read it
	start := time.Now()
	if !dryRun {
		// The lease keeps every snapshot plan may read (heads from now
		// on) from gc until the commit, which ends it.
		lctx, l, release, sts, err := r.holdOwn(ctx, op)
		if err != nil {
			return nil, err
		}
		defer release()
		ctx, own = lctx, l
		if i := slices.IndexFunc(sts, func(st *Stream) bool { return st.Name == name }); i >= 0 {
			held = sts[i]
		}
		r.log.Debug("change: lease held", "took", time.Since(start))
	}
	for attempt := 0; ; attempt++ {
		st := held // the first attempt starts from the lease's read
		held = nil
		if st == nil {
			var err error
			if st, err = r.Stream(ctx, name); err != nil {
				return nil, err
			}
		}
		base, err := r.Doc(st.Head)
		if err != nil {
			return nil, fmt.Errorf("stream %s: head: %w", name, err)
		}
		r.log.Debug("change: head read", "took", time.Since(start))
		res := &Result{Stream: st, DryRun: dryRun}
		e := newEditor(ctx, r, base, res, dryRun)
		if err := plan(st, e); err != nil {
			e.discard()
			return nil, err
		}
		summary := summarize(len(res.Added), len(res.Removed))
		doc, err := e.doc(op, summary)
		if err != nil {
			e.discard()
			return nil, err
		}
		doc.Parent = st.Head
		r.log.Debug("change: planned", "took", time.Since(start))
		res.Summary, res.Counts = summary, doc.Counts()
		if dryRun {
			return res, nil
		}
		if len(res.Added) == 0 && len(res.Removed) == 0 {
			e.discard()
			return res, fmt.Errorf("stream %s: %w", name, ErrNothingToDo)
		}
		cur, err := r.commit(ctx, st, doc, e, own)
		if errors.Is(err, ErrHeadMoved) && attempt < 3 {
			r.log.Info("stream changed meanwhile; planning again", "stream", name)
			continue
		}
		if err != nil {
			return nil, err
		}
		res.Stream, res.Snapshot = cur, cur.Head
		r.log.Debug("change: committed", "took", time.Since(start))
		return res, nil
	}
}

// commit writes the staged product blobs and the snapshot document and
// moves the head, if the head is still the one the change started from,
// ending the change's own lease in the same session.
func (r *Repo) commit(ctx context.Context, st *Stream, doc *Doc, e *editor, own *cas.Lease) (*Stream, error) {
	defer e.discard()
	// The snapshot document is staged with the products, and committed
	// with them in one batch (one intent, one sync), before the head
	// moves to it.
	b, err := doc.encode()
	if err != nil {
		return nil, err
	}
	d := digest.FromBytes(b)
	if err := e.stage(b, d); err != nil {
		return nil, err
	}
	if err := e.wait(); err != nil {
		return nil, err
	}
	ss, err := r.s.Writer(ctx, doc.Operation)
	if err != nil {
		return nil, err
	}
	defer ss.Close()
	var cur *Stream
	if err := ss.View(func(txn cas.Txn) error {
		var err error
		cur, err = GetStream(txn, st.Name)
		return err
	}); err != nil {
		return nil, err
	}
	if cur.Head != st.Head || cur.Seq != st.Seq {
		return nil, ErrHeadMoved
	}
	if _, err := ss.Commit(ctx, e.staged...); err != nil {
		return nil, err
	}
	e.staged = nil
	if err := moveHead(ss, cur, d, doc); err != nil {
		return nil, err
	}
	if own != nil {
		// The head now holds what the lease protected.
		if err := ss.EndLease(own); err != nil {
			return nil, err
		}
	}
	return cur, nil
}

// putHead stores the encoded snapshot document b and moves the stream's
// head to it with a new history entry.
func putHead(ctx context.Context, ss *cas.Session, st *Stream, b []byte, doc *Doc) error {
	ds, err := ss.PutBytes(ctx, b)
	if err != nil {
		return err
	}
	return moveHead(ss, st, ds[0], doc)
}

// moveHead moves the stream's head to the stored snapshot document d (of
// doc) with a new history entry.
func moveHead(ss *cas.Session, st *Stream, d digest.Digest, doc *Doc) error {
	return ss.Update(func(txn cas.Txn) error {
		return appendEntry(txn, st, Entry{Snapshot: d, Time: doc.Time, Operation: doc.Operation, Summary: doc.Summary})
	})
}

func summarize(added, removed int) string {
	versions := func(n int) string {
		if n == 1 {
			return "1 version"
		}
		return fmt.Sprintf("%d versions", n)
	}
	switch {
	case added > 0 && removed > 0:
		return fmt.Sprintf("+%s, -%d", versions(added), removed)
	case added > 0:
		return "+" + versions(added)
	case removed > 0:
		return "-" + versions(removed)
	}
	return "no change"
}

// CommitDoc makes doc the new head of the stream name in the writer
// session ss, with the current head as its parent, and returns its digest.
// Every blob doc refers to must be in the store already (the caller holds
// them under a lease or in this session). For builds and test fixtures;
// the snapshot operations plan and commit through change.
func CommitDoc(ctx context.Context, ss *cas.Session, name string, doc *Doc) (digest.Digest, error) {
	var st *Stream
	if err := ss.View(func(txn cas.Txn) error {
		var err error
		st, err = GetStream(txn, name)
		return err
	}); err != nil {
		return "", err
	}
	doc.Format, doc.Stream, doc.Parent = DocFormat, name, st.Head
	if doc.Time.IsZero() {
		doc.Time = ss.Store().Now().UTC()
	}
	if doc.Catalogs == nil {
		doc.Catalogs = []Catalog{}
	}
	b, err := doc.encode()
	if err != nil {
		return "", err
	}
	if err := putHead(ctx, ss, st, b, doc); err != nil {
		return "", err
	}
	return st.Head, nil
}
