package s3api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// ListQuery selects a page of ListObjectsV2.
type ListQuery struct {
	Prefix     string
	StartAfter string // keys after this one
	Delimiter  string // "/": keys below a further "/" come back as Prefixes
	Token      string // the previous page's Next
}

// ListPage is one page of a listing, in key order.
type ListPage struct {
	Objects  []ObjectInfo
	Prefixes []string // with Delimiter: the "directories", ending in it
	Next     string   // the continuation token, "" on the last page
}

// listResult is ListObjectsV2's answer (encoding-type=url).
type listResult struct {
	IsTruncated           bool
	NextContinuationToken string
	EncodingType          string
	Contents              []struct {
		Key          string
		Size         int64
		ETag         string
		LastModified time.Time
	}
	CommonPrefixes []struct{ Prefix string }
}

// List reads one page of the objects of bucket.
func (c *Client) List(ctx context.Context, bucket string, q ListQuery) (ListPage, error) {
	v := url.Values{"list-type": {"2"}, "encoding-type": {"url"}, "prefix": {q.Prefix}}
	for k, s := range map[string]string{"start-after": q.StartAfter, "delimiter": q.Delimiter, "continuation-token": q.Token} {
		if s != "" {
			v.Set(k, s)
		}
	}
	var res listResult
	if _, err := c.do(ctx, request{method: http.MethodGet, bucket: bucket, query: v}, &res); err != nil {
		return ListPage{}, err
	}
	return res.page(q.Token)
}

// page checks and decodes a listing's answer.
func (res *listResult) page(token string) (ListPage, error) {
	var p ListPage
	dec := func(s string) (string, error) {
		if res.EncodingType != "url" {
			return s, nil
		}
		return url.QueryUnescape(s)
	}
	for _, o := range res.Contents {
		k, err := dec(o.Key)
		if err != nil || o.Size < 0 {
			return ListPage{}, fmt.Errorf("listing: bad entry %q (size %d)", o.Key, o.Size)
		}
		p.Objects = append(p.Objects, ObjectInfo{Key: k, Size: o.Size, ETag: trimETag(o.ETag), LastModified: o.LastModified})
	}
	for _, cp := range res.CommonPrefixes {
		k, err := dec(cp.Prefix)
		if err != nil {
			return ListPage{}, fmt.Errorf("listing: bad prefix %q", cp.Prefix)
		}
		p.Prefixes = append(p.Prefixes, k)
	}
	if res.IsTruncated {
		if res.NextContinuationToken == "" || res.NextContinuationToken == token {
			return ListPage{}, fmt.Errorf("listing: truncated page without a new continuation token")
		}
		p.Next = res.NextContinuationToken
	}
	return p, nil
}

// Upload is an unfinished multipart upload.
type Upload struct {
	Key       string
	ID        string
	Initiated time.Time
}

// UploadsPage is one page of ListMultipartUploads.
type UploadsPage struct {
	Uploads         []Upload
	NextKey, NextID string // the markers of the next page
	Truncated       bool
}

// ListUploads reads one page of the unfinished uploads under prefix,
// after the markers (both "" for the first page).
func (c *Client) ListUploads(ctx context.Context, bucket, prefix, keyMarker, idMarker string) (UploadsPage, error) {
	v := url.Values{"uploads": {""}, "prefix": {prefix}}
	if keyMarker != "" {
		v.Set("key-marker", keyMarker)
		v.Set("upload-id-marker", idMarker)
	}
	var res struct {
		IsTruncated        bool
		NextKeyMarker      string
		NextUploadIDMarker string `xml:"NextUploadIdMarker"`
		Upload             []struct {
			Key       string
			UploadID  string `xml:"UploadId"`
			Initiated time.Time
		}
	}
	if _, err := c.do(ctx, request{method: http.MethodGet, bucket: bucket, query: v}, &res); err != nil {
		return UploadsPage{}, err
	}
	p := UploadsPage{NextKey: res.NextKeyMarker, NextID: res.NextUploadIDMarker, Truncated: res.IsTruncated}
	for _, u := range res.Upload {
		p.Uploads = append(p.Uploads, Upload{Key: u.Key, ID: u.UploadID, Initiated: u.Initiated})
	}
	if p.Truncated && p.NextKey == keyMarker && p.NextID == idMarker {
		return UploadsPage{}, fmt.Errorf("upload listing: truncated page without new markers")
	}
	return p, nil
}
