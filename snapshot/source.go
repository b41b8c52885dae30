package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/mephstore/mephstore/catalog"
	"github.com/mephstore/mephstore/internal/fetch"
	"github.com/mephstore/mephstore/internal/jsonc"
	"github.com/mephstore/mephstore/internal/pgp"
)

// ErrBadSource is wrapped by errors in a source tree's layout or index.
var ErrBadSource = errors.New("bad source tree")

// badSource marks a path refused by the catalog's rules as a bad source
// tree.
func badSource(err error) error {
	if errors.Is(err, catalog.ErrBadPath) && !errors.Is(err, ErrBadSource) {
		return fmt.Errorf("%w: %w", ErrBadSource, err)
	}
	return err
}

// ErrTooLarge is wrapped when a metadata document passes MaxMetadata.
var ErrTooLarge = errors.New("metadata document too large")

// Bounds on one metadata document (an index or a products file) of a
// source: the largest real ones are tens of MiB.
const (
	DefaultMaxMetadata     = 256 << 20
	DefaultMetadataTimeout = 10 * time.Minute
)

// Source is a simplestreams tree to read: a directory or an http(s) URL of
// its root.
type Source struct {
	root  string   // directory, or URL ending in "/"
	url   *url.URL // nil for a directory
	index string   // path of the index below root, as given (or default)
	// products, when the source was given as a products file
	// (streams/v1/<content id>.(s)json), is its path below root: it is
	// read instead of an index.
	products string
	client   *fetch.Client
	// MaxMetadata bounds the size of one metadata document read whole
	// (DefaultMaxMetadata when 0); MetadataTimeout the time to read it
	// (DefaultMetadataTimeout when 0).
	MaxMetadata     int64
	MetadataTimeout time.Duration
}

// OpenSource parses where a tree is: a directory, file:// or http(s) URL
// of its root, or of its streams/v1/index.(s)json or of one products file
// streams/v1/NAME.(s)json.
func OpenSource(src string, client *fetch.Client) (*Source, error) {
	s := &Source{client: client}
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		u, err := url.Parse(src)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", src, err)
		}
		s.url = u
		p := u.Path
		if meta := metaFile(p); meta != "" {
			s.setMeta(meta)
			p = strings.TrimSuffix(p, meta)
		}
		if !strings.HasSuffix(p, "/") {
			p += "/"
		}
		u2 := *u
		u2.Path, u2.RawQuery, u2.Fragment = p, "", ""
		s.root = u2.String()
		return s, nil
	}
	if p, ok := strings.CutPrefix(src, "file://"); ok {
		if u, err := url.Parse(src); err == nil && u.Host == "" {
			p = u.Path
		}
		src = p
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", src, err)
	}
	if !fi.IsDir() {
		meta := metaFile(filepath.ToSlash(abs))
		if meta == "" {
			return nil, fmt.Errorf("source %s: %w: want a tree's root directory, its streams/v1/index.(s)json or a products file streams/v1/NAME.(s)json", src, ErrBadSource)
		}
		s.setMeta(meta)
		abs = filepath.Dir(filepath.Dir(filepath.Dir(abs)))
	}
	s.root = abs
	return s, nil
}

func (s *Source) String() string { return s.root }

// metaFile is the streams/v1/NAME.(s)json tail of p, or "".
func metaFile(p string) string {
	dir, base := path.Split(p)
	if !strings.HasSuffix(dir, "/streams/v1/") && dir != "streams/v1/" {
		return ""
	}
	if !strings.HasSuffix(base, ".json") && !strings.HasSuffix(base, ".sjson") || strings.HasPrefix(base, ".") {
		return ""
	}
	return "streams/v1/" + base
}

func (s *Source) setMeta(meta string) {
	if strings.HasPrefix(path.Base(meta), "index.") {
		s.index = meta
	} else {
		s.products = meta
	}
}

