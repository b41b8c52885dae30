package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mephstore/mephstore/internal/s3api"
)

// Errors callers can test with errors.Is.
var (
	ErrBadLocation  = errors.New("bad S3 location")
	ErrNotFound     = errors.New("no such object")
	ErrPrecondition = errors.New("precondition failed (someone else wrote it first)")
	ErrNoBucket     = errors.New("bucket does not exist")
	ErrAccess       = errors.New("access denied (check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or the shared credentials file)")
	ErrTooLarge     = errors.New("object larger than expected")
	ErrStalled      = errors.New("the server stalled")
	// ErrConflict: the server refused a write for a conflicting state of
	// the key (409), e.g. versitygw's posix backend when a put races a
	// delete of a key in the same directory.
	ErrConflict = errors.New("conflict with the key's state on the server")
)

// Config says which bucket to use and how.
type Config struct {
	Endpoint string // http://host:port or https://host
	Bucket   string
	Prefix   string        // keys live under it ("" for the whole bucket)
	Region   string        // "" means $AWS_REGION, else us-east-1
	Stall    time.Duration // a request making no progress this long fails; 0: 30s
	Retries  int           // attempts per request; 0: 5
	// Creds overrides the standard chain (environment, then shared
	// files). Only the Go API sets it; the command line never takes keys.
	Creds *s3api.Credentials
}

// Bucket is an opened store location.
type Bucket struct {
	c      *s3api.Client
	cfg    Config
	skew   atomic.Int64 // server time minus local time, in ns, from Date headers
	stall  time.Duration
	prefix string // "" or "prefix/"
}

// Cond makes a write conditional.
type Cond struct {
	IfMatch     string // write only over this ETag
	IfNoneMatch bool   // write only if no object has the key
}

// Info is what the server says of an object.
type Info struct {
	Key     string // relative to the store's prefix
	Size    int64
	ETag    string
	ModTime time.Time
}

