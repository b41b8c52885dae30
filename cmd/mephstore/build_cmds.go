package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mephstore/mephstore/build"
	"github.com/mephstore/mephstore/internal/progress"
)

func (a *app) buildCmd() *cobra.Command {
	var (
		config, stream, sum string
		jobs                int
		asJSON, proposed    bool
		skipMissing         bool
		pkgs, repos         []string
	)
	cmd := &cobra.Command{
		Use:   "build ARCH RELEASE SERIAL SOURCE",
		Short: "Build MAAS boot images (kernels, initrds, squashfs, manifest) from a cloud image",
		Long: `build reads SOURCE once: a root tarball (.tar, gzip, xz or zstd), a squashfs, or a raw or qcow2
disk image whose root file system is ext4 (bare or behind an MBR or GPT partition table),
recognised by content. SOURCE is a path or an http(s) URL (downloaded with progress, resumed
if cut off; --sha256 checks it).

From it the build makes, for each kernel row of the config for RELEASE and ARCH, a product
named as meph2-build names it, with the row's boot-kernel and boot-initrd (/boot/vmlinuz-KVER
or vmlinux-KVER and initrd.img-KVER, KVER found from the row's kernel package through the
image's dpkg status) under RELEASE/ARCH/SERIAL/KNAME/FLAVOR/; a row whose package the image
lacks is installed in a customised build (as root) or skipped with --skip-missing-kernels; and once per image the squashfs (by tar2sqfs: every path, mode, owner,
time, xattr, link and device node kept; reproducible) and the manifest (what dpkg-query --show
prints). An upstream squashfs is used as it is. Everything goes into the pool and becomes a
pending build of --stream, which the next 'mephstore publish' of the stream commits.

Without --config the built-in config is used ('mephstore build default-config' prints it).`,
		Example: `  mephstore build amd64 noble 20261122 noble-server-cloudimg-amd64-root.tar.xz
  mephstore build --config maas-images/conf/meph-v3.yaml --skip-missing-kernels amd64 noble 20261122 noble.squashfs
  mephstore build --stream candidate arm64 noble 20261122.1 noble-arm64.squashfs
  mephstore build --sha256 5f0c... amd64 noble 20261122 https://cloud-images.example/noble/root.tar.xz
  mephstore publish daily                   # commits the pending builds, then publishes`,
		Args: cobra.ExactArgs(4),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := build.LoadConfig(config)
			if err != nil {
				return err
			}
			for _, why := range cfg.Ignored {
				a.log.Debug("build config: accepted, not acted on", "key", why)
			}
			r, err := a.repo()
			if err != nil {
				return err
			}
			ctx := ctxOf(cmd)
			src := args[3]
			o := build.Options{Stream: stream, Arch: args[0], Release: args[1], Serial: args[2], Config: cfg,
				Jobs: jobs, Meters: a.meters(), Log: a.log, SHA256: sum, SkipMissingKernels: skipMissing}
			// meph2-build's environment variables, then the flags.
			o.Customize.Packages = append(strings.Fields(a.getenv("M2E_ADD_PACKAGES")), pkgs...)
			o.Customize.Repos = append(splitRepos(a.getenv("M2E_ADD_REPOS")), repos...)
			o.Customize.Proposed = proposed
			if build.IsURL(src) {
				tmp, err := build.Download(ctx, r.Store(), a.fetchClient(), src, sum, a.meters())
				if err != nil {
					return err
				}
				defer tmp.Discard()
				o.SourceName, o.SHA256 = src, ""
				src = tmp.Path
			}
			res, err := build.Build(ctx, r, src, o)
			if err != nil {
				return err
			}
			if asJSON {
				return jsonOut(a.stdout, res)
			}
			a.printBuild(res)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&config, "config", "", "build config, YAML in the meph-v3 schema (default: the built-in one)")
	f.StringVar(&stream, "stream", "daily", "stream the build is for")
	f.StringVar(&sum, "sha256", "", "expected sha256 of SOURCE (hex)")
	f.IntVar(&jobs, "jobs", 0, "squashfs compressor threads (default: every core)")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	f.StringArrayVar(&pkgs, "add-package", nil, "install this package in the image (repeatable; also M2E_ADD_PACKAGES, space-separated)")
	f.StringArrayVar(&repos, "add-repo", nil, "add this apt repository: ppa:OWNER/NAME or a source line (repeatable; also M2E_ADD_REPOS)")
	f.BoolVar(&proposed, "proposed", false, "enable the release's -proposed pocket while installing")
	f.BoolVar(&skipMissing, "skip-missing-kernels", false, "skip, with a warning, the rows whose kernel package the image lacks (instead of installing it)")
	cmd.AddCommand(a.printConfigCmd())
	return cmd
}

