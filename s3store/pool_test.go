package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"testing"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/cas/blobtest"
	"github.com/mephstore/mephstore/internal/digest"
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
	noUploads(t, b)
}

// A large known-digest upload (parts sent two at a time, in whatever
// order they finish) reads back byte for byte, in odd-sized writes.
func TestPoolExpectingLargeReadsBack(t *testing.T) {
	_, b := testBucket(t, "store")
	p := NewPool(b)
	data, d := bigBlob(3*PartSize + PartSize/2 + 7)
	w, err := p.CreateExpecting(context.Background(), cas.Expect{Size: int64(len(data)), Digest: d})
	if err != nil {
		t.Fatal(err)
	}
	for rest := data; len(rest) > 0; {
		k := min(len(rest), 1<<20+13)
		if _, err := w.Write(rest[:k]); err != nil {
			t.Fatal(err)
		}
		rest = rest[k:]
	}
	if _, existed, err := w.Commit(context.Background(), cas.Expect{Size: int64(len(data)), Digest: d}); err != nil || existed {
		t.Fatalf("commit: %v (existed %v)", err, existed)
	}
	f, err := p.Open(context.Background(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes (%v), want %d identical", len(got), err, len(data))
	}
}

// Small blobs cost memory of their size (and of their request), not of a
// part: 200 writes of 100 bytes allocate less than 4 parts in all (a part
// each would be 200; the request machinery takes ~100 KiB a blob).
func TestPoolSmallBlobsStaySmall(t *testing.T) {
	_, b := testBucket(t, "store")
	p := NewPool(b)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range 200 {
		data := fmt.Appendf(nil, "%0100d", i)
		d := digest.FromBytes(data)
		w, err := p.CreateExpecting(context.Background(), cas.Expect{Size: int64(len(data)), Digest: d})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		if _, _, err := w.Commit(context.Background(), cas.Expect{Size: int64(len(data)), Digest: d}); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4*PartSize {
		t.Fatalf("200 small blobs allocated %d MiB", alloc>>20)
	}
}
