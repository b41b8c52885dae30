package snapshot

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/catalog"
	"github.com/mephstore/mephstore/internal/digest"
)

// LeaseData is what the lease of a snapshot operation records: the
// sequence number of every stream's newest history entry when the lease was
// taken. An operation reads heads only after taking its lease, so every
// snapshot it may build on is an entry at or after those positions (or of a
// stream created later); gc keeps all of them while the lease lives.
type LeaseData struct {
	Seqs map[string]uint64 `json:"seqs"`
}

// ParseLeaseData reads the data of a lease taken by Hold; ok is false for
// leases of other operations (an ingest).
func ParseLeaseData(b []byte) (ld LeaseData, ok bool) {
	if len(b) == 0 || json.Unmarshal(b, &ld) != nil || ld.Seqs == nil {
		return LeaseData{}, false
	}
	return ld, true
}

// Hold takes a lease for a snapshot operation (see LeaseData) holding refs,
// in one writer session, unless ctx carries one already (then refs are
// added to it); release it when the operation ends.
func (r *Repo) Hold(ctx context.Context, op string, refs ...cas.Ref) (context.Context, func(), error) {
	ctx, _, release, err := r.HoldOwn(ctx, op, refs...)
	return ctx, release, err
}

// HoldOwn is Hold that also returns the lease it took, nil when ctx
// carried the caller's: an operation may end only a lease of its own in
// the session that makes it needless (cas.Session.EndLease).
func (r *Repo) HoldOwn(ctx context.Context, op string, refs ...cas.Ref) (context.Context, *cas.Lease, func(), error) {
	ctx, l, release, _, err := r.holdOwn(ctx, op, refs...)
	return ctx, l, release, err
}

// holdOwn is HoldOwn that also returns the streams as the lease's
// transaction read them (nil under a caller's lease): a change starts
// from its stream's record without opening the database again.
func (r *Repo) holdOwn(ctx context.Context, op string, refs ...cas.Ref) (context.Context, *cas.Lease, func(), []*Stream, error) {
	if l := cas.LeaseFrom(ctx); l != nil {
		if len(refs) == 0 {
			return ctx, nil, func() {}, nil, nil
		}
		err := r.s.WithWriter(ctx, op+": lease", func(ss *cas.Session) error { return ss.AddRefs(l, refs...) })
		return ctx, nil, func() {}, nil, err
	}
	var sts []*Stream
	ctx, release, err := r.s.Hold(ctx, op, func(txn cas.Txn) ([]byte, error) {
		var err error
		if sts, err = Streams(txn); err != nil {
			return nil, err
		}
		ld := LeaseData{Seqs: map[string]uint64{}}
		for _, st := range sts {
			ld.Seqs[st.Name] = st.Seq
		}
		return json.Marshal(ld)
	}, refs...)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return ctx, cas.LeaseFrom(ctx), release, sts, nil
}

// ErrIncomplete is wrapped when a snapshot refers to blobs the store lacks
// (gc reaped them: the snapshot was out of every stream's retained history
// for longer than gc's age gate).
var ErrIncomplete = errors.New("snapshot refers to blobs the store no longer has")

// checkComplete makes sure that every blob the snapshot doc refers to has
// its record in txn.
func (r *Repo) checkComplete(txn cas.Txn, d digest.Digest, doc *Doc) error {
	missing := 0
	var first string
	note := func(s string) {
		if missing == 0 {
			first = s
		}
		missing++
	}
	for _, cat := range doc.Catalogs {
		for _, p := range cat.Products {
			if _, err := cas.GetBlob(txn, p.Digest); err != nil {
				if !errors.Is(err, cas.ErrBlobNotFound) {
					return err
				}
				note("product " + p.Name)
				continue
			}
			raw, err := r.s.ReadBlob(p.Digest)
			if err != nil {
				return fmt.Errorf("product %s: %w", p.Name, err)
			}
			var gerr error
			err = catalog.ItemDigests(raw, func(sum [32]byte) {
				d := digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(sum[:]))
				if _, err := cas.GetBlob(txn, d); err != nil {
					if !errors.Is(err, cas.ErrBlobNotFound) {
						gerr = err
					}
					note("item data " + d.String())
				}
			})
			if err != nil {
				return fmt.Errorf("product %s: %w", p.Name, err)
			}
			if gerr != nil {
				return gerr
			}
		}
	}
	if missing > 0 {
		return fmt.Errorf("snapshot %s: %w (%d missing, first %s)", d, ErrIncomplete, missing, first)
	}
	return nil
}