// Open connects to the bucket and checks that it exists and that the
// credentials are accepted.
func Open(ctx context.Context, cfg Config) (*Bucket, error) {
	b, err := Dial(cfg)
	if err != nil {
		return nil, err
	}
	if err := b.Check(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

// Dial makes a client without talking to the server.
func Dial(cfg Config) (*Bucket, error) {
	if _, _, err := checkEndpoint(cfg.Endpoint); err != nil {
		return nil, err
	}
	if cfg.Stall <= 0 {
		cfg.Stall = 30 * time.Second
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 5
	}
	var creds s3api.Credentials
	if cfg.Creds != nil {
		creds = *cfg.Creds
	} else {
		var err error
		if creds, err = s3api.Lookup(os.Getenv); err != nil {
			return nil, fmt.Errorf("s3 %s: credentials: %w", cfg.Endpoint, err)
		}
	}
	b := &Bucket{cfg: cfg, stall: cfg.Stall}
	if cfg.Prefix != "" {
		b.prefix = cfg.Prefix + "/"
	}
	c, err := s3api.New(s3api.Options{
		Endpoint: strings.TrimSuffix(cfg.Endpoint, "/"), Region: cfg.Region, Creds: creds, Retries: cfg.Retries,
		Transport: &watchdog{base: transport(cfg.Stall), stall: cfg.Stall, skew: &b.skew},
	})
	if err != nil {
		return nil, fmt.Errorf("s3 %s: %w", cfg.Endpoint, err)
	}
	b.c = c
	return b, nil
}

// String names the location: s3://bucket/prefix at endpoint.
func (b *Bucket) String() string {
	return fmt.Sprintf("%s%s/%s (%s)", Scheme, b.cfg.Bucket, b.cfg.Prefix, b.cfg.Endpoint)
}

// Config is the bucket's configuration.
func (b *Bucket) Config() Config { return b.cfg }

// clockSkew is how far the server's clock is from this machine's, given
// how far its Date header (whole seconds, truncated, read a few
// milliseconds late) was. Within the header's resolution the two agree,
// and this machine's clock, precise to far less than a second, is kept:
// two machines whose clocks are right then agree to the millisecond
// rather than to the second, which the age gates of gc --older 0s need.
// Beyond it, the server's time rules (the skew is measured to ±1s).
func clockSkew(dateMinusNow time.Duration) time.Duration {
	if dateMinusNow > -2*time.Second && dateMinusNow < time.Second {
		return 0
	}
	return dateMinusNow + 500*time.Millisecond // mid-second of the header
}

// Now is the server's time, as its last answer's Date header put it
// (local time when it has not answered yet).
func (b *Bucket) Now() time.Time { return time.Now().Add(time.Duration(b.skew.Load())) }

// Check asks whether the bucket exists and the credentials work.
func (b *Bucket) Check(ctx context.Context) error {
	ok, err := b.c.BucketExists(ctx, b.cfg.Bucket)
	if err != nil {
		return b.wrap("check bucket", "", err)
	}
	if !ok {
		return b.wrap("check bucket", "", ErrNoBucket)
	}
	return nil
}

// MakeBucket creates the bucket (init --create-bucket).
func (b *Bucket) MakeBucket(ctx context.Context) error {
	if err := b.c.MakeBucket(ctx, b.cfg.Bucket); err != nil {
		return b.wrap("create bucket", "", err)
	}
	return nil
}

func (b *Bucket) key(k string) string { return b.prefix + k }

// Get reads a whole object of at most max bytes, in one request (the
// bytes and the ETag are of the same version).
func (b *Bucket) Get(ctx context.Context, key string, max int64) ([]byte, string, error) {
	body, st, err := b.c.Get(ctx, b.cfg.Bucket, b.key(key), 0, -1)
	if err != nil {
		return nil, "", b.wrap("get", key, err)
	}
	defer body.Close()
	if st.Size > max {
		return nil, "", b.wrap("get", key, fmt.Errorf("%d bytes: %w (limit %d)", st.Size, ErrTooLarge, max))
	}
	data, err := io.ReadAll(io.LimitReader(body, max+1))
	if err != nil {
		return nil, "", b.wrap("get", key, err)
	}
	if int64(len(data)) > max {
		return nil, "", b.wrap("get", key, ErrTooLarge)
	}
	return data, st.ETag, nil
}

// Put writes a small object in one request.
func (b *Bucket) Put(ctx context.Context, key string, data []byte, cond Cond) (string, error) {
	return b.put(ctx, key, data, cond, "")
}

// put is Put of data whose sha256 (hex) the caller may know already (a
// blob's digest): the request is signed with it instead of hashing again.
func (b *Bucket) put(ctx context.Context, key string, data []byte, cond Cond, sum string) (string, error) {
	opts := s3api.PutOptions{ContentType: contentType(key), IfNoneMatch: cond.IfNoneMatch, IfMatch: cond.IfMatch, SHA256: sum}
	etag, err := b.c.Put(ctx, b.cfg.Bucket, b.key(key), data, opts)
	if err != nil {
		return "", b.wrap("put", key, err)
	}
	return etag, nil
}

// PutStream writes what r holds as key: in one request when it fits in
// a part of partSize bytes, else as a multipart upload, one part at a
// time, so memory stays within one part whatever the size. With size >=
// 0, r must hold exactly that many bytes. The object appears whole (and
// of the size) or not at all.
func (b *Bucket) PutStream(ctx context.Context, key string, r io.Reader, size int64, partSize int) (int64, error) {
	buf := make([]byte, bufferFor(size, partSize))
	n, err := io.ReadFull(r, buf)
	if err == nil && size >= 0 && int64(len(buf)) > size { // one byte more than the size
		return 0, b.wrap("put", key, fmt.Errorf("more than the %d bytes expected", size))
	}
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		if size >= 0 && int64(n) != size {
			return 0, b.wrap("put", key, fmt.Errorf("%w: %d bytes to send, %d expected", io.ErrUnexpectedEOF, n, size))
		}
		if _, err := b.Put(ctx, key, buf[:n], Cond{}); err != nil {
			return 0, err
		}
		return int64(n), nil
	}
	if err != nil {
		return 0, b.wrap("put", key, err)
	}
	id, err := b.c.CreateMultipart(ctx, b.cfg.Bucket, b.key(key), contentType(key))
	if err != nil {
		return 0, b.wrap("put", key, err)
	}
	total, err := b.putParts(ctx, key, id, r, buf, size)
	if err != nil {
		b.c.AbortMultipart(context.WithoutCancel(ctx), b.cfg.Bucket, b.key(key), id)
		return 0, b.wrap("put", key, err)
	}
	return total, nil
}

// bufferFor is the buffer a PutStream of size bytes (-1: unknown) needs:
// one part, or, for a known size below it, the size and one byte more
// (which tells a reader that holds more than it said). A publish of
// thousands of small files then does not allocate a part for each.
func bufferFor(size int64, partSize int) int {
	if size >= 0 && size < int64(partSize) {
		return int(size) + 1
	}
	return partSize
}

// putParts sends buf (a full first part) and the rest of r as the parts
// of upload id, then completes it if the size is right.
func (b *Bucket) putParts(ctx context.Context, key, id string, r io.Reader, buf []byte, size int64) (int64, error) {
	var parts []s3api.Part
	total, n := int64(0), len(buf)
	for num := 1; n > 0; num++ {
		p, err := b.c.UploadPart(ctx, b.cfg.Bucket, b.key(key), id, num, buf[:n])
		if err != nil {
			return 0, err
		}
		parts, total = append(parts, p), total+int64(n)
		if size >= 0 && total > size {
			return 0, fmt.Errorf("more than the %d bytes expected", size)
		}
		n, err = io.ReadFull(r, buf)
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return 0, err
		}
	}
	if size >= 0 && total != size {
		return 0, fmt.Errorf("%d bytes sent, %d expected", total, size)
	}
	return total, b.c.CompleteMultipart(ctx, b.cfg.Bucket, b.key(key), id, parts, false)
}

