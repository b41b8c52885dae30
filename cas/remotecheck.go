package cas

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/mephstore/mephstore/internal/digest"
)

// inFlight is how young an object of a remote pool without a record may
// be and still be an upload another machine is about to record (stages
// upload before their commit): fsck does not report those.
const inFlight = time.Hour

// mergeRemote compares the blob records with a walk of the remote's
// pool, both in digest order, and calls good for every record whose
// object is there with the right size.
func (s *Store) mergeRemote(ctx context.Context, ss *Session, rep *CheckReport, add func(Problem), good func(Blob)) error {
	pool := s.remote.Pool()
	where := func(d digest.Digest) string { return s.remote.String() + " " + string(d) }
	now := s.remote.Now()
	return ss.View(func(txn Txn) error {
		c := txn.Cursor([]byte{PrefixBlob})
		defer c.Close()
		// rec is the record under the cursor, nil past the end.
		rec := func() (*Blob, error) {
			if !c.Valid() {
				return nil, nil
			}
			v, err := c.Value()
			if err != nil {
				return nil, err
			}
			b, err := decodeRecord(digestFromKey(c.Key()), v)
			return &b, err
		}
		missing := func(r *Blob) {
			add(Problem{Kind: ProblemMissing, Digest: r.Digest, Path: where(r.Digest), Detail: fmt.Sprintf("recorded (%d bytes) but not in the pool", r.Size)})
		}
		err := pool.Walk(ctx, func(o BlobInfo) error {
			r, err := rec()
			for ; err == nil && r != nil && r.Digest.Encoded() < o.Digest.Encoded(); r, err = rec() {
				missing(r)
				c.Next()
			}
			if err != nil {
				return err
			}
			switch {
			case r == nil || r.Digest != o.Digest:
				if now.Sub(o.ModTime) >= inFlight {
					add(Problem{Kind: ProblemUnrecorded, Digest: o.Digest, Path: where(o.Digest), Detail: fmt.Sprintf("in the pool (%d bytes) but has no record", o.Size)})
				} else {
					rep.LiveTemps++
				}
			case o.Size != r.Size:
				add(Problem{Kind: ProblemSize, Digest: r.Digest, Path: where(r.Digest), Detail: fmt.Sprintf("object has %d bytes, record says %d", o.Size, r.Size)})
				c.Next()
			default:
				good(*r)
				c.Next()
			}
			return nil
		})
		if err != nil {
			return err
		}
		for r, err := rec(); r != nil || err != nil; r, err = rec() {
			if err != nil {
				return err
			}
			missing(r)
			c.Next()
		}
		return nil
	})
}

// hashRemote reads a blob back and reports it when its bytes do not hash
// to its name.
func hashRemote(ctx context.Context, pool BlobStore, b Blob) (Problem, bool) {
	f, err := pool.Open(ctx, b.Digest)
	if err != nil {
		return Problem{Kind: ProblemRead, Digest: b.Digest, Path: string(b.Digest), Detail: err.Error()}, true
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, f}); err != nil {
		if errors.Is(err, context.Canceled) {
			return Problem{}, false
		}
		return Problem{Kind: ProblemRead, Digest: b.Digest, Path: string(b.Digest), Detail: err.Error()}, true
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != b.Digest.Encoded() {
		return Problem{Kind: ProblemCorrupt, Digest: b.Digest, Path: string(b.Digest),
			Detail: fmt.Sprintf("content hashes to sha256:%s: %v", got, ErrCorrupt)}, true
	}
	return Problem{}, false
}

// UploadAborter is the optional capability of a remote pool that can
// abort the unfinished multipart uploads of writers that died.
type UploadAborter interface {
	AbortUploadsBefore(ctx context.Context, before time.Time) (int, error)
}

// Swept is what SweepUploads removed (or, on a dry run, would remove).
type Swept struct {
	Objects int   `json:"objects"` // whole objects no record names
	Bytes   int64 `json:"bytes"`
	Aborted int   `json:"uploads_aborted"` // unfinished multipart uploads
}

// SweepUploads removes from a remote's pool what ingests that died
// before their commit left: objects no record names and unfinished
// multipart uploads, older than age (and never younger than an hour, so
// an upload another machine is about to commit is left alone). On a
// store without a remote it does nothing: recovery removes stale local
// temp files.
func (s *Store) SweepUploads(ctx context.Context, age time.Duration, dryRun bool) (Swept, error) {
	var sw Swept
	if s.remote == nil {
		return sw, nil
	}
	cutoff := s.remote.Now().Add(-max(age, inFlight))
	pool := s.remote.Pool()
	rs, err := s.Reader(ctx)
	if err != nil {
		return sw, err
	}
	var stale []BlobInfo
	err = pool.Walk(ctx, func(o BlobInfo) error {
		if !o.ModTime.Before(cutoff) {
			return nil
		}
		if _, err := rs.Stat(o.Digest); errors.Is(err, ErrBlobNotFound) {
			stale = append(stale, o)
		} else if err != nil {
			return err
		}
		return nil
	})
	rs.Close()
	if err != nil || dryRun {
		for _, o := range stale {
			sw.Objects++
			sw.Bytes += o.Size
		}
		return sw, err
	}
	err = s.WithWriter(ctx, "gc: stale uploads", func(ss *Session) error {
		for _, o := range stale {
			if _, err := ss.Stat(o.Digest); !errors.Is(err, ErrBlobNotFound) {
				continue // recorded meanwhile
			}
			if err := pool.Delete(ctx, o.Digest); err != nil {
				return err
			}
			sw.Objects++
			sw.Bytes += o.Size
		}
		return nil
	})
	if err != nil {
		return sw, err
	}
	if ua, ok := pool.(UploadAborter); ok {
		sw.Aborted, err = ua.AbortUploadsBefore(ctx, cutoff)
	}
	return sw, err
}
