package publish

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/catalog"
	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/internal/fsx"
	"github.com/mephstore/mephstore/internal/jsonc"
	"github.com/mephstore/mephstore/internal/pgp"
	"github.com/mephstore/mephstore/internal/progress"
	"github.com/mephstore/mephstore/snapshot"
)

// Settings remembered in the store.
const (
	SettingRoot    = "publish-root"
	SettingSignKey = "sign-key"
)

// ErrNoSHA256 is wrapped when an item cannot be served by content address.
var ErrNoSHA256 = errors.New("item has no sha256")

// Options tune Publish.
type Options struct {
	Root   string      // publish root directory (absolute or relative), when Target is nil
	Target Target      // where to publish; nil: a DirTarget at Root
	Signer *pgp.Signer // nil writes an unsigned tree
	// SignKeyPath, when set, is remembered in the store as the signing key
	// for later publishes (with the publish root, once the publish is done).
	SignKeyPath string
	Meters      progress.Factory
}

// target is the target of o.
func (o Options) target() (Target, error) {
	if o.Target != nil {
		return o.Target, nil
	}
	return OpenTarget(o.Root)
}

// Result says what a publish did.
type Result struct {
	Stream       string        `json:"stream"`
	Snapshot     digest.Digest `json:"snapshot"`
	Dir          string        `json:"dir"`
	Signed       bool          `json:"signed"`
	Unchanged    bool          `json:"unchanged"`
	Products     int           `json:"products"`
	Items        int           `json:"items"`
	DataNew      int           `json:"data_new"`      // data files added to the shared pool
	DataBytes    int64         `json:"data_bytes"`    // their bytes
	DataCopied   int           `json:"data_copied"`   // of those, copied (not hard-linked)
	DataChecked  int           `json:"data_checked"`  // items whose data was looked for (the rest were linked by the last publish here)
	FilesWritten []string      `json:"files_written"` // metadata files written, relative to Dir
}

// TimeFormat is how simplestreams writes "updated".
const TimeFormat = "Mon, 02 Jan 2006 15:04:05 -0700"

// Publish renders the head of the stream under Root/<stream>/.
func Publish(ctx context.Context, r *snapshot.Repo, stream string, o Options) (*Result, error) {
	st, err := r.Stream(ctx, stream)
	if err != nil {
		return nil, err
	}
	return PublishSnapshot(ctx, r, st, st.Head, o)
}

// PublishedPrefix starts the names of the settings that remember what was
// published where: PublishedPrefix + root + "\x00" + stream.
const PublishedPrefix = "published:"

func publishKey(root, stream string) string { return PublishedPrefix + root + "\x00" + stream }

// PublishSnapshot renders snapshot snap of the stream st under
// Root/<stream>/ (rollback publishes an earlier snapshot this way).
func PublishSnapshot(ctx context.Context, r *snapshot.Repo, st *snapshot.Stream, snap digest.Digest, o Options) (*Result, error) {
	t, err := o.target()
	if err != nil {
		return nil, err
	}
	if err := snapshot.ValidStreamName(st.Name); err != nil {
		return nil, err
	}
	dir, err := within(t.String(), st.Name)
	if err != nil {
		return nil, err
	}
	if sl, ok := t.(interface{ StreamLocation(string) string }); ok {
		dir = sl.StreamLocation(st.Name) // a URL, not a path to join
	}
	res := &Result{Stream: st.Name, Snapshot: snap, Dir: dir, Signed: o.Signer != nil}
	mark := string(snap) + " unsigned"
	if o.Signer != nil {
		mark = string(snap) + " signed " + o.Signer.Fingerprint()
	}
	// An unchanged head published the same way: nothing to do.
	s := r.Store()
	prev, unchanged, err := publishedAlready(ctx, s, t, st.Name, mark, o.SignKeyPath)
	if unchanged || err != nil {
		res.Unchanged = unchanged
		return res, err
	}
	// A lease, taken with the snapshot in it in one unit of work, keeps
	// the snapshot's blobs from gc while they are linked.
	// own (nil under a caller's lease) is ended with the settings.
	ctx, own, release, err := r.HoldOwn(ctx, "publish "+st.Name, cas.Ref{Kind: cas.RefSnapshot, Digest: snap})
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", snap, err)
	}
	defer release()
	p, err := newPublisher(ctx, r, t, st.Name, snap, prev, o, res)
	if err != nil {
		return nil, err
	}
	// The store records the publish (and ends the lease, nil under a
	// caller's) once the index it wrote is known.
	record := func(ctx context.Context, sums <-chan string) error {
		return s.WithWriter(ctx, "publish "+st.Name, func(ss *cas.Session) error {
			sum, ok := <-sums
			if !ok {
				return nil // no index was written
			}
			set := map[string]string{publishKey(t.String(), st.Name): mark + indexSep + sum, SettingRoot: t.String()}
			if o.SignKeyPath != "" {
				set[SettingSignKey] = o.SignKeyPath
			}
			return rememberIn(ss, set, own)
		})
	}
	if err := p.run(ctx, record); err != nil {
		return nil, err
	}
	return res, nil
}

