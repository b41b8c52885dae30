package main

import (
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/mephstore/mephstore/build"
	"github.com/mephstore/mephstore/catalog"
	"github.com/mephstore/mephstore/cloudsync"
	"github.com/mephstore/mephstore/internal/pgp"
	"github.com/mephstore/mephstore/publish"
)

// exitPartial: sync built some images and failed others (the built ones
// are committed).
const exitPartial = 3

// DefaultSyncSource is the daily cloud-images download stream, signed.
const DefaultSyncSource = "https://cloud-images.ubuntu.com/daily/streams/v1/com.ubuntu.cloud:daily:download.sjson"

// hostArches are the arches sync builds by default on a host, as
// meph2-cloudimg-sync chooses them.
var hostArches = map[string][]string{
	"386": {"i386"}, "amd64": {"i386", "amd64", "armhf", "arm64"}, "arm64": {"arm64", "armhf"},
	"arm": {"armhf"}, "ppc64le": {"ppc64el"}, "s390x": {"s390x"},
}

type syncFlags struct {
	source, keyring, config, stream, target             string
	arches, rebuilds                                    []string
	proposedPkgs, purgePkgs, addPkgs                    []string
	noVerify, fake, dryRun, asJSON, doPublish, proposed bool
	skipMissing                                         bool
	max, jobs                                           int
	root, signKey, passFile                             string
	noSign                                              bool
}

