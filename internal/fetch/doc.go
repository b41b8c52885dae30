// Package fetch downloads over HTTP(S) the way an image mirror needs: every
// request retried on transient failures (network errors, 5xx, 429) with
// backoff, and a body cut off half-way resumed with a Range request (checked
// with If-Range against the ETag or Last-Modified), transparently to the
// reader, which sees one uninterrupted stream. The caller verifies what it
// reads (sizes and sha256 from signed metadata).
package fetch