// Reader reads an object sequentially, in one request (one version of it,
// whatever is written meanwhile).
func (b *Bucket) Reader(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	body, st, err := b.c.Get(ctx, b.cfg.Bucket, b.key(key), 0, -1)
	if err != nil {
		return nil, Info{}, b.wrap("get", key, err)
	}
	return body, Info{Key: key, Size: st.Size, ETag: st.ETag, ModTime: st.LastModified}, nil
}

// Head reports an object.
func (b *Bucket) Head(ctx context.Context, key string) (Info, error) {
	st, err := b.c.Head(ctx, b.cfg.Bucket, b.key(key))
	if err != nil {
		return Info{}, b.wrap("stat", key, err)
	}
	return Info{Key: key, Size: st.Size, ETag: st.ETag, ModTime: st.LastModified}, nil
}

// Open opens an object for sequential and ranged reads.
func (b *Bucket) Open(ctx context.Context, key string) (*Object, Info, error) {
	info, err := b.Head(ctx, key)
	if err != nil {
		return nil, Info{}, err
	}
	return &Object{ctx: ctx, b: b, key: key, size: info.Size}, info, nil
}

// CopyNew copies src (size bytes) to dst on the server only if dst does
// not exist (ErrPrecondition otherwise): a multipart upload of dst made of
// ranged part copies of src, completed with If-None-Match: *, so dst
// appears whole and at most once.
func (b *Bucket) CopyNew(ctx context.Context, src, dst string, size int64) error {
	return b.copyNew(ctx, b.key(src), dst, size)
}

// copyNew is CopyNew from a full key of the bucket (any prefix).
func (b *Bucket) copyNew(ctx context.Context, src, dst string, size int64) error {
	id, err := b.c.CreateMultipart(ctx, b.cfg.Bucket, b.key(dst), contentType(dst))
	if err != nil {
		return b.wrap("copy "+src+" to", dst, err)
	}
	parts, err := b.copyParts(ctx, src, dst, id, size)
	if err == nil {
		err = b.c.CompleteMultipart(ctx, b.cfg.Bucket, b.key(dst), id, parts, true)
	}
	if err != nil {
		b.c.AbortMultipart(context.WithoutCancel(ctx), b.cfg.Bucket, b.key(dst), id)
		return b.wrap("copy "+src+" to", dst, err)
	}
	return nil
}

// copyPart is the most one part copy takes (S3 allows 5 GiB).
const copyPart = 1 << 30

func (b *Bucket) copyParts(ctx context.Context, src, dst, id string, size int64) ([]s3api.Part, error) {
	var parts []s3api.Part
	for off, n := int64(0), 1; off < size; off, n = off+copyPart, n+1 {
		length := min(copyPart, size-off)
		p, err := b.c.UploadPartCopy(ctx, b.cfg.Bucket, b.key(dst), id, n, b.cfg.Bucket, src, off, length)
		if err != nil {
			return nil, err
		}
		parts = append(parts, p)
	}
	return parts, nil
}

// Delete removes an object; a missing one is no error.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	err := b.c.Delete(ctx, b.cfg.Bucket, b.key(key))
	if err != nil && !errors.Is(b.classify(err), ErrNotFound) {
		return b.wrap("delete", key, err)
	}
	return nil
}

