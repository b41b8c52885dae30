package s3store

import (
	"context"
	"errors"
	"testing"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/digest"
)

// An object in the pool whose bytes do not match its key (changed behind
// mephstore's back) is found by Verify; the good ones are not reported.
func TestPoolVerifyFindsCorruptObjects(t *testing.T) {
	_, b := testBucket(t, "store")
	p := NewPool(b)
	ctx := context.Background()
	var good []digest.Digest
	for _, s := range []string{"one", "two", "three"} {
		w, _ := p.Create(ctx)
		w.Write([]byte(s))
		info, _, err := w.Commit(ctx, cas.Unknown)
		if err != nil {
			t.Fatal(err)
		}
		good = append(good, info.Digest)
	}
	bad := digest.FromString("what the key says")
	if _, err := b.Put(ctx, blobKey(bad), []byte("other bytes"), Cond{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(ctx, blobKey(good[1]), []byte("tw0"), Cond{}); err != nil { // overwritten on the server
		t.Fatal(err)
	}
	found := map[digest.Digest]error{}
	n, err := p.Verify(ctx, func(d digest.Digest, err error) error { found[d] = err; return nil })
	if err != nil || n != 4 {
		t.Fatalf("verify read %d blobs: %v", n, err)
	}
	if len(found) != 2 || !errors.Is(found[bad], cas.ErrCorrupt) || !errors.Is(found[good[1]], cas.ErrCorrupt) {
		t.Fatalf("found %v, want %s and %s corrupt", found, bad, good[1])
	}
}
