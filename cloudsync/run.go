package cloudsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mephstore/mephstore/build"
	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/internal/fetch"
	"github.com/mephstore/mephstore/internal/pgp"
	"github.com/mephstore/mephstore/internal/progress"
	"github.com/mephstore/mephstore/publish"
	"github.com/mephstore/mephstore/snapshot"
)

// Options tune a sync.
type Options struct {
	Source   string      // a tree's root, its index or its products file: URL or path
	Keyring  pgp.Keyring // required unless Unsigned
	Unsigned bool        // read the unsigned .json files, verifying nothing
	Stream   string      // default "daily"
	Config   *build.Config
	Plan     PlanOptions
	Jobs     int // images downloaded and built at a time; default 2
	// FakeBuilder builds build.FakeRoot (a few files, a kernel and an
	// initrd of a few bytes per row) instead of the upstream image,
	// which is still fetched and checked: for tests and debugging.
	FakeBuilder bool
	// Build options passed to every build (customisation, kernels).
	Customize          build.Customize
	SkipMissingKernels bool
	BuildJobs          int // tar2sqfs threads per build; default: cores / Jobs
	DryRun             bool
	Publish            *publish.Options // publish the stream after the commit
	Client             *fetch.Client
	Meters             progress.Factory
	Log                *slog.Logger
}

// Failure is a planned build that did not happen.
type Failure struct {
	Build
	Err string `json:"error"`
}

// Report is what a sync did.
type Report struct {
	Plan      *Plan            `json:"plan"`
	Built     []Build          `json:"built"`
	Failed    []Failure        `json:"failed"`
	Reused    int              `json:"sources_reused"` // sources found in the pool
	Committed *build.Committed `json:"committed,omitempty"`
	Published *publish.Result  `json:"published,omitempty"`
	DryRun    bool             `json:"dry_run"`
	Seconds   float64          `json:"seconds"`
}