// Location is where the file at rel below the root is: a URL or a path.
func (s *Source) Location(rel string) string {
	if s.url == nil {
		return filepath.Join(s.root, filepath.FromSlash(rel))
	}
	return s.root + (&url.URL{Path: rel}).EscapedPath()
}

// Open opens the file at rel below the root; size is -1 when unknown.
func (s *Source) Open(ctx context.Context, rel string) (io.ReadCloser, int64, error) {
	if err := catalog.CheckRel(rel); err != nil {
		return nil, 0, badSource(err)
	}
	if s.url == nil {
		f, err := s.openLocal(rel)
		if err != nil {
			return nil, 0, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, err
		}
		return f, fi.Size(), nil
	}
	u := s.root + (&url.URL{Path: rel}).EscapedPath()
	return s.client.Get(ctx, u)
}

// openLocal opens rel of a directory tree through os.Root: a symlink in the
// tree may point within it, never outside (nor may a path climb out
// through one). The one exception is the layout mephstore publishes: a
// stream's data link to ../data, the publish root's shared data pool.
func (s *Source) openLocal(rel string) (*os.File, error) {
	f, err := openInRoot(s.root, rel)
	if errors.Is(err, errEscapes) && strings.HasPrefix(rel, "data/") {
		if t, lerr := os.Readlink(filepath.Join(s.root, "data")); lerr == nil && t == "../data" {
			f, err = openInRoot(filepath.Dir(s.root), rel)
		}
	}
	if errors.Is(err, errEscapes) {
		return nil, fmt.Errorf("%s: %w: a symbolic link leads out of the tree", rel, ErrBadSource)
	}
	return f, err
}

var errEscapes = errors.New("escapes")

func openInRoot(dir, rel string) (*os.File, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f, err := root.Open(filepath.FromSlash(rel))
	if err != nil && strings.Contains(err.Error(), "escapes") {
		// (os.Root has no exported error for this.)
		return nil, fmt.Errorf("%w: %w", errEscapes, err)
	}
	return f, err
}

// ReadAll reads a metadata file below the root: at most MaxMetadata bytes
// (a larger declared size fails before anything is read) within
// MetadataTimeout.
func (s *Source) ReadAll(ctx context.Context, rel string) ([]byte, error) {
	limit, timeout := s.MaxMetadata, s.MetadataTimeout
	if limit <= 0 {
		limit = DefaultMaxMetadata
	}
	if timeout <= 0 {
		timeout = DefaultMetadataTimeout
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("%s: %w: not read within %v", rel, ErrBadSource, timeout))
	defer cancel()
	b, err := s.readAll(ctx, rel, limit)
	if err != nil && context.Cause(ctx) != nil && ctx.Err() == context.DeadlineExceeded {
		return nil, context.Cause(ctx)
	}
	return b, err
}

func (s *Source) readAll(ctx context.Context, rel string, limit int64) ([]byte, error) {
	r, size, err := s.Open(ctx, rel)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	defer r.Close()
	tooLarge := fmt.Errorf("%s: %w: more than %d MiB", rel, ErrTooLarge, limit>>20)
	if size > limit {
		return nil, tooLarge
	}
	if size >= 0 {
		// One allocation of the known size (io.ReadAll's regrowing cost a
		// third of an 80k-item insert).
		b := make([]byte, size)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, fmt.Errorf("%s: %w", rel, err)
		}
		return b, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	if int64(len(b)) > limit {
		return nil, tooLarge
	}
	return b, nil
}

// SourceCatalog is one products file read from a source.
type SourceCatalog struct {
	Path      string
	Format    string // the index entry's format (products:1.0)
	ContentID string
	Header    []jsonc.Field
	Products  []jsonc.Field // raw product objects, by name
}