// printBuild prints what a build made: a line, its items (the squashfs and
// manifest once), its steps and what to do next.
func (a *app) printBuild(res *build.Result) {
	p := res.Pending
	how := ""
	if res.Reused {
		how = ", the source squashfs as it is"
	}
	fmt.Fprintf(a.stdout, "build %s: %s %s %s from %s (%s, %d entries%s) for stream %s: %s, %s new in the pool, %.1fs\n",
		p.ID, p.Arch, p.Release, p.Serial, p.Source, p.SourceFormat, res.Entries, how, p.Stream,
		plural(len(p.Products), "product"), progress.HumanBytes(res.NewBytes), res.Seconds)
	seen := map[string]bool{} // the squashfs and manifest are in every product
	for _, it := range res.Items {
		if seen[it.Path] {
			continue
		}
		seen[it.Path] = true
		fmt.Fprintf(a.stdout, "  %-11s %s  %s  %s\n", it.Name, it.Digest[:12], progress.HumanBytes(it.Size), it.Path)
	}
	var steps []string
	for _, st := range res.Steps {
		steps = append(steps, fmt.Sprintf("%s %.1fs", st.Name, st.Seconds))
	}
	fmt.Fprintf(a.stdout, "steps: %s\n", strings.Join(steps, ", "))
	fmt.Fprintf(a.stdout, "pending: 'mephstore publish %s' commits it\n", p.Stream)
}

func (a *app) printConfigCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "default-config",
		Short: "Print the built-in build config (a starting point for --config)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := a.stdout.Write(build.DefaultConfig())
			return err
		},
	}
}

func (a *app) buildsCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "builds",
		Short: "List pending builds (made, not yet published)",
		Long: `builds lists the pending builds: made by 'mephstore build', waiting for the next publish of
their stream. gc keeps their blobs. 'mephstore builds drop ID' forgets one (its blobs then age
out like any other unreferenced blob).`,
		Example: `  mephstore builds
  mephstore builds --json
  mephstore builds drop 3f9c21ab`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.openStore()
			if err != nil {
				return err
			}
			ss, err := s.Reader(ctxOf(cmd))
			if err != nil {
				return err
			}
			ps, err := build.ListPending(ss)
			ss.Close()
			if err != nil {
				return err
			}
			if asJSON {
				if ps == nil {
					ps = []*build.Pending{}
				}
				return jsonOut(a.stdout, ps)
			}
			if len(ps) == 0 {
				fmt.Fprintln(a.stdout, "no pending builds")
				return nil
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tSTREAM\tARCH\tRELEASE\tSERIAL\tPRODUCTS\tSOURCE")
			for _, p := range ps {
				names := make([]string, len(p.Products))
				for i, pr := range p.Products {
					names[i] = pr.Fields["subarch"]
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.Stream, p.Arch, p.Release, p.Serial, strings.Join(names, ","), p.Source)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the list as JSON")
	cmd.AddCommand(a.buildsDropCmd())
	return cmd
}

func (a *app) buildsDropCmd() *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:     "drop ID...",
		Short:   "Forget pending builds (by id or a unique prefix)",
		Example: "  mephstore builds drop 3f9c21ab\n  mephstore builds drop --dry-run 3f9c",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.openStore()
			if err != nil {
				return err
			}
			if dryRun {
				ss, err := s.Reader(ctxOf(cmd))
				if err != nil {
					return err
				}
				defer ss.Close()
				ids, err := build.MatchPending(ss, args...)
				if err != nil {
					return err
				}
				for _, id := range ids {
					fmt.Fprintf(a.stdout, "would drop pending build %s\n", id)
				}
				return nil
			}
			ss, err := s.Writer(ctxOf(cmd), "builds drop")
			if err != nil {
				return err
			}
			defer ss.Close()
			ids, err := build.DropPending(ss, args...)
			if err != nil {
				return err
			}
			for _, id := range ids {
				fmt.Fprintf(a.stdout, "dropped pending build %s\n", id)
			}
			return ss.Close()
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be dropped")
	return cmd
}

// splitRepos splits M2E_ADD_REPOS: apt source lines contain spaces, so
// entries are separated by commas or newlines; a value without either is
// one entry per word (PPA names).
func splitRepos(v string) []string {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	var out []string
	if strings.ContainsAny(v, ",\n") {
		for _, r := range strings.FieldsFunc(v, func(c rune) bool { return c == ',' || c == '\n' }) {
			if r = strings.TrimSpace(r); r != "" {
				out = append(out, r)
			}
		}
		return out
	}
	if strings.HasPrefix(v, "deb ") || strings.HasPrefix(v, "deb-src ") {
		return []string{v}
	}
	return strings.Fields(v)
}