// indexSep joins, in what the store remembers of a publish, its mark and
// the sha256 of the index.json it wrote.
const indexSep = " index "

// maxIndexSize bounds the index read to compare it with the one a publish
// wrote (an index names products files: tens of KiB for 400k items).
const maxIndexSize = 64 << 20

// publishedAlready reads what was last published of the stream in this
// root (prev) and says whether it is mark with the stream's index still
// the one that publish wrote (same sha256): then nothing is to be written,
// but a new signing key path is remembered. A root whose index changed
// since (put back from an older copy, edited by hand) is published again;
// so is one remembered by a mephstore that did not keep the index's sum.
func publishedAlready(ctx context.Context, s *cas.Store, t Target, stream, mark, keyPath string) (prev string, unchanged bool, err error) {
	ss, err := s.Reader(ctx)
	if err != nil {
		return "", false, nil // no record to go by: publish
	}
	prev, _ = ss.Setting(publishKey(t.String(), stream))
	savedKey, _ := ss.Setting(SettingSignKey)
	ss.Close()
	prevMark, sum, _ := strings.Cut(prev, indexSep)
	if prevMark != mark || sum == "" {
		return prev, false, nil
	}
	if got, err := indexSum(ctx, t, stream); err != nil || got != sum {
		return prev, false, nil
	}
	if keyPath != "" && keyPath != savedKey {
		return prev, true, remember(ctx, s, "publish: remember signing key", map[string]string{SettingSignKey: keyPath})
	}
	return prev, true, nil
}

