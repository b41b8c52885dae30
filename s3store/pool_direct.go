package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"

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

// directWriter uploads parts under the final key.
type directWriter struct {
	p     *Pool
	ctx   context.Context
	d     digest.Digest
	h     hash.Hash
	n     int64
	buf   bytes.Buffer
	id    string // the multipart upload, once a part is sent
	parts []minio.CompletePart
	err   error
	done  bool
}

func (w *directWriter) core() minio.Core { return minio.Core{Client: w.p.b.c} }

func (w *directWriter) Write(b []byte) (int, error) {
	if w.done || w.err != nil {
		return 0, errors.Join(errors.New("blob: write after commit, cancel or failure"), w.err)
	}
	w.buf.Write(b)
	w.h.Write(b)
	w.n += int64(len(b))
	for w.buf.Len() >= PartSize {
		if w.err = w.sendPart(w.buf.Next(PartSize)); w.err != nil {
			return 0, w.err
		}
	}
	if w.buf.Len() == 0 {
		w.buf.Reset()
	}
	return len(b), nil
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
		minio.PutObjectPartOptions{})
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
	if w.id == "" { // small: one conditional PUT
		_, err = w.p.b.Put(ctx, blobKey(d), w.buf.Bytes(), Cond{IfNoneMatch: true})
	} else if err = w.sendPart(w.buf.Bytes()); err == nil {
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
	if w.id == "" {
		return nil
	}
	b := w.p.b
	return w.core().AbortMultipartUpload(context.WithoutCancel(w.ctx), b.cfg.Bucket, b.key(blobKey(w.d)), w.id)
}