// ReadCatalogs reads the index and every image products file it lists.
// With a keyring, the index must be index.sjson and every products file a
// .sjson, each clear-signed by a key of the keyring; without one
// (verify=false) the unsigned index.json is read.
func (s *Source) ReadCatalogs(ctx context.Context, kr pgp.Keyring, verify bool) ([]SourceCatalog, error) {
	if s.products != "" {
		return s.readProductsFile(ctx, kr, verify)
	}
	idx := s.index
	switch {
	case idx == "" && verify:
		idx = "streams/v1/index.sjson"
	case idx == "":
		idx = "streams/v1/index.json"
	case verify && !strings.HasSuffix(idx, ".sjson"):
		return nil, fmt.Errorf("source %s: %w: --keyring needs the signed index.sjson, not %s", s, ErrBadSource, idx)
	}
	raw, err := s.readMeta(ctx, idx, kr, verify)
	if err != nil {
		return nil, err
	}
	fs, err := jsonc.Object(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", idx, ErrBadSource, err)
	}
	fs = jsonc.Sort(fs)
	if f := catalog.StringField(fs, "format"); f != "index:1.0" {
		return nil, fmt.Errorf("%s: %w: format %q, want index:1.0", idx, ErrBadSource, f)
	}
	iv, ok := jsonc.Get(fs, "index")
	if !ok {
		return nil, fmt.Errorf("%s: %w: no index", idx, ErrBadSource)
	}
	entries, err := jsonc.Object(iv)
	if err != nil {
		return nil, fmt.Errorf("%s: index: %w: %w", idx, ErrBadSource, err)
	}
	var out []SourceCatalog
	for _, e := range jsonc.Sort(entries) {
		if err := catalog.CheckName("content_id", e.Key); err != nil {
			return nil, fmt.Errorf("%s: index: %w", idx, err)
		}
		efs, err := jsonc.Object(e.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: index entry %s: %w", idx, e.Key, badSource(err))
		}
		efs = jsonc.Sort(efs)
		if dt := catalog.StringField(efs, "datatype"); dt != "image-ids" && dt != "image-downloads" {
			continue
		}
		p := catalog.StringField(efs, "path")
		if err := catalog.CheckRel(p); err != nil {
			return nil, fmt.Errorf("%s: index entry %s: %w", idx, e.Key, badSource(err))
		}
		if verify && !strings.HasSuffix(p, ".sjson") {
			return nil, fmt.Errorf("%s: index entry %s: %w: the signed index points at the unsigned %s", idx, e.Key, ErrBadSource, p)
		}
		body, err := s.readMeta(ctx, p, kr, verify)
		if err != nil {
			return nil, err
		}
		header, cid, prods, err := catalog.ParseCatalog(body)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if cid != e.Key {
			return nil, fmt.Errorf("%s: %w: content_id %q, but the index lists it as %q", p, ErrBadSource, cid, e.Key)
		}
		out = append(out, SourceCatalog{Path: p, Format: catalog.StringField(efs, "format"), ContentID: cid, Header: header, Products: prods})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: %w: no image products files in the index", idx, ErrBadSource)
	}
	return out, nil
}

// readProductsFile reads the one products file the source was given as.
func (s *Source) readProductsFile(ctx context.Context, kr pgp.Keyring, verify bool) ([]SourceCatalog, error) {
	p := s.products
	if verify && !strings.HasSuffix(p, ".sjson") {
		return nil, fmt.Errorf("source %s: %w: --keyring needs a signed .sjson products file, not %s", s, ErrBadSource, p)
	}
	body, err := s.readMeta(ctx, p, kr, verify)
	if err != nil {
		return nil, err
	}
	header, cid, prods, err := catalog.ParseCatalog(body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if err := catalog.CheckName("content_id", cid); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return []SourceCatalog{{Path: p, Format: "products:1.0", ContentID: cid, Header: header, Products: prods}}, nil
}

func (s *Source) readMeta(ctx context.Context, rel string, kr pgp.Keyring, verify bool) ([]byte, error) {
	b, err := s.ReadAll(ctx, rel)
	if err != nil {
		return nil, err
	}
	if !verify {
		return b, nil
	}
	return pgp.VerifyClearsigned(rel, b, kr)
}
