package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/gc"
	"github.com/mephstore/mephstore/internal/progress"
)

// ageFlag parses an AGE flag value as a usage error.
func ageFlag(name, v string) (time.Duration, error) {
	d, err := gc.ParseAge(v)
	if err != nil {
		return 0, usageError{fmt.Errorf("--%s: %w", name, err)}
	}
	return d, nil
}

func (a *app) gcCmd() *cobra.Command {
	var (
		older          string
		keep           int
		dryRun, asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Collect garbage: record unreachable blobs, delete those orphaned longer than --older",
		Long: `gc marks every blob reachable from the roots: every stream head, the newest --keep-history
entries of every stream's history (so rollback keeps working), pending builds and unexpired
leases of operations in progress. A blob found unreachable gets an orphan record with the time;
a later run deletes the blobs orphaned for longer than --older, checking again under the store
lock, right before each delete, that nothing refers to them now. A blob that is referenced
again loses its record. Every publish root the store has published to is swept the same way:
products files the live index no longer names, staging directories of killed publishes, and
pool files that no live index and no retained snapshot refers to.

AGE is a whole number followed by w, d, h, m or s, summed: 3d, 12h, 1d12h, 0s.`,
		Example: `  mephstore gc                         # --older 3d --keep-history 10
  mephstore gc --dry-run               # the plan: what would be recorded and deleted
  mephstore gc --older 1w --keep-history 20 --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			age, err := ageFlag("older", older)
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("keep-history") && keep < 1 {
				return usageError{fmt.Errorf("--keep-history %d: must be at least 1 (the head)", keep)}
			}
			r, err := a.repo()
			if err != nil {
				return err
			}
			o := gc.Options{Older: age, DryRun: dryRun}
			if cmd.Flags().Changed("keep-history") {
				o.KeepHistory = keep
			}
			if dryRun {
				plan, err := gc.MakePlan(ctxOf(cmd), r, o)
				if err != nil || asJSON {
					return orJSON(a.stdout, plan, err)
				}
				a.printGCPlan(plan)
				a.printGCReport(plan.Report(nil))
				return nil
			}
			if a.verbose > 0 {
				o.Plan = func(act gc.Action) {
					a.log.Debug("gc", "action", act.Kind, "root", act.Root, "name", act.Name, "size", act.Size, "since", act.Since)
				}
			}
			rep, err := gc.Run(ctxOf(cmd), r, o)
			if err != nil || asJSON {
				return orJSON(a.stdout, rep, err)
			}
			a.printGCReport(rep)
			return nil
		},
	}
	cmd.Flags().StringVar(&older, "older", gc.FormatAge(gc.DefaultOlder), "delete what has been orphaned at least this long (AGE: 3d, 12h, 1d12h, 0s)")
	cmd.Flags().IntVar(&keep, "keep-history", gc.DefaultKeepHistory, "history entries of each stream kept as roots (remembered in the store)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan (what is live, orphans to record, files to delete, with reasons) and change nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the figures (with --dry-run: the plan) as JSON")
	return cmd
}

// orJSON prints v as JSON unless err is set.
func orJSON(w io.Writer, v any, err error) error {
	if err != nil {
		return err
	}
	return jsonOut(w, v)
}

// printGCPlan prints each step of a gc plan with its reason.
func (a *app) printGCPlan(p *gc.Plan) {
	for _, l := range p.Live {
		fmt.Fprintf(a.stdout, "live %s (%s)\n", l.Snapshot, l.Why)
	}
	where := func(st gc.Step) string {
		if st.Root != "" {
			return st.Root + "/" + st.Name
		}
		return st.Name
	}
	steps := func(orphan, reap []gc.Step) {
		for _, st := range orphan {
			fmt.Fprintf(a.stdout, "would record orphan %s (%s): %s\n", where(st), progress.HumanBytes(st.Size), st.Reason)
		}
		for _, st := range reap {
			fmt.Fprintf(a.stdout, "would delete %s (%s, orphaned since %s): %s\n", where(st), progress.HumanBytes(st.Size),
				st.Since.Local().Format(time.DateTime), st.Reason)
		}
	}
	steps(p.Orphan, p.Reap)
	for _, rp := range p.Publish {
		steps(rp.Orphan, rp.Reap)
	}
}

// printGCReport prints the figures of a gc run (or of its plan).
func (a *app) printGCReport(rep *gc.Report) {
	would := ""
	if rep.DryRun {
		would = "would be "
	}
	fmt.Fprintf(a.stdout, "%s, %s, %s, %s; %d of %s reachable\n",
		plural(rep.Streams, "stream"), plural(rep.RootSnapshots, "root snapshot"), plural(rep.Leases, "lease"),
		plural(rep.PendingBuilds, "pending build"), rep.Marked, plural(rep.Blobs, "blob"))
	fmt.Fprintf(a.stdout, "%s %srecorded as orphans (%s); %d orphan records dropped (reachable again)\n",
		plural(rep.NewOrphans, "blob"), would, progress.HumanBytes(rep.NewOrphanSize), rep.Rereferenced)
	fmt.Fprintf(a.stdout, "%s %sdeleted (%s), orphaned for %s or more; %s still waiting (%s)\n",
		plural(rep.Reaped, "blob"), would, progress.HumanBytes(rep.Freed), rep.Older, plural(rep.Waiting, "orphan"), progress.HumanBytes(rep.WaitingSize))
	if rep.LeasesDropped > 0 {
		fmt.Fprintf(a.stdout, "%s %sdropped (lapsed)\n", plural(rep.LeasesDropped, "lease"), would)
	}
	if su := rep.StaleUploads; su.Objects > 0 || su.Aborted > 0 {
		fmt.Fprintf(a.stdout, "%s of dead ingests %sremoved from the bucket pool (%s), %s aborted\n",
			plural(su.Objects, "unrecorded upload"), would, progress.HumanBytes(su.Bytes), plural(su.Aborted, "unfinished upload"))
	}
	for _, p := range rep.Publish {
		if p.Missing {
			fmt.Fprintf(a.stdout, "publish root %s: gone; skipped\n", p.Root)
			continue
		}
		fmt.Fprintf(a.stdout, "publish root %s: %s; %s, %s, %s %sdeleted (%s); %s newly recorded, %d waiting\n",
			p.Root, plural(p.Streams, "stream"), plural(p.ProductsFiles, "products file"), plural(p.IndexVersions, "index version"),
			plural(p.DataFiles, "data file"), would, progress.HumanBytes(p.Freed), plural(p.NewOrphans, "orphan"), p.Waiting)
	}
	if !rep.DryRun {
		fmt.Fprintf(a.stdout, "took %.2fs\n", rep.Seconds)
	}
}

func (a *app) leasesCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "leases",
		Short: "List the leases of operations in progress (what gc must not reap)",
		Long: `Every operation that writes blobs before a snapshot refers to them (ingest, insert, promote,
clean-md, remove, publish, build) holds a lease while it runs; gc never deletes what a live lease
protects. A lease is renewed while its process lives and lapses 30 minutes after a crash; the
next gc drops lapsed leases.`,
		Example: `  mephstore leases
  mephstore leases --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.openStore()
			if err != nil {
				return err
			}
			ls, err := s.ListLeases(ctxOf(cmd))
			if err != nil {
				return err
			}
			now := s.Now()
			type row struct {
				cas.Lease
				Refs  int    `json:"refs"`
				State string `json:"state"`
			}
			rows := make([]row, 0, len(ls))
			for _, l := range ls {
				st := "live"
				if !l.Live(now) {
					st = "lapsed"
				}
				rows = append(rows, row{Lease: l.Lease, Refs: len(l.Refs), State: st})
			}
			if asJSON {
				return jsonOut(a.stdout, rows)
			}
			if len(rows) == 0 {
				fmt.Fprintln(a.stdout, "no leases")
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tPID\tHOST\tCREATED\tEXPIRES\tREFS\tOPERATION")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%d\t%s\n", r.ID, r.State, r.PID, r.Host,
					r.Created.Local().Format(time.DateTime), r.Expires.Local().Format(time.DateTime), r.Refs, r.Operation)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
}

func (a *app) findOrphansCmd() *cobra.Command {
	var (
		keyring        string
		dryRun, asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "find-orphans ORPHANS.json DATA_DIR [STREAM_INDEX...]",
		Short: "meph2-util find-orphans: record the files under DATA_DIR that no stream refers to",
		Long: `find-orphans works on a simplestreams tree that is not in a store, like meph2-util: every file
under DATA_DIR (but for its streams/ and .data/ directories) that no item of the named streams
refers to is written to ORPHANS.json with the time it was first found (kept across runs);
entries referenced again are dropped. STREAM_INDEX is an index file (streams/v1/index.json or
index.sjson) or a directory holding streams/v1; with none, DATA_DIR itself. The streams read are
recorded in ORPHANS.streams.json, so that reap-orphans can check them again.`,
		Example: `  mephstore find-orphans /var/lib/orphans.json /srv/maas-images /srv/maas-images/streams/v1/index.json
  mephstore find-orphans --keyring /etc/mephstore/keyring.gpg orphans.json /srv/maas-images`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := gc.TreeOptions{Keyring: keyring, DryRun: dryRun}
			if dryRun && !asJSON {
				o.Plan = func(act gc.Action) { fmt.Fprintf(a.stdout, "would record orphan %s\n", act.Name) }
			}
			rep, err := gc.FindOrphans(ctxOf(cmd), args[0], args[1], args[2:], o)
			if err != nil {
				return err
			}
			if asJSON {
				return jsonOut(a.stdout, rep)
			}
			fmt.Fprintf(a.stdout, "%s walked, %d item paths referenced; %s (%d new, %d referenced again, %d gone) in %.2fs\n",
				plural(rep.Files, "file"), rep.Referenced, plural(rep.Orphans, "orphan"), rep.NewOrphans, rep.Rereferenced, rep.Vanished, rep.Seconds)
			return nil
		},
	}
	cmd.Flags().StringVar(&keyring, "keyring", "", "verify signed (.sjson) indexes and products files with this keyring; without it the .json twins are read")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the new orphans and write nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the figures as JSON")
	return cmd
}

