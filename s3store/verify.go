package s3store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/digest"
)

// Verify reads every blob of the pool and checks that its bytes hash to
// its key (fsck of a bucket: an object changed behind mephstore's back, a
// server that lost bytes). fn gets each blob that does not, with an error
// wrapping cas.ErrCorrupt, or one that could not be read; it returns how
// many blobs were read.
func (p *Pool) Verify(ctx context.Context, fn func(d digest.Digest, err error) error) (int, error) {
	n := 0
	err := p.Walk(ctx, func(info cas.BlobInfo) error {
		n++
		if err := p.verifyOne(ctx, info); err != nil {
			return fn(info.Digest, err)
		}
		return nil
	})
	return n, err
}

func (p *Pool) verifyOne(ctx context.Context, info cas.BlobInfo) error {
	r, _, err := p.b.Reader(ctx, blobKey(info.Digest))
	if err != nil {
		return err
	}
	defer r.Close()
	h := sha256.New()
	got, err := io.Copy(h, r)
	if err != nil {
		return fmt.Errorf("%s: read: %w", info.Digest, err)
	}
	d := digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil)))
	if d != info.Digest || got != info.Size {
		return fmt.Errorf("%s: its %d bytes hash to %s: %w", info.Digest, got, d, cas.ErrCorrupt)
	}
	return nil
}
