package gc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/internal/flock"
	"github.com/mephstore/mephstore/snapshot"
)

// Defaults of a gc run.
const (
	DefaultOlder       = 3 * 24 * time.Hour
	DefaultKeepHistory = 10
	// SettingKeepHistory remembers --keep-history in the store.
	SettingKeepHistory = "gc.keep-history"
	deleteBatch        = 4096
)

// Options tune a gc run.
type Options struct {
	Older       time.Duration // reap what has been orphaned at least this long
	KeepHistory int           // history entries kept per stream, remembered; 0: the remembered value or DefaultKeepHistory
	DryRun      bool          // plan only; change nothing
	Jobs        int           // parallel product readers; 0: GOMAXPROCS
	// Plan, when not nil, is told every orphan recorded and every deletion
	// (planned, on a dry run).
	Plan func(Action)
}

// Action is one step of the plan.
type Action struct {
	Kind  string    `json:"action"` // "orphan": record as orphaned; "reap": delete
	Root  string    `json:"root,omitempty"`
	Name  string    `json:"name"` // a digest, or a path relative to Root
	Size  int64     `json:"size"`
	Since time.Time `json:"orphaned_since"`
}

// Report is what a run did (or, on a dry run, would do).
type Report struct {
	DryRun        bool            `json:"dry_run"`
	Older         string          `json:"older"`
	KeepHistory   int             `json:"keep_history"`
	Streams       int             `json:"streams"`
	RootSnapshots int             `json:"root_snapshots"`
	Leases        int             `json:"leases"`
	PendingBuilds int             `json:"pending_builds"`
	LeasesDropped int             `json:"leases_dropped"` // lapsed leases removed
	Blobs         int             `json:"blobs"`          // blob records scanned
	Marked        int             `json:"marked"`         // of those, reachable
	NewOrphans    int             `json:"new_orphans"`
	NewOrphanSize int64           `json:"new_orphan_bytes"`
	Rereferenced  int             `json:"rereferenced"` // orphan records dropped: reachable again
	Reaped        int             `json:"reaped"`
	Freed         int64           `json:"bytes_freed"`
	Waiting       int             `json:"orphans_waiting"` // orphans left for a later run
	WaitingSize   int64           `json:"orphans_waiting_bytes"`
	Publish       []PublishReport `json:"publish"`
	// StaleUploads: what ingests that died before their commit left in
	// the pool of a store on a bucket.
	StaleUploads cas.Swept `json:"stale_uploads"`
	Seconds      float64   `json:"seconds"`
}

// ErrBusy is wrapped when another gc runs on the store.
var ErrBusy = errors.New("another gc is running")

// blobOrphans is the table of the store's orphan records: when each
// unreachable blob was first found so.
func blobOrphans() cas.Table[Sum, time.Time] {
	return cas.NewTable(cas.KindOrphan, []byte{'b'}, cas.SumKey(), cas.TimeValue())
}

// rootOrphans is the table of a publish root's orphan records: when each
// unreferenced file (a path relative to the root) was first found so.
// (Roots hold no NUL: the sub-space of one never holds another's.)
func rootOrphans(root string) cas.Table[string, time.Time] {
	return cas.NewTable(cas.KindOrphan, append(append([]byte{'p'}, root...), 0), cas.StringKey(), cas.TimeValue())
}

// Run collects garbage in the store of r and in every publish root the
// store has published to: it makes the plan and, unless o.DryRun, executes
// it. A dry run's report is the plan's figures.
func Run(ctx context.Context, r *snapshot.Repo, o Options) (*Report, error) {
	start := time.Now()
	unlock, err := lockGC(ctx, r.Store())
	if err != nil {
		return nil, err
	}
	defer unlock()
	plan, err := makePlan(ctx, r, o)
	if err != nil {
		return nil, err
	}
	var rep *Report
	if o.DryRun {
		rep = plan.Report(o.Plan)
	} else if rep, err = execute(ctx, r, plan, o); err != nil {
		return nil, err
	}
	if rep.StaleUploads, err = r.Store().SweepUploads(ctx, o.Older, o.DryRun); err != nil {
		return nil, fmt.Errorf("gc: stale uploads: %w", err)
	}
	rep.Seconds = time.Since(start).Seconds()
	return rep, nil
}

// MakePlan computes what a gc run would do, with reasons, and changes
// nothing (gc --dry-run).
func MakePlan(ctx context.Context, r *snapshot.Repo, o Options) (*Plan, error) {
	unlock, err := lockGC(ctx, r.Store())
	if err != nil {
		return nil, err
	}
	defer unlock()
	return makePlan(ctx, r, o)
}

