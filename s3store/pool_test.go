package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/cas/blobtest"
	digest "github.com/opencontainers/go-digest"
)

// The pool on a real S3 server passes the blob-store contract.
func TestPoolConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) cas.BlobStore {
		_, b := testBucket(t, "store")
		return NewPool(b)
	})
}

// The pool's writers for a known digest pass the same contract: every
// test's blob is written with its digest given up front where it knows it.
func TestPoolExpectingConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) cas.BlobStore {
		_, b := testBucket(t, "store")
		return expecting{NewPool(b)}
	})
}

// expecting is a Pool whose Create is CreateExpecting with the digest
// blobtest will commit under (it tells it through the context).
type expecting struct{ *Pool }

func (e expecting) Create(ctx context.Context) (cas.BlobWriter, error) {
	return &lazyExpecting{p: e.Pool, ctx: ctx}, nil
}

// lazyExpecting buffers until Commit names the digest, then writes
// through CreateExpecting, so the direct path runs on every contract test.
type lazyExpecting struct {
	p         *Pool
	ctx       context.Context
	buf       bytes.Buffer
	cancelled bool
}

func (l *lazyExpecting) Write(b []byte) (int, error) { return l.buf.Write(b) }
func (l *lazyExpecting) Cancel() error               { l.cancelled = true; return nil }
func (l *lazyExpecting) Commit(ctx context.Context, exp cas.Expect) (cas.BlobInfo, bool, error) {
	if l.cancelled {
		return cas.BlobInfo{}, false, errors.New("blob: cancelled")
	}
	d := exp.Digest
	if d == "" {
		s := sha256.Sum256(l.buf.Bytes())
		d = digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(s[:]))
	}
	w, err := l.p.CreateExpecting(l.ctx, cas.Expect{Size: -1, Digest: d})
	if err != nil {
		return cas.BlobInfo{}, false, err
	}
	if _, err := w.Write(l.buf.Bytes()); err != nil {
		return cas.BlobInfo{}, false, err
	}
	return w.Commit(ctx, exp)
}

// A known digest that the bytes do not have: the multipart upload is
// aborted, nothing appears.
func TestPoolExpectingMismatch(t *testing.T) {
	_, b := testBucket(t, "store")
	p := NewPool(b)
	data, _ := bigBlob(40 << 20)
	wrong := digest.FromString("other")
	w, err := p.CreateExpecting(context.Background(), cas.Expect{Size: -1, Digest: wrong})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Commit(context.Background(), cas.Unknown); !errors.Is(err, cas.ErrDigestMismatch) {
		t.Fatalf("commit: %v", err)
	}
	if keys := poolKeys(t, b); len(keys) != 0 {
		t.Fatalf("left: %v", keys)
	}
	n := 0
	for u := range b.c.ListIncompleteUploads(context.Background(), b.cfg.Bucket, "store/", true) {
		if u.Err == nil {
			n++
		}
	}
	if n != 0 {
		t.Fatalf("%d multipart uploads left open", n)
	}
}
