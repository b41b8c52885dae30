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
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/flock"
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
	Root   string      // publish root (absolute or relative)
	Signer *pgp.Signer // nil writes an unsigned tree
	// SignKeyPath, when set, is remembered in the store as the signing key
	// for later publishes (with the publish root, once the publish is done).
	SignKeyPath string
	Meters      progress.Factory
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

// RootLockFile is the lock of a publish root: publishes hold it shared, gc
// exclusive while it sweeps the root.
const RootLockFile = lockFile

// LockRoot takes the lock of a publish root (see RootLockFile).
func LockRoot(ctx context.Context, root string, mode flock.Mode) (*flock.Lock, error) {
	what := "publish root " + root
	if mode == flock.Exclusive {
		what += " (a publish is writing it)"
	} else {
		what += " (gc is sweeping it)"
	}
	return flock.Acquire(ctx, Layout{Root: root}.RootLock(), what, mode, time.Minute, nil)
}

// PublishSnapshot renders snapshot snap of the stream st under
// Root/<stream>/ (rollback publishes an earlier snapshot this way).
func PublishSnapshot(ctx context.Context, r *snapshot.Repo, st *snapshot.Stream, snap digest.Digest, o Options) (*Result, error) {
	root, err := filepath.Abs(o.Root)
	if err != nil {
		return nil, err
	}
	dir, err := within(root, st.Name)
	if err != nil {
		return nil, err
	}
	lay := Layout{Root: root}
	if err := snapshot.ValidStreamName(st.Name); err != nil {
		return nil, err
	}
	res := &Result{Stream: st.Name, Snapshot: snap, Dir: dir, Signed: o.Signer != nil}
	mark := string(snap) + " unsigned"
	if o.Signer != nil {
		mark = string(snap) + " signed " + o.Signer.Fingerprint()
	}
	// An unchanged head published the same way: nothing to do.
	s := r.Store()
	prev, unchanged, err := publishedAlready(ctx, s, lay, st.Name, mark, o.SignKeyPath)
	if unchanged || err != nil {
		res.Unchanged = unchanged
		return res, err
	}
	// A lease keeps the snapshot's blobs from gc while they are linked.
	ctx, release, err := r.Hold(ctx, "publish "+st.Name)
	if err != nil {
		return nil, err
	}
	defer release()
	if err := protect(ctx, s, snap); err != nil {
		return nil, err
	}
	linked := linkedBefore(r, prev, lay.Index(st.Name))
	doc, err := r.Doc(snap)
	if err != nil {
		return nil, err
	}
	c := doc.Counts()
	res.Products, res.Items = c.Products, c.Items
	streams := lay.StreamsDir(st.Name)
	for _, d := range []string{lay.DataPool(), streams} {
		if err := fsx.MkdirDurable(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := ensureDataLink(dir); err != nil {
		return nil, err
	}
	// gc sweeps the root only when no publish is writing it.
	rlk, err := LockRoot(ctx, root, flock.Shared)
	if err != nil {
		return nil, err
	}
	defer rlk.Unlock()
	// One publish of a stream at a time; the lock also guards the staging
	// directories that a killed publish left.
	lk, err := flock.Acquire(ctx, lay.StreamLock(st.Name), "publish of "+st.Name, flock.Exclusive, time.Minute, nil)
	if err != nil {
		return nil, err
	}
	defer lk.Unlock()
	live := lay.MetaDir(st.Name)
	meta, err := stage(streams, live)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(meta) // after the switch it holds the old state
	p := &publisher{r: r, s: s, root: root, dir: dir, meta: meta, o: o, res: res,
		updated: doc.Time.UTC().Format(TimeFormat), seen: map[string]bool{}, linked: linked, present: map[string]map[string]bool{},
		meter: o.Meters.New("publish "+st.Name, int64(c.Items), progress.Items)}
	defer p.meter.Done()

	var entries []indexEntry
	for ci := range doc.Catalogs {
		cat := &doc.Catalogs[ci]
		name, dt, err := p.products(ctx, cat)
		if err != nil {
			return nil, err
		}
		e := indexEntry{cid: cat.ContentID, path: MetaRel(name), datatype: dt}
		for _, pr := range cat.Products {
			e.products = append(e.products, pr.Name)
		}
		entries = append(entries, e)
	}
	// Everything the index will name is in place: make it durable.
	if err := fsx.Syncfs(root); err != nil {
		return nil, err
	}
	if err := p.writeIndex(entries); err != nil {
		return nil, err
	}
	if err := fsx.SyncDir(meta); err != nil {
		return nil, err
	}
	if err := swap(meta, live); err != nil {
		return nil, err
	}
	set := map[string]string{publishKey(root, st.Name): mark, SettingRoot: root}
	if o.SignKeyPath != "" {
		set[SettingSignKey] = o.SignKeyPath
	}
	return res, remember(ctx, s, "publish "+st.Name, set)
}

// publishedAlready reads the mark of what was last published of the
// stream in this root (prev) and says whether it is mark, with the tree
// still there: then nothing is to be written, but a new signing key path
// is remembered.
func publishedAlready(ctx context.Context, s *cas.Store, lay Layout, stream, mark, keyPath string) (prev string, unchanged bool, err error) {
	ss, err := s.Reader(ctx)
	if err != nil {
		return "", false, nil // no record to go by: publish
	}
	prev, _ = ss.Setting(publishKey(lay.Root, stream))
	savedKey, _ := ss.Setting(SettingSignKey)
	ss.Close()
	if prev != mark {
		return prev, false, nil
	}
	if _, err := os.Stat(lay.Index(stream)); err != nil {
		return prev, false, nil
	}
	if keyPath != "" && keyPath != savedKey {
		return prev, true, remember(ctx, s, "publish: remember signing key", map[string]string{SettingSignKey: keyPath})
	}
	return prev, true, nil
}

// linkedBefore lists the products of the snapshot last published here
// (prev is its remembered mark): their data is in the pool already, so
// there is no need to look for it again. Only while that tree is there
// (index is its index file): a root removed by hand is rebuilt.
func linkedBefore(r *snapshot.Repo, prev, index string) map[digest.Digest]bool {
	linked := map[digest.Digest]bool{}
	prevSnap, _, ok := strings.Cut(prev, " ")
	if _, err := os.Stat(index); !ok || err != nil {
		return linked
	}
	if pdoc, err := r.Doc(digest.Digest(prevSnap)); err == nil {
		for _, c := range pdoc.Catalogs {
			for _, pr := range c.Products {
				linked[pr.Digest] = true
			}
		}
	}
	return linked
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

// writeIndex writes the index files into the staging directory: the
// signed ones first, index.json last. (Unsigned: the staging directory
// has no signed index, so an unsigned publish over a signed one drops the
// stale signed index.)
func (p *publisher) writeIndex(entries []indexEntry) error {
	ij, err := p.index(entries, ".json")
	if err != nil {
		return err
	}
	if sg := p.o.Signer; sg != nil {
		is, err := p.index(entries, ".sjson")
		if err != nil {
			return err
		}
		if err := p.write("index.json.gpg", func(w io.Writer) error { return sg.DetachSign(w, bytes.NewReader(ij)) }); err != nil {
			return err
		}
		if err := p.write("index.sjson", func(w io.Writer) error { return sg.ClearSign(w, bytes.NewReader(is)) }); err != nil {
			return err
		}
	}
	return p.write("index.json", func(w io.Writer) error { _, err := w.Write(ij); return err })
}

// protect adds the snapshot to the lease ctx carries.
func protect(ctx context.Context, s *cas.Store, snap digest.Digest) error {
	ss, err := s.Writer(ctx, "publish: lease "+snap.String())
	if err != nil {
		return err
	}
	err = ss.AddRefs(cas.LeaseFrom(ctx), cas.Ref{Kind: cas.RefSnapshot, Digest: snap})
	if cerr := ss.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", snap, err)
	}
	return nil
}

// remember stores settings in one writer session.
func remember(ctx context.Context, s *cas.Store, op string, set map[string]string) error {
	ss, err := s.Writer(ctx, op)
	if err != nil {
		return err
	}
	defer ss.Close()
	for k, v := range set {
		if err := ss.SetSetting(k, v); err != nil {
			return err
		}
	}
	return nil
}

type publisher struct {
	r       *snapshot.Repo
	s       *cas.Store
	root    string
	dir     string
	meta    string
	o       Options
	res     *Result
	updated string
	seen    map[string]bool
	linked  map[digest.Digest]bool     // products whose data is in the pool
	present map[string]map[string]bool // data/sha256/<2 hex>/ listings, read once each
	meter   progress.Meter
}

// stage makes a new staging directory beside live (streams/v1) holding hard
// links to live's products files, which readers of the current index may
// still fetch after the switch. Staging directories left by a killed
// publish are removed first (the caller holds the stream's publish lock).
func stage(streams, live string) (string, error) {
	ents, err := os.ReadDir(streams)
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		if IsStaging(e.Name()) {
			if err := os.RemoveAll(filepath.Join(streams, e.Name())); err != nil {
				return "", err
			}
		}
	}
	dir, err := os.MkdirTemp(streams, stagePrefix)
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	old, err := os.ReadDir(live)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	for _, e := range old {
		if strings.HasPrefix(e.Name(), "index.") || strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
			continue
		}
		if err := os.Link(filepath.Join(live, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// swap makes the staging directory the live streams/v1 in one atomic step:
// renameat2 RENAME_EXCHANGE (the old state lands in the staging path), or a
// plain rename for a first publish. A reader never sees an index without its
// products files or a detached signature of another index, and a crash
// leaves the old state or the new one.
func swap(staging, live string) error {
	if _, err := os.Lstat(live); errors.Is(err, fs.ErrNotExist) {
		if err := os.Rename(staging, live); err != nil {
			return err
		}
		return fsx.SyncDir(filepath.Dir(live))
	}
	if err := unix.Renameat2(unix.AT_FDCWD, staging, unix.AT_FDCWD, live, unix.RENAME_EXCHANGE); err != nil {
		return fmt.Errorf("switch %s: %w (the file system must support renameat2 RENAME_EXCHANGE)", live, err)
	}
	return fsx.SyncDir(filepath.Dir(live))
}

// ensureDataLink makes dir/data a symlink to ../data.
func ensureDataLink(dir string) error {
	p := filepath.Join(dir, DataDir)
	if t, err := os.Readlink(p); err == nil {
		if t == "../data" {
			return nil
		}
		return fmt.Errorf("%s: is a link to %s, want ../data", p, t)
	} else if _, serr := os.Lstat(p); serr == nil {
		return fmt.Errorf("%s: exists and is not the link to ../data", p)
	}
	tmp := filepath.Join(dir, fsx.TempName(".data.", ".tmp"))
	if err := os.Symlink("../data", tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return err
	}
	return fsx.SyncDir(dir)
}

// products renders the products file of a catalog, linking the data of
// every item first, and returns its file name and its datatype.
func (p *publisher) products(ctx context.Context, cat *snapshot.Catalog) (name, datatype string, err error) {
	header, err := cat.HeaderFields()
	if err != nil {
		return "", "", err
	}
	header = jsonc.Set(header, "updated", jsonc.Quote(p.updated))
	header = jsonc.Set(header, "format", jsonc.Quote("products:1.0"))
	datatype = snapshot.StringField(header, "datatype")
	if datatype == "" {
		datatype = "image-ids"
		header = jsonc.Set(header, "datatype", jsonc.Quote(datatype))
	}
	tmp, err := os.CreateTemp(p.meta, ".products.*.tmp")
	if err != nil {
		return "", "", err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(tmp, h), 1<<20)
	w := &jsonc.Writer{Indent: " "}
	flush := func() error {
		_, err := bw.Write(w.Buf)
		w.Buf = w.Buf[:0]
		return err
	}
	err = w.FieldsWith(header, "products", func() error {
		w.Buf = append(w.Buf, '{')
		for i := range cat.Products {
			if err := ctx.Err(); err != nil {
				return err
			}
			pr, err := p.r.Product(&cat.Products[i])
			if err != nil {
				return err
			}
			if err := p.linkData(ctx, pr, !p.linked[cat.Products[i].Digest]); err != nil {
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
			p.meter.Add(int64(cat.Products[i].Items))
		}
		w.Newline(1)
		w.Buf = append(w.Buf, '}')
		return nil
	}, 0)
	if err != nil {
		return "", "", fmt.Errorf("render %s: %w", cat.ContentID, err)
	}
	w.Buf = append(w.Buf, '\n')
	if err := flush(); err != nil {
		return "", "", err
	}
	if err := bw.Flush(); err != nil {
		return "", "", err
	}
	stem := cat.ContentID + "." + hex.EncodeToString(h.Sum(nil))[:16]
	final, err := within(p.meta, stem+".json")
	if err != nil {
		return "", "", err
	}
	if _, err := os.Stat(final); err == nil {
		return stem + ".json", datatype, nil // the same content is published already
	}
	if err := tmp.Chmod(0o644); err != nil { // CreateTemp made it 0600
		return "", "", err
	}
	if err := tmp.Sync(); err != nil {
		return "", "", err
	}
	if p.o.Signer != nil {
		for _, ext := range []string{".sjson", ".json.gpg"} {
			if _, err := tmp.Seek(0, io.SeekStart); err != nil {
				return "", "", err
			}
			sign := p.o.Signer.ClearSign
			if ext == ".json.gpg" {
				sign = p.o.Signer.DetachSign
			}
			if err := p.write(stem+ext, func(w io.Writer) error { return sign(w, tmp) }); err != nil {
				return "", "", err
			}
		}
	}
	// The .json last: its presence says the three are complete.
	if err := os.Rename(tmp.Name(), final); err != nil {
		return "", "", err
	}
	p.res.FilesWritten = append(p.res.FilesWritten, MetaRel(stem+".json"))
	return stem + ".json", datatype, nil
}

// linkData puts the bytes of every item of pr in the shared data pool (when
// check is set) and points the items' paths at them.
func (p *publisher) linkData(ctx context.Context, pr *snapshot.Product, check bool) error {
	for vi := range pr.Versions {
		v := &pr.Versions[vi]
		for ii := range v.Items {
			it := &v.Items[ii]
			sum := snapshot.StringField(it.Fields, "sha256")
			if len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "" {
				return fmt.Errorf("product %s version %s item %s: %w", pr.Name, v.Name, it.Name, ErrNoSHA256)
			}
			if check && !p.seen[sum] {
				if err := p.ensureData(ctx, sum); err != nil {
					return fmt.Errorf("product %s version %s item %s: %w", pr.Name, v.Name, it.Name, err)
				}
				p.seen[sum] = true
			}
			it.Fields = jsonc.Set(it.Fields, "path", jsonc.Quote(DataRel(sum)))
		}
	}
	return nil
}

// ensureData puts the blob sum in the data pool: a hard link to its file
// when the blob store keeps files on this machine (a copy across file
// systems), else a copy streamed from the blob store.
func (p *publisher) ensureData(ctx context.Context, sum string) error {
	dst := Layout{Root: p.root}.DataFile(sum)
	// One directory listing per prefix instead of one lstat per file: at
	// 400k items that is 256 listings against 216,000 system calls.
	dir := p.present[sum[:2]]
	if dir == nil {
		dir = map[string]bool{}
		ents, err := os.ReadDir(filepath.Dir(dst))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		for _, e := range ents {
			dir[e.Name()] = true
		}
		p.present[sum[:2]] = dir
	}
	if dir[sum] {
		return nil
	}
	dir[sum] = true
	d := digest.NewDigestFromEncoded(digest.SHA256, sum)
	var blobs cas.BlobStore = p.s.Blobs()
	info, err := blobs.Stat(ctx, d)
	if err != nil {
		return fmt.Errorf("blob %s: %w", d, err)
	}
	if err := fsx.MkdirDurable(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	err = errNoLocalFile
	if lf, ok := blobs.(cas.LocalFiles); ok {
		var src string
		if src, err = lf.BlobFilePath(d); err == nil {
			err = os.Link(src, dst)
		}
	}
	switch {
	case err == nil, errors.Is(err, fs.ErrExist):
	case errors.Is(err, errNoLocalFile), errors.Is(err, unix.EXDEV), errors.Is(err, unix.EPERM), errors.Is(err, unix.EMLINK):
		if err := copyBlob(ctx, blobs, d, dst); err != nil {
			return err
		}
		p.res.DataCopied++
	default:
		return err
	}
	p.res.DataNew++
	p.res.DataBytes += info.Size
	return nil
}

var errNoLocalFile = errors.New("the blob store keeps no local file")

// copyBlob copies a blob to dst through a temp file: fsync, rename.
func copyBlob(ctx context.Context, blobs cas.BlobStore, d digest.Digest, dst string) error {
	in, err := blobs.Open(ctx, d)
	if err != nil {
		return err
	}
	defer in.Close()
	return fsx.WriteAtomic(dst, 0o444, func(w io.Writer) error { _, err := io.Copy(w, in); return err })
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

// write writes a metadata file of the stream atomically.
func (p *publisher) write(name string, fn func(io.Writer) error) error {
	path, err := within(p.meta, name)
	if err != nil {
		return err
	}
	if err := fsx.WriteAtomic(path, 0o644, fn); err != nil {
		return err
	}
	p.res.FilesWritten = append(p.res.FilesWritten, MetaRel(name))
	return nil
}