// indexSum is the sha256 (hex) of the stream's index.json in the target.
func indexSum(ctx context.Context, t Target, stream string) (string, error) {
	rc, err := t.Open(ctx, Layout{}.Index(stream))
	if err != nil {
		return "", err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(rc, maxIndexSize+1))
	if err != nil {
		return "", err
	}
	if n > maxIndexSize {
		return "", fmt.Errorf("%s: %w", Layout{}.Index(stream), snapshot.ErrTooLarge)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// linkedBefore lists the products of the snapshot last published here
// (prev is its remembered mark): their data is in the pool already, so
// there is no need to look for it again. Only while that tree is there: a
// root removed by hand is rebuilt. It also returns that snapshot's
// products by content id and name (before), whose versions a changed
// product may share.
func linkedBefore(ctx context.Context, r *snapshot.Repo, t Target, prev, stream string) (linked map[digest.Digest]bool, before map[string]*snapshot.ProductRef) {
	linked, before = map[digest.Digest]bool{}, map[string]*snapshot.ProductRef{}
	prevSnap, _, ok := strings.Cut(prev, " ")
	if _, err := t.Stat(ctx, Layout{}.Index(stream)); !ok || err != nil {
		return linked, before
	}
	if pdoc, err := r.Doc(digest.Digest(prevSnap)); err == nil {
		for ci := range pdoc.Catalogs {
			c := &pdoc.Catalogs[ci]
			for pi := range c.Products {
				pr := &c.Products[pi]
				linked[pr.Digest] = true
				before[c.ContentID+"\x00"+pr.Name] = pr
			}
		}
	}
	return linked, before
}

// earlier names, for a product whose data is not known to be in the pool,
// the blob of the same product the previous publish to this root rendered:
// the read-ahead compares their versions, and those the same byte for byte
// are linked already. After an insert of one version every product has
// changed, and this leaves only the new version's items to look for. It
// costs a read of the previous blob one level deep, less than looking for
// its items only while that blob is not much larger (clean-md keeps 3
// versions of 40: then the items are looked for).
func (p *publisher) earlier(cid string) func(*snapshot.ProductRef) digest.Digest {
	return func(ref *snapshot.ProductRef) digest.Digest {
		prev := p.before[cid+"\x00"+ref.Name]
		if p.linked[ref.Digest] || prev == nil || prev.Versions > 2*ref.Versions || !slices.ContainsFunc(ref.VersionNames, prev.Has) {
			return ""
		}
		return prev.Digest
	}
}

// indexEntry is one products file as the index names it.
type indexEntry struct {
	cid, path, datatype string
	products            []string
}

// index renders the index naming the entries' products files with the
// extension ext (.json, or .sjson for the signed index).
func (p *publisher) index(entries []indexEntry, ext string) ([]byte, error) {
	idx := map[string]any{}
	for _, e := range entries {
		idx[e.cid] = map[string]any{"datatype": e.datatype, "format": "products:1.0",
			"path": strings.TrimSuffix(e.path, ".json") + ext, "products": e.products, "updated": p.updated}
	}
	raw, err := json.Marshal(map[string]any{"format": "index:1.0", "index": idx, "updated": p.updated})
	if err != nil {
		return nil, err
	}
	out, err := jsonc.Canonical(raw, " ")
	return append(out, '\n'), err
}

// indexFiles renders the index files: the signed ones first, index.json
// last. (Unsigned: there is no signed index, so an unsigned publish over a
// signed one drops the stale signed index.)
func (p *publisher) indexFiles(entries []indexEntry) ([]File, error) {
	ij, err := p.index(entries, ".json")
	if err != nil {
		return nil, err
	}
	var files []File
	if sg := p.o.Signer; sg != nil {
		is, err := p.index(entries, ".sjson")
		if err != nil {
			return nil, err
		}
		var det, clear bytes.Buffer
		if err := sg.DetachSign(&det, bytes.NewReader(ij)); err != nil {
			return nil, err
		}
		if err := sg.ClearSign(&clear, bytes.NewReader(is)); err != nil {
			return nil, err
		}
		files = append(files, File{Name: "index.json.gpg", Data: det.Bytes()}, File{Name: "index.sjson", Data: clear.Bytes()})
	}
	files = append(files, File{Name: IndexFile, Data: ij})
	for _, f := range files {
		p.res.FilesWritten = append(p.res.FilesWritten, MetaRel(f.Name))
	}
	return files, nil
}

// remember stores settings in one writer session.
func remember(ctx context.Context, s *cas.Store, op string, set map[string]string) error {
	return s.WithWriter(ctx, op, func(ss *cas.Session) error { return rememberIn(ss, set, nil) })
}

// rememberIn stores settings in the writer session ss, ending lease (when
// not nil) in it: the published tree no longer needs it.
func rememberIn(ss *cas.Session, set map[string]string, lease *cas.Lease) error {
	if err := ss.SetSettings(set); err != nil {
		return err
	}
	if lease != nil {
		return ss.EndLease(lease)
	}
	return nil
}

// publisher is one publish of a snapshot of a stream to a target.
type publisher struct {
	r       *snapshot.Repo
	s       *cas.Store
	t       Target
	stream  string
	doc     *snapshot.Doc
	o       Options
	res     *Result
	updated string
	seen    map[string]bool
	linked  map[digest.Digest]bool          // products whose data is in the pool
	before  map[string]*snapshot.ProductRef // the last publish's products by content id and name
	present map[string]map[string]bool      // data/sha256/<2 hex>/ listings, read once each (targets without AddBlob)
	links   *linker
}

// newPublisher reads the snapshot and what the previous publish linked.
func newPublisher(ctx context.Context, r *snapshot.Repo, t Target, stream string, snap digest.Digest, prev string, o Options, res *Result) (*publisher, error) {
	doc, err := r.Doc(snap)
	if err != nil {
		return nil, err
	}
	c := doc.Counts()
	res.Products, res.Items = c.Products, c.Items
	linked, before := linkedBefore(ctx, r, t, prev, stream)
	return &publisher{r: r, s: r.Store(), t: t, stream: stream, doc: doc, o: o, res: res,
		updated: doc.Time.UTC().Format(TimeFormat), seen: map[string]bool{},
		linked: linked, before: before, present: map[string]map[string]bool{},
		links: newLinker(t, stream, r.Store().Blobs())}, nil
}

// run writes the tree under the target's locks: data and products files,
// then (made durable) the index. record, once the data is durable, records
// the publish in the store with the sha256 of the index.json it is given
// (nothing when the channel closes without one), while the index is
// switched: a store that remembers an index its root lacks (a crash in
// between, a failed switch) publishes again (publishedAlready compares
// the sums), and the data it counts as linked is there.
func (p *publisher) run(ctx context.Context, record func(context.Context, <-chan string) error) error {
	// gc sweeps the root only when no publish is writing it.
	unlockRoot, err := p.t.Lock(ctx, "", false)
	if err != nil {
		return err
	}
	defer unlockRoot()
	unlock, err := p.t.Lock(ctx, p.stream, true)
	if err != nil {
		return err
	}
	defer unlock()
	if err := p.t.Begin(ctx, p.stream); err != nil {
		return err
	}
	defer p.links.wait() // nothing runs past the locks
	meter := p.o.Meters.New("publish "+p.stream, int64(p.res.Items), progress.Items)
	defer meter.Done()
	var entries []indexEntry
	for ci := range p.doc.Catalogs {
		cat := &p.doc.Catalogs[ci]
		name, dt, err := p.products(ctx, cat, meter)
		if err != nil {
			return err
		}
		e := indexEntry{cid: cat.ContentID, path: MetaRel(name), datatype: dt}
		for _, pr := range cat.Products {
			e.products = append(e.products, pr.Name)
		}
		entries = append(entries, e)
	}
	n, err := p.links.wait()
	if err != nil {
		return err
	}
	p.res.DataNew, p.res.DataBytes, p.res.DataCopied = n.added, n.bytes, n.copied
	sums := make(chan string, 1)
	recorded := make(chan error, 1)
	startRecord := func() { go func() { recorded <- record(ctx, sums) }() }
	// The record's writer session writes nothing before it has the
	// index's sum, sent once the data is durable, so it may open while
	// the sync runs: when nothing was copied, that sync flushes only
	// links and metadata, a short wait for the store's other writers.
	early := n.copied == 0
	if early {
		startRecord()
	}
	// Everything the index will name is in place: make it durable.
	if err := p.t.Sync(ctx); err != nil {
		close(sums)
		if early {
			return errors.Join(err, <-recorded)
		}
		return err
	}
	if !early {
		startRecord()
	}
	files, err := p.indexFiles(entries)
	if err != nil {
		close(sums)
		return errors.Join(err, <-recorded)
	}
	sum := sha256.Sum256(files[len(files)-1].Data) // index.json comes last
	sums <- hex.EncodeToString(sum[:])
	close(sums)
	err = p.t.SwitchIndex(ctx, p.stream, files)
	return errors.Join(err, <-recorded)
}

// header is the products file header of a catalog (its fields but for
// products), with its datatype.
func (p *publisher) header(cat *snapshot.Catalog) ([]jsonc.Field, string, error) {
	header, err := cat.HeaderFields()
	if err != nil {
		return nil, "", err
	}
	header = jsonc.Set(header, "updated", jsonc.Quote(p.updated))
	header = jsonc.Set(header, "format", jsonc.Quote("products:1.0"))
	datatype := catalog.StringField(header, "datatype")
	if datatype == "" {
		datatype = "image-ids"
		header = jsonc.Set(header, "datatype", jsonc.Quote(datatype))
	}
	return header, datatype, nil
}

// products renders the products file of a catalog, linking the data of
// every item first, and returns its file name and its datatype.
func (p *publisher) products(ctx context.Context, cat *snapshot.Catalog, meter progress.Meter) (name, datatype string, err error) {
	header, datatype, err := p.header(cat)
	if err != nil {
		return "", "", err
	}
	f, err := p.t.Create(ctx, p.stream)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, h), fsx.WriteBuffer)
	if err := p.render(ctx, bw, cat, header, meter); err != nil {
		return "", "", fmt.Errorf("render %s: %w", cat.ContentID, err)
	}
	if err := bw.Flush(); err != nil {
		return "", "", err
	}
	stem := cat.ContentID + "." + hex.EncodeToString(h.Sum(nil))[:16]
	name = stem + ".json"
	if _, err := within(p.res.Dir, name); err != nil {
		return "", "", err
	}
	rel := Layout{}.Meta(p.stream, name)
	if _, err := p.t.Stat(ctx, rel); err == nil {
		return name, datatype, nil // the same content is published already
	}
	if err := p.sign(ctx, f, stem); err != nil {
		return "", "", err
	}
	// The .json last: its presence says the three are complete.
	if err := f.Commit(ctx, rel); err != nil {
		return "", "", err
	}
	p.res.FilesWritten = append(p.res.FilesWritten, MetaRel(name))
	return name, datatype, nil
}

