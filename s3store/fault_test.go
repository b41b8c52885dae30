package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	digest "github.com/opencontainers/go-digest"

	"github.com/mephstore/mephstore/cas"
)

func bigBlob(n int) ([]byte, digest.Digest) {
	b := bytes.Repeat([]byte("mephstore-s3-fault-"), n/19+1)[:n]
	s := sha256.Sum256(b)
	return b, digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(s[:]))
}

// poolKeys is every object under pool/ (blobs and temp uploads).
func poolKeys(t *testing.T, b *Bucket) []string {
	t.Helper()
	var keys []string
	if err := b.List(context.Background(), "pool/", "", func(o Info) error {
		keys = append(keys, o.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// A large blob whose bytes do not match what was expected never appears,
// and its temp upload is removed.
func TestPoolLargeMismatchLeavesNothing(t *testing.T) {
	_, b := testBucket(t, "store")
	p := NewPool(b)
	data, _ := bigBlob(40 << 20)
	w, _ := p.Create(context.Background())
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	_, _, err := w.Commit(context.Background(), cas.Expect{Size: int64(len(data)), Digest: digest.FromString("other")})
	if !errors.Is(err, cas.ErrDigestMismatch) {
		t.Fatalf("commit of wrong bytes: %v", err)
	}
	if keys := poolKeys(t, b); len(keys) != 0 {
		t.Fatalf("left on the bucket: %v", keys)
	}
}

// The server dies in the middle of an upload: the write fails, the blob
// never appears; once the server is back the next run stores it.
func TestPoolServerStopsMidUpload(t *testing.T) {
	srv, b := testBucket(t, "store")
	b.cfg.Retries = 1
	b2, err := Dial(b.cfg) // fail fast: no retries while the server is down
	if err != nil {
		t.Fatal(err)
	}
	p := NewPool(b2)
	data, d := bigBlob(64 << 20)
	w, _ := p.Create(context.Background())
	half := len(data) / 2
	if _, err := w.Write(data[:half]); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	_, werr := w.Write(data[half:])
	_, _, cerr := w.Commit(context.Background(), cas.Expect{Size: int64(len(data)), Digest: d})
	if werr == nil && cerr == nil {
		t.Fatal("the upload succeeded with the server down")
	}
	srv.Restart()
	if _, err := p.Stat(context.Background(), d); !errors.Is(err, cas.ErrBlobNotFound) {
		t.Fatalf("after the failed upload the blob is visible (or: %v)", err)
	}
	w, _ = p.Create(context.Background())
	w.Write(data)
	if _, _, err := w.Commit(context.Background(), cas.Expect{Size: int64(len(data)), Digest: d}); err != nil {
		t.Fatalf("the next run: %v", err)
	}
	if err := b.AbortUploads(context.Background(), "pool/"); err != nil {
		t.Fatal(err)
	}
	if keys := poolKeys(t, b); len(keys) != 1 {
		t.Fatalf("pool holds %v, want the one blob", keys)
	}
}
