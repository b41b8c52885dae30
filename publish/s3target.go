package publish

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/s3store"
)

// S3Target publishes to a bucket prefix, read by MAAS or sstream-mirror
// over plain HTTP from the server (or a website endpoint in front of it).
//
// Its layout is the directory target's, with one difference: a bucket has
// no links, so each stream holds its own data files
// (<stream>/data/sha256/…, copied server-side from the pool; once per
// stream). Every object is written whole by one PUT or one completed
// multipart upload, so no reader ever sees part of a file.
//
// What a reader may see during a publish: data files and products files
// (named by their content) appear first and are never changed; then
// index.sjson and index.json.gpg are written, then index.json last. A
// reader that fetches index.json during the switch gets the old or the new
// one, each naming products files that are there. A reader that fetches
// index.sjson just before and index.json just after the switch sees two
// different (each valid, each signed or complete) generations; clients
// read one index and follow it, so they see one consistent tree.
type S3Target struct {
	b *s3store.Bucket
}

var _ Target = (*S3Target)(nil)

// NewS3Target is the publish root at root (s3://bucket/prefix, with
// ?endpoint=URL or the endpoint from the environment). It checks that the
// bucket exists and the credentials work.
func NewS3Target(ctx context.Context, root string) (*S3Target, error) {
	cfg, err := s3store.ParseRoot(root, "")
	if err != nil {
		return nil, err
	}
	b, err := s3store.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &S3Target{b: b}, nil
}

// String is the root with its endpoint: what the store remembers.
func (t *S3Target) String() string { return t.b.URL() }

// StreamLocation is where a stream is published: s3://bucket/prefix/stream
// (with the endpoint query).
func (t *S3Target) StreamLocation(stream string) string {
	loc, query, _ := strings.Cut(t.b.URL(), "?")
	return loc + "/" + stream + "?" + query
}

// check refuses paths that are not clean and relative.
func (t *S3Target) check(rel string) error {
	if rel == "" || path.IsAbs(rel) || path.Clean(rel) != rel || strings.ContainsAny(rel, "\\\x00") ||
		slices.Contains(strings.Split(rel, "/"), "..") {
		return fmt.Errorf("%q: %w", rel, ErrBadPath)
	}
	return nil
}

// Lock takes the root's lock (shared or exclusive) or a stream's, as
// lock objects under .locks/ (s3store.Bucket.Lock).
func (t *S3Target) Lock(ctx context.Context, stream string, exclusive bool) (func(), error) {
	name := "root"
	if stream != "" {
		if err := t.check(stream); err != nil {
			return nil, err
		}
		name = "stream-" + strings.ReplaceAll(stream, "/", "-")
	}
	return t.b.Lock(ctx, ".locks", name, exclusive)
}

// Begin aborts the unfinished uploads a killed publish left.
func (t *S3Target) Begin(ctx context.Context, stream string) error {
	if err := t.check(stream); err != nil {
		return err
	}
	return t.b.AbortUploads(ctx, stream+"/")
}

// Create buffers a file in a local temp file until Commit uploads it.
func (t *S3Target) Create(ctx context.Context, stream string) (FileWriter, error) {
	f, err := os.CreateTemp("", "mephstore-publish-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name()) // unnamed: nothing to clean after a crash
	return &s3File{t: t, f: f}, nil
}

type s3File struct {
	t    *S3Target
	f    *os.File
	n    int64
	done bool
}

func (w *s3File) Write(b []byte) (int, error) {
	n, err := w.f.Write(b)
	w.n += int64(n)
	return n, err
}

func (w *s3File) Contents() (io.Reader, error) {
	if _, err := w.f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return io.LimitReader(w.f, w.n), nil
}

// Commit uploads the file whole to rel.
func (w *s3File) Commit(ctx context.Context, rel string) error {
	if w.done {
		return errors.New("publish: file committed or closed already")
	}
	if err := w.t.check(rel); err != nil {
		return err
	}
	if _, err := w.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if _, err := w.t.b.PutStream(ctx, rel, io.NewSectionReader(w.f, 0, w.n), w.n, s3store.PartSize); err != nil {
		return err
	}
	return w.Close()
}

func (w *s3File) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	return w.f.Close()
}

// DataPath is the stream's own copy: a bucket has no links.
func (t *S3Target) DataPath(stream, sum string) string { return stream + "/" + DataRel(sum) }