// List calls fn for every object whose key starts with prefix, in key
// order, starting after startAfter ("" for the first).
func (b *Bucket) List(ctx context.Context, prefix, startAfter string, fn func(Info) error) error {
	q := s3api.ListQuery{Prefix: b.key(prefix)}
	if startAfter != "" {
		q.StartAfter = b.key(startAfter)
	}
	for {
		page, err := b.c.List(ctx, b.cfg.Bucket, q)
		if err != nil {
			return b.wrap("list", prefix, err)
		}
		for _, o := range page.Objects {
			rel := strings.TrimPrefix(o.Key, b.prefix)
			if err := fn(Info{Key: rel, Size: o.Size, ETag: o.ETag, ModTime: o.LastModified}); err != nil {
				return err
			}
		}
		if page.Next == "" {
			return nil
		}
		q.Token = page.Next
	}
}

// eachUpload calls fn for every unfinished multipart upload under prefix.
func (b *Bucket) eachUpload(ctx context.Context, prefix string, fn func(s3api.Upload) error) error {
	var key, id string
	for {
		page, err := b.c.ListUploads(ctx, b.cfg.Bucket, b.key(prefix), key, id)
		if err != nil {
			return b.wrap("list uploads", prefix, err)
		}
		for _, u := range page.Uploads {
			if err := fn(u); err != nil {
				return err
			}
		}
		if !page.Truncated {
			return nil
		}
		key, id = page.NextKey, page.NextID
	}
}

// AbortUploads aborts the unfinished multipart uploads under prefix (what
// a killed upload leaves on the server).
func (b *Bucket) AbortUploads(ctx context.Context, prefix string) error {
	_, err := b.abortUploads(ctx, prefix, func(s3api.Upload) bool { return true })
	return err
}

// classify maps a server answer to this package's errors.
func (b *Bucket) classify(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: no progress for %v, %d attempts", ErrStalled, b.stall, b.cfg.Retries)
	}
	var er *s3api.Error
	if !errors.As(err, &er) {
		return err
	}
	switch {
	case er.Status == http.StatusPreconditionFailed || er.Code == "PreconditionFailed":
		return ErrPrecondition
	case er.Code == "NoSuchKey" || (er.Status == http.StatusNotFound && er.Code != "NoSuchBucket"):
		return ErrNotFound
	case er.Code == "NoSuchBucket":
		return ErrNoBucket
	case er.Status == http.StatusConflict:
		return fmt.Errorf("%w: %s", ErrConflict, er.Message)
	case er.Code == "InvalidAccessKeyId" || er.Code == "SignatureDoesNotMatch" || er.Status == http.StatusForbidden:
		return ErrAccess
	}
	return err
}

// wrap makes the one-line error: what failed, where, and why.
func (b *Bucket) wrap(op, key string, err error) error {
	where := fmt.Sprintf("s3 %s bucket %s", b.cfg.Endpoint, b.cfg.Bucket)
	if key != "" || b.prefix != "" {
		where += ": " + b.key(key)
	}
	c := b.classify(err)
	if c != err {
		return fmt.Errorf("%s: %s: %w", where, op, c)
	}
	return fmt.Errorf("%s: %s: %w", where, op, err)
}

func contentType(key string) string {
	switch {
	case strings.HasSuffix(key, ".json"), strings.HasSuffix(key, ".sjson"):
		return "application/json"
	case strings.HasSuffix(key, ".gpg"):
		return "application/pgp-signature"
	}
	return "application/octet-stream"
}

// ListDir calls fn for the entries directly below dir ("" for the
// store's top), in name order: objects, and the "directories" their keys
// share (dir true).
func (b *Bucket) ListDir(ctx context.Context, dir string, fn func(name string, size int64, isDir bool) error) error {
	p := b.key(dir)
	if dir != "" {
		p += "/"
	}
	q := s3api.ListQuery{Prefix: p, Delimiter: "/"}
	for {
		page, err := b.c.List(ctx, b.cfg.Bucket, q)
		if err != nil {
			return b.wrap("list", dir, err)
		}
		if err := eachEntry(page, p, fn); err != nil {
			return err
		}
		if page.Next == "" {
			return nil
		}
		q.Token = page.Next
	}
}

