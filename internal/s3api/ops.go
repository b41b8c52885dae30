package s3api

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ObjectInfo is what the server says of an object.
type ObjectInfo struct {
	Key          string
	Size         int64
	ETag         string // without quotes
	LastModified time.Time
}

// Part is an uploaded part of a multipart upload.
type Part struct {
	Number int
	ETag   string // without quotes
}

// PutOptions qualify a PUT of an object.
type PutOptions struct {
	ContentType string
	IfMatch     string // write only over this ETag
	IfNoneMatch bool   // write only if the key has no object
	SHA256      string // the data's sha256 (hex) when known: not hashed again
}

// ErrRangeIgnored: the server answered a ranged read with the whole
// object.
var ErrRangeIgnored = errors.New("the server ignored the range")

// copySource names the object a copy reads, as x-amz-copy-source wants.
func copySource(bucket, key string) string {
	return "/" + uriEncode(bucket, true) + "/" + uriEncode(key, false)
}

func trimETag(s string) string { return strings.Trim(s, `"`) }

func quoteETag(s string) string { return `"` + trimETag(s) + `"` }

// infoOf reads an object's headers.
func infoOf(key string, h http.Header, size int64) ObjectInfo {
	t, _ := http.ParseTime(h.Get("Last-Modified"))
	return ObjectInfo{Key: key, Size: size, ETag: trimETag(h.Get("ETag")), LastModified: t}
}