// Run plans the sync and, unless DryRun, executes the plan. An error
// means nothing could run (the source or the store could not be read);
// failed images are in the report's Failed, beside what was committed.
func Run(ctx context.Context, r *snapshot.Repo, o Options) (*Report, error) {
	start := time.Now()
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Stream == "" {
		o.Stream = "daily"
	}
	st, err := r.Stream(ctx, o.Stream)
	if err != nil {
		return nil, err
	}
	src, err := snapshot.OpenSource(o.Source, o.Client)
	if err != nil {
		return nil, err
	}
	cats, err := src.ReadCatalogs(ctx, o.Keyring, !o.Unsigned)
	if err != nil {
		return nil, err
	}
	plan, err := MakePlan(ctx, r, st, o.Config, src, cats, o.Plan)
	if err != nil {
		return nil, err
	}
	for _, w := range plan.Warnings {
		o.Log.Warn("sync: " + w)
	}
	rep := &Report{Plan: plan, Built: []Build{}, Failed: []Failure{}, DryRun: o.DryRun}
	if o.DryRun {
		rep.Seconds = time.Since(start).Seconds()
		return rep, nil
	}
	if err := execute(ctx, r, src, o, rep); err != nil {
		return rep, err
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

// execute builds the plan's images, commits the pending builds and
// publishes. A lease keeps the fetched sources and the builds' blobs from
// gc until the end.
func execute(ctx context.Context, r *snapshot.Repo, src *snapshot.Source, o Options, rep *Report) error {
	ctx, release, err := r.Hold(ctx, "sync "+o.Stream)
	if err != nil {
		return err
	}
	defer release()
	jobs := o.Jobs
	if jobs <= 0 {
		jobs = 2
	}
	var mu sync.Mutex
	sem := make(chan struct{}, jobs)
	var wg sync.WaitGroup
	for _, b := range rep.Plan.Builds {
		if b.Reason == ReasonInvalid {
			rep.Failed = append(rep.Failed, Failure{Build: b, Err: b.Error})
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			reused, err := buildOne(ctx, r, src, o, b)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				o.Log.Error("sync: build failed", "build", b.String(), "err", err)
				rep.Failed = append(rep.Failed, Failure{Build: b, Err: err.Error()})
				return
			}
			if reused {
				rep.Reused++
			}
			rep.Built = append(rep.Built, b)
		}()
	}
	wg.Wait()
	byName := func(a, b Build) int { return strings.Compare(a.String(), b.String()) }
	slices.SortFunc(rep.Built, byName)
	slices.SortFunc(rep.Failed, func(a, b Failure) int { return byName(a.Build, b.Build) })
	if err := ctx.Err(); err != nil {
		return err
	}
	if o.Publish == nil {
		c, err := build.CommitPending(ctx, r, o.Stream)
		rep.Committed = c
		if err != nil {
			return fmt.Errorf("sync: commit: %w", err)
		}
		return nil
	}
	c, res, err := build.PublishStream(ctx, r, o.Stream, *o.Publish)
	rep.Committed, rep.Published = c, res
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

// buildOne fetches one image into the pool (unless it is there) and builds
// it into a pending build of the stream.
func buildOne(ctx context.Context, r *snapshot.Repo, src *snapshot.Source, o Options, b Build) (reused bool, err error) {
	d := digest.NewDigestFromEncoded(digest.SHA256, b.SHA256)
	s := r.Store()
	reused, err = fetchSource(ctx, s, src, o, b, d)
	if err != nil {
		return false, err
	}
	path, cleanup, err := sourceFile(ctx, s.Blobs(), d)
	if err != nil {
		return reused, err
	}
	defer cleanup()
	if o.FakeBuilder {
		if path, err = fakeSource(ctx, o.Config, b); err != nil {
			return reused, err
		}
		defer os.RemoveAll(filepath.Dir(path))
	}
	bo := build.Options{Stream: o.Stream, Arch: b.Arch, Release: b.Release, Serial: b.Version, Config: o.Config,
		Jobs: o.BuildJobs, Meters: o.Meters, Log: o.Log, SourceName: b.URL, Customize: o.Customize,
		SkipMissingKernels: o.SkipMissingKernels}
	if !o.FakeBuilder {
		bo.SHA256 = b.SHA256
	}
	if _, err := build.Build(ctx, r, path, bo); err != nil {
		return reused, err
	}
	return reused, nil
}

// fetchSource puts the upstream image in the pool, checked against its
// size, sha256 and md5 as it streams, unless the pool holds it already
// (then it joins the run's lease, so that gc leaves it alone).
func fetchSource(ctx context.Context, s *cas.Store, src *snapshot.Source, o Options, b Build, d digest.Digest) (bool, error) {
	ss, err := s.Writer(ctx, "sync: look for "+b.String())
	if err != nil {
		return false, err
	}
	blob, err := ss.Stat(d)
	if err == nil {
		err = ss.AddRefs(cas.LeaseFrom(ctx), cas.Ref{Kind: cas.RefBlob, Digest: d})
		if err != nil {
			ss.Close()
			return false, err
		}
	}
	if cerr := ss.Close(); cerr != nil {
		return false, cerr
	}
	if err == nil {
		if blob.Size != b.Size {
			return false, fmt.Errorf("%s: %w: size %d, but its sha256 names a pooled blob of %d bytes", b.Path, cas.ErrSizeMismatch, b.Size, blob.Size)
		}
		return true, nil
	}
	if !errors.Is(err, cas.ErrBlobNotFound) {
		return false, err
	}
	m := o.Meters.New("sync: fetch "+b.String(), b.Size, progress.Bytes)
	defer m.Done()
	in := cas.Source{Name: b.URL, Expect: cas.Expect{Size: b.Size, Digest: d, MD5: b.MD5},
		Open: func() (io.ReadCloser, int64, error) { return src.Open(ctx, b.Path) }}
	err = s.IngestParallel(ctx, []cas.Source{in}, 1, m, func(cas.Ingested) error { return nil })
	if err != nil {
		return false, fmt.Errorf("fetch %s: %w", b.URL, err)
	}
	return false, nil
}

// sourceFile is a file of the blob d for the build to read: the blob
// store's own when it keeps local files, else a temp copy (removed by
// cleanup).
func sourceFile(ctx context.Context, blobs cas.BlobStore, d digest.Digest) (string, func(), error) {
	if lf, ok := blobs.(cas.LocalFiles); ok {
		p, err := lf.BlobFilePath(d)
		return p, func() {}, err
	}
	in, err := blobs.Open(ctx, d)
	if err != nil {
		return "", nil, err
	}
	defer in.Close()
	f, err := os.CreateTemp("", "mephstore-source-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.Remove(f.Name()) }
	_, err = io.Copy(f, in)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		cleanup()
		return "", nil, err
	}
	return f.Name(), cleanup, nil
}

// fakeSource writes build.FakeRoot for the image to a temp directory and
// returns the tarball's path.
func fakeSource(ctx context.Context, cfg *build.Config, b Build) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	root, err := build.FakeRoot(cfg, b.Release, b.Arch, b.Upstream)
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "mephstore-fake-")
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, "root.tar")
	if err := os.WriteFile(p, root, 0o600); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return p, nil
}
