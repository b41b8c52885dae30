package s3store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/digest"
)

// PartSize is the multipart upload's part: the memory an upload holds.
const PartSize = 16 << 20

// Pool is the blob store on a bucket (cas.BlobStore). A writer streams
// its bytes to pool/.ingest/<id> while hashing them; Commit checks size
// and digest and only then copies the object, server-side, to its final
// key, so a partial or corrupt upload is never visible as a blob.
type Pool struct{ b *Bucket }

var _ cas.BlobStore = (*Pool)(nil)

// NewPool is the pool of the store at b.
func NewPool(b *Bucket) *Pool { return &Pool{b: b} }

// Bucket is where the pool is.
func (p *Pool) Bucket() *Bucket { return p.b }

// BlobKey is the key of blob d, relative to the pool's store.
func BlobKey(d digest.Digest) string { return blobKey(d) }

// Stat reports a visible blob.
func (p *Pool) Stat(ctx context.Context, d digest.Digest) (cas.BlobInfo, error) {
	if err := d.Validate(); err != nil {
		return cas.BlobInfo{}, fmt.Errorf("digest %q: %w", d, cas.ErrBadDigest)
	}
	info, err := p.b.Head(ctx, blobKey(d))
	if errors.Is(err, ErrNotFound) {
		return cas.BlobInfo{}, fmt.Errorf("%s: %w", d, cas.ErrBlobNotFound)
	}
	if err != nil {
		return cas.BlobInfo{}, err
	}
	return cas.BlobInfo{Digest: d, Size: info.Size, ModTime: info.ModTime}, nil
}

// Open opens a visible blob for sequential and ranged reads.
func (p *Pool) Open(ctx context.Context, d digest.Digest) (cas.BlobFile, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("digest %q: %w", d, cas.ErrBadDigest)
	}
	o, _, err := p.b.Open(ctx, blobKey(d))
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%s: %w", d, cas.ErrBlobNotFound)
	}
	if err != nil {
		return nil, err
	}
	return o, nil
}

// Delete removes a blob.
func (p *Pool) Delete(ctx context.Context, d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("digest %q: %w", d, cas.ErrBadDigest)
	}
	return p.b.Delete(ctx, blobKey(d))
}

// Walk lists the pool's blobs in key order.
func (p *Pool) Walk(ctx context.Context, fn func(cas.BlobInfo) error) error {
	return p.b.List(ctx, poolBlobs, "", func(o Info) error {
		d, ok := blobFromKey(o.Key)
		if !ok {
			return nil // not a blob (fsck reports it)
		}
		return fn(cas.BlobInfo{Digest: d, Size: o.Size, ModTime: o.ModTime})
	})
}

// Uploads lists the temp objects of uploads in flight or abandoned.
func (p *Pool) Uploads(ctx context.Context, fn func(Info) error) error {
	return p.b.List(ctx, poolIngest, "", fn)
}

// DeleteUpload removes an abandoned upload's temp object.
func (p *Pool) DeleteUpload(ctx context.Context, key string) error { return p.b.Delete(ctx, key) }

// AbortUploadsBefore aborts the unfinished multipart uploads in the pool
// that were started before t (those of writers that died).
func (p *Pool) AbortUploadsBefore(ctx context.Context, t time.Time) (int, error) {
	return p.b.AbortUploadsBefore(ctx, "pool/", t)
}