// eachEntry calls fn for a delimited page's objects and prefixes, merged
// in name order (the server sends them as two lists).
func eachEntry(page s3api.ListPage, p string, fn func(name string, size int64, isDir bool) error) error {
	objs, dirs := page.Objects, page.Prefixes
	for len(objs) > 0 || len(dirs) > 0 {
		var err error
		if len(dirs) == 0 || (len(objs) > 0 && objs[0].Key < dirs[0]) {
			err = fn(strings.TrimPrefix(objs[0].Key, p), objs[0].Size, false)
			objs = objs[1:]
		} else {
			err = fn(strings.TrimSuffix(strings.TrimPrefix(dirs[0], p), "/"), 0, true)
			dirs = dirs[1:]
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// DeleteAll removes every object under dir/.
func (b *Bucket) DeleteAll(ctx context.Context, dir string) error {
	var keys []string
	if err := b.List(ctx, dir+"/", "", func(o Info) error {
		keys = append(keys, o.Key)
		return nil
	}); err != nil {
		return err
	}
	for _, k := range keys {
		if err := b.Delete(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// URL is the location as publish roots are remembered: s3://bucket/prefix
// with the endpoint as a query, so a later gc can reopen it.
func (b *Bucket) URL() string {
	u := Scheme + b.cfg.Bucket
	if b.cfg.Prefix != "" {
		u += "/" + b.cfg.Prefix
	}
	return u + "?endpoint=" + b.cfg.Endpoint
}

// SameServer says whether o is on the same server and bucket as b (so a
// server-side copy between them works).
func (b *Bucket) SameServer(o *Bucket) bool {
	return b.cfg.Endpoint == o.cfg.Endpoint && b.cfg.Bucket == o.cfg.Bucket
}

// CopyFrom copies key src of bucket o (same server and bucket) to dst of
// b, if dst does not exist yet.
func (b *Bucket) CopyFrom(ctx context.Context, o *Bucket, src, dst string, size int64) error {
	return b.copyNew(ctx, o.key(src), dst, size)
}

// CopyOver copies key src of bucket o (same server and bucket) to dst of
// b in one request, replacing whatever dst holds: for content-addressed
// keys, whose bytes are the same whoever writes them (publish's data
// files). Objects too large for one copy (over 5 GiB) go through a
// multipart copy.
func (b *Bucket) CopyOver(ctx context.Context, o *Bucket, src, dst string) error {
	err := b.c.Copy(ctx, o.cfg.Bucket, o.key(src), b.cfg.Bucket, b.key(dst), contentType(dst))
	if err == nil {
		return nil
	}
	if errors.Is(b.classify(err), ErrNotFound) {
		return o.wrap("copy", src, ErrNotFound)
	}
	info, serr := o.Head(ctx, src)
	if serr != nil || info.Size <= copyPart {
		return b.wrap("copy "+src+" to", dst, err)
	}
	err = b.copyNew(ctx, o.key(src), dst, info.Size)
	if errors.Is(err, ErrPrecondition) {
		return nil
	}
	return err
}

// AllowPublicRead sets the bucket's policy so that anyone may GET the
// objects under dir/ (a published tree served to MAAS over plain HTTP).
// It replaces the bucket's policy; operators with a policy of their own
// add the statement to it instead (docs/s3.md).
func (b *Bucket) AllowPublicRead(ctx context.Context, dir string) error {
	res := "arn:aws:s3:::" + b.cfg.Bucket + "/" + b.key(dir) + "/*"
	pol := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",` +
		`"Action":["s3:GetObject"],"Resource":["` + res + `"]}]}`
	if err := b.c.PutBucketPolicy(ctx, b.cfg.Bucket, pol); err != nil {
		return b.wrap("set bucket policy", dir, err)
	}
	return nil
}

// AbortUploadsBefore aborts the unfinished multipart uploads under prefix
// that were started before t, and says how many.
func (b *Bucket) AbortUploadsBefore(ctx context.Context, prefix string, t time.Time) (int, error) {
	return b.abortUploads(ctx, prefix, func(u s3api.Upload) bool { return u.Initiated.Before(t) })
}

// abortUploads aborts the unfinished uploads under prefix that pick
// chooses, listed first and aborted after, and says how many.
func (b *Bucket) abortUploads(ctx context.Context, prefix string, pick func(s3api.Upload) bool) (int, error) {
	var old []s3api.Upload
	err := b.eachUpload(ctx, prefix, func(u s3api.Upload) error {
		if pick(u) {
			old = append(old, u)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for n, u := range old {
		if err := b.c.AbortMultipart(ctx, b.cfg.Bucket, u.Key, u.ID); err != nil {
			return n, b.wrap("abort upload", strings.TrimPrefix(u.Key, b.prefix), err)
		}
	}
	return len(old), nil
}
