package gc

import (
	"bytes"
	"slices"
	"strings"
	"time"

	"github.com/mephstore/mephstore/internal/digest"
)

// SweepEntry is a blob as the sweep of the store's records sees it.
type SweepEntry struct {
	Sum   Sum
	Size  int64
	Since time.Time // orphaned since (now, for a new orphan)
}

// SweepPlan is what a sweep of the store's records does, decided from the
// blob records, the orphan records and the mark set alone: no I/O, no
// clock but the times it is given.
type SweepPlan struct {
	Blobs        int          // blob records seen
	Marked       int          // of those, reachable
	Rereferenced int          // orphan records of blobs reachable again
	NewOrphans   []SweepEntry // unreachable with no record yet: recorded at now
	DropRecords  []Sum        // orphan records to drop: reachable again, or the blob is gone
	Reap         []SweepEntry // orphaned at or before the cutoff: deleted (after a re-check)
	Waiting      []SweepEntry // orphaned after the cutoff: left for a later run
}

// blobRec and orphanRec are the two record streams the sweep merges, each
// in sum order.
type blobRec struct {
	sum  Sum
	size int64
}

type orphanRec struct {
	sum   Sum
	since time.Time
}

// sweeper builds a SweepPlan one step at a time, so that the records are
// streamed from the database, never held whole.
type sweeper struct {
	marked func(Sum) bool
	now    time.Time
	cutoff time.Time // now - older
	plan   SweepPlan
}

// step decides for the current blob record b and orphan record o (nil when
// their stream is done; not both) and says which streams move on.
func (s *sweeper) step(b *blobRec, o *orphanRec) (nextBlob, nextOrphan bool) {
	c := 0
	switch {
	case b == nil:
		c = 1
	case o == nil:
		c = -1
	default:
		c = bytes.Compare(b.sum[:], o.sum[:])
	}
	if c > 0 { // an orphan record whose blob is gone
		s.plan.DropRecords = append(s.plan.DropRecords, o.sum)
		return false, true
	}
	p := &s.plan
	p.Blobs++
	hasRecord := c == 0
	if s.marked(b.sum) {
		p.Marked++
		if hasRecord {
			p.Rereferenced++
			p.DropRecords = append(p.DropRecords, b.sum)
		}
		return true, hasRecord
	}
	e := SweepEntry{Sum: b.sum, Size: b.size, Since: s.now}
	if hasRecord {
		e.Since = o.since
	} else {
		p.NewOrphans = append(p.NewOrphans, e)
	}
	if e.Since.After(s.cutoff) {
		p.Waiting = append(p.Waiting, e)
	} else {
		p.Reap = append(p.Reap, e)
	}
	return true, hasRecord
}

// planSweep runs a sweeper over two record lists in sum order (the
// planner's tests; the store streams its records through the same steps).
func planSweep(blobs []blobRec, orphans []orphanRec, marked func(Sum) bool, now time.Time, older time.Duration) SweepPlan {
	s := sweeper{marked: marked, now: now, cutoff: now.Add(-older)}
	for len(blobs) > 0 || len(orphans) > 0 {
		var b *blobRec
		var o *orphanRec
		if len(blobs) > 0 {
			b = &blobs[0]
		}
		if len(orphans) > 0 {
			o = &orphans[0]
		}
		nb, no := s.step(b, o)
		if nb {
			blobs = blobs[1:]
		}
		if no {
			orphans = orphans[1:]
		}
	}
	return s.plan
}

// Step is one thing a gc run does, and why.
type Step struct {
	Root   string    `json:"root,omitempty"` // a publish root; "" for the store's pool
	Name   string    `json:"name"`           // a digest, or a path relative to Root
	Kind   string    `json:"kind"`           // "blob"; in a publish root "products", "index" or "data"
	Size   int64     `json:"size"`
	Since  time.Time `json:"orphaned_since"`
	Reason string    `json:"reason"`
}

// LiveSnapshot is a snapshot gc marks from, and why.
type LiveSnapshot struct {
	Snapshot digest.Digest `json:"snapshot"`
	Why      string        `json:"why"`
}

