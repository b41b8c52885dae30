package gc

import (
	"fmt"
	"time"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/snapshot"
)

// Roots is what gc marks from.
type Roots struct {
	// Snapshots and why each is a root ("daily head", "daily #12",
	// "lease 3f9c… (insert …)").
	Snapshots map[digest.Digest]string
	Refs      []cas.Ref // held by live leases and pending builds
	Streams   int
	Leases    int      // live leases
	Pending   int      // pending builds
	Expired   []string // ids of lapsed (or half-released) leases
}

// CollectRoots reads the roots in txn: the newest keep entries of every
// stream's history (the head is the newest), pending builds, and live
// leases at time now.
func CollectRoots(txn cas.Txn, keep int, now time.Time) (*Roots, error) {
	if keep < 1 {
		return nil, fmt.Errorf("keep-history %d: must be at least 1 (the head)", keep)
	}
	r := &Roots{Snapshots: map[digest.Digest]string{}}
	leases, err := cas.Leases(txn)
	if err != nil {
		return nil, err
	}
	// Snapshot operations in progress may build on any entry from the
	// position each stream had when their lease was taken.
	var anyOp bool
	var opLeases []snapshot.LeaseData
	for _, l := range leases {
		if l.Created.IsZero() || !l.Live(now) {
			r.Expired = append(r.Expired, l.ID)
			continue
		}
		r.Leases++
		r.Refs = append(r.Refs, l.Refs...)
		if ld, ok := snapshot.ParseLeaseData(l.Data); ok {
			anyOp = true
			opLeases = append(opLeases, ld)
		}
	}
	streams, err := snapshot.Streams(txn)
	if err != nil {
		return nil, err
	}
	r.Streams = len(streams)
	for _, st := range streams {
		// The lowest position any live operation lease recorded; a stream
		// created after a lease was taken is kept whole.
		lo, have := uint64(0), false
		for _, ld := range opLeases {
			s, ok := ld.Seqs[st.Name]
			if !ok {
				s = 0
			}
			if !have || s < lo {
				lo, have = s, true
			}
		}
		n := 0
		err := snapshot.History(txn, st.Name, func(e snapshot.Entry) bool {
			inKeep := n < keep
			inLease := anyOp && e.Seq >= lo
			n++
			if !inKeep && !inLease {
				return false
			}
			if _, ok := r.Snapshots[e.Snapshot]; !ok {
				why := fmt.Sprintf("%s #%d", st.Name, e.Seq)
				if e.Seq == st.Seq {
					why = st.Name + " head"
				} else if !inKeep {
					why += " (read by an operation in progress)"
				}
				r.Snapshots[e.Snapshot] = why
			}
			return true
		})
		if err != nil {
			return nil, err
		}
		if st.Head != "" {
			if _, ok := r.Snapshots[st.Head]; !ok {
				r.Snapshots[st.Head] = st.Name + " head"
			}
		}
	}
	// Pending builds.
	err = cas.PendingBuilds().Scan(txn, func(_ [8]byte, refs []cas.Ref) error {
		r.Pending++
		r.Refs = append(r.Refs, refs...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pending builds: %w", err)
	}
	return r, nil
}
