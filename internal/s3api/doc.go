// Package s3api is mephstore's S3 client: the few requests the S3
// backend makes (objects, conditional writes, multipart uploads and
// server-side part copies, ListObjectsV2, multipart listings, bucket
// creation and policy), path-style, signed with AWS Signature Version 4.
//
// It replaces a general-purpose SDK whose package initialisers cost a
// quarter of mephstore's start-up. What it does not do, on purpose:
// virtual-host addressing, region discovery, presigning, streaming
// (chunked) signatures: a request's body is in memory (a part of at most
// the upload's part size), or the request has none, so every attempt
// can be sent again.
//
// Every answer is hostile until checked: XML bodies are read up to a
// limit, an error body that is not S3's error document still gives an
// error naming the status, a 200 that carries an <Error> (copies and
// completions may) is an error, and redirects are not followed.
// Requests that fail on the network or with a server-side error (5xx,
// 429, SlowDown, RequestTimeout) are retried with jittered exponential
// backoff, up to Options.Retries attempts.
package s3api
