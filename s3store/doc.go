// Package s3store is mephstore's S3-compatible backend: a bucket (or a
// prefix of one) holds what a local store keeps on its disk, so several
// machines share one store.
//
// Bucket is the thin client every part uses: keys relative to the store's
// prefix, conditional writes (If-Match on an ETag, If-None-Match: *), a
// stall watchdog on every request, retries with backoff on 5xx and
// SlowDown, the server's clock from its Date headers, and one-line errors
// that name the endpoint, the bucket and the key. Credentials come from
// the standard AWS environment variables and shared files, never from the
// command line.
//
// Pool is the blob store on a bucket (cas.BlobStore): a blob is visible
// under its digest only once its size and sha256 were checked. Store is a
// whole store on a bucket (cas.Remote): the pool, the log of record
// transactions (each entry written only if it does not exist), the writer
// lock and the clock; cas.OpenRemote makes a store of it with a local
// cache. publish.S3Target writes published trees to a bucket prefix.
//
// The layout on the bucket is drawn in paths.go.
package s3store
