package gc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/mephstore/mephstore/cas"
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
	Seconds       float64         `json:"seconds"`
}

// ErrBusy is wrapped when another gc runs on the store.
var ErrBusy = errors.New("another gc is running")

func orphanKey(s Sum) []byte {
	return append([]byte{cas.PrefixOrphan, 'b'}, s[:]...)
}

func encodeTime(t time.Time) []byte { return binary.AppendVarint(nil, t.UnixNano()) }

func decodeTime(v []byte) (time.Time, error) {
	ns, n := binary.Varint(v)
	if n <= 0 {
		return time.Time{}, fmt.Errorf("orphan record: bad time")
	}
	return time.Unix(0, ns).UTC(), nil
}

// Run collects garbage in the store of r and in every publish root the
// store has published to.
func Run(ctx context.Context, r *snapshot.Repo, o Options) (*Report, error) {
	start := time.Now()
	s := r.Store()
	log := s.Logger()
	if o.Older < 0 {
		return nil, fmt.Errorf("gc: --older %s: %w: negative", o.Older, ErrBadAge)
	}
	// gc is what frees space: on a full disk it may use the store's
	// reserve for its own records.
	if !o.DryRun {
		putBack, err := s.ReleaseReserve()
		if err != nil {
			return nil, err
		}
		defer putBack()
		ctx = cas.WithReserve(ctx)
	}
	host, _ := os.Hostname()
	lk, err := flock.Acquire(ctx, filepath.Join(s.Dir(), "gc.lock"), "gc of store "+s.Dir(), flock.Exclusive, 0,
		&flock.Holder{PID: os.Getpid(), Host: host, Since: s.Now(), Operation: "gc"})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBusy, err)
	}
	defer lk.Unlock()

	rep := &Report{DryRun: o.DryRun, Older: FormatAge(o.Older)}
	// 1. Settings and roots, in a short read session.
	rs, err := s.Reader(ctx)
	if err != nil {
		return nil, err
	}
	keep := o.KeepHistory
	saved, err := rs.Setting(SettingKeepHistory)
	if err == nil && keep == 0 {
		keep = DefaultKeepHistory
		if saved != "" {
			if keep, err = strconv.Atoi(saved); err != nil || keep < 1 {
				err = fmt.Errorf("setting %s=%q: not a whole number of at least 1", SettingKeepHistory, saved)
			}
		}
	}
	var roots *Roots
	var publishRoots []string
	if err == nil {
		err = rs.View(func(txn cas.Txn) error {
			var err error
			roots, err = CollectRoots(txn, keep, s.Now())
			return err
		})
	}
	if err == nil {
		publishRoots, err = publishedRoots(rs)
	}
	rs.Close()
	if err != nil {
		return nil, fmt.Errorf("gc: %w", err)
	}
	rep.KeepHistory = keep
	// 2. Mark, outside any lock.
	m := newMarker(r, o.Jobs)
	if err := m.mark(ctx, roots); err != nil {
		return nil, fmt.Errorf("gc: refusing to run: %w", err)
	}
	log.Debug("gc: marked", "snapshots", len(roots.Snapshots), "blobs", len(m.marked), "took", time.Since(start))

	// 3. Orphan records, in one writer session (a reader on a dry run).
	var cands []digest.Digest
	if err := sweepRecords(ctx, r, m, keep, o, rep, &cands); err != nil {
		return nil, err
	}
	// 4. Deletes, in short writer sessions, each re-checking first.
	if !o.DryRun {
		for i := 0; i < len(cands); i += deleteBatch {
			batch := cands[i:min(i+deleteBatch, len(cands))]
			if err := reapBatch(ctx, r, m, keep, o, rep, batch); err != nil {
				return nil, err
			}
		}
	}
	log.Debug("gc: store swept", "reaped", rep.Reaped, "took", time.Since(start))
	// 5. Publish roots.
	for _, root := range publishRoots {
		pr, err := sweepPublishRoot(ctx, s, root, m, o)
		if err != nil {
			return nil, fmt.Errorf("gc: publish root %s: %w", root, err)
		}
		rep.Publish = append(rep.Publish, *pr)
	}
	rep.Seconds = time.Since(start).Seconds()
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

// sweepRecords plans the sweep of the store's records (the blob records,
// the orphan records and the mark set, merged by the pure sweeper) under
// the writer lock (a reader on a dry run), after marking again what is new,
// reports the plan, and, unless DryRun, records it: new orphan records,
// dropped records, lapsed leases. It lists the blobs old enough to reap.
func sweepRecords(ctx context.Context, r *snapshot.Repo, m *marker, keep int, o Options, rep *Report, cands *[]digest.Digest) error {
	s := r.Store()
	var ss *cas.Session
	var err error
	if o.DryRun {
		ss, err = s.Reader(ctx)
	} else {
		ss, err = s.Writer(ctx, "gc")
	}
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	defer ss.Close()
	now := s.Now().UTC()
	var roots *Roots
	var plan SweepPlan
	err = ss.View(func(txn cas.Txn) error {
		var err error
		if roots, err = remark(ctx, txn, s, m, keep); err != nil {
			return err
		}
		plan, err = storeSweepPlan(ctx, txn, m.has, now, o.Older)
		return err
	})
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	rep.Streams, rep.RootSnapshots, rep.Leases, rep.PendingBuilds = roots.Streams, len(roots.Snapshots), roots.Leases, roots.Pending
	reportSweep(&plan, o, rep, cands)
	if o.DryRun {
		return nil
	}
	return applySweep(ss, &plan, roots, now, o, rep)
}