func (a *app) reapOrphansCmd() *cobra.Command {
	var (
		older, keyring string
		dryRun, asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "reap-orphans ORPHANS.json DATA_DIR [STREAM_INDEX...]",
		Short: "meph2-util reap-orphans: delete the files orphaned longer than --older",
		Long: `reap-orphans deletes the files of ORPHANS.json (written by find-orphans, or by meph2-util)
orphaned for longer than --older and rewrites the file without them. Unlike meph2-util it first
reads again the streams the orphan file was made from (ORPHANS.streams.json, or the STREAM_INDEX
arguments) and never deletes a file they refer to now (such entries are dropped), and it removes
the directories it empties up to DATA_DIR, never DATA_DIR itself or above.`,
		Example: `  mephstore reap-orphans --older 3d /var/lib/orphans.json /srv/maas-images
  mephstore reap-orphans --dry-run --older 1d orphans.json /srv/maas-images`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			age, err := ageFlag("older", older)
			if err != nil {
				return err
			}
			o := gc.TreeOptions{Keyring: keyring, DryRun: dryRun, Older: age}
			if dryRun && !asJSON {
				o.Plan = func(act gc.Action) {
					fmt.Fprintf(a.stdout, "would delete %s (orphaned since %s)\n", act.Name, act.Since.Format(gc.OrphanTimeFormat))
				}
			}
			rep, err := gc.ReapOrphans(ctxOf(cmd), args[0], args[1], args[2:], o)
			if err != nil {
				return err
			}
			if asJSON {
				return jsonOut(a.stdout, rep)
			}
			would := ""
			if dryRun {
				would = "would be "
			}
			fmt.Fprintf(a.stdout, "%s %sdeleted (%s); %d referenced again, %d already gone; %s left in %s (%.2fs)\n",
				plural(rep.Reaped, "file"), would, progress.HumanBytes(rep.Freed), rep.Rereferenced, rep.Vanished, plural(rep.Orphans, "orphan"), args[0], rep.Seconds)
			return nil
		},
	}
	cmd.Flags().StringVar(&older, "older", gc.FormatAge(gc.DefaultOlder), "delete what has been orphaned longer than this (AGE: 3d, 12h, 1d12h)")
	cmd.Flags().StringVar(&keyring, "keyring", "", "verify signed streams with this keyring (default: the one find-orphans used)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be deleted and change nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the figures as JSON")
	return cmd
}