// Plan is what a gc run does, computed by MakePlan from the record and
// blob stores and the publish roots without changing anything: what is
// live, what becomes an orphan, what is reaped, which published files go,
// with reasons. Executing it re-checks each step against the roots as they
// are then.
type Plan struct {
	Now           time.Time      `json:"now"`
	Older         string         `json:"older"`
	KeepHistory   int            `json:"keep_history"`
	Live          []LiveSnapshot `json:"live"`
	Streams       int            `json:"streams"`
	Leases        int            `json:"leases"`
	PendingBuilds int            `json:"pending_builds"`
	LapsedLeases  []string       `json:"lapsed_leases"`
	Blobs         int            `json:"blobs"`     // blob records
	Reachable     int            `json:"reachable"` // of those, marked
	Orphan        []Step         `json:"record_orphans"`
	Forget        int            `json:"forget_records"` // orphan records of blobs reachable again, or gone
	Reap          []Step         `json:"reap"`
	Waiting       int            `json:"orphans_waiting"`
	WaitingBytes  int64          `json:"orphans_waiting_bytes"`
	Publish       []RootPlan     `json:"publish"`

	m     *marker
	sweep SweepPlan
}

// setRoots puts what is live in the plan.
func (p *Plan) setRoots(r *Roots) {
	p.Streams, p.Leases, p.PendingBuilds, p.LapsedLeases = r.Streams, r.Leases, r.Pending, r.Expired
	for d, why := range r.Snapshots {
		p.Live = append(p.Live, LiveSnapshot{Snapshot: d, Why: why})
	}
	slices.SortFunc(p.Live, func(a, b LiveSnapshot) int { return strings.Compare(a.Why, b.Why) })
}

// setSweep puts the sweep of the store's records in the plan, as steps.
func (p *Plan) setSweep() {
	sp := &p.sweep
	p.Blobs, p.Reachable, p.Forget = sp.Blobs, sp.Marked, len(sp.DropRecords)
	for _, e := range sp.NewOrphans {
		p.Orphan = append(p.Orphan, Step{Name: digestOf(e.Sum).String(), Kind: "blob", Size: e.Size, Since: e.Since,
			Reason: "reachable from no stream head, retained history entry, lease or pending build"})
	}
	for _, e := range sp.Reap {
		p.Reap = append(p.Reap, Step{Name: digestOf(e.Sum).String(), Kind: "blob", Size: e.Size, Since: e.Since,
			Reason: "unreachable, orphaned at least --older ago"})
	}
	for _, e := range sp.Waiting {
		p.Waiting++
		p.WaitingBytes += e.Size
	}
}

// Report is the plan's figures as a dry run's report; fn, when not nil, is
// told every step.
func (p *Plan) Report(fn func(Action)) *Report {
	rep := &Report{DryRun: true, Older: p.Older, KeepHistory: p.KeepHistory, Streams: p.Streams,
		RootSnapshots: len(p.Live), Leases: p.Leases, PendingBuilds: p.PendingBuilds, LeasesDropped: len(p.LapsedLeases),
		Blobs: p.Blobs, Marked: p.Reachable, Rereferenced: p.sweep.Rereferenced, Waiting: p.Waiting, WaitingSize: p.WaitingBytes,
		Publish: []PublishReport{}}
	tell := func(kind string, st Step) {
		if fn != nil {
			fn(Action{Kind: kind, Root: st.Root, Name: st.Name, Size: st.Size, Since: st.Since})
		}
	}
	for _, st := range p.Orphan {
		rep.NewOrphans++
		rep.NewOrphanSize += st.Size
		tell("orphan", st)
	}
	for _, st := range p.Reap {
		rep.Reaped++
		rep.Freed += st.Size
		tell("reap", st)
	}
	for _, rp := range p.Publish {
		pr := PublishReport{Root: rp.Root, Missing: rp.Missing, Streams: rp.Streams, NewOrphans: len(rp.Orphan),
			Rereferenced: len(rp.Forget), Waiting: rp.Waiting}
		for _, st := range rp.Orphan {
			tell("orphan", st)
		}
		for _, st := range rp.Reap {
			count(&pr, st)
			tell("reap", st)
		}
		rep.Publish = append(rep.Publish, pr)
	}
	return rep
}