// storeSweepPlan streams the blob and orphan records of txn through a
// sweeper.
func storeSweepPlan(ctx context.Context, txn cas.Txn, marked func(Sum) bool, now time.Time, older time.Duration) (SweepPlan, error) {
	sw := sweeper{marked: marked, now: now, cutoff: now.Add(-older)}
	bit := txn.Cursor([]byte{cas.PrefixBlob})
	defer bit.Close()
	oit := txn.Cursor([]byte{cas.PrefixOrphan, 'b'})
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
			b = &blobRec{}
			copy(b.sum[:], bit.Key()[1:])
			v, err := bit.Value()
			if err != nil {
				return SweepPlan{}, err
			}
			rec, err := cas.DecodeRecord(digestOf(b.sum), v)
			if err != nil {
				return SweepPlan{}, err
			}
			b.size = rec.Size
		}
		if oit.Valid() {
			o = &orphanRec{}
			copy(o.sum[:], oit.Key()[2:])
			v, err := oit.Value()
			if err != nil {
				return SweepPlan{}, err
			}
			if o.since, err = decodeTime(v); err != nil {
				return SweepPlan{}, fmt.Errorf("blob %s: %w", digestOf(o.sum), err)
			}
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

// reportSweep puts the plan in the report and tells o.Plan each step (the
// deletions only on a dry run: otherwise reapBatch reports what it did).
func reportSweep(p *SweepPlan, o Options, rep *Report, cands *[]digest.Digest) {
	rep.Blobs, rep.Marked, rep.Rereferenced = p.Blobs, p.Marked, p.Rereferenced
	for _, e := range p.NewOrphans {
		rep.NewOrphans++
		rep.NewOrphanSize += e.Size
		if o.Plan != nil {
			o.Plan(Action{Kind: "orphan", Name: digestOf(e.Sum).String(), Size: e.Size, Since: e.Since})
		}
	}
	for _, e := range p.Waiting {
		rep.Waiting++
		rep.WaitingSize += e.Size
	}
	for _, e := range p.Reap {
		*cands = append(*cands, digestOf(e.Sum))
		if o.DryRun {
			rep.Reaped++
			rep.Freed += e.Size
			if o.Plan != nil {
				o.Plan(Action{Kind: "reap", Name: digestOf(e.Sum).String(), Size: e.Size, Since: e.Since})
			}
		}
	}
}

// applySweep records the plan in the writer session ss: new orphan
// records, dropped records, the remembered keep-history, lapsed leases.
func applySweep(ss *cas.Session, p *SweepPlan, roots *Roots, now time.Time, o Options, rep *Report) error {
	wb, err := ss.NewWriteBatch()
	if err != nil {
		return err
	}
	defer wb.Cancel()
	for _, e := range p.NewOrphans {
		if err := wb.Set(orphanKey(e.Sum), encodeTime(now)); err != nil {
			return fmt.Errorf("gc: record orphans: %w", err)
		}
	}
	for _, sum := range p.DropRecords {
		if err := wb.Delete(orphanKey(sum)); err != nil {
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
	return nil
}

// reapBatch deletes a batch of candidates in its own writer session, after
// collecting the roots again and marking what is new; each blob is checked
// once more in the transaction that drops its record.
func reapBatch(ctx context.Context, r *snapshot.Repo, m *marker, keep int, o Options, rep *Report, batch []digest.Digest) error {
	s := r.Store()
	ss, err := s.Writer(ctx, "gc: reap")
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	defer ss.Close()
	if err := ss.View(func(txn cas.Txn) error { _, err := remark(ctx, txn, s, m, keep); return err }); err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	cutoff := s.Now().UTC().Add(-o.Older)
	var reaped []Action
	del, err := ss.Delete(ctx, batch, func(txn cas.Txn, b cas.Blob) (bool, error) {
		sum, err := sumOf(b.Digest)
		if err != nil {
			return true, err
		}
		if m.has(sum) {
			return true, nil
		}
		v, err := txn.Get(orphanKey(sum))
		if errors.Is(err, cas.ErrNoRecord) {
			return true, nil
		}
		if err != nil {
			return true, err
		}
		since, err := decodeTime(v)
		if err != nil || since.After(cutoff) {
			return true, err
		}
		reaped = append(reaped, Action{Kind: "reap", Name: b.Digest.String(), Size: b.Size, Since: since})
		return false, txn.Delete(orphanKey(sum))
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
	if err := ss.Close(); err != nil {
		return err
	}
	return nil
}