// lockGC takes the store's gc lock: one gc at a time.
func lockGC(ctx context.Context, s *cas.Store) (func(), error) {
	host, _ := os.Hostname()
	lk, err := flock.Acquire(ctx, filepath.Join(s.Dir(), GCLockFile), "gc of store "+s.Dir(), flock.Exclusive, 0,
		&flock.Holder{PID: os.Getpid(), Host: host, Since: s.Now(), Operation: "gc"})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBusy, err)
	}
	return func() { lk.Unlock() }, nil
}

// GCLockFile, in the store's directory, is held by a running gc.
const GCLockFile = "gc.lock"

// keepHistory is the number of history entries kept: o's, else the
// remembered one, else the default.
func keepHistory(ss *cas.Session, o Options) (int, error) {
	if o.KeepHistory > 0 {
		return o.KeepHistory, nil
	}
	saved, err := ss.Setting(SettingKeepHistory)
	if err != nil || saved == "" {
		return DefaultKeepHistory, err
	}
	keep, err := strconv.Atoi(saved)
	if err != nil || keep < 1 {
		return 0, fmt.Errorf("setting %s=%q: not a whole number of at least 1", SettingKeepHistory, saved)
	}
	return keep, nil
}

// makePlan marks from the roots (outside any lock but gc's), then plans the
// sweep of the store's records and of every publish root, reading only.
func makePlan(ctx context.Context, r *snapshot.Repo, o Options) (*Plan, error) {
	if o.Older < 0 {
		return nil, fmt.Errorf("gc: --older %s: %w: negative", o.Older, ErrBadAge)
	}
	s := r.Store()
	rs, err := s.Reader(ctx)
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	defer rs.Close()
	p := &Plan{Older: FormatAge(o.Older), Now: s.Now().UTC()}
	if p.KeepHistory, err = keepHistory(rs, o); err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	var roots *Roots
	err = rs.View(func(txn cas.Txn) error {
		var err error
		roots, err = CollectRoots(txn, p.KeepHistory, p.Now)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	p.m = newMarker(r, o.Jobs)
	if err := p.m.mark(ctx, roots); err != nil {
		return nil, fmt.Errorf("gc: refusing to run: %w", err)
	}
	p.setRoots(roots)
	err = rs.View(func(txn cas.Txn) error {
		var err error
		p.sweep, err = storeSweepPlan(ctx, txn, p.m.has, p.Now, o.Older)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	p.setSweep()
	publishRoots, err := publishedRoots(rs)
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	rs.Close()
	for _, root := range publishRoots {
		rp, err := planPublishRoot(ctx, s, root, p.m, p.Now, o.Older)
		if err != nil {
			return nil, fmt.Errorf("gc: publish root %s: %w", root, err)
		}
		p.Publish = append(p.Publish, *rp)
	}
	return p, nil
}

// execute carries out the plan: the store's records in one writer
// session, the deletes in short ones, each re-checked against the roots as
// they are then, and every publish root under its exclusive lock.
func execute(ctx context.Context, r *snapshot.Repo, p *Plan, o Options) (*Report, error) {
	s := r.Store()
	// gc is what frees space: on a full disk it may use the store's
	// reserve for its own records.
	putBack, err := s.ReleaseReserve()
	if err != nil {
		return nil, err
	}
	defer putBack()
	ctx = cas.WithReserve(ctx)
	rep := p.Report(nil)
	rep.DryRun = false
	rep.Reaped, rep.Freed, rep.LeasesDropped = 0, 0, 0
	if err := applySweep(ctx, r, p, o, rep); err != nil {
		return nil, err
	}
	for i := 0; i < len(p.sweep.Reap); i += deleteBatch {
		batch := p.sweep.Reap[i:min(i+deleteBatch, len(p.sweep.Reap))]
		if err := reapBatch(ctx, r, p, o, rep, batch); err != nil {
			return nil, err
		}
	}
	s.Logger().Debug("gc: store swept", "reaped", rep.Reaped)
	rep.Publish = nil
	for _, rp := range p.Publish {
		pr, err := sweepPublishRoot(ctx, s, &rp, p.m, o)
		if err != nil {
			return nil, fmt.Errorf("gc: publish root %s: %w", rp.Root, err)
		}
		rep.Publish = append(rep.Publish, *pr)
	}
	return rep, nil
}

// remark collects the roots again in txn and marks what is new: heads that
// moved, leases taken or extended since the first mark.
func remark(ctx context.Context, txn cas.Txn, s *cas.Store, m *marker, keep int) (*Roots, error) {
	roots, err := CollectRoots(txn, keep, s.Now())
	if err != nil {
		return nil, err
	}
	if err := m.mark(ctx, roots); err != nil {
		return nil, fmt.Errorf("refusing to run: %w", err)
	}
	return roots, nil
}

// storeSweepPlan streams the blob and orphan records of txn through a
// sweeper.
func storeSweepPlan(ctx context.Context, txn cas.Txn, marked func(Sum) bool, now time.Time, older time.Duration) (SweepPlan, error) {
	sw := sweeper{marked: marked, now: now, cutoff: now.Add(-older)}
	bit := cas.BlobRecords().Cursor(txn)
	defer bit.Close()
	oit := blobOrphans().Cursor(txn)
	defer oit.Close()
	for n := 0; bit.Valid() || oit.Valid(); n++ {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return SweepPlan{}, err
			}
		}
		var b *blobRec
		var o *orphanRec
		if bit.Valid() {
			sum, rec, err := bit.Record()
			if err != nil {
				return SweepPlan{}, err
			}
			b = &blobRec{sum: sum, size: rec.Size}
		}
		if oit.Valid() {
			sum, since, err := oit.Record()
			if err != nil {
				return SweepPlan{}, fmt.Errorf("orphan record: %w", err)
			}
			o = &orphanRec{sum: sum, since: since}
		}
		nb, no := sw.step(b, o)
		if nb {
			bit.Next()
		}
		if no {
			oit.Next()
		}
	}
	return sw.plan, nil
}

// applySweep records the plan in one writer session, after marking again
// what is new: the new orphan records of blobs still unreachable, dropped
// records, the remembered keep-history, the leases still lapsed.
func applySweep(ctx context.Context, r *snapshot.Repo, p *Plan, o Options, rep *Report) error {
	s := r.Store()
	ss, err := s.Writer(ctx, "gc")
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	defer ss.Close()
	var roots *Roots
	if err := ss.View(func(txn cas.Txn) error { roots, err = remark(ctx, txn, s, p.m, p.KeepHistory); return err }); err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	wb, err := ss.NewWriteBatch()
	if err != nil {
		return err
	}
	defer wb.Cancel()
	for _, e := range p.sweep.NewOrphans {
		if p.m.has(e.Sum) {
			continue // referenced since the plan was made
		}
		if err := blobOrphans().PutIn(wb, e.Sum, p.Now); err != nil {
			return fmt.Errorf("gc: record orphans: %w", err)
		}
		if o.Plan != nil {
			o.Plan(Action{Kind: "orphan", Name: digestOf(e.Sum).String(), Size: e.Size, Since: p.Now})
		}
	}
	for _, sum := range p.sweep.DropRecords {
		if err := blobOrphans().DeleteIn(wb, sum); err != nil {
			return fmt.Errorf("gc: drop orphan records: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("gc: record orphans: %w", err)
	}
	if o.KeepHistory > 0 {
		if err := ss.SetSetting(SettingKeepHistory, strconv.Itoa(o.KeepHistory)); err != nil {
			return fmt.Errorf("gc: remember keep-history: %w", err)
		}
	}
	for _, id := range roots.Expired {
		if err := ss.DeleteLease(id); err != nil {
			return fmt.Errorf("gc: drop lapsed lease %s: %w", id, err)
		}
		rep.LeasesDropped++
	}
	// The scheduled maintenance keeps the records' tree short: every
	// writer session since the last run left a level-0 table.
	if err := ss.MergeRecords(2); err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	return ss.Close()
}

// reapBatch deletes a batch of the plan's candidates in its own writer
// session, after collecting the roots again and marking what is new; each
// blob is checked once more in the transaction that drops its record.
func reapBatch(ctx context.Context, r *snapshot.Repo, p *Plan, o Options, rep *Report, batch []SweepEntry) error {
	s := r.Store()
	ss, err := s.Writer(ctx, "gc: reap")
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	defer ss.Close()
	if err := ss.View(func(txn cas.Txn) error { _, err := remark(ctx, txn, s, p.m, p.KeepHistory); return err }); err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	cutoff := s.Now().UTC().Add(-o.Older)
	ds := make([]digest.Digest, len(batch))
	for i, e := range batch {
		ds[i] = digestOf(e.Sum)
	}
	var reaped []Action
	del, err := ss.Delete(ctx, ds, func(txn cas.Txn, b cas.Blob) (bool, error) {
		sum, err := sumOf(b.Digest)
		if err != nil {
			return true, err
		}
		if p.m.has(sum) {
			return true, nil
		}
		since, err := blobOrphans().Get(txn, sum)
		if errors.Is(err, cas.ErrNoRecord) {
			return true, nil
		}
		if err != nil || since.After(cutoff) {
			return true, err
		}
		reaped = append(reaped, Action{Kind: "reap", Name: b.Digest.String(), Size: b.Size, Since: since})
		return false, blobOrphans().Delete(txn, sum)
	})
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	rep.Reaped += del.Blobs
	rep.Freed += del.Bytes
	if o.Plan != nil {
		for _, a := range reaped {
			o.Plan(a)
		}
	}
	return ss.Close()
}
