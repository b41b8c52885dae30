package s3store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/internal/s3api"
)

// CreateExpecting starts a blob whose digest the caller knows already (a
// download named by its upstream sha256, a file hashed first). Its bytes
// go straight to a multipart upload under the final key, one PartSize
// part at a time; Commit completes the upload (with If-None-Match: *)
// only when size and digest match, and aborts it otherwise, so nothing
// unchecked is ever visible, and no server-side copy is needed. Without a
// digest in exp it is Create.
func (p *Pool) CreateExpecting(ctx context.Context, exp cas.Expect) (cas.BlobWriter, error) {
	if exp.Digest == "" {
		return p.Create(ctx)
	}
	if err := exp.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("digest %q: %w", exp.Digest, cas.ErrBadDigest)
	}
	return &directWriter{p: p, ctx: ctx, d: exp.Digest, h: sha256.New()}, nil
}

// directWriter uploads parts under the final key. Parts are sent by
// senders goroutines while the next one is filled and hashed, so hashing
// and the network overlap; at most senders+2 parts are in memory (one
// filling, one waiting, one in flight per sender).
type directWriter struct {
	p   *Pool
	ctx context.Context
	d   digest.Digest
	h   hash.Hash
	n   int64
	cur []byte // the part being filled
	// The senders: parts to send, spare buffers, their ends (nil or
	// the first error of each), and what they sent. id is set before
	// they start; parts is theirs (under mu) until they end.
	queue   chan part
	free    chan []byte
	sent    chan error
	failed  atomic.Bool
	next    int // the number of the next part
	id      string
	mu      sync.Mutex
	parts   []s3api.Part
	err     error
	done    bool
	drained bool
}

// part is a numbered part for the senders.
type part struct {
	n   int
	buf []byte
}

// senders is how many parts of one upload are in flight at once.
const senders = 2

func (w *directWriter) Write(b []byte) (int, error) {
	if w.done || w.err != nil {
		return 0, errors.Join(errors.New("blob: write after commit, cancel or failure"), w.err)
	}
	w.h.Write(b)
	w.n += int64(len(b))
	total := len(b)
	for len(b) > 0 {
		if w.cur == nil && w.queue != nil {
			w.cur = w.buffer() // a large blob: whole parts (a small one grows as it goes)
		}
		k := min(len(b), PartSize-len(w.cur))
		w.cur = append(w.cur, b[:k]...)
		b = b[k:]
		if len(w.cur) == PartSize {
			if w.err = w.enqueue(); w.err != nil {
				return 0, w.err
			}
		}
	}
	return total, nil
}

// buffer is a spare part buffer, or a new one while fewer exist than
// can be in use.
func (w *directWriter) buffer() []byte {
	select {
	case buf := <-w.free:
		return buf
	default:
		return make([]byte, 0, PartSize)
	}
}

// enqueue hands the full part to the senders, starting the upload and
// the senders on the first.
func (w *directWriter) enqueue() error {
	if w.queue == nil {
		b := w.p.b
		id, err := b.c.CreateMultipart(w.ctx, b.cfg.Bucket, b.key(blobKey(w.d)), "")
		if err != nil {
			return b.wrap("start upload", blobKey(w.d), err)
		}
		w.id = id
		w.queue, w.free, w.sent = make(chan part, 1), make(chan []byte, senders+2), make(chan error, senders)
		for range senders {
			go w.sender()
		}
	}
	if w.failed.Load() {
		return w.drain()
	}
	w.next++
	w.queue <- part{w.next, w.cur}
	w.cur = nil
	return nil
}

// sender sends queued parts; after a failure (its own or another's) it
// only hands buffers back.
func (w *directWriter) sender() {
	var err error
	for p := range w.queue {
		if err == nil && !w.failed.Load() {
			if err = w.sendPart(p); err != nil {
				w.failed.Store(true)
			}
		}
		select {
		case w.free <- p.buf[:0]:
		default:
		}
	}
	w.sent <- err
}

// drain stops the senders and returns the first error of any.
func (w *directWriter) drain() error {
	if w.queue == nil || w.drained {
		return nil
	}
	w.drained = true
	close(w.queue)
	var errs []error
	for range senders {
		errs = append(errs, <-w.sent)
	}
	return errors.Join(errs...)
}

// sendPart uploads one part.
func (w *directWriter) sendPart(p part) error {
	b := w.p.b
	// The part's bytes are not in the signature: the digest is checked
	// at Commit.
	op, err := b.c.UploadPart(w.ctx, b.cfg.Bucket, b.key(blobKey(w.d)), w.id, p.n, p.buf)
	if err != nil {
		return b.wrap(fmt.Sprintf("upload part %d", p.n), blobKey(w.d), err)
	}
	w.mu.Lock()
	w.parts = append(w.parts, op)
	w.mu.Unlock()
	return nil
}

// Commit checks the bytes, then completes the upload under the digest.
func (w *directWriter) Commit(ctx context.Context, exp cas.Expect) (cas.BlobInfo, bool, error) {
	if w.done || w.err != nil {
		return cas.BlobInfo{}, false, errors.Join(errors.New("blob: committed, cancelled or failed"), w.err)
	}
	defer w.Cancel()
	d := digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(w.h.Sum(nil)))
	if err := exp.Check("blob", w.n, d); err != nil {
		return cas.BlobInfo{}, false, err
	}
	if err := (cas.Expect{Size: -1, Digest: w.d}).Check("blob", w.n, d); err != nil {
		return cas.BlobInfo{}, false, err
	}
	var err error
	if w.queue == nil { // small: one conditional PUT
		_, err = w.p.b.put(ctx, blobKey(d), w.cur, Cond{IfNoneMatch: true}, d.Encoded())
		return w.p.settle(ctx, d, w.n, err)
	}
	if len(w.cur) > 0 {
		if err = w.enqueue(); err != nil {
			return cas.BlobInfo{}, false, err
		}
	}
	if err = w.drain(); err == nil {
		slices.SortFunc(w.parts, func(a, b s3api.Part) int { return a.Number - b.Number })
		err = w.p.b.c.CompleteMultipart(ctx, w.p.b.cfg.Bucket, w.p.b.key(blobKey(d)), w.id, w.parts, true)
		if err == nil {
			w.id = "" // completed: nothing to abort
		} else {
			err = w.p.b.wrap("complete upload", blobKey(d), err)
		}
	}
	return w.p.settle(ctx, d, w.n, err)
}

// Cancel aborts the upload: none of its parts ever becomes visible.
func (w *directWriter) Cancel() error {
	if w.done {
		return nil
	}
	w.done = true
	w.drain()
	if w.id == "" {
		return nil
	}
	b := w.p.b
	return b.c.AbortMultipart(context.WithoutCancel(w.ctx), b.cfg.Bucket, b.key(blobKey(w.d)), w.id)
}
