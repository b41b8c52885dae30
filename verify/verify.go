package verify

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/mephstore/mephstore/catalog"
	"github.com/mephstore/mephstore/internal/fetch"
	"github.com/mephstore/mephstore/internal/jsonc"
	"github.com/mephstore/mephstore/internal/pgp"
	"github.com/mephstore/mephstore/snapshot"
)

// Options tune Verify.
type Options struct {
	// Keyring, when set, makes the tree a signed one: index.sjson and every
	// products .sjson must be clear-signed by one of its keys.
	Keyring pgp.Keyring
	// MetadataOnly checks the metadata and signatures, not the files.
	MetadataOnly bool
	// Max reads the newest Max versions of each product (0: all);
	// Filters select the items read. The metadata checks cover everything.
	Max     int
	Filters []catalog.Filter
	Jobs    int // parallel readers; default 2 for a directory, 4 for a URL
	Client  *fetch.Client
	// RequireDetached makes a missing .json.gpg beside a signed tree's
	// index.json and products .json a problem (when present, each must
	// verify; the .json twins must be there).
	RequireDetached bool
}

// Problem is one thing wrong with the tree.
type Problem struct {
	Check   string `json:"check"` // signature, metadata, maas, data, selection
	File    string `json:"file,omitempty"`
	Product string `json:"product,omitempty"`
	Version string `json:"version,omitempty"`
	Item    string `json:"item,omitempty"`
	Path    string `json:"path,omitempty"`
	Reason  string `json:"reason"`
}

func (p Problem) String() string {
	where := p.File
	if p.Product != "" {
		where = strings.TrimSpace(p.Product + " " + p.Version + " " + p.Item)
		if p.Path != "" {
			where += " (" + p.Path + ")"
		}
	}
	if where == "" {
		return fmt.Sprintf("FAIL [%s] %s", p.Check, p.Reason)
	}
	return fmt.Sprintf("FAIL [%s] %s: %s", p.Check, where, p.Reason)
}

// Report is what Verify found.
type Report struct {
	Source   string    `json:"source"`
	Signed   bool      `json:"signed"`
	Products int       `json:"products"`
	Versions int       `json:"versions"`
	Items    int       `json:"items"`
	Selected int       `json:"items_selected"`
	Files    int       `json:"files_read"`
	Bytes    int64     `json:"bytes_read"`
	Problems []Problem `json:"problems"`
	Seconds  float64   `json:"seconds"`
}

// OK says whether the tree passed.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// ErrSetup is wrapped when Verify cannot start.
var ErrSetup = errors.New("cannot verify")

// dataFile is a file to read, and the first item that names it.
type dataFile struct {
	path, sha256, md5 string
	size              int64
	at                Problem // product, version and item, for problems
}

// Verify checks the tree at src.
func Verify(ctx context.Context, src string, o Options) (*Report, error) {
	start := time.Now()
	client := o.Client
	if client == nil {
		client = &fetch.Client{}
	}
	s, err := snapshot.OpenSource(src, client)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSetup, err)
	}
	rep := &Report{Source: s.String(), Signed: o.Keyring != nil, Problems: []Problem{}}
	cats, err := s.ReadCatalogs(ctx, o.Keyring, o.Keyring != nil)
	if err != nil {
		check := "metadata"
		if errors.Is(err, pgp.ErrBadSignature) || errors.Is(err, pgp.ErrNotSigned) {
			check = "signature"
		}
		rep.Problems = append(rep.Problems, Problem{Check: check, Reason: err.Error()})
		rep.Seconds = time.Since(start).Seconds()
		return rep, nil
	}
	if o.Keyring != nil {
		for _, rel := range append([]string{"streams/v1/index.json"}, catalogPaths(cats)...) {
			rep.checkTwin(ctx, s, rel, o)
		}
	}
	files := map[string]*dataFile{}
	for i := range cats {
		rep.checkCatalog(&cats[i], o, files)
	}
	if rep.Selected == 0 {
		rep.Problems = append(rep.Problems, Problem{Check: "selection", Reason: "no items selected: the tree lists none, or the filters match none"})
	}
	if !o.MetadataOnly {
		rep.readFiles(ctx, s, files, o.jobs(src))
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

func (o Options) jobs(src string) int {
	if o.Jobs > 0 {
		return o.Jobs
	}
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		return 4
	}
	return min(2, runtime.NumCPU())
}

