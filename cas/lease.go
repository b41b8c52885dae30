package cas

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/mephstore/mephstore/internal/digest"
)

// A lease protects blobs from gc while the operation holding it runs: an
// ingest, insert, build or publish writes or picks blobs before a snapshot
// refers to them, and gc must not reap them in between. A lease has an
// expiry, renewed while its holder lives, so the lease of a crashed
// operation lapses by itself.
//
// What a lease protects is a list of references (Ref) added as the
// operation goes: blobs committed under it (Commit and PutBytes add them
// when the context carries the lease, see WithLease) and whatever the
// operation names explicitly (AddRefs). Its Data is the creator's own
// (snapshot keeps the history positions of every stream there).

// Errors of leases.
var (
	ErrLeaseExpired = errors.New("lease expired or released")
)

// Lease timing: a lease lives DefaultLeaseTTL past its last renewal, and
// Hold renews it every LeaseRenewEvery.
const (
	DefaultLeaseTTL = 30 * time.Minute
	LeaseRenewEvery = DefaultLeaseTTL / 3
)

// Lease is a lease's record.
type Lease struct {
	ID        string    `json:"id"`
	Operation string    `json:"operation"`
	PID       int       `json:"pid"`
	Host      string    `json:"host"`
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires"`
	Data      []byte    `json:"data,omitempty"`
}

// Live reports whether the lease still protects anything at time now.
func (l *Lease) Live(now time.Time) bool { return now.Before(l.Expires) }

// Kinds of references, held by leases and pending builds. gc marks a
// product blob's items and a snapshot's products and items with it.
const (
	RefBlob     byte = 'b' // the blob alone
	RefProduct  byte = 'p' // a product blob and the data of its items
	RefSnapshot byte = 's' // a snapshot document, its products and their data
)

// Ref names a blob and how much of what it refers to is protected with it.
type Ref struct {
	Kind   byte
	Digest digest.Digest
}

const refLen = 1 + 32

// EncodeRefs encodes references as 33 bytes each: the kind, then the raw
// sha256.
func EncodeRefs(refs []Ref) []byte {
	out := make([]byte, 0, refLen*len(refs))
	for _, r := range refs {
		raw, _ := hex.DecodeString(r.Digest.Encoded())
		out = append(append(out, r.Kind), raw...)
	}
	return out
}

// DecodeRefs reverses EncodeRefs.
func DecodeRefs(v []byte) ([]Ref, error) {
	if len(v)%refLen != 0 {
		return nil, fmt.Errorf("reference list of %d bytes: not a multiple of %d", len(v), refLen)
	}
	out := make([]Ref, 0, len(v)/refLen)
	for i := 0; i < len(v); i += refLen {
		switch v[i] {
		case RefBlob, RefProduct, RefSnapshot:
		default:
			return nil, fmt.Errorf("reference list: unknown kind %q", v[i])
		}
		out = append(out, Ref{Kind: v[i], Digest: digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(v[i+1:i+refLen]))})
	}
	return out, nil
}

// Keys: 'l' + id[8] + 0 holds the lease (JSON); 'l' + id[8] + 1 + random[8]
// holds one batch of references. One key per batch, not per blob, so that
// releasing a lease of 100,000 blobs deletes a handful of keys.
const leaseIDLen = 8

func leasePrefix(id string) ([]byte, error) {
	raw, err := hex.DecodeString(id)
	if err != nil || len(raw) != leaseIDLen {
		return nil, fmt.Errorf("lease %q: bad id", id)
	}
	return append([]byte{PrefixLease}, raw...), nil
}

func leaseKey(id string) ([]byte, error) {
	p, err := leasePrefix(id)
	if err != nil {
		return nil, err
	}
	return append(p, 0), nil
}

func leaseRefsKey(id string) ([]byte, error) {
	p, err := leasePrefix(id)
	if err != nil {
		return nil, err
	}
	var r [8]byte
	rand.Read(r[:])
	return append(append(p, 1), r[:]...), nil
}