// render writes a catalog's products file on w.
func (p *publisher) render(ctx context.Context, bw io.Writer, cat *snapshot.Catalog, header []jsonc.Field, meter progress.Meter) error {
	w := &jsonc.Writer{Indent: " "}
	flush := func() error {
		_, err := bw.Write(w.Buf)
		w.Buf = w.Buf[:0]
		return err
	}
	ahead := p.r.ReadAhead(cat.Products, p.earlier(cat.ContentID))
	defer ahead.Close()
	err := w.FieldsWith(header, "products", func() error {
		w.Buf = append(w.Buf, '{')
		for i := range cat.Products {
			if err := ctx.Err(); err != nil {
				return err
			}
			pr, err := ahead.Next()
			if err != nil {
				return err
			}
			if err := p.linkData(ctx, pr.Product, !p.linked[cat.Products[i].Digest], pr.Same); err != nil {
				return err
			}
			if i > 0 {
				w.Buf = append(w.Buf, ',')
			}
			w.Newline(2)
			w.Key(pr.Name)
			if err := pr.Encode(w, 2); err != nil {
				return err
			}
			if err := flush(); err != nil {
				return err
			}
			meter.Add(int64(cat.Products[i].Items))
		}
		w.Newline(1)
		w.Buf = append(w.Buf, '}')
		return nil
	}, 0)
	if err != nil {
		return err
	}
	w.Buf = append(w.Buf, '\n')
	return flush()
}