var rfc2822 = []string{time.RFC1123Z, "Mon, 2 Jan 2006 15:04:05 -0700", time.RFC3339}

// checkCatalog checks a products file, its products, versions and items,
// and adds the selected items' files.
func (r *Report) checkCatalog(c *snapshot.SourceCatalog, o Options, files map[string]*dataFile) {
	bad := func(reason string) {
		r.Problems = append(r.Problems, Problem{Check: "metadata", File: c.Path, Reason: reason})
	}
	if c.Format != "products:1.0" {
		bad(fmt.Sprintf("the index entry's format is %q, want products:1.0 (clients skip the entry)", c.Format))
	}
	if dt := catalog.StringField(c.Header, "datatype"); dt == "" {
		bad("no datatype")
	}
	if f := catalog.StringField(c.Header, "format"); f != "products:1.0" {
		bad(fmt.Sprintf("format %q, want products:1.0", f))
	}
	if !parsesTime(catalog.StringField(c.Header, "updated")) {
		bad(fmt.Sprintf("updated %q is not a date like Sat, 15 Jun 2024 00:00:00 +0000", catalog.StringField(c.Header, "updated")))
	}
	for _, pf := range c.Products {
		p, err := catalog.ParseProduct(pf.Key, pf.Value)
		if err != nil {
			r.Problems = append(r.Problems, Problem{Check: "metadata", Product: pf.Key, Reason: err.Error()})
			continue
		}
		r.Products++
		r.checkProduct(c, p, o, files)
	}
}

func parsesTime(s string) bool {
	for _, layout := range rfc2822 {
		if _, err := time.Parse(layout, s); err == nil {
			return true
		}
	}
	return false
}

// maasFields are the fields MAAS reads from a product itself (it neither
// inherits nor expands aliases).
var maasFields = []string{"arch", "label", "os", "release", "release_title", "subarch", "subarches", "version"}

var versionNameRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^([0-9]{8})(\.[0-9]+|_[0-9]+)?$`) })

// checkProduct checks one product and its versions and items.
func (r *Report) checkProduct(c *snapshot.SourceCatalog, p *catalog.Product, o Options, files map[string]*dataFile) {
	maas := func(version, reason string) {
		r.Problems = append(r.Problems, Problem{Check: "maas", Product: p.Name, Version: version, Reason: reason})
	}
	for _, f := range maasFields {
		v, ok := jsonc.Get(p.Fields, f)
		if _, isStr := jsonc.String(v); !ok || !isStr {
			maas("", fmt.Sprintf("no %s string on the product (MAAS reads it there)", f))
		}
	}
	if len(p.Versions) == 0 {
		maas("", "no versions")
	}
	selected := map[string]bool{}
	order := catalog.NewestFirst(p)
	for i, vi := range order {
		if o.Max == 0 || i < o.Max {
			selected[p.Versions[vi].Name] = true
		}
	}
	for vi := range p.Versions {
		v := &p.Versions[vi]
		r.Versions++
		if m := versionNameRe().FindStringSubmatch(v.Name); m == nil {
			maas(v.Name, "version name is not YYYYmmdd[.n]")
		} else if _, err := time.Parse("20060102", m[1]); err != nil {
			maas(v.Name, "version name is not a real date")
		}
		have := map[string]bool{}
		for ii := range v.Items {
			have[v.Items[ii].Name] = true
		}
		for _, need := range []string{"boot-kernel", "boot-initrd", "manifest"} {
			if !have[need] {
				maas(v.Name, "no "+need+" item")
			}
		}
		if !have["squashfs"] && !have["root-image.gz"] {
			maas(v.Name, "no squashfs or root-image.gz item")
		}
		s := catalog.Scope{Header: c.Header, Product: p, Version: v}
		for ii := range v.Items {
			s.Item = &v.Items[ii]
			r.Items++
			df := r.checkItem(&s)
			if df != nil && selected[v.Name] && catalog.MatchScope(o.Filters, &s) {
				r.Selected++
				r.addFile(files, df)
			}
		}
	}
}

// checkItem checks an item's fields (merged, as simplestreams reads them)
// and returns its file, or nil when it is unusable.
func (r *Report) checkItem(s *catalog.Scope) *dataFile {
	at := Problem{Product: s.Product.Name, Version: s.Version.Name, Item: s.Item.Name}
	bad := func(check, reason string) *dataFile {
		p := at
		p.Check, p.Reason = check, reason
		r.Problems = append(r.Problems, p)
		return nil
	}
	if _, ok := jsonc.Get(s.Item.Fields, "ftype"); !ok {
		bad("maas", "no ftype on the item")
	}
	f, err := snapshot.ReadItemFile(s)
	at.Path = f.Path
	if err != nil {
		return bad("metadata", err.Error())
	}
	m := s.Text("md5")
	if m != "" && (len(m) != 32 || strings.Trim(m, "0123456789abcdef") != "") {
		return bad("metadata", fmt.Sprintf("md5 %q is not 32 lowercase hex digits", m))
	}
	return &dataFile{path: f.Path, sha256: f.SHA256, md5: m, size: f.Size, at: at}
}

func (r *Report) addFile(files map[string]*dataFile, df *dataFile) {
	old, ok := files[df.path]
	if !ok {
		files[df.path] = df
		return
	}
	if old.sha256 != df.sha256 || old.size != df.size {
		p := df.at
		p.Check, p.Reason = "metadata", fmt.Sprintf("the same path is listed with sha256 %s size %d elsewhere (%s %s %s)", old.sha256, old.size, old.at.Product, old.at.Version, old.at.Item)
		r.Problems = append(r.Problems, p)
	}
}

// readFiles reads every file with jobs readers and checks it.
func (r *Report) readFiles(ctx context.Context, s *snapshot.Source, files map[string]*dataFile, jobs int) {
	work := make(chan *dataFile)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for df := range work {
				n, err := checkFile(ctx, s, df)
				mu.Lock()
				r.Files++
				r.Bytes += n
				if err != nil {
					p := df.at
					p.Check, p.Reason = "data", err.Error()
					r.Problems = append(r.Problems, p)
				}
				mu.Unlock()
			}
		}()
	}
	for _, df := range files {
		if ctx.Err() != nil {
			break
		}
		work <- df
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		r.Problems = append(r.Problems, Problem{Check: "data", Reason: err.Error()})
	}
}

// checkFile streams one file through its hashes.
func checkFile(ctx context.Context, s *snapshot.Source, df *dataFile) (int64, error) {
	rc, _, err := s.Open(ctx, df.path)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	sh := sha256.New()
	var mh hash.Hash
	w := io.Writer(sh)
	if df.md5 != "" {
		mh = md5.New()
		w = io.MultiWriter(sh, mh)
	}
	n, err := io.Copy(w, io.LimitReader(rc, df.size+1))
	if err != nil {
		return n, err
	}
	switch {
	case n > df.size:
		return n, fmt.Errorf("longer than its size %d", df.size)
	case n < df.size:
		return n, fmt.Errorf("%d bytes, want size %d", n, df.size)
	case hex.EncodeToString(sh.Sum(nil)) != df.sha256:
		return n, fmt.Errorf("sha256 %s, want %s", hex.EncodeToString(sh.Sum(nil)), df.sha256)
	case mh != nil && hex.EncodeToString(mh.Sum(nil)) != df.md5:
		return n, fmt.Errorf("md5 %s, want %s", hex.EncodeToString(mh.Sum(nil)), df.md5)
	}
	return n, nil
}

func catalogPaths(cats []snapshot.SourceCatalog) []string {
	var out []string
	for _, c := range cats {
		out = append(out, strings.TrimSuffix(c.Path, ".sjson")+".json")
	}
	return out
}

// checkTwin checks that a signed file's unsigned .json twin is there and
// that its detached signature, when present, verifies.
func (r *Report) checkTwin(ctx context.Context, s *snapshot.Source, rel string, o Options) {
	bad := func(reason string) {
		r.Problems = append(r.Problems, Problem{Check: "signature", File: rel, Reason: reason})
	}
	data, err := s.ReadAll(ctx, rel)
	if err != nil {
		bad("the unsigned twin: " + err.Error())
		return
	}
	sig, err := s.ReadAll(ctx, rel+".gpg")
	if err != nil {
		if o.RequireDetached {
			bad("no detached signature: " + err.Error())
		}
		return
	}
	if err := pgp.VerifyDetached(rel+".gpg", data, sig, o.Keyring); err != nil {
		bad(err.Error())
	}
}