// CreateLease records a new lease for the operation op in this writer
// session, expiring ttl from now, holding refs from the start. data is
// stored with it; dataFn, when not nil, computes it in the same
// transaction. Every blob refs name must have its record (ErrBlobNotFound).
func (ss *Session) CreateLease(op string, ttl time.Duration, dataFn func(txn Txn) ([]byte, error), refs ...Ref) (*Lease, error) {
	if !ss.writable {
		return nil, ErrReadOnly
	}
	var raw [leaseIDLen]byte
	rand.Read(raw[:])
	host, _ := os.Hostname()
	now := ss.s.now().UTC()
	l := &Lease{ID: hex.EncodeToString(raw[:]), Operation: op, PID: os.Getpid(), Host: host, Created: now, Expires: now.Add(ttl)}
	err := ss.update(func(txn Txn) error {
		if dataFn != nil {
			d, err := dataFn(txn)
			if err != nil {
				return err
			}
			l.Data = d
		}
		for _, r := range refs {
			if _, err := GetBlob(txn, r.Digest); err != nil {
				return err
			}
		}
		if err := putLease(txn, l); err != nil {
			return err
		}
		return ss.addRefs(txn, l, refs)
	})
	if err != nil {
		return nil, fmt.Errorf("lease for %s: %w", op, err)
	}
	return l, nil
}

func putLease(txn Txn, l *Lease) error {
	k, err := leaseKey(l.ID)
	if err != nil {
		return err
	}
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	return txn.Set(k, b)
}

// liveLease reads the lease l in txn and checks that it has not lapsed.
func (ss *Session) liveLease(txn Txn, l *Lease) error {
	k, err := leaseKey(l.ID)
	if err != nil {
		return err
	}
	v, err := txn.Get(k)
	if errors.Is(err, ErrNoRecord) {
		return fmt.Errorf("lease %s (%s): %w", l.ID, l.Operation, ErrLeaseExpired)
	}
	if err != nil {
		return err
	}
	var cur Lease
	if err := json.Unmarshal(v, &cur); err != nil {
		return fmt.Errorf("lease %s: %w", l.ID, err)
	}
	if !cur.Live(ss.s.now()) {
		return fmt.Errorf("lease %s (%s) lapsed at %s: %w", l.ID, l.Operation, cur.Expires.Format(time.RFC3339), ErrLeaseExpired)
	}
	return nil
}

// addRefs adds references to the lease l in txn, failing if it lapsed.
func (ss *Session) addRefs(txn Txn, l *Lease, refs []Ref) error {
	if len(refs) == 0 {
		return nil
	}
	if err := ss.liveLease(txn, l); err != nil {
		return err
	}
	k, err := leaseRefsKey(l.ID)
	if err != nil {
		return err
	}
	return txn.Set(k, EncodeRefs(refs))
}

// AddRefs adds references to the lease l. Every blob named must have its
// record: a blob that gc reaped before it could be protected is reported
// with ErrBlobNotFound, and nothing is added.
func (ss *Session) AddRefs(l *Lease, refs ...Ref) error {
	if !ss.writable {
		return ErrReadOnly
	}
	return ss.update(func(txn Txn) error {
		for _, r := range refs {
			if _, err := GetBlob(txn, r.Digest); err != nil {
				return err
			}
		}
		return ss.addRefs(txn, l, refs)
	})
}

// RenewLease moves the lease's expiry to ttl from now.
func (ss *Session) RenewLease(l *Lease, ttl time.Duration) error {
	if !ss.writable {
		return ErrReadOnly
	}
	return ss.update(func(txn Txn) error {
		if err := ss.liveLease(txn, l); err != nil {
			return err
		}
		l.Expires = ss.s.now().UTC().Add(ttl)
		return putLease(txn, l)
	})
}

// EndLease deletes lease l in this writer session, as part of the unit of
// work that makes it needless (a commit that moves a head to what the
// lease protected); the release function Hold returned then writes
// nothing, which saves a writer session.
func (ss *Session) EndLease(l *Lease) error {
	if err := ss.DeleteLease(l.ID); err != nil {
		return err
	}
	ss.s.ended.Store(l.ID, true)
	return nil
}

