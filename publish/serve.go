package publish

import (
	"context"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mephstore/mephstore/s3store"
)

// Handler serves a publish root over HTTP the way the trees need: GET and
// HEAD with Range, content types, ETags, immutable caching for
// content-addressed files and a short one for the index, directory listings,
// and no path that leaves the root (.., encoded or not, and symlinks that
// point outside are refused).
type Handler struct {
	root  string // absolute, symlinks resolved
	log   *slog.Logger
	stall time.Duration
}

// ServeOptions bound what a client can hold. Zero fields take the defaults
// of DefaultServeOptions.
type ServeOptions struct {
	// HeaderTimeout is how long a client has to send its request headers.
	HeaderTimeout time.Duration
	// ReadTimeout is how long a client has to send its whole request.
	ReadTimeout time.Duration
	// IdleTimeout closes a keep-alive connection with no request.
	IdleTimeout time.Duration
	// StallTimeout cuts off a response the client stops reading: the
	// write deadline moves forward with every write, so a long download
	// that keeps moving is never cut.
	StallTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers.
	MaxHeaderBytes int
	// ShutdownGrace is how long requests in flight get when serving stops.
	ShutdownGrace time.Duration
}

// DefaultServeOptions are the documented defaults of mephstore serve.
var DefaultServeOptions = ServeOptions{
	HeaderTimeout:  10 * time.Second,
	ReadTimeout:    30 * time.Second,
	IdleTimeout:    2 * time.Minute,
	StallTimeout:   time.Minute,
	MaxHeaderBytes: 64 << 10,
	ShutdownGrace:  10 * time.Second,
}

func (o ServeOptions) withDefaults() ServeOptions {
	d := DefaultServeOptions
	pick := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	pick(&o.HeaderTimeout, d.HeaderTimeout)
	pick(&o.ReadTimeout, d.ReadTimeout)
	pick(&o.IdleTimeout, d.IdleTimeout)
	pick(&o.StallTimeout, d.StallTimeout)
	pick(&o.ShutdownGrace, d.ShutdownGrace)
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = d.MaxHeaderBytes
	}
	return o
}

// NewHandler serves root.
func NewHandler(root string, log *slog.Logger) (*Handler, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("publish root %s: %w", root, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{root: real, log: log}, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	// r.URL.Path is decoded: "%2e%2e" is ".." here.
	p := r.URL.Path
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." || strings.ContainsRune(seg, 0) || strings.Contains(seg, "\\") {
			h.refuse(w, r, http.StatusBadRequest, "path leaves the root")
			return
		}
		if strings.HasPrefix(seg, ".") {
			// Locks, staging directories and temp files of a publish
			// in progress: not part of any tree.
			http.NotFound(w, r)
			return
		}
	}
	full := filepath.Join(h.root, filepath.FromSlash(path.Clean("/"+p)))
	real, err := filepath.EvalSymlinks(full)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			http.NotFound(w, r)
			return
		}
		http.Error(w, "cannot read", http.StatusInternalServerError)
		return
	}
	if real != h.root && !strings.HasPrefix(real, h.root+string(filepath.Separator)) {
		h.refuse(w, r, http.StatusForbidden, "symlink points outside the root")
		return
	}
	f, err := os.Open(real)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		http.Error(w, "cannot read", http.StatusInternalServerError)
		return
	}
	if fi.IsDir() {
		if !strings.HasSuffix(r.URL.Path, "/") {
			http.Redirect(w, r, r.URL.Path+"/", http.StatusMovedPermanently)
			return
		}
		h.list(w, r, f)
		return
	}
	name := filepath.Base(real)
	hd := w.Header()
	hd.Set("Content-Type", contentType(name))
	switch {
	case strings.Contains(real, string(filepath.Separator)+"data"+string(filepath.Separator)+"sha256"+string(filepath.Separator)) && len(name) == 64:
		hd.Set("ETag", `"`+name+`"`) // the name is the sha256 of the bytes
		hd.Set("Cache-Control", "public, max-age=31536000, immutable")
	case strings.HasPrefix(name, "index."):
		hd.Set("ETag", etag(fi))
		hd.Set("Cache-Control", "public, max-age=60, must-revalidate")
	default: // products files are named by their content
		hd.Set("ETag", etag(fi))
		hd.Set("Cache-Control", "public, max-age=31536000, immutable")
	}
	http.ServeContent(&stallWriter{ResponseWriter: w, rc: http.NewResponseController(w), stall: h.stall}, r, name, fi.ModTime(), f)
}

