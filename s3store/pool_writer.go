package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/internal/fsx"
)

// writer writes one blob. The first PartSize bytes are kept in memory: a
// blob that fits is written with one conditional PUT at Commit. A larger
// one streams to a temp object in pool/.ingest as it is written; Commit
// checks it and copies it server-side to its final key.
type writer struct {
	p      *Pool
	ctx    context.Context
	buf    bytes.Buffer
	h      hash.Hash
	n      int64
	key    string // the temp object, once streaming
	pw     *io.PipeWriter
	result chan error
	done   bool
}

// Create starts a blob.
func (p *Pool) Create(ctx context.Context) (cas.BlobWriter, error) {
	return &writer{p: p, ctx: ctx, h: sha256.New()}, nil
}

func (w *writer) Write(b []byte) (int, error) {
	if w.done {
		return 0, errors.New("blob: write after commit or cancel")
	}
	if w.pw == nil && w.buf.Len()+len(b) <= PartSize {
		w.buf.Write(b)
		w.h.Write(b)
		w.n += int64(len(b))
		return len(b), nil
	}
	if w.pw == nil {
		if err := w.stream(); err != nil {
			return 0, err
		}
	}
	n, err := w.pw.Write(b)
	w.h.Write(b[:n])
	w.n += int64(n)
	return n, err
}

// stream starts the temp upload, fed first with what was buffered.
func (w *writer) stream() error {
	pr, pw := io.Pipe()
	w.key = poolIngest + fsx.TempName("", ".part")
	w.pw, w.result = pw, make(chan error, 1)
	go func() {
		_, err := w.p.b.PutStream(w.ctx, w.key, pr, -1, PartSize)
		pr.CloseWithError(err)
		w.result <- err
	}()
	_, err := w.pw.Write(w.buf.Bytes())
	w.buf = bytes.Buffer{}
	return err
}

// Commit checks the bytes and makes them visible under their digest.
func (w *writer) Commit(ctx context.Context, exp cas.Expect) (cas.BlobInfo, bool, error) {
	if w.done {
		return cas.BlobInfo{}, false, errors.New("blob: committed or cancelled already")
	}
	w.done = true
	if w.pw != nil {
		w.pw.Close()
		err := <-w.result
		defer w.p.b.Delete(context.WithoutCancel(ctx), w.key)
		if err != nil {
			return cas.BlobInfo{}, false, fmt.Errorf("blob upload: %w", err)
		}
	}
	d := digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(w.h.Sum(nil)))
	if err := exp.Check("blob", w.n, d); err != nil {
		return cas.BlobInfo{}, false, err
	}
	if info, err := w.p.Stat(ctx, d); err == nil {
		return info, true, nil
	}
	var err error
	if w.pw == nil {
		_, err = w.p.b.put(ctx, blobKey(d), w.buf.Bytes(), Cond{IfNoneMatch: true}, d.Encoded())
	} else {
		err = w.p.b.CopyNew(ctx, w.key, blobKey(d), w.n)
	}
	return w.p.settle(ctx, d, w.n, err)
}

// settle is the end of a Commit of blob d whose final conditional write
// returned err: a refused precondition means another writer of the same
// bytes won (the blob existed); the blob is then stat'ed for its info.
func (p *Pool) settle(ctx context.Context, d digest.Digest, n int64, err error) (cas.BlobInfo, bool, error) {
	if err == nil { // written now: no need to ask the server what it holds
		return cas.BlobInfo{Digest: d, Size: n, ModTime: p.b.Now()}, false, nil
	}
	if !errors.Is(err, ErrPrecondition) {
		return cas.BlobInfo{}, false, err
	}
	info, err := p.Stat(ctx, d)
	return info, true, err
}

// Cancel drops the blob and removes what reached the server.
func (w *writer) Cancel() error {
	if w.done {
		return nil
	}
	w.done = true
	if w.pw == nil {
		return nil
	}
	w.pw.CloseWithError(errors.New("blob: cancelled"))
	<-w.result
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return w.p.b.Delete(ctx, w.key)
}