// DeleteLease removes a lease and its references.
func (ss *Session) DeleteLease(id string) error {
	if !ss.writable {
		return ErrReadOnly
	}
	p, err := leasePrefix(id)
	if err != nil {
		return err
	}
	var keys [][]byte
	if err := ss.View(func(txn Txn) error {
		return txn.Scan(p, nil, func(k, _ []byte) error {
			keys = append(keys, bytes.Clone(k))
			return nil
		})
	}); err != nil {
		return err
	}
	// The reference lists first, the lease's own record (the first key)
	// last, in transactions of at most maxTxnEntries: a crash between two
	// leaves the lease with fewer references, never references without
	// their lease.
	slices.Reverse(keys)
	for lo := 0; lo < len(keys); lo += maxTxnEntries {
		chunk := keys[lo:min(lo+maxTxnEntries, len(keys))]
		if err := ss.update(func(txn Txn) error {
			for _, k := range chunk {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// LeaseInfo is a lease with the references it holds.
type LeaseInfo struct {
	Lease
	Refs []Ref `json:"-"`
}

// ListLeases lists every lease (lapsed ones too) in a short read session.
func (s *Store) ListLeases(ctx context.Context) ([]LeaseInfo, error) {
	ss, err := s.Reader(ctx)
	if err != nil {
		return nil, err
	}
	defer ss.Close()
	var ls []LeaseInfo
	err = ss.View(func(txn Txn) error {
		var err error
		ls, err = Leases(txn)
		return err
	})
	return ls, err
}

// Leases lists every lease (lapsed ones too) with its references, in id
// order.
func Leases(txn Txn) ([]LeaseInfo, error) {
	var out []LeaseInfo
	err := txn.Scan([]byte{PrefixLease}, nil, func(k, v []byte) error {
		if len(k) < 2+leaseIDLen {
			return fmt.Errorf("lease key %x: too short", k)
		}
		id := hex.EncodeToString(k[1 : 1+leaseIDLen])
		switch k[1+leaseIDLen] {
		case 0:
			var l Lease
			if err := json.Unmarshal(v, &l); err != nil {
				return fmt.Errorf("lease %s: %w", id, err)
			}
			out = append(out, LeaseInfo{Lease: l})
		case 1:
			refs, err := DecodeRefs(v)
			if err != nil {
				return fmt.Errorf("lease %s: %w", id, err)
			}
			if len(out) == 0 || out[len(out)-1].ID != id {
				// References whose lease record is gone (a release cut
				// short): they protect nothing; gc removes them.
				out = append(out, LeaseInfo{Lease: Lease{ID: id, Operation: "(released)"}})
			}
			out[len(out)-1].Refs = append(out[len(out)-1].Refs, refs...)
		default:
			return fmt.Errorf("lease key %x: unknown kind", k)
		}
		return nil
	})
	return out, err
}

type leaseCtxKey struct{}

// WithLease returns a context carrying the lease: Commit and PutBytes add
// the blobs they commit under it to the lease.
func WithLease(ctx context.Context, l *Lease) context.Context {
	return context.WithValue(ctx, leaseCtxKey{}, l)
}

// LeaseFrom returns the lease the context carries, or nil.
func LeaseFrom(ctx context.Context) *Lease {
	l, _ := ctx.Value(leaseCtxKey{}).(*Lease)
	return l
}

// Hold creates a lease for the operation op holding refs, in one short
// writer session, keeps it alive while ctx lives, and returns a context
// carrying it and a function that releases it (call it when the operation
// is over, whether it succeeded or not). dataFn may be nil.
func (s *Store) Hold(ctx context.Context, op string, dataFn func(txn Txn) ([]byte, error), refs ...Ref) (context.Context, func(), error) {
	ss, err := s.Writer(ctx, "lease for "+op)
	if err != nil {
		return nil, nil, err
	}
	l, err := ss.CreateLease(op, DefaultLeaseTTL, dataFn, refs...)
	cerr := ss.Close()
	if err != nil {
		return nil, nil, err
	}
	if cerr != nil {
		return nil, nil, cerr
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(LeaseRenewEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if _, gone := s.ended.Load(l.ID); gone {
					continue
				}
				if err := s.WithWriter(ctx, "renew lease of "+op, func(ss *Session) error { return ss.RenewLease(l, DefaultLeaseTTL) }); err != nil {
					s.log.Warn("could not renew the lease; will try again", "lease", l.ID, "op", op, "err", err)
				}
			}
		}
	}()
	release := func() {
		close(stop)
		<-done
		if _, gone := s.ended.LoadAndDelete(l.ID); gone {
			return
		}
		rctx := context.WithoutCancel(ctx)
		if err := s.WithWriter(rctx, "release lease of "+op, func(ss *Session) error { return ss.DeleteLease(l.ID) }); err != nil {
			s.log.Warn("could not release the lease; it lapses by itself", "lease", l.ID, "expires", l.Expires, "err", err)
		}
	}
	return WithLease(ctx, l), release, nil
}

// WithWriter runs fn in a short writer session: one unit of work.
func (s *Store) WithWriter(ctx context.Context, op string, fn func(ss *Session) error) error {
	ss, err := s.Writer(ctx, op)
	if err != nil {
		return err
	}
	err = fn(ss)
	if cerr := ss.Close(); err == nil {
		err = cerr
	}
	return err
}