// sign writes the clear-signed (.sjson) and detached (.json.gpg)
// signatures of the products file f, when the publish is signed.
func (p *publisher) sign(ctx context.Context, f FileWriter, stem string) error {
	sg := p.o.Signer
	if sg == nil {
		return nil
	}
	for _, ext := range []string{".sjson", ".json.gpg"} {
		body, err := f.Contents()
		if err != nil {
			return err
		}
		sign := sg.ClearSign
		if ext == ".json.gpg" {
			sign = sg.DetachSign
		}
		if _, err := within(p.res.Dir, stem+ext); err != nil {
			return err
		}
		if err := put(ctx, p.t, p.stream, Layout{}.Meta(p.stream, stem+ext), func(w io.Writer) error { return sign(w, body) }); err != nil {
			return err
		}
		p.res.FilesWritten = append(p.res.FilesWritten, MetaRel(stem+ext))
	}
	return nil
}

// linkData puts the bytes of every item of pr in the shared data pool (when
// check is set; not for the versions in same, linked before) and points
// the items' paths at them.
func (p *publisher) linkData(ctx context.Context, pr *catalog.Product, check bool, same map[string]bool) error {
	for vi := range pr.Versions {
		v := &pr.Versions[vi]
		check := check && !same[v.Name]
		for ii := range v.Items {
			it := &v.Items[ii]
			sum := catalog.StringField(it.Fields, "sha256")
			if len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "" {
				return fmt.Errorf("product %s version %s item %s: %w", pr.Name, v.Name, it.Name, ErrNoSHA256)
			}
			if check && !p.seen[sum] {
				raw, _ := jsonc.Get(it.Fields, "size")
				size, _ := strconv.ParseInt(string(raw), 10, 64)
				where := func() string { return fmt.Sprintf("product %s version %s item %s", pr.Name, v.Name, it.Name) }
				if err := p.ensureData(ctx, sum, size, where); err != nil {
					return err
				}
				p.seen[sum] = true
				p.res.DataChecked++
			}
			it.Fields = jsonc.Set(it.Fields, "path", jsonc.Quote(DataRel(sum)))
		}
	}
	return nil
}

// ensureData puts the blob sum in the data pool unless it is there; size
// is the item's (for the result's byte count). A target that adds a blob
// only where it is missing (blobAdder) is asked straight away; on others
// the data directory is listed first.
func (p *publisher) ensureData(ctx context.Context, sum string, size int64, where func() string) error {
	if !p.links.looks {
		dir, err := p.presentDir(ctx, sum)
		if err != nil {
			return err
		}
		if dir[sum] {
			return nil
		}
		dir[sum] = true
	}
	return p.links.put(ctx, sum, size, where)
}

// blobAdder is the optional capability of a target that puts a blob only
// where it is missing and says whether it did (a directory: a link fails
// on an existing name). Checking the data of a publish then costs one
// call per item to check instead of a listing of the whole data pool: at
// 400k items in the root and 6k to check, a twentieth of the names.
type blobAdder interface {
	AddBlob(ctx context.Context, stream string, blobs cas.BlobStore, d digest.Digest) (added, copied bool, err error)
}

