package gc

import (
	"bytes"
	"time"
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
