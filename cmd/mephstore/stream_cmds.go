package main

import (
	"bufio"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mephstore/mephstore/catalog"
	"github.com/mephstore/mephstore/internal/pgp"
	"github.com/mephstore/mephstore/internal/progress"
	"github.com/mephstore/mephstore/snapshot"
)

func (a *app) repo() (*snapshot.Repo, error) {
	s, err := a.openStore()
	if err != nil {
		return nil, err
	}
	return snapshot.New(s), nil
}

func short(d fmt.Stringer) string {
	s := strings.TrimPrefix(d.String(), "sha256:")
	if len(s) > 12 {
		s = s[:12]
	}
	return s
}

func parseFilters(args []string) ([]catalog.Filter, error) {
	fs, err := catalog.ParseFilters(args)
	if err != nil {
		return nil, usageError{err}
	}
	return fs, nil
}

// report prints the outcome of a change.
func (a *app) report(res *snapshot.Result, asJSON, listAll bool, verb string) error {
	if asJSON {
		return jsonOut(a.stdout, res)
	}
	w := bufio.NewWriter(a.stdout)
	defer w.Flush()
	list := func(sign string, refs []snapshot.VersionRef) {
		for _, r := range refs {
			fmt.Fprintf(w, "%s %s %s\n", sign, r.Product, r.Version)
		}
	}
	if listAll || res.DryRun {
		list("+", res.Added)
		list("-", res.Removed)
	}
	for _, r := range res.Skipped {
		fmt.Fprintf(w, "= %s %s (already in %s; skipped)\n", r.Product, r.Version, res.Stream.Name)
	}
	if res.DryRun {
		fmt.Fprintf(w, "%s: would %s: %s (dry run; nothing changed)\n", res.Stream.Name, verb, res.Summary)
		return nil
	}
	fmt.Fprintf(w, "%s: %s -> snapshot %s (#%d): %s\n", res.Stream.Name, res.Summary, short(res.Snapshot), res.Stream.Seq, countsText(res.Counts))
	return nil
}

func countsText(c snapshot.Counts) string {
	return plural(c.Products, "product") + ", " + plural(c.Versions, "version") + ", " + plural(c.Items, "item")
}

// nothingToDo turns ErrNothingToDo into a message and success.
func (a *app) nothingToDo(err error) error {
	if errors.Is(err, snapshot.ErrNothingToDo) {
		fmt.Fprintln(a.stderr, "mephstore: "+oneLine(err.Error()))
		return nil
	}
	return err
}

func (a *app) streamCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "stream", Short: "Create and list streams"}
	var label string
	create := &cobra.Command{
		Use:     "create NAME",
		Short:   "Create a stream (content id com.ubuntu.maas:<label>:v3:download)",
		Example: "  mephstore stream create daily\n  mephstore stream create candidate --label candidate",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := a.repo()
			if err != nil {
				return err
			}
			st, err := r.CreateStream(ctxOf(cmd), args[0], label)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "created stream %s (label %s, content id %s, products %s...)\n", st.Name, st.Label, st.ContentID(), st.ProductPrefix())
			return nil
		},
	}
	create.Flags().StringVar(&label, "label", "", "label of the stream's content id and product names (default: the name)")
	var asJSON bool
	list := &cobra.Command{
		Use:     "list",
		Short:   "List streams: name, label, head snapshot, versions, items, last change",
		Example: "  mephstore stream list\n  mephstore stream list --json",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := a.repo()
			if err != nil {
				return err
			}
			sts, err := r.Streams(ctxOf(cmd))
			if err != nil {
				return err
			}
			type row struct {
				*snapshot.Stream
				snapshot.Counts
			}
			rows := []row{}
			for _, st := range sts {
				doc, err := r.Doc(st.Head)
				if err != nil {
					return fmt.Errorf("stream %s: %w", st.Name, err)
				}
				rows = append(rows, row{st, doc.Counts()})
			}
			if asJSON {
				return jsonOut(a.stdout, rows)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tLABEL\tHEAD\tPRODUCTS\tVERSIONS\tITEMS\tCHANGED")
			for _, rw := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s (#%d)\t%d\t%d\t%d\t%s\n", rw.Name, rw.Label, short(rw.Head), rw.Seq,
					rw.Products, rw.Versions, rw.Items, rw.Updated.Local().Format(time.DateTime))
			}
			return tw.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	cmd.AddCommand(create, list)
	return cmd
}