// PutBlob copies blob d to the stream's data: server-side from a pool on
// the same bucket, else streamed through this machine.
func (t *S3Target) PutBlob(ctx context.Context, stream string, blobs cas.BlobStore, d digest.Digest) (bool, error) {
	rel := t.DataPath(stream, d.Encoded())
	if err := t.check(rel); err != nil {
		return false, err
	}
	if u, ok := blobs.(interface{ Unwrap() cas.BlobStore }); ok {
		blobs = u.Unwrap() // the pool of a store on a bucket
	}
	if sp, ok := blobs.(*s3store.Pool); ok && sp.Bucket().SameServer(t.b) {
		// One server-side copy, whether or not rel exists: its bytes
		// are the same whoever writes them (publish lists what exists
		// before it asks).
		err := t.b.CopyOver(ctx, sp.Bucket(), s3store.BlobKey(d), rel)
		if errors.Is(err, s3store.ErrNotFound) {
			return false, fmt.Errorf("%s: %w", d, cas.ErrBlobNotFound)
		}
		return true, err
	}
	if _, err := t.b.Head(ctx, rel); err == nil {
		return true, nil
	}
	in, err := blobs.Open(ctx, d)
	if err != nil {
		return false, err
	}
	defer in.Close()
	_, err = t.b.PutStream(ctx, rel, in, in.Size(), s3store.PartSize)
	return true, err
}

// SwitchIndex writes the signatures first, index.json last, then drops
// index files the new set does not have.
func (t *S3Target) SwitchIndex(ctx context.Context, stream string, files []File) error {
	lay := Layout{}
	files = slices.Clone(files)
	slices.SortStableFunc(files, func(a, b File) int {
		return boolCmp(a.Name == IndexFile, b.Name == IndexFile)
	})
	keep := map[string]bool{}
	for _, f := range files {
		rel := lay.Meta(stream, f.Name)
		if err := t.check(rel); err != nil || strings.Contains(f.Name, "/") {
			return fmt.Errorf("index file %q: %w", f.Name, ErrBadPath)
		}
		if _, err := t.b.Put(ctx, rel, f.Data, s3store.Cond{}); err != nil {
			return err
		}
		keep[f.Name] = true
	}
	return t.List(ctx, lay.MetaDir(stream), func(e Entry) error {
		if !e.Dir && IsIndex(e.Name) && !keep[e.Name] {
			return t.b.Delete(ctx, lay.Meta(stream, e.Name))
		}
		return nil
	})
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// Stat reports a file, or a directory (a prefix with objects below it).
func (t *S3Target) Stat(ctx context.Context, rel string) (Entry, error) {
	if err := t.check(rel); err != nil {
		return Entry{}, err
	}
	info, err := t.b.Head(ctx, rel)
	if err == nil {
		return Entry{Name: path.Base(rel), Size: info.Size}, nil
	}
	if !errors.Is(err, s3store.ErrNotFound) {
		return Entry{}, err
	}
	found := false
	err = t.b.ListDir(ctx, rel, func(string, int64, bool) error { found = true; return errStop })
	if err != nil && !errors.Is(err, errStop) {
		return Entry{}, err
	}
	if !found {
		return Entry{}, fmt.Errorf("%s: %w", rel, fs.ErrNotExist)
	}
	return Entry{Name: path.Base(rel), Dir: true}, nil
}

var errStop = errors.New("stop")

// Open reads a file.
func (t *S3Target) Open(ctx context.Context, rel string) (io.ReadCloser, error) {
	if err := t.check(rel); err != nil {
		return nil, err
	}
	o, _, err := t.b.Reader(ctx, rel)
	if errors.Is(err, s3store.ErrNotFound) {
		return nil, fmt.Errorf("%s: %w", rel, fs.ErrNotExist)
	}
	return o, err
}

// List lists the entries below dir in name order, hiding "." names.
func (t *S3Target) List(ctx context.Context, dir string, fn func(Entry) error) error {
	if dir != "" {
		if err := t.check(dir); err != nil {
			return err
		}
	}
	return t.b.ListDir(ctx, dir, func(name string, size int64, isDir bool) error {
		if strings.HasPrefix(name, ".") || name == "" {
			return nil
		}
		return fn(Entry{Name: name, Size: size, Dir: isDir})
	})
}

// ListFiles calls fn with the path, relative to dir, of every file below
// dir, in one listing (a bucket lists a thousand keys a request, whatever
// the depth: cheaper than one listing per directory).
func (t *S3Target) ListFiles(ctx context.Context, dir string, fn func(rel string) error) error {
	if err := t.check(dir); err != nil {
		return err
	}
	return t.b.List(ctx, dir+"/", "", func(o s3store.Info) error {
		return fn(strings.TrimPrefix(o.Key, dir+"/"))
	})
}

// Delete removes a file, or everything below a directory.
func (t *S3Target) Delete(ctx context.Context, rel string) error {
	if err := t.check(rel); err != nil {
		return err
	}
	if err := t.b.Delete(ctx, rel); err != nil {
		return err
	}
	return t.b.DeleteAll(ctx, rel)
}

// Sync does nothing: an object is durable when its PUT returns.
func (t *S3Target) Sync(ctx context.Context) error { return nil }
