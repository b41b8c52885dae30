package publish

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/s3store"
)

// Target is where published trees are written: a directory on this
// machine (DirTarget) today, a bucket prefix tomorrow. publish writes
// through it and gc sweeps through it; neither knows how it stores files.
// Paths are slash-separated and relative to the target's root; Layout
// names them. targettest.Run is the contract every implementation passes.
//
// Contract:
//
//   - A file appears whole or not at all: a reader sees the old bytes of a
//     path or the new ones, never a part (FileWriter.Commit, PutBlob).
//   - Files are written before anything names them: publish puts data
//     files, then products files, then Sync, then SwitchIndex. A reader
//     never sees an index naming a file that is not there.
//   - SwitchIndex replaces the index files of a stream as one set where the
//     implementation can (the directory target: one rename); where it
//     cannot, it writes the signatures first and index.json last, and its
//     doc says what a reader may see in between.
//   - Stat, Open and Delete of a missing path: an error wrapping
//     fs.ErrNotExist for the first two, no error for Delete. Delete of a
//     directory (a staging directory) removes what is below it.
//   - List calls fn for the entries directly below dir, in name order; a
//     missing dir lists nothing. Names starting with "." are the
//     implementation's own (temp files, locks) and never listed.
//   - Lock("") is the root's lock: publishes take it Shared, gc Exclusive;
//     Lock(stream) makes one publish of the stream at a time.
//   - Sync makes everything written or deleted so far durable.
type Target interface {
	// String names the target in messages and in the store's records (an
	// absolute directory).
	String() string
	// Lock takes the root's lock (stream "") or a stream's; call the
	// returned function to release it.
	Lock(ctx context.Context, stream string, exclusive bool) (unlock func(), err error)
	// Begin readies a stream for a publish (its directories; what killed
	// publishes left); the caller holds the stream's lock.
	Begin(ctx context.Context, stream string) error
	// Create starts a file of the stream, named when it is committed.
	Create(ctx context.Context, stream string) (FileWriter, error)
	// DataPath is where stream's data file of sum is, relative to the root:
	// the shared pool (data/sha256/…) where streams link to it, the
	// stream's own copy (stream/data/sha256/…) where links do not exist.
	DataPath(stream, sum string) string
	// PutBlob puts blob d of blobs at DataPath(stream, d) (a link where
	// both live on one file system, else a copy); copied says which.
	// It is safe to call from several goroutines at once.
	PutBlob(ctx context.Context, stream string, blobs cas.BlobStore, d digest.Digest) (copied bool, err error)
	// SwitchIndex makes files (name → bytes, index.json among them) the
	// stream's index files, replacing the old ones.
	SwitchIndex(ctx context.Context, stream string, files []File) error
	Stat(ctx context.Context, rel string) (Entry, error)
	Open(ctx context.Context, rel string) (io.ReadCloser, error)
	List(ctx context.Context, dir string, fn func(Entry) error) error
	Delete(ctx context.Context, rel string) error
	Sync(ctx context.Context) error
}

// FileWriter is a file being written to a target. Nothing is visible until
// Commit; Close drops an uncommitted file.
type FileWriter interface {
	io.Writer
	// Contents reads back what was written so far (to sign it).
	Contents() (io.Reader, error)
	// Commit makes the file visible at rel, durable; an existing file at
	// rel is replaced.
	Commit(ctx context.Context, rel string) error
	Close() error
}

// File is one index file for SwitchIndex.
type File struct {
	Name string // a plain name in the stream's streams/v1
	Data []byte
}

// Entry is a file or directory of a target.
type Entry struct {
	Name string // the last path component
	Size int64  // bytes of a file
	Dir  bool
}

// put writes a whole file of stream at rel through t.
func put(ctx context.Context, t Target, stream, rel string, fn func(io.Writer) error) error {
	w, err := t.Create(ctx, stream)
	if err != nil {
		return err
	}
	defer w.Close()
	if err := fn(w); err != nil {
		return err
	}
	return w.Commit(ctx, rel)
}

// ErrNotDir is wrapped when a target's root is not a directory.
var ErrNotDir = errors.New("not a directory")

// OpenTarget is the target a publish root names: a directory, or a bucket
// prefix (s3://bucket/prefix, S3Target).
func OpenTarget(root string) (Target, error) {
	if s3store.IsURL(root) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		return NewS3Target(ctx, root)
	}
	return NewDirTarget(root)
}

// Streams lists the published streams of a target: its directories that
// hold a streams/ directory (not the data pool, not hidden ones).
func Streams(ctx context.Context, t Target) ([]string, error) {
	var dirs []string
	err := t.List(ctx, "", func(e Entry) error {
		if e.Dir && e.Name != DataDir && !strings.HasPrefix(e.Name, ".") {
			dirs = append(dirs, e.Name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, d := range dirs {
		if e, err := t.Stat(ctx, Layout{}.StreamsDir(d)); err == nil && e.Dir {
			out = append(out, d)
		}
	}
	return out, nil
}
