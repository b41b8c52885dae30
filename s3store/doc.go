// Package s3store is mephstore's S3-compatible backend: a bucket (or a
// prefix of one) holds what a local store keeps on its disk, so several
// machines share one store.
//
// Bucket is the thin client every part uses: keys relative to the store's
// prefix, conditional writes (If-Match on an ETag, If-None-Match: *), a
// stall watchdog on every request, retries with backoff on 5xx and
// SlowDown, and one-line errors that name the endpoint, the bucket and the
// key. Credentials come from the standard AWS environment variables and
// shared files, never from the command line.
//
// The layout on the bucket is drawn in paths.go.
package s3store
