package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"sync/atomic"

	"github.com/minio/minio-go/v7"
	digest "github.com/opencontainers/go-digest"

	"github.com/mephstore/mephstore/cas"
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

// directWriter uploads parts under the final key. Parts are sent by a
// goroutine while the next one is filled and hashed, so hashing and the
// network overlap; at most three parts are in memory (one filling, one
// waiting, one in flight).
type directWriter struct {
	p   *Pool
	ctx context.Context
	d   digest.Digest
	h   hash.Hash
	n   int64
	cur []byte // the part being filled
	// The sender: parts to send, spare buffers, and its end (nil or
	// its first error). id and parts are the sender's until it ends.
	queue   chan []byte
	free    chan []byte
	sent    chan error
	failed  atomic.Bool
	id      string // the multipart upload, once a part is sent
	parts   []minio.CompletePart
	err     error
	done    bool
	drained bool
}

func (w *directWriter) core() minio.Core { return minio.Core{Client: w.p.b.c} }

func (w *directWriter) Write(b []byte) (int, error) {
	if w.done || w.err != nil {
		return 0, errors.Join(errors.New("blob: write after commit, cancel or failure"), w.err)
	}
	w.h.Write(b)
	w.n += int64(len(b))
	total := len(b)
	for len(b) > 0 {
		if w.cur == nil {
			w.cur = w.buffer()
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

// buffer is a spare part buffer, or a new one while fewer than three
// exist.
func (w *directWriter) buffer() []byte {
	if w.free != nil {
		select {
		case buf := <-w.free:
			return buf
		default:
		}
	}
	return make([]byte, 0, PartSize)
}

// enqueue hands the full part to the sender, starting it on the first.
func (w *directWriter) enqueue() error {
	if w.queue == nil {
		w.queue, w.free, w.sent = make(chan []byte, 1), make(chan []byte, 3), make(chan error, 1)
		go w.sender()
	}
	if w.failed.Load() {
		return w.drain()
	}
	w.queue <- w.cur
	w.cur = nil
	return nil
}

// sender sends the queued parts in order; after a failure it only hands
// buffers back.
func (w *directWriter) sender() {
	var err error
	for part := range w.queue {
		if err == nil {
			if err = w.sendPart(part); err != nil {
				w.failed.Store(true)
			}
		}
		select {
		case w.free <- part[:0]:
		default:
		}
	}
	w.sent <- err
}

// drain stops the sender and returns its error.
func (w *directWriter) drain() error {
	if w.queue == nil || w.drained {
		return nil
	}
	w.drained = true
	close(w.queue)
	return <-w.sent
}

// sendPart uploads one part, starting the upload on the first.
func (w *directWriter) sendPart(part []byte) error {
	b := w.p.b
	key := b.key(blobKey(w.d))
	if w.id == "" {
		id, err := w.core().NewMultipartUpload(w.ctx, b.cfg.Bucket, key, minio.PutObjectOptions{})
		if err != nil {
			return b.wrap("start upload", blobKey(w.d), err)
		}
		w.id = id
	}
	n := len(w.parts) + 1
	op, err := w.core().PutObjectPart(w.ctx, b.cfg.Bucket, key, w.id, n, bytes.NewReader(part), int64(len(part)),
		minio.PutObjectPartOptions{DisableContentSha256: true}) // the digest is checked at Commit
	if err != nil {
		return b.wrap(fmt.Sprintf("upload part %d", n), blobKey(w.d), err)
	}
	w.parts = append(w.parts, minio.CompletePart{PartNumber: n, ETag: op.ETag})
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
		_, err = w.p.b.Put(ctx, blobKey(d), w.cur, Cond{IfNoneMatch: true})
		return w.p.settle(ctx, d, w.n, err)
	}
	if len(w.cur) > 0 {
		if err = w.enqueue(); err != nil {
			return cas.BlobInfo{}, false, err
		}
	}
	if err = w.drain(); err == nil {
		opts := minio.PutObjectOptions{}
		opts.SetMatchETagExcept("*")
		_, err = w.core().CompleteMultipartUpload(ctx, w.p.b.cfg.Bucket, w.p.b.key(blobKey(d)), w.id, w.parts, opts)
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
	return w.core().AbortMultipartUpload(context.WithoutCancel(w.ctx), b.cfg.Bucket, b.key(blobKey(w.d)), w.id)
}