// fileLister is the optional capability of a target that lists every
// file below a directory in one go (a bucket: a thousand keys a request,
// whatever the depth).
type fileLister interface {
	ListFiles(ctx context.Context, dir string, fn func(rel string) error) error
}

// presentDir is the set of the stream's data files in sum's two-hex
// directory, listed once, or the whole data tree in one listing where
// the target can.
func (p *publisher) presentDir(ctx context.Context, sum string) (map[string]bool, error) {
	if dir := p.present[sum[:2]]; dir != nil {
		return dir, nil
	}
	dirPath := path.Dir(p.t.DataPath(p.stream, sum))
	lf, ok := p.t.(fileLister)
	if !ok {
		dir := map[string]bool{}
		err := p.t.List(ctx, dirPath, func(e Entry) error { dir[e.Name] = true; return nil })
		p.present[sum[:2]] = dir
		return dir, err
	}
	for i := range 256 {
		p.present[fmt.Sprintf("%02x", i)] = map[string]bool{}
	}
	err := lf.ListFiles(ctx, path.Dir(dirPath), func(rel string) error {
		if d, name, ok := strings.Cut(rel, "/"); ok && p.present[d] != nil && !strings.Contains(name, "/") {
			p.present[d][name] = true
		}
		return nil
	})
	return p.present[sum[:2]], err
}

// linker runs a target's PutBlob (or AddBlob) calls on a few goroutines:
// a publish links tens of thousands of files, one system call each,
// which the kernel runs in parallel across directories.
type linker struct {
	stream string
	blobs  cas.BlobStore
	// add is the target's AddBlob, or its PutBlob of a blob the caller
	// found missing; looks says it is AddBlob (it looks for itself).
	add   func(ctx context.Context, stream string, blobs cas.BlobStore, d digest.Digest) (added, copied bool, err error)
	looks bool
	sem   chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	err   error
	n     linked
}

// linked counts what a linker put: data files added, their bytes, and
// how many of them were copies rather than links.
type linked struct {
	added, copied int
	bytes         int64
}

func newLinker(t Target, stream string, blobs cas.BlobStore) *linker {
	l := &linker{stream: stream, blobs: blobs, sem: make(chan struct{}, 4)}
	if a, ok := t.(blobAdder); ok {
		l.add, l.looks = a.AddBlob, true
	} else {
		l.add = func(ctx context.Context, stream string, blobs cas.BlobStore, d digest.Digest) (bool, bool, error) {
			copied, err := t.PutBlob(ctx, stream, blobs, d)
			return err == nil, copied, err
		}
	}
	return l
}

// put starts putting blob sum of size bytes on a goroutine of its own, a
// few at a time; it returns the first error of an earlier put.
func (l *linker) put(ctx context.Context, sum string, size int64, where func() string) error {
	if err := l.failed(); err != nil {
		return err
	}
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	l.wg.Add(1)
	go func() {
		defer func() { <-l.sem; l.wg.Done() }()
		d := digest.NewDigestFromEncoded(digest.SHA256, sum)
		added, copied, err := l.add(ctx, l.stream, l.blobs, d)
		l.mu.Lock()
		defer l.mu.Unlock()
		if err != nil && l.err == nil {
			l.err = fmt.Errorf("%s: blob %s: %w", where(), d, err)
		}
		if added {
			l.n.added++
			l.n.bytes += size
		}
		if copied {
			l.n.copied++
		}
	}()
	return nil
}

func (l *linker) failed() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// wait waits for every put and returns the first error and what was put.
func (l *linker) wait() (linked, error) {
	l.wg.Wait()
	return l.n, l.failed()
}

// ErrUnsafeName is wrapped when a name from a snapshot would put a
// published file anywhere but directly in its directory.
var ErrUnsafeName = errors.New("unsafe file name")

// within is dir/name for a name that is one plain file-name component: no
// separator, not "." or "..", not hidden, no NUL. Every file a publish
// names after metadata goes through it, whatever insert let in.
func within(dir, name string) (string, error) {
	if name == "" || name == "." || name == ".." || strings.HasPrefix(name, ".") ||
		strings.ContainsAny(name, "/\\\x00") || len(name) > 255 {
		return "", fmt.Errorf("%q: %w", name, ErrUnsafeName)
	}
	p := filepath.Join(dir, name)
	if filepath.Dir(p) != filepath.Clean(dir) {
		return "", fmt.Errorf("%q: %w", name, ErrUnsafeName)
	}
	return p, nil
}