func (a *app) insertCmd() *cobra.Command {
	var (
		keyring          string
		noVerify, dryRun bool
		asJSON           bool
		jobs             int
	)
	cmd := &cobra.Command{
		Use:   "insert SRC STREAM [FILTER...]",
		Short: "Add the versions of a simplestreams tree that the stream lacks",
		Long: `insert reads the simplestreams tree SRC (a directory, or an http(s) URL of its root or
of its streams/v1/index(.s)json) and adds to STREAM's next snapshot every product version
that matches the filters and that STREAM does not have yet (a version it has is kept as it
is). Every file they refer to is put in the pool first, checked against its size and sha256
as it streams; files the pool has are not read again. Any failure leaves STREAM unchanged.

With --keyring, the signed index.sjson and .sjson products files are read and each must be
clear-signed by a key of the keyring; --no-verify reads the unsigned index.json.

Filters: key=value, key!=value, key~regex, key!~regex (all must match an item of the version).`,
		Example: `  mephstore insert --keyring maas-keyring.gpg https://images.example/ephemeral-v3/stable daily
  mephstore insert --no-verify /srv/mirror/stable daily arch=amd64 'release~^(noble|jammy)$'
  mephstore insert --keyring kr.gpg --dry-run /srv/mirror/stable daily`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (keyring == "") == !noVerify {
				return usageError{errors.New("insert needs --keyring FILE (check signatures) or --no-verify (read index.json unsigned)")}
			}
			filters, err := parseFilters(args[2:])
			if err != nil {
				return err
			}
			o := snapshot.InsertOptions{Verify: !noVerify, Filters: filters, DryRun: dryRun, Jobs: jobs, Meters: a.meters(),
				Client: a.fetchClient()}
			if keyring != "" {
				if o.Keyring, err = pgp.ReadKeyring(keyring); err != nil {
					return err
				}
			}
			r, err := a.repo()
			if err != nil {
				return err
			}
			res, err := r.Insert(ctxOf(cmd), args[0], args[1], o)
			if err != nil {
				return a.nothingToDo(err)
			}
			if asJSON {
				return jsonOut(a.stdout, res)
			}
			if err := a.report(&res.Result, false, a.verbose > 0, "insert"); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "files: %d referenced, %d fetched (%s), %d already in the pool\n",
				res.Files, res.Fetched, progress.HumanBytes(res.FetchBytes), res.Files-res.Fetched)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&keyring, "keyring", "", "public keyring (binary or armoured) that must have signed the tree")
	f.BoolVar(&noVerify, "no-verify", false, "read the unsigned index.json; check no signatures")
	f.BoolVar(&dryRun, "dry-run", false, "print what would be added and fetched; change nothing")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	f.IntVarP(&jobs, "jobs", "j", 0, "parallel downloads (default 4 for URLs, 1 for directories)")
	return cmd
}

