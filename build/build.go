package build

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/progress"
	"github.com/mephstore/mephstore/snapshot"
)

// ErrNoKernel is wrapped when the image lacks a configured row's kernel.
var ErrNoKernel = errors.New("no kernel for a configured row")

// Options tune Build.
type Options struct {
	Stream  string // default "daily"
	Arch    string
	Release string
	Serial  string
	Config  *Config
	Jobs    int // tar2sqfs compressor jobs; default: every core
	Meters  progress.Factory
	Log     *slog.Logger
	// SourceName is how the source is named in the pending build (the URL
	// it came from); default: its path.
	SourceName string
	// SHA256, when set, is the source file's expected sha256 (hex): a
	// mismatch fails the build before anything is committed.
	SHA256 string
	// Customize asks for packages, repositories, -proposed and commands
	// (added to the config's). A row whose kernel package the image lacks
	// asks for a customisation by itself. Customising needs root.
	Customize Customize
	// SkipMissingKernels skips, with a warning, the rows whose kernel
	// package the image lacks, instead of installing them.
	SkipMissingKernels bool

	customized *Customize // what was done, for the pending build
	clock      *stepClock // the steps so far (a customisation's)
}

// ItemResult is one item a build made.
type ItemResult struct {
	Product string `json:"product,omitempty"`
	Name    string `json:"name"`
	Path    string `json:"path"`
	Digest  string `json:"sha256"`
	Size    int64  `json:"size"`
	New     bool   `json:"new"` // its bytes were new to the pool
}

// Result is what Build did.
type Result struct {
	Pending *Pending     `json:"pending"`
	Items   []ItemResult `json:"items"`
	Reused  bool         `json:"squashfs_reused"` // the source squashfs is published as it is
	Entries int64        `json:"entries"`
	// DroppedXattrs counts the xattrs the squashfs cannot hold (POSIX
	// ACLs: squashfs keeps user, trusted and security xattrs only).
	DroppedXattrs int     `json:"dropped_xattrs"`
	NewBytes      int64   `json:"new_bytes"`
	Seconds       float64 `json:"seconds"`
	// Steps is where the time went: unpack, apt, customize, initramfs
	// (customised builds), squashfs (reading the tree into tar2sqfs, with
	// the kernels staged on the way) and ingest (hashing the squashfs,
	// committing, recording the pending build).
	Steps []Step `json:"steps"`
}

// Step is the time a build step took.
type Step struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// stepClock adds up the time of named steps.
type stepClock struct {
	last  time.Time
	steps []Step
}

func newStepClock() *stepClock { return &stepClock{last: time.Now()} }

// done ends the step running since the last call.
func (c *stepClock) done(name string) {
	now := time.Now()
	d := now.Sub(c.last).Seconds()
	c.last = now
	for i := range c.steps {
		if c.steps[i].Name == name {
			c.steps[i].Seconds += d
			return
		}
	}
	c.steps = append(c.steps, Step{name, d})
}

var serialRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9]{8}(\.[0-9]{1,6})?$`) })

// ErrBadSerial is wrapped when a serial is not YYYYMMDD or YYYYMMDD.N.
var ErrBadSerial = errors.New("bad serial")

// CheckSerial checks a build serial: YYYYMMDD, or YYYYMMDD.N with N of at
// most six digits (it names a version and a directory of every item path).
func CheckSerial(s string) error {
	if !serialRe().MatchString(s) {
		return fmt.Errorf("serial %q: %w: want YYYYMMDD or YYYYMMDD.N", clipName(s), ErrBadSerial)
	}
	return nil
}

func clipName(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// captured is a file of the image kept on the way: staged into the pool
// (kernels, initrds, dtbs) or held in memory (the dpkg status).
type captured struct {
	staged *cas.Staged
	data   []byte
}

// Build reads the image at src once and makes a pending build for
// o.Stream: the squashfs, the manifest and each configured kernel row's
// kernel, initrd and dtb, all in the pool. Nothing is committed on any
// failure.
func Build(ctx context.Context, repo *snapshot.Repo, src string, o Options) (*Result, error) {
	start := time.Now()
	if o.Stream == "" {
		o.Stream = "daily"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Jobs <= 0 {
		o.Jobs = runtime.NumCPU()
	}
	if err := CheckSerial(o.Serial); err != nil {
		return nil, err
	}
	rel, err := o.Config.Release(o.Release)
	if err != nil {
		return nil, err
	}
	if rel.missing != "" {
		return nil, fmt.Errorf("%w: %s", ErrConfig, rel.missing)
	}
	rows := rel.Rows(o.Arch)
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w: release %s has no kernel rows for arch %s", ErrConfig, o.Release, o.Arch)
	}
	st, err := repo.Stream(ctx, o.Stream)
	if err != nil {
		return nil, err
	}
	ctx, release, err := repo.Hold(ctx, fmt.Sprintf("build %s %s %s %s", o.Arch, o.Release, o.Serial, o.Stream))
	if err != nil {
		return nil, err
	}
	defer release()

	c := o.customize(rel)
	if c.Requested() {
		return buildCustomised(ctx, repo, src, o, c, st, rel, rows, start)
	}
	in, err := Open(ctx, src)
	if err != nil {
		return nil, err
	}
	res, err := pipeline(ctx, repo, src, in, o, st, rel, rows, start, true)
	in.Close()
	var need *needKernels
	if errors.As(err, &need) {
		// The image lacks a row's kernel package: install it.
		o.Log.Info("build: the image lacks kernel packages; customising it", "packages", strings.Join(need.pkgs, " "))
		c.Kernels = need.pkgs
		return buildCustomised(ctx, repo, src, o, c, st, rel, rows, start)
	}
	return res, err
}

// needKernels stops a plain build whose image lacks rows' kernel packages.
type needKernels struct{ pkgs []string }

func (n *needKernels) Error() string {
	return "the image lacks kernel packages " + strings.Join(n.pkgs, ", ")
}

// customize is the customisation asked for by the options and the config.
func (o Options) customize(rel *Release) *Customize {
	c := &Customize{Proposed: o.Customize.Proposed || o.Config.EnableProposed}
	c.Packages = slices.Concat(o.Config.Packages, rel.Packages, o.Customize.Packages)
	c.Repos = slices.Concat(o.Config.Repos, rel.Repos, o.Customize.Repos)
	c.Commands = slices.Concat(o.Config.Customize, rel.Customize, o.Customize.Commands)
	c.Purge = slices.Concat(o.Config.prePurge, o.Customize.Purge)
	c.ProposedPackages = slices.Concat(o.Config.proposedPackages, o.Customize.ProposedPackages)
	return c
}

// input is what the pipeline reads: an opened source, or a customised tree.
type input interface {
	Source
	Describe() string
	Digest() string
	Drain() error
	upstream() string
}

func (o *Opened) upstream() string { return o.Squashfs }

// customInput is the walk of a customised tree, described as its source.
type customInput struct {
	*dirSource
	describe, digest string
}

func (c customInput) Describe() string { return c.describe }
func (c customInput) Digest() string   { return c.digest }
func (c customInput) Drain() error     { return nil }
func (c customInput) upstream() string { return "" }

// buildCustomised unpacks the source into a work tree, customises it in a
// chroot and builds from the tree.
func buildCustomised(ctx context.Context, repo *snapshot.Repo, src string, o Options, c *Customize, st *snapshot.Stream, rel *Release, rows []KernelRow, start time.Time) (*Result, error) {
	what := strings.Join(slices.Concat(c.Kernels, c.Packages), " ")
	if what == "" {
		what = "customize commands"
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("build: customising the image (%s) %w: it unpacks the image with its owners and device nodes, mounts proc, sys and dev in it and runs apt in a chroot", what, ErrNeedsRoot)
	}
	store := repo.Store()
	if removed, err := CleanWork(store.Dir()); err != nil {
		o.Log.Warn("build: stale work trees", "err", err)
	} else if len(removed) > 0 {
		o.Log.Info("build: removed the work trees of builds that died", "trees", len(removed))
	}
	ws, err := newWorkspace(store.Dir(), o.Log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := ws.close(); err != nil {
			o.Log.Error("build: cleaning up the work tree", "err", err)
		}
	}()
	in, err := Open(ctx, src)
	if err != nil {
		return nil, err
	}
	describe := in.Describe() + ", customised"
	clock := newStepClock()
	t0 := time.Now()
	meter := o.Meters.New("build: unpack "+in.Describe()+" (entries)", 0, progress.Items)
	err = extract(ctx, in, ws.root, func() { meter.Add(1) })
	meter.Done()
	if err == nil {
		err = in.Drain()
	}
	digest := in.Digest()
	in.Close()
	if err != nil {
		return nil, err
	}
	if err := checkSum(src, strings.TrimPrefix(digest, "sha256:"), o.SHA256); err != nil {
		return nil, err
	}
	o.Log.Debug("build: unpacked", "took", time.Since(t0))
	// The rows' kernel packages the image lacks are installed too.
	status, err := readInImage(ws.root, StatusPath)
	if err != nil {
		return nil, fmt.Errorf("source %s: no /%s: not an image of a Debian-based system", src, StatusPath)
	}
	var need *needKernels
	if err := missingKernels(status, rows); errors.As(err, &need) {
		if !o.SkipMissingKernels { // else the pipeline skips their rows, with a warning
			for _, k := range need.pkgs {
				if !slices.Contains(c.Kernels, k) {
					c.Kernels = append(c.Kernels, k)
				}
			}
		}
	} else if err != nil {
		return nil, fmt.Errorf("source %s: %w", src, err)
	}
	clock.done("unpack")
	t0 = time.Now()
	err = ws.mount()
	if err == nil {
		err = ws.customise(ctx, c, o.Meters, clock.done)
	}
	if uerr := ws.unmount(); err == nil {
		err = uerr
	}
	if err != nil {
		return nil, err
	}
	o.Log.Debug("build: customised", "took", time.Since(t0))
	ds, err := newDirSource(ws.root)
	if err != nil {
		return nil, err
	}
	o.customized = c
	o.clock = clock
	res, err := pipeline(ctx, repo, src, customInput{dirSource: ds, describe: describe, digest: digest}, o, st, rel, rows, start, false)
	ds.Close()
	return res, err
}

// pipeline reads the input once into tar2sqfs and the pool and records the
// pending build. With checkKernels it stops (needKernels) as soon as the
// dpkg status shows a row's kernel package missing.
func pipeline(ctx context.Context, repo *snapshot.Repo, src string, in input, o Options, st *snapshot.Stream, rel *Release, rows []KernelRow, start time.Time, checkKernels bool) (*Result, error) {
	b := &buildRun{store: repo.Store(), o: o, src: src, rows: rows, res: &Result{}, caps: map[string]*captured{}, clock: o.clock}
	if b.clock == nil {
		b.clock = newStepClock()
	}
	defer b.discard()
	var sq *squasher
	var tmp *ToolFile
	if in.upstream() == "" {
		var err error
		if tmp, err = NewToolFile(b.store, b.store.Blobs()); err != nil {
			return nil, err
		}
		defer tmp.Discard()
		if sq, err = newSquasher(ctx, tmp.Path, o.Config.Compressor, o.Jobs); err != nil {
			return nil, err
		}
		defer sq.abort()
	}
	if err := b.read(ctx, in, sq, checkKernels); err != nil {
		return nil, err
	}
	sqfs, srcDigest, err := b.squashfs(ctx, in, sq, tmp)
	if err != nil {
		return nil, err
	}
	pend, err := b.pending(ctx, in, st, rel, sqfs, srcDigest)
	if err != nil {
		return nil, err
	}
	if err := b.commit(ctx, pend); err != nil {
		return nil, err
	}
	b.clock.done("ingest")
	b.res.Steps = b.clock.steps
	b.res.Seconds = time.Since(start).Seconds()
	return b.res, nil
}

// buildRun is the state of one pass of the pipeline.
type buildRun struct {
	store     *cas.Store
	o         Options
	src       string
	rows      []KernelRow
	res       *Result
	clock     *stepClock
	caps      map[string]*captured // files of interest, by path
	bootFiles []string             // the names in /boot, for errors
	missing   map[string]bool      // rows' kernel packages the image lacks (skipped)
	staged    []*cas.Staged        // discarded unless committed
}

func (b *buildRun) discard() {
	for _, s := range b.staged {
		s.Discard()
	}
}

// wanted says whether an entry is kept on the way: the dpkg status, the
// kernels and initrds in /boot, and the rows' device trees.
func (b *buildRun) wanted(e *Entry) bool {
	if e.Type != TypeRegular {
		return false
	}
	if e.Path == StatusPath {
		return true
	}
	dir, name := path.Split(e.Path)
	if dir == "boot/" && (strings.HasPrefix(name, "initrd.img-") || strings.HasPrefix(name, "vmlinuz-") || strings.HasPrefix(name, "vmlinux-")) {
		return true
	}
	for _, r := range b.rows {
		if r.DTB != "" && dtbMatch(r.DTB, e.Path, "") {
			return true
		}
	}
	return false
}

// read passes every entry to tar2sqfs (sq; nil when the source is a
// squashfs used as it is), capturing the wanted ones on the way.
func (b *buildRun) read(ctx context.Context, in input, sq *squasher, checkKernels bool) error {
	meter := b.o.Meters.New("build: read "+in.Describe()+" (entries)", 0, progress.Items)
	defer meter.Done()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		e, err := in.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		b.res.Entries++
		meter.Add(1)
		if strings.HasPrefix(e.Path, "boot/") && strings.Count(e.Path, "/") == 1 {
			b.bootFiles = append(b.bootFiles, path.Base(e.Path))
		}
		body := e.Body
		var finish func() error
		if b.wanted(e) {
			body, finish = capture(ctx, b.store, e, b.caps, &b.staged)
		}
		if sq != nil {
			err = sq.add(e, body)
		} else if body != nil {
			_, err = io.Copy(io.Discard, body)
		}
		if finish != nil {
			if ferr := finish(); err == nil {
				err = ferr
			}
		}
		if err == nil && (checkKernels || b.o.SkipMissingKernels) && e.Path == StatusPath {
			b.missing, err = b.o.missingKernels(b.caps[StatusPath].data, b.rows)
		}
		if err != nil {
			return err
		}
	}
}

// squashfs finishes and stages the squashfs (or stages the source squashfs
// as it is) and returns it with the source's sha256, checked against
// --sha256.
func (b *buildRun) squashfs(ctx context.Context, in input, sq *squasher, tmp *ToolFile) (*cas.Staged, string, error) {
	var sqfs *cas.Staged
	var err error
	if sq != nil {
		if err := sq.finish(); err != nil {
			return nil, "", err
		}
		b.clock.done("squashfs")
		b.res.DroppedXattrs = sq.dropped
		if sq.dropped > 0 {
			b.o.Log.Warn("build: squashfs cannot hold POSIX ACLs; dropped", "xattrs", sq.dropped)
		}
		if sqfs, err = tmp.Stage(ctx, nil); err != nil {
			return nil, "", err
		}
	} else {
		f, err := os.Open(in.upstream())
		if err != nil {
			return nil, "", err
		}
		sqfs, err = b.store.Stage(ctx, f, cas.Unknown, nil)
		f.Close()
		if err != nil {
			return nil, "", err
		}
		b.res.Reused = true
	}
	b.staged = append(b.staged, sqfs)
	// The source's sha256: an upstream squashfs is the source file itself,
	// hashed as it was staged; anything else was hashed as it was read.
	srcDigest := sqfs.Digest.String()
	if !b.res.Reused {
		if err := in.Drain(); err != nil {
			return nil, "", fmt.Errorf("source %s: %w", b.src, err)
		}
		srcDigest = in.Digest()
	}
	if err := checkSum(b.src, strings.TrimPrefix(srcDigest, "sha256:"), b.o.SHA256); err != nil {
		return nil, "", err
	}
	return sqfs, srcDigest, nil
}

// pending stages the manifest and makes the pending build: one product per
// row (the skipped ones left out), sorted by name.
func (b *buildRun) pending(ctx context.Context, in input, st *snapshot.Stream, rel *Release, sqfs *cas.Staged, srcDigest string) (*Pending, error) {
	o := b.o
	status := b.caps[StatusPath]
	if status == nil {
		return nil, fmt.Errorf("source %s: no /%s: not an image of a Debian-based system", b.src, StatusPath)
	}
	pkgs, err := ParseStatus(status.data)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", b.src, err)
	}
	manifest, err := b.store.Stage(ctx, bytes.NewReader(Manifest(pkgs, o.Arch)), cas.Unknown, nil)
	if err != nil {
		return nil, err
	}
	b.staged = append(b.staged, manifest)
	pend := &Pending{
		Stream: o.Stream, Label: st.Label, Arch: o.Arch, Release: o.Release, Serial: o.Serial,
		Source: cmp.Or(o.SourceName, b.src), SourceDigest: srcDigest, SourceFormat: in.Describe(),
		ConfigDigest: o.Config.Digest, ContentID: o.Config.Labelled(st.Label),
		Customization: o.customized,
	}
	base := path.Join(o.Release, o.Arch, o.Serial)
	for _, r := range b.rows {
		if b.missing[r.KPackage] {
			continue
		}
		p, err := o.product(st.Label, rel, r, pkgs, b.caps, b.bootFiles)
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", b.src, err)
		}
		p.Items["squashfs"] = newItem("squashfs", path.Join(base, "squashfs"), sqfs, nil)
		p.Items["manifest"] = newItem("manifest", path.Join(base, "squashfs.manifest"), manifest, nil)
		pend.Products = append(pend.Products, *p)
	}
	slices.SortFunc(pend.Products, func(a, b PendingProduct) int { return strings.Compare(a.Name, b.Name) })
	return pend, nil
}

// newItem makes an item of a product.
func newItem(ftype, p string, s *cas.Staged, extra map[string]string) PendingItem {
	return PendingItem{FType: ftype, Path: p, SHA256: s.Digest.Encoded(), Size: s.Size, Extra: extra}
}

// commit commits the blobs the pending build uses and records it, in one
// writer session, and lists its items in the result.
func (b *buildRun) commit(ctx context.Context, pend *Pending) error {
	ss, err := b.store.Writer(ctx, "build")
	if err != nil {
		return err
	}
	defer ss.Close()
	used := usedStaged(pend)
	var commit []*cas.Staged
	for _, s := range b.staged {
		if used[s.Digest.Encoded()] {
			commit = append(commit, s)
			delete(used, s.Digest.Encoded())
		} else {
			s.Discard() // an unused kernel, or a second copy of a blob
		}
	}
	b.staged = nil // Commit consumes the rest, whatever happens
	done, err := ss.Commit(ctx, commit...)
	if err != nil {
		return err
	}
	fresh := map[string]bool{} // sha256s new to the pool
	for _, c := range done {
		if c.New {
			b.res.NewBytes += c.Size
			fresh[c.Digest.Encoded()] = true
		}
	}
	if err := putPending(ctx, ss, pend); err != nil {
		return err
	}
	if err := ss.Close(); err != nil {
		return err
	}
	for _, p := range pend.Products {
		for _, name := range slices.Sorted(maps.Keys(p.Items)) {
			it := p.Items[name]
			b.res.Items = append(b.res.Items, ItemResult{Product: p.Name, Name: name, Path: it.Path, Digest: it.SHA256, Size: it.Size, New: fresh[it.SHA256]})
		}
	}
	b.res.Pending = pend
	return nil
}

// usedStaged lists the sha256s the pending build's items name.
func usedStaged(p *Pending) map[string]bool {
	out := map[string]bool{}
	for _, pr := range p.Products {
		for _, it := range pr.Items {
			out[it.SHA256] = true
		}
	}
	return out
}

// capture tees a file of interest: kernels, initrds and dtbs are staged
// into the pool while they pass to the squashfs; the dpkg status is kept in
// memory. finish waits for the staging.
func capture(ctx context.Context, store *cas.Store, e *Entry, caps map[string]*captured, staged *[]*cas.Staged) (io.Reader, func() error) {
	if e.Path == StatusPath {
		const limit = 256 << 20
		if e.Size > limit {
			return e.Body, func() error { return fmt.Errorf("/%s: %d bytes: larger than %d", StatusPath, e.Size, limit) }
		}
		buf := bytes.NewBuffer(make([]byte, 0, e.Size))
		caps[e.Path] = &captured{}
		return io.TeeReader(e.Body, buf), func() error {
			caps[e.Path].data = buf.Bytes()
			return nil
		}
	}
	pr, pw := io.Pipe()
	type result struct {
		st  *cas.Staged
		err error
	}
	done := make(chan result, 1)
	go func() {
		st, err := store.Stage(ctx, pr, cas.Expect{Size: e.Size}, nil)
		pr.CloseWithError(cmpErr(err, io.ErrClosedPipe))
		done <- result{st, err}
	}()
	return io.TeeReader(e.Body, pw), func() error {
		pw.Close()
		r := <-done
		if r.err != nil {
			return fmt.Errorf("entry %q: %w", e.Path, r.err)
		}
		if old := caps[e.Path]; old != nil && old.staged != nil {
			old.staged.Discard() // a later entry of the same path wins
		}
		caps[e.Path] = &captured{staged: r.st}
		*staged = append(*staged, r.st)
		return nil
	}
}

func cmpErr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

// dtbMatch says whether p is a row's device tree for kernel version kver
// ("" for any): a path, {kver} standing for the kernel version, or a file
// name under lib/firmware/<kver>/device-tree/ or boot/dtbs/<kver>/.
func dtbMatch(pattern, p, kver string) bool {
	isBare := !strings.Contains(pattern, "/")
	if isBare && path.Base(p) != pattern {
		return false // most entries: one comparison, no split
	}
	xs := strings.Split(p, "/")
	isKver := func(c string) bool { return kver == "" || c == kver }
	if isBare {
		return len(xs) > 4 && xs[0] == "lib" && xs[1] == "firmware" && isKver(xs[2]) && xs[3] == "device-tree" ||
			len(xs) > 3 && xs[0] == "boot" && xs[1] == "dtbs" && isKver(xs[2])
	}
	ps := strings.Split(strings.TrimPrefix(pattern, "/"), "/")
	if len(ps) != len(xs) {
		return false
	}
	for i := range ps {
		if ps[i] == "{kver}" && isKver(xs[i]) {
			continue
		}
		if ps[i] != xs[i] {
			return false
		}
	}
	return true
}

// product makes a row's product: its fields and its boot items (the
// squashfs and the manifest are added by the caller).
func (o Options) product(label string, rel *Release, r KernelRow, pkgs []Package, caps map[string]*captured, bootFiles []string) (*PendingProduct, error) {
	kver, kernel, initrd, err := pickKernel(pkgs, r, caps, bootFiles)
	if err != nil {
		return nil, err
	}
	dir, err := o.Config.bootDir(rel, r, o.Serial)
	if err != nil {
		return nil, fmt.Errorf("%w: line %d: kname: %w", ErrConfig, r.Line, err)
	}
	kp := map[string]string{"kpackage": r.KPackage}
	items := map[string]PendingItem{
		"boot-kernel": newItem("boot-kernel", path.Join(dir, "boot-kernel"+r.Suffix), kernel, kp),
		"boot-initrd": newItem("boot-initrd", path.Join(dir, "boot-initrd"+r.Suffix), initrd, kp),
	}
	if r.DTB != "" {
		c := findDTB(caps, r.DTB, kver)
		if c == nil {
			return nil, fmt.Errorf("%w: row [%s]: no device tree %s for kernel %s (looked in /lib/firmware/%s/device-tree/ and /boot/dtbs/%s/)", ErrNoKernel, r, r.DTB, kver, kver, kver)
		}
		items["boot-dtb"] = newItem("boot-dtb", path.Join(dir, "boot-dtb"+r.Suffix), c.staged, kp)
	}
	fields := map[string]string{
		"arch": o.Arch, "label": label, "os": rel.OS, "release": rel.Release,
		"release_title": rel.ReleaseTitle, "release_codename": rel.ReleaseCodename,
		"subarch": r.Subarch, "subarches": strings.Join(r.Subarches, ","),
		"kflavor": r.Flavor, "krel": r.KRel, "version": string(rel.Version),
		"support_eol": rel.SupportEOL, "support_esm_eol": rel.SupportESMEOL,
	}
	for k, v := range r.Extra {
		fields[k] = v
	}
	return &PendingProduct{Name: o.Config.ProductName(label, rel, r), Fields: fields, Items: items}, nil
}

// findDTB finds a row's device tree for kernel kver among the captured
// files (the first in path order when a file name matches several).
func findDTB(caps map[string]*captured, dtb, kver string) *captured {
	var found []string
	for p, c := range caps {
		if c != nil && c.staged != nil && dtbMatch(dtb, p, kver) {
			found = append(found, p)
		}
	}
	if len(found) == 0 {
		return nil
	}
	slices.Sort(found) // the same pick every time
	return caps[found[0]]
}

// kernelNames are the names a kernel has in /boot, before "-<kver>":
// vmlinuz on most arches, vmlinux where the kernel is not compressed
// (ppc64el).
var kernelNames = []string{"vmlinuz", "vmlinux"}

// pickKernel finds the row's kernel and initrd among the captured files:
// the kernel versions the row's package brings (through its dependencies
// down to linux-image-<kver>), then /boot/vmlinuz-<kver> or vmlinux-<kver>
// and /boot/initrd.img-<kver>.
func pickKernel(pkgs []Package, r KernelRow, caps map[string]*captured, boot []string) (string, *cas.Staged, *cas.Staged, error) {
	holds := "/boot holds " + strings.Join(boot, ", ")
	if len(boot) == 0 {
		holds = "/boot is empty or missing"
	}
	kvers, err := KernelVersions(pkgs, r.KPackage)
	if err != nil {
		return "", nil, nil, fmt.Errorf("%w: row [%s]: %w; %s", ErrNoKernel, r, err, holds)
	}
	for _, kver := range kvers {
		for _, name := range kernelNames {
			k, i := caps["boot/"+name+"-"+kver], caps["boot/initrd.img-"+kver]
			if k == nil || k.staged == nil {
				continue
			}
			if i == nil || i.staged == nil {
				return "", nil, nil, fmt.Errorf("%w: row [%s]: no /boot/initrd.img-%s for kernel %s; %s", ErrNoKernel, r, kver, kver, holds)
			}
			return kver, k.staged, i.staged, nil
		}
	}
	return "", nil, nil, fmt.Errorf("%w: row [%s]: %s brings kernel %s but there is no /boot/vmlinuz-%s or vmlinux-%s; %s", ErrNoKernel, r, r.KPackage, strings.Join(kvers, ", "), kvers[0], kvers[0], holds)
}

// missingKernels returns needKernels when the image lacks rows' kernel
// packages, or with SkipMissingKernels the set of them (the rows are
// skipped with a warning; all of them missing is an error).
func (o Options) missingKernels(status []byte, rows []KernelRow) (map[string]bool, error) {
	err := missingKernels(status, rows)
	var need *needKernels
	if !o.SkipMissingKernels || !errors.As(err, &need) {
		return nil, err
	}
	skip := map[string]bool{}
	for _, p := range need.pkgs {
		skip[p] = true
	}
	kept := 0
	for _, r := range rows {
		if skip[r.KPackage] {
			o.Log.Warn("build: the image lacks the row's kernel package; skipped", "row", "["+r.String()+"]", "package", r.KPackage)
		} else {
			kept++
		}
	}
	if kept == 0 {
		return nil, fmt.Errorf("%w: the image has none of the kernel packages of %s %s's rows (%s)", ErrNoKernel, o.Release, o.Arch, strings.Join(need.pkgs, ", "))
	}
	return skip, nil
}

// missingKernels returns needKernels when the dpkg status lacks an
// installed package of a row.
func missingKernels(status []byte, rows []KernelRow) error {
	pkgs, err := ParseStatus(status)
	if err != nil {
		return err
	}
	installed := map[string]bool{}
	for _, p := range pkgs {
		if p.Installed() {
			installed[p.Name] = true
		}
	}
	var missing []string
	for _, r := range rows {
		if !installed[r.KPackage] && !slices.Contains(missing, r.KPackage) {
			missing = append(missing, r.KPackage)
		}
	}
	if len(missing) > 0 {
		return &needKernels{missing}
	}
	return nil
}
