package cas

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/mephstore/mephstore/internal/progress"
)

// inFlight is how young an object of a remote pool without a record may
// be and still be an upload another machine is about to record (stages
// upload before their commit): fsck does not report those.
const inFlight = time.Hour

// checkRemote is Check of a store with a remote: the records against a
// walk of the remote's pool (both in digest order), and with Deep every
// object read back and hashed.
func (s *Store) checkRemote(ctx context.Context, ss *Session, opts CheckOptions, rep *CheckReport, add func(Problem)) (*CheckReport, error) {
	var meter progress.Meter = progress.Factory{}.New("", 0, progress.Bytes)
	if opts.Deep {
		var total int64
		if err := ss.Blobs(func(b Blob) error { total += b.Size; return nil }); err != nil {
			return nil, err
		}
		meter = opts.Meters.New("fsck --deep", total, progress.Bytes)
	}
	defer meter.Done()
	jobs := opts.Jobs
	if jobs <= 0 {
		jobs = 2 * runtime.GOMAXPROCS(0)
	}
	pool := s.remote.Pool()
	work := make(chan Blob, jobs*2)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for range jobs {
		wg.Go(func() {
			for b := range work {
				if ctx.Err() != nil {
					continue
				}
				if p, bad := hashRemote(ctx, pool, b); bad {
					add(p)
				}
				meter.Add(b.Size)
				mu.Lock()
				rep.Hashed++
				mu.Unlock()
			}
		})
	}
	where := func(b Blob) string { return s.remote.String() + " " + string(b.Digest) }
	now := s.remote.Now()
	werr := ss.View(func(txn Txn) error {
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
			add(Problem{Kind: ProblemMissing, Digest: r.Digest, Path: where(*r), Detail: fmt.Sprintf("recorded (%d bytes) but not in the pool", r.Size)})
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
					add(Problem{Kind: ProblemUnrecorded, Digest: o.Digest, Path: s.remote.String() + " " + string(o.Digest), Detail: fmt.Sprintf("in the pool (%d bytes) but has no record", o.Size)})
				} else {
					rep.LiveTemps++
				}
			case o.Size != r.Size:
				add(Problem{Kind: ProblemSize, Digest: r.Digest, Path: where(*r), Detail: fmt.Sprintf("object has %d bytes, record says %d", o.Size, r.Size)})
				c.Next()
			default:
				rep.Blobs++
				rep.Bytes += r.Size
				if opts.Deep {
					work <- *r
				}
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
	close(work)
	wg.Wait()
	if werr != nil {
		return nil, werr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sort.SliceStable(rep.Problems, func(i, j int) bool { return rep.Problems[i].Path < rep.Problems[j].Path })
	return rep, nil
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