func (a *app) promoteCmd() *cobra.Command {
	var (
		label          string
		dryRun, asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "promote SRC DST VERSION [FILTER...]",
		Short: "Copy product versions from one stream into another (no data is copied)",
		Long: `promote copies the versions called VERSION that match the filters from SRC's head into
DST's next snapshot, renaming com.ubuntu.maas.<src label>: to com.ubuntu.maas.<dst label>:
in product names and content ids and setting the products' label. Items keep their paths
and checksums, so no data is copied. Versions DST has are reported and skipped.`,
		Example: `  mephstore promote daily candidate 20261122
  mephstore promote candidate stable 20261122 arch=amd64 --dry-run`,
		Args: cobra.MinimumNArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			filters, err := parseFilters(args[3:])
			if err != nil {
				return err
			}
			r, err := a.repo()
			if err != nil {
				return err
			}
			res, err := r.Promote(ctxOf(cmd), args[0], args[1], snapshot.PromoteOptions{Version: args[2], Filters: filters, Label: label, DryRun: dryRun})
			if err != nil {
				if errors.Is(err, snapshot.ErrNothingToDo) && res != nil {
					a.report(res, asJSON, false, "promote")
				}
				return a.nothingToDo(err)
			}
			return a.report(res, asJSON, a.verbose > 0, "promote")
		},
	}
	cmd.Flags().StringVar(&label, "label", "", "label to rename to (default: DST's label)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be promoted; change nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func (a *app) rollbackCmd() *cobra.Command {
	var (
		to             string
		steps          int
		dryRun, asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "rollback STREAM [--to SNAPSHOT | --steps N]",
		Short: "Point a stream's head at an earlier snapshot of its history",
		Long: `rollback moves STREAM's head to the snapshot of an earlier history entry: N entries back
(--steps, default 1) or the newest earlier entry whose snapshot is SNAPSHOT (a digest or a
unique prefix). The move is itself a history entry, so a rollback can be rolled back.`,
		Example: "  mephstore rollback stable\n  mephstore rollback stable --steps 3\n  mephstore rollback stable --to 3f9c21ab",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if to != "" && cmd.Flags().Changed("steps") {
				return usageError{errors.New("--to and --steps do not go together")}
			}
			r, err := a.repo()
			if err != nil {
				return err
			}
			res, err := r.Rollback(ctxOf(cmd), args[0], to, steps, dryRun)
			if err != nil {
				return err
			}
			if asJSON {
				return jsonOut(a.stdout, res)
			}
			verb := "head now"
			if dryRun {
				verb = "would move head to"
			}
			fmt.Fprintf(a.stdout, "%s: %s snapshot %s, %s: %s\n", res.Stream.Name, verb, short(res.Snapshot), res.Summary, countsText(res.Counts))
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "snapshot digest (or unique prefix) from the stream's history")
	cmd.Flags().IntVar(&steps, "steps", 1, "how many history entries to go back")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print where the head would move; change nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func (a *app) cleanMDCmd() *cobra.Command {
	var (
		max            int
		dryRun, asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "clean-md STREAM --max N [FILTER...]",
		Short: "Keep the N newest versions of each matching product",
		Long: `clean-md keeps the N newest versions of every product that has a version matching the
filters, in a new snapshot. Versions are serials YYYYMMDD[.N] ordered by number, so
20240101.10 is newer than 20240101.9. Data stays in the pool until gc.`,
		Example: "  mephstore clean-md daily --max 3\n  mephstore clean-md daily --max 1 arch=arm64 --dry-run",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("max") {
				return usageError{errors.New("clean-md needs --max N")}
			}
			filters, err := parseFilters(args[1:])
			if err != nil {
				return err
			}
			r, err := a.repo()
			if err != nil {
				return err
			}
			res, err := r.CleanMD(ctxOf(cmd), args[0], max, filters, dryRun)
			if err != nil {
				return a.nothingToDo(err)
			}
			return a.report(res, asJSON, a.verbose > 0, "remove")
		},
	}
	cmd.Flags().IntVar(&max, "max", 0, "versions to keep per product")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be removed; change nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func (a *app) removeCmd() *cobra.Command {
	var dryRun, asJSON bool
	cmd := &cobra.Command{
		Use:     "remove STREAM VERSION [FILTER...]",
		Short:   "Remove a version from the matching products",
		Example: "  mephstore remove daily 20261120\n  mephstore remove daily 20261120 arch=arm64 --dry-run",
		Args:    cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			filters, err := parseFilters(args[2:])
			if err != nil {
				return err
			}
			r, err := a.repo()
			if err != nil {
				return err
			}
			res, err := r.Remove(ctxOf(cmd), args[0], args[1], filters, dryRun)
			if err != nil {
				return err
			}
			return a.report(res, asJSON, a.verbose > 0, "remove")
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be removed; change nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

func (a *app) logCmd() *cobra.Command {
	var (
		asJSON bool
		max    int
	)
	cmd := &cobra.Command{
		Use:     "log STREAM",
		Short:   "Show a stream's history, newest first",
		Example: "  mephstore log daily\n  mephstore log daily -n 5 --json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := a.repo()
			if err != nil {
				return err
			}
			es, err := r.Log(ctxOf(cmd), args[0], max)
			if err != nil {
				return err
			}
			if asJSON {
				return jsonOut(a.stdout, es)
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			for _, e := range es {
				fmt.Fprintf(tw, "#%d\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.Local().Format(time.DateTime), e.Operation, e.Summary, e.Snapshot)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	cmd.Flags().IntVarP(&max, "max", "n", 0, "show at most this many entries")
	return cmd
}

func (a *app) diffCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "diff A B",
		Short: "Show products and versions added, removed and changed from A to B",
		Long: `A and B are a stream name (its head), NAME@N (N entries back in its history) or a
snapshot digest (or a unique prefix of one).`,
		Example: "  mephstore diff daily stable\n  mephstore diff daily@1 daily\n  mephstore diff 3f9c21ab daily --json",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := a.repo()
			if err != nil {
				return err
			}
			da, err := r.Resolve(ctxOf(cmd), args[0])
			if err != nil {
				return err
			}
			db, err := r.Resolve(ctxOf(cmd), args[1])
			if err != nil {
				return err
			}
			d, err := r.Diff(ctxOf(cmd), da, db)
			if err != nil {
				return err
			}
			if asJSON {
				return jsonOut(a.stdout, d)
			}
			w := bufio.NewWriter(a.stdout)
			defer w.Flush()
			for _, p := range d.ProductsAdded {
				fmt.Fprintf(w, "+ %s\n", p)
			}
			for _, p := range d.ProductsRemoved {
				fmt.Fprintf(w, "- %s\n", p)
			}
			for _, c := range d.Changed {
				var parts []string
				for _, v := range c.Added {
					parts = append(parts, "+"+v)
				}
				for _, v := range c.Removed {
					parts = append(parts, "-"+v)
				}
				for _, v := range c.Modified {
					parts = append(parts, "~"+v)
				}
				if len(parts) == 0 {
					parts = []string{"product fields changed"}
				}
				fmt.Fprintf(w, "~ %s: %s\n", c.Product, strings.Join(parts, " "))
			}
			if d.Empty() {
				fmt.Fprintf(w, "no differences between %s and %s\n", short(d.A), short(d.B))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the differences as JSON")
	return cmd
}

func (a *app) queryCmd() *cobra.Command {
	var (
		asJSON bool
		max    int
		format string
	)
	cmd := &cobra.Command{
		Use:   "query STREAM [FILTER...]",
		Short: "List a stream's items, like sstream-query",
		Long: `query prints every item of STREAM's head (or of NAME@N, or of a snapshot digest) that
matches the filters, newest version first. Each item carries the fields it inherits from its
version, product and products file, plus product_name, version_name and item_name.`,
		Example: `  mephstore query daily arch=amd64 ftype=squashfs --max 1
  mephstore query daily --output-format '%(product_name)s %(version_name)s %(sha256)s'
  mephstore query stable --json release=noble`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			filters, err := parseFilters(args[1:])
			if err != nil {
				return err
			}
			if asJSON && format != "" {
				return usageError{errors.New("--json and --output-format do not go together")}
			}
			if format == "" {
				format = "%(product_name)s %(version_name)s %(item_name)s %(ftype)s %(size)s sha256:%(sha256)s %(path)s"
			}
			r, err := a.repo()
			if err != nil {
				return err
			}
			d, err := r.Resolve(ctxOf(cmd), args[0])
			if err != nil {
				return err
			}
			w := bufio.NewWriterSize(a.stdout, 1<<16)
			defer w.Flush()
			n := 0
			if asJSON {
				w.WriteString("[")
			}
			err = r.Query(ctxOf(cmd), d, snapshot.QueryOptions{Filters: filters, Max: max}, func(s *catalog.Scope) error {
				n++
				if asJSON {
					b, err := catalog.FlatJSON(s)
					if err != nil {
						return err
					}
					if n > 1 {
						w.WriteString(",")
					}
					w.WriteString("\n")
					w.Write(b)
					return nil
				}
				line, err := catalog.Format(format, s)
				if err != nil {
					return usageError{err}
				}
				w.WriteString(line)
				return w.WriteByte('\n')
			})
			if err != nil {
				return err
			}
			if asJSON {
				if n > 0 {
					w.WriteString("\n")
				}
				w.WriteString("]\n")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON array of flattened items")
	cmd.Flags().IntVar(&max, "max", 0, "newest versions per product to list (0: all)")
	cmd.Flags().StringVar(&format, "output-format", "", "Python-style %(key)s format, one line per item")
	return cmd
}