// BucketExists asks whether bucket exists (and the credentials work).
func (c *Client) BucketExists(ctx context.Context, bucket string) (bool, error) {
	resp, err := c.do(ctx, request{method: http.MethodHead, bucket: bucket}, nil)
	var e *Error
	if errors.As(err, &e) && e.Code == "NoSuchBucket" {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	return true, nil
}

// MakeBucket creates bucket in the client's region.
func (c *Client) MakeBucket(ctx context.Context, bucket string) error {
	r := request{method: http.MethodPut, bucket: bucket}
	if c.region != "us-east-1" {
		r.body = []byte(`<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><LocationConstraint>` +
			xmlEscape(c.region) + `</LocationConstraint></CreateBucketConfiguration>`)
	}
	return c.discard(c.do(ctx, r, nil))
}

// PutBucketPolicy replaces bucket's policy with the JSON document p.
func (c *Client) PutBucketPolicy(ctx context.Context, bucket, p string) error {
	r := request{method: http.MethodPut, bucket: bucket, query: url.Values{"policy": {""}}, body: []byte(p)}
	return c.discard(c.do(ctx, r, nil))
}

// Head reports an object.
func (c *Client) Head(ctx context.Context, bucket, key string) (ObjectInfo, error) {
	resp, err := c.do(ctx, request{method: http.MethodHead, bucket: bucket, key: key}, nil)
	if err != nil {
		return ObjectInfo{}, err
	}
	resp.Body.Close()
	return infoOf(key, resp.Header, resp.ContentLength), nil
}

// Get reads an object from off: n bytes, or to its end when n < 0. The
// body is the caller's to close; the info's Size is the whole object's.
func (c *Client) Get(ctx context.Context, bucket, key string, off, n int64) (io.ReadCloser, ObjectInfo, error) {
	r := request{method: http.MethodGet, bucket: bucket, key: key}
	if off > 0 || n >= 0 {
		rng := "bytes=" + strconv.FormatInt(off, 10) + "-"
		if n >= 0 {
			rng += strconv.FormatInt(off+n-1, 10)
		}
		r.header = http.Header{"Range": {rng}}
	}
	resp, err := c.do(ctx, r, nil)
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	size := resp.ContentLength
	switch {
	case resp.StatusCode == http.StatusPartialContent:
		size = totalOf(resp.Header.Get("Content-Range"))
	case off > 0:
		// A server that ignores Range sends the object from its start:
		// never hand those bytes out as the ones at off.
		resp.Body.Close()
		return nil, ObjectInfo{}, fmt.Errorf("asked for bytes from %d, got the whole object (HTTP %d): %w", off, resp.StatusCode, ErrRangeIgnored)
	}
	return resp.Body, infoOf(key, resp.Header, size), nil
}

// totalOf is the object's size from a Content-Range (bytes a-b/total).
func totalOf(cr string) int64 {
	_, total, ok := strings.Cut(cr, "/")
	n, err := strconv.ParseInt(total, 10, 64)
	if !ok || err != nil {
		return -1
	}
	return n
}

// Put writes data as key in one request and returns its ETag.
func (c *Client) Put(ctx context.Context, bucket, key string, data []byte, o PutOptions) (string, error) {
	h := http.Header{}
	if o.ContentType != "" {
		h.Set("Content-Type", o.ContentType)
	}
	if o.IfNoneMatch {
		h.Set("If-None-Match", "*")
	}
	if o.IfMatch != "" {
		h.Set("If-Match", quoteETag(o.IfMatch))
	}
	if data == nil {
		data = []byte{}
	}
	resp, err := c.do(ctx, request{method: http.MethodPut, bucket: bucket, key: key, header: h, body: data, sum: o.SHA256}, nil)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	return trimETag(resp.Header.Get("ETag")), nil
}

// CreateMultipart starts a multipart upload of key and returns its id.
func (c *Client) CreateMultipart(ctx context.Context, bucket, key, contentType string) (string, error) {
	r := request{method: http.MethodPost, bucket: bucket, key: key, query: url.Values{"uploads": {""}}}
	if contentType != "" {
		r.header = http.Header{"Content-Type": {contentType}}
	}
	var res struct {
		UploadID string `xml:"UploadId"`
	}
	if _, err := c.do(ctx, r, &res); err != nil {
		return "", err
	}
	if res.UploadID == "" {
		return "", fmt.Errorf("start of a multipart upload: no upload id in the answer")
	}
	return res.UploadID, nil
}

func partQuery(id string, n int) url.Values {
	return url.Values{"uploadId": {id}, "partNumber": {strconv.Itoa(n)}}
}

// UploadPart sends part n of upload id. Its bytes are not hashed into
// the signature (the caller checks the whole blob's digest).
func (c *Client) UploadPart(ctx context.Context, bucket, key, id string, n int, data []byte) (Part, error) {
	r := request{method: http.MethodPut, bucket: bucket, key: key, query: partQuery(id, n), body: data, unsigned: true}
	resp, err := c.do(ctx, r, nil)
	if err != nil {
		return Part{}, err
	}
	resp.Body.Close()
	return Part{Number: n, ETag: trimETag(resp.Header.Get("ETag"))}, nil
}

// UploadPartCopy makes part n of upload id from length bytes at off of
// srcKey in srcBucket, on the server.
func (c *Client) UploadPartCopy(ctx context.Context, bucket, key, id string, n int, srcBucket, srcKey string, off, length int64) (Part, error) {
	h := http.Header{}
	h.Set("X-Amz-Copy-Source", copySource(srcBucket, srcKey))
	h.Set("X-Amz-Copy-Source-Range", "bytes="+strconv.FormatInt(off, 10)+"-"+strconv.FormatInt(off+length-1, 10))
	var res struct {
		ETag string `xml:"ETag"`
	}
	r := request{method: http.MethodPut, bucket: bucket, key: key, query: partQuery(id, n), header: h}
	if _, err := c.do(ctx, r, &res); err != nil {
		return Part{}, err
	}
	return Part{Number: n, ETag: trimETag(res.ETag)}, nil
}

// CompleteMultipart completes upload id from parts (in part order); with
// ifNoneMatch only if key has no object yet.
func (c *Client) CompleteMultipart(ctx context.Context, bucket, key, id string, parts []Part, ifNoneMatch bool) error {
	var b strings.Builder
	b.WriteString(`<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">`)
	for _, p := range parts {
		fmt.Fprintf(&b, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>", p.Number, xmlEscape(quoteETag(p.ETag)))
	}
	b.WriteString(`</CompleteMultipartUpload>`)
	r := request{method: http.MethodPost, bucket: bucket, key: key, query: url.Values{"uploadId": {id}}, body: []byte(b.String())}
	if ifNoneMatch {
		r.header = http.Header{"If-None-Match": {"*"}}
	}
	var res struct {
		ETag string `xml:"ETag"`
	}
	_, err := c.do(ctx, r, &res)
	return err
}

// AbortMultipart abandons upload id: its parts are dropped.
func (c *Client) AbortMultipart(ctx context.Context, bucket, key, id string) error {
	r := request{method: http.MethodDelete, bucket: bucket, key: key, query: url.Values{"uploadId": {id}}}
	return c.discard(c.do(ctx, r, nil))
}

// Copy copies srcKey of srcBucket to key of bucket on the server in one
// request (objects up to 5 GiB), replacing what key holds.
func (c *Client) Copy(ctx context.Context, srcBucket, srcKey, bucket, key, contentType string) error {
	h := http.Header{}
	h.Set("X-Amz-Copy-Source", copySource(srcBucket, srcKey))
	if contentType != "" {
		h.Set("Content-Type", contentType)
		h.Set("X-Amz-Metadata-Directive", "REPLACE")
	}
	var res struct {
		ETag string `xml:"ETag"`
	}
	_, err := c.do(ctx, request{method: http.MethodPut, bucket: bucket, key: key, header: h}, &res)
	return err
}

// Delete removes key (S3 answers success for a missing one).
func (c *Client) Delete(ctx context.Context, bucket, key string) error {
	return c.discard(c.do(ctx, request{method: http.MethodDelete, bucket: bucket, key: key}, nil))
}

// discard closes a response's body and returns the error.
func (c *Client) discard(resp *http.Response, err error) error {
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	return resp.Body.Close()
}

func xmlEscape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}