func (a *app) syncCmd() *cobra.Command {
	var f syncFlags
	cmd := &cobra.Command{
		Use:   "sync [FILTER...]",
		Short: "Build what the cloud-images stream has and the stream lacks, commit it as one snapshot, publish",
		Long: `sync reads the upstream cloud-images download stream (--source: its products file, index or
root, a URL or a directory; signed, checked with --keyring, unless --no-verify), plans what is
out of date and builds it: for every product of a release of the build config and an arch of
--arches, the newest --max versions that match the filters and that STREAM (its head or its
pending builds) lacks, plus the --rebuild versions. Each image (the version's squashfs, else its
tar.gz) is fetched into the pool, checked against its size, sha256 and md5, and built; one that
fails is listed and does not stop the others. The builds are committed as one snapshot, and
--publish publishes the stream. A second run with nothing new builds nothing.

Exit codes: 0 every planned image was built (or nothing was out of date); 3 some failed (the
others are committed); 1 nothing could run (source, signature or store); 2 bad usage.`,
		Example: `  mephstore sync --keyring /usr/share/keyrings/ubuntu-cloudimage-keyring.gpg --config meph-v3.yaml --arches amd64,arm64 --publish
  mephstore sync --keyring kr.gpg --dry-run --json 'release~(noble|jammy)'
  mephstore sync --keyring kr.gpg --rebuild 20261201:20261201.1 release=noble arch=amd64
  mephstore sync --no-verify --source /srv/mirror/cloud-images --fake-builder --max 3`,
		RunE: func(cmd *cobra.Command, args []string) error { return a.runSync(cmd, f, args) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.source, "source", DefaultSyncSource, "upstream products file, index or tree root (URL or path)")
	fl.StringVar(&f.keyring, "keyring", "", "keyring that must have signed the source (.sjson)")
	fl.BoolVar(&f.noVerify, "no-verify", false, "read the unsigned .json source (say it explicitly)")
	fl.StringVar(&f.config, "config", "", "build config, meph-v3 schema (default: the built-in one)")
	fl.StringVar(&f.stream, "stream", "daily", "stream to bring up to date")
	fl.StringArrayVar(&f.arches, "arches", nil, "arches to build, comma-separated, repeatable (default: the host's, as meph2-cloudimg-sync picks)")
	fl.IntVar(&f.max, "max", 1, "newest upstream versions per product to consider")
	fl.StringArrayVar(&f.rebuilds, "rebuild", nil, "rebuild upstream version FROM as TO (FROM:TO, e.g. 20261201:20261201.1), repeatable")
	fl.StringVar(&f.target, "target", "", `"force": build as if the stream had nothing (development)`)
	fl.BoolVar(&f.proposed, "proposed", false, "enable the release's -proposed pocket in every build")
	fl.StringSliceVar(&f.proposedPkgs, "proposed-packages", nil, "install these packages from -proposed (comma-separated)")
	fl.StringSliceVar(&f.purgePkgs, "pre-purge-packages", nil, "purge these packages before installing any (comma-separated)")
	fl.StringArrayVar(&f.addPkgs, "add-package", nil, "install this package in every image (repeatable)")
	fl.BoolVar(&f.skipMissing, "skip-missing-kernels", false, "skip the rows whose kernel package an image lacks instead of installing it")
	fl.BoolVar(&f.fake, "fake-builder", false, "build tiny fake images (a few files, kernels of a few bytes) instead of the upstream ones: tests and debugging (also MEPHSTORE_FAKE_BUILDER=1)")
	fl.IntVarP(&f.jobs, "jobs", "j", 2, "images fetched and built at a time")
	fl.BoolVar(&f.dryRun, "dry-run", false, "print the plan and change nothing")
	fl.BoolVar(&f.asJSON, "json", false, "print the plan (--dry-run) or the report as JSON")
	fl.BoolVar(&f.doPublish, "publish", false, "publish the stream after the commit (root and key as for publish)")
	fl.StringVar(&f.root, "publish-root", "", "with --publish: the publish root (default: remembered)")
	fl.StringVar(&f.signKey, "sign-key", "", "with --publish: the signing key (default: remembered)")
	fl.StringVar(&f.passFile, "sign-passphrase-file", "", "with --publish: file holding the signing key's passphrase (or MEPHSTORE_SIGN_PASSPHRASE)")
	fl.BoolVar(&f.noSign, "no-sign", false, "with --publish: publish unsigned")
	return cmd
}

// syncOptions turns the flags into cloudsync options.
func (a *app) syncOptions(cmd *cobra.Command, f syncFlags, args []string) (cloudsync.Options, error) {
	var o cloudsync.Options
	if (f.keyring == "") == !f.noVerify {
		return o, usageError{errors.New("sync needs --keyring FILE (check the source's signatures) or --no-verify")}
	}
	if f.target != "" && f.target != "force" {
		return o, usageError{fmt.Errorf("--target %q: the only value is force", f.target)}
	}
	filters, err := catalog.ParseFilters(args)
	if err != nil {
		return o, usageError{err}
	}
	var rbs []cloudsync.Rebuild
	for _, s := range f.rebuilds {
		rb, err := cloudsync.ParseRebuild(s)
		if err != nil {
			return o, usageError{err}
		}
		rbs = append(rbs, rb)
	}
	arches := hostArches[runtime.GOARCH]
	if len(f.arches) > 0 {
		arches = nil
		for _, s := range f.arches {
			arches = append(arches, strings.FieldsFunc(s, func(r rune) bool { return r == ',' })...)
		}
	}
	if len(arches) == 0 {
		return o, usageError{fmt.Errorf("no default arches for a %s host: give --arches", runtime.GOARCH)}
	}
	if f.max < 1 {
		return o, usageError{fmt.Errorf("--max %d: want 1 or more", f.max)}
	}
	cfg, err := build.LoadConfig(f.config)
	if err != nil {
		return o, err
	}
	o = cloudsync.Options{Source: f.source, Unsigned: f.noVerify, Stream: f.stream, Config: cfg, Jobs: f.jobs,
		FakeBuilder: f.fake || a.getenv("MEPHSTORE_FAKE_BUILDER") == "1", SkipMissingKernels: f.skipMissing,
		DryRun: f.dryRun, Client: a.fetchClient(), Meters: a.meters(), Log: a.log,
		Plan:      cloudsync.PlanOptions{Arches: arches, Filters: filters, Max: f.max, Rebuilds: rbs, Force: f.target == "force"},
		Customize: build.Customize{Proposed: f.proposed, Packages: f.addPkgs, Purge: f.purgePkgs, ProposedPackages: f.proposedPkgs}}
	if f.keyring != "" {
		if o.Keyring, err = pgp.ReadKeyring(f.keyring); err != nil {
			return o, err
		}
	}
	return o, nil
}

func (a *app) runSync(cmd *cobra.Command, f syncFlags, args []string) error {
	o, err := a.syncOptions(cmd, f, args)
	if err != nil {
		return err
	}
	r, err := a.repo()
	if err != nil {
		return err
	}
	if f.doPublish && !f.dryRun {
		po, err := publish.Resolve(ctxOf(cmd), r.Store(), publish.Choice{Root: f.root, SignKey: f.signKey,
			PassphraseFile: f.passFile, Passphrase: a.getenv("MEPHSTORE_SIGN_PASSPHRASE"), NoSign: f.noSign})
		if err != nil {
			return usageIf(err)
		}
		po.Meters = a.meters()
		o.Publish = &po
	}
	rep, err := cloudsync.Run(ctxOf(cmd), r, o)
	if err != nil {
		return err
	}
	if f.asJSON {
		if f.dryRun {
			err = jsonOut(a.stdout, rep.Plan)
		} else {
			err = jsonOut(a.stdout, rep)
		}
	} else {
		a.printSync(rep)
	}
	if err == nil && len(rep.Failed) > 0 {
		code := exitPartial
		if len(rep.Built) == 0 {
			code = exitFailure
		}
		return silentError{code}
	}
	return err
}

// printSync prints the plan (dry run) or what was done.
func (a *app) printSync(rep *cloudsync.Report) {
	p := rep.Plan
	if rep.DryRun {
		fmt.Fprintf(a.stdout, "sync %s from %s: %s to build, %s up to date\n", p.Stream, p.Source, plural(len(p.Builds), "image"), plural(p.UpToDate, "version"))
		for _, b := range p.Builds {
			why := b.Reason
			if b.Error != "" {
				why += ": " + b.Error
			}
			fmt.Fprintf(a.stdout, "  %-8s %-7s %-12s from %s %s (%s)\n", b.Release, b.Arch, b.Version, b.Upstream, b.FType, why)
		}
		return
	}
	if len(p.Builds) == 0 {
		fmt.Fprintf(a.stdout, "sync %s: up to date with %s (%s); nothing built\n", p.Stream, p.Source, plural(p.UpToDate, "version"))
	} else {
		fmt.Fprintf(a.stdout, "sync %s: %s built (%d from sources already in the pool), %s failed, %.1fs\n",
			p.Stream, plural(len(rep.Built), "image"), rep.Reused, plural(len(rep.Failed), "image"), rep.Seconds)
	}
	for _, b := range rep.Built {
		fmt.Fprintf(a.stdout, "  built   %s %s %s from %s (%s)\n", b.Release, b.Arch, b.Version, b.Upstream, b.Reason)
	}
	if c := rep.Committed; c != nil && c.Result != nil {
		fmt.Fprintf(a.stdout, "committed %s as snapshot %s (#%d)\n", plural(len(c.Result.Added), "version"), short(c.Result.Stream.Head), c.Result.Stream.Seq)
	}
	if pr := rep.Published; pr != nil {
		fmt.Fprintf(a.stdout, "published %s in %s\n", short(pr.Snapshot), pr.Dir)
	}
	for _, fl := range rep.Failed {
		fmt.Fprintf(a.stdout, "  FAILED  %s %s %s from %s: %s\n", fl.Release, fl.Arch, fl.Version, fl.Upstream, fl.Err)
	}
}