// stallWriter moves the connection's write deadline forward on every write:
// a client that keeps reading, however slowly and however large the file,
// is served to the end; one that stops reading for the stall time is cut
// off.
type stallWriter struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stall time.Duration
}

func (w *stallWriter) Write(b []byte) (int, error) {
	if w.stall > 0 {
		w.rc.SetWriteDeadline(time.Now().Add(w.stall))
	}
	// Small pieces, so that one write never has to fit a whole window
	// into one stall period on a slow link.
	n := 0
	for len(b) > 0 {
		k := min(len(b), 256<<10)
		m, err := w.ResponseWriter.Write(b[:k])
		n += m
		if err != nil {
			return n, err
		}
		b = b[k:]
		if w.stall > 0 && len(b) > 0 {
			w.rc.SetWriteDeadline(time.Now().Add(w.stall))
		}
	}
	return n, nil
}

func etag(fi os.FileInfo) string {
	return `"` + strconv.FormatInt(fi.Size(), 16) + "-" + strconv.FormatInt(fi.ModTime().UnixNano(), 16) + `"`
}

func contentType(name string) string {
	switch {
	case strings.HasSuffix(name, ".json"):
		return "application/json"
	case strings.HasSuffix(name, ".sjson"):
		return "text/plain; charset=utf-8"
	case strings.HasSuffix(name, ".gpg"):
		return "application/pgp-signature"
	default:
		return "application/octet-stream"
	}
}

func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, code int, why string) {
	h.log.Warn("refused", "path", r.URL.Path, "remote", r.RemoteAddr, "why", why)
	http.Error(w, why, code)
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request, d *os.File) {
	ents, err := d.ReadDir(-1)
	if err != nil {
		http.Error(w, "cannot list", http.StatusInternalServerError)
		return
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	var b strings.Builder
	fmt.Fprintf(&b, "<!doctype html>\n<title>%s</title>\n<h1>%s</h1>\n<ul>\n", html.EscapeString(r.URL.Path), html.EscapeString(r.URL.Path))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue // temp files of a publish in progress
		}
		n := e.Name()
		if e.IsDir() || e.Type()&os.ModeSymlink != 0 {
			n += "/"
		}
		fmt.Fprintf(&b, "<li><a href=\"%s\">%s</a></li>\n", (&url.URL{Path: n}).EscapedPath(), html.EscapeString(n))
	}
	b.WriteString("</ul>\n")
	if r.Method == http.MethodGet {
		w.Write([]byte(b.String()))
	}
}

// Serve serves root on addr until ctx is done, then shuts down gracefully
// (requests in flight get o.ShutdownGrace). ready, if not nil, gets the
// address once listening.
func Serve(ctx context.Context, addr, root string, o ServeOptions, log *slog.Logger, ready func(string)) error {
	o = o.withDefaults()
	if s3store.IsURL(root) {
		return fmt.Errorf("publish root %s is a bucket: %w (its server serves it over HTTP; docs/s3.md)", root, ErrNotDir)
	}
	h, err := NewHandler(root, log)
	if err != nil {
		return err
	}
	h.stall = o.StallTimeout
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: o.HeaderTimeout, ReadTimeout: o.ReadTimeout,
		IdleTimeout: o.IdleTimeout, MaxHeaderBytes: o.MaxHeaderBytes}
	if ready != nil {
		ready(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownGrace)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}
