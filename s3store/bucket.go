package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
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
	Creds *credentials.Credentials
}

// Bucket is an opened store location.
type Bucket struct {
	c      *minio.Client
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
	host, secure, err := checkEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	if cfg.Stall <= 0 {
		cfg.Stall = 30 * time.Second
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 5
	}
	creds := cfg.Creds
	if creds == nil {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{}, &credentials.FileAWSCredentials{},
		})
	}
	b := &Bucket{cfg: cfg, stall: cfg.Stall}
	if cfg.Prefix != "" {
		b.prefix = cfg.Prefix + "/"
	}
	region := cfg.Region
	if region == "" {
		region = "us-east-1"
	}
	c, err := minio.New(host, &minio.Options{
		Creds: creds, Secure: secure, Region: region, MaxRetries: cfg.Retries,
		BucketLookup: minio.BucketLookupPath,
		Transport:    &watchdog{base: transport(cfg.Stall), stall: cfg.Stall, skew: &b.skew},
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
	err := b.c.MakeBucket(ctx, b.cfg.Bucket, minio.MakeBucketOptions{Region: b.c.EndpointURL().Host})
	if err != nil {
		err = b.c.MakeBucket(ctx, b.cfg.Bucket, minio.MakeBucketOptions{})
	}
	if err != nil {
		return b.wrap("create bucket", "", err)
	}
	return nil
}

func (b *Bucket) key(k string) string { return b.prefix + k }

// Get reads a whole object of at most max bytes, in one request (the
// bytes and the ETag are of the same version).
func (b *Bucket) Get(ctx context.Context, key string, max int64) ([]byte, string, error) {
	core := minio.Core{Client: b.c}
	body, st, _, err := core.GetObject(ctx, b.cfg.Bucket, b.key(key), minio.GetObjectOptions{})
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
	opts := minio.PutObjectOptions{ContentType: contentType(key), DisableMultipart: true}
	switch {
	case cond.IfNoneMatch:
		opts.SetMatchETagExcept("*")
	case cond.IfMatch != "":
		opts.SetMatchETag(cond.IfMatch)
	}
	info, err := b.c.PutObject(ctx, b.cfg.Bucket, b.key(key), bytes.NewReader(data), int64(len(data)), opts)
	if err != nil {
		return "", b.wrap("put", key, err)
	}
	return info.ETag, nil
}

// PutStream writes r (size bytes, or -1 when unknown) as key, in parts of
// partSize when large: memory stays within a few parts whatever the size.
func (b *Bucket) PutStream(ctx context.Context, key string, r io.Reader, size int64, partSize uint64) (Info, error) {
	opts := minio.PutObjectOptions{ContentType: contentType(key), PartSize: partSize, NumThreads: 1,
		DisableContentSha256: true}
	info, err := b.c.PutObject(ctx, b.cfg.Bucket, b.key(key), r, size, opts)
	if err != nil {
		return Info{}, b.wrap("put", key, err)
	}
	return Info{Key: key, Size: info.Size, ETag: info.ETag, ModTime: info.LastModified}, nil
}

// Reader reads an object sequentially, in one request (one version of it,
// whatever is written meanwhile).
func (b *Bucket) Reader(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	core := minio.Core{Client: b.c}
	body, st, _, err := core.GetObject(ctx, b.cfg.Bucket, b.key(key), minio.GetObjectOptions{})
	if err != nil {
		return nil, Info{}, b.wrap("get", key, err)
	}
	return body, Info{Key: key, Size: st.Size, ETag: st.ETag, ModTime: st.LastModified}, nil
}

// Head reports an object.
func (b *Bucket) Head(ctx context.Context, key string) (Info, error) {
	st, err := b.c.StatObject(ctx, b.cfg.Bucket, b.key(key), minio.StatObjectOptions{})
	if err != nil {
		return Info{}, b.wrap("stat", key, err)
	}
	return Info{Key: key, Size: st.Size, ETag: st.ETag, ModTime: st.LastModified}, nil
}

// Open opens an object for sequential and ranged reads.
func (b *Bucket) Open(ctx context.Context, key string) (*minio.Object, Info, error) {
	o, err := b.c.GetObject(ctx, b.cfg.Bucket, b.key(key), minio.GetObjectOptions{})
	if err != nil {
		return nil, Info{}, b.wrap("open", key, err)
	}
	st, err := o.Stat()
	if err != nil {
		o.Close()
		return nil, Info{}, b.wrap("open", key, err)
	}
	return o, Info{Key: key, Size: st.Size, ETag: st.ETag, ModTime: st.LastModified}, nil
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
	core := minio.Core{Client: b.c}
	id, err := core.NewMultipartUpload(ctx, b.cfg.Bucket, b.key(dst), minio.PutObjectOptions{ContentType: contentType(dst)})
	if err != nil {
		return b.wrap("copy "+src+" to", dst, err)
	}
	parts, err := b.copyParts(ctx, core, src, dst, id, size)
	if err == nil {
		opts := minio.PutObjectOptions{}
		opts.SetMatchETagExcept("*")
		_, err = core.CompleteMultipartUpload(ctx, b.cfg.Bucket, b.key(dst), id, parts, opts)
	}
	if err != nil {
		core.AbortMultipartUpload(context.WithoutCancel(ctx), b.cfg.Bucket, b.key(dst), id)
		return b.wrap("copy "+src+" to", dst, err)
	}
	return nil
}

// copyPart is the most one part copy takes (S3 allows 5 GiB).
const copyPart = 1 << 30

func (b *Bucket) copyParts(ctx context.Context, core minio.Core, src, dst, id string, size int64) ([]minio.CompletePart, error) {
	var parts []minio.CompletePart
	for off, n := int64(0), 1; off < size; off, n = off+copyPart, n+1 {
		length := min(copyPart, size-off)
		p, err := core.CopyObjectPart(ctx, b.cfg.Bucket, src, b.cfg.Bucket, b.key(dst), id, n, off, length, nil)
		if err != nil {
			return nil, err
		}
		parts = append(parts, p)
	}
	return parts, nil
}

// Delete removes an object; a missing one is no error.
func (b *Bucket) Delete(ctx context.Context, key string) error {
	err := b.c.RemoveObject(ctx, b.cfg.Bucket, b.key(key), minio.RemoveObjectOptions{})
	if err != nil && !errors.Is(b.classify(err), ErrNotFound) {
		return b.wrap("delete", key, err)
	}
	return nil
}

// List calls fn for every object whose key starts with prefix, in key
// order, starting after startAfter ("" for the first).
func (b *Bucket) List(ctx context.Context, prefix, startAfter string, fn func(Info) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opts := minio.ListObjectsOptions{Prefix: b.key(prefix), Recursive: true}
	if startAfter != "" {
		opts.StartAfter = b.key(startAfter)
	}
	for o := range b.c.ListObjects(ctx, b.cfg.Bucket, opts) {
		if o.Err != nil {
			return b.wrap("list", prefix, o.Err)
		}
		rel := strings.TrimPrefix(o.Key, b.prefix)
		if err := fn(Info{Key: rel, Size: o.Size, ETag: o.ETag, ModTime: o.LastModified}); err != nil {
			return err
		}
	}
	return nil
}

// AbortUploads aborts the unfinished multipart uploads under prefix (what
// a killed upload leaves on the server).
func (b *Bucket) AbortUploads(ctx context.Context, prefix string) error {
	for u := range b.c.ListIncompleteUploads(ctx, b.cfg.Bucket, b.key(prefix), true) {
		if u.Err != nil {
			return b.wrap("list uploads", prefix, u.Err)
		}
		if err := b.c.RemoveIncompleteUpload(ctx, b.cfg.Bucket, u.Key); err != nil {
			return b.wrap("abort upload", strings.TrimPrefix(u.Key, b.prefix), err)
		}
	}
	return nil
}

// classify maps a server answer to this package's errors.
func (b *Bucket) classify(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: no progress for %v, %d attempts", ErrStalled, b.stall, b.cfg.Retries)
	}
	var er minio.ErrorResponse
	if !errors.As(err, &er) {
		return err
	}
	switch {
	case er.StatusCode == http.StatusPreconditionFailed || er.Code == "PreconditionFailed":
		return ErrPrecondition
	case er.Code == "NoSuchKey" || (er.StatusCode == http.StatusNotFound && er.Code != "NoSuchBucket"):
		return ErrNotFound
	case er.Code == "NoSuchBucket":
		return ErrNoBucket
	case er.StatusCode == http.StatusConflict:
		return fmt.Errorf("%w: %s", ErrConflict, er.Message)
	case er.Code == "InvalidAccessKeyId" || er.Code == "SignatureDoesNotMatch" || er.StatusCode == http.StatusForbidden:
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
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p := b.key(dir)
	if dir != "" {
		p += "/"
	}
	for o := range b.c.ListObjects(ctx, b.cfg.Bucket, minio.ListObjectsOptions{Prefix: p}) {
		if o.Err != nil {
			return b.wrap("list", dir, o.Err)
		}
		name := strings.TrimPrefix(o.Key, p)
		isDir := strings.HasSuffix(name, "/")
		if err := fn(strings.TrimSuffix(name, "/"), o.Size, isDir); err != nil {
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
	core := minio.Core{Client: b.c}
	_, err := core.CopyObject(ctx, o.cfg.Bucket, o.key(src), b.cfg.Bucket, b.key(dst), nil,
		minio.CopySrcOptions{}, minio.PutObjectOptions{ContentType: contentType(dst)})
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
	if err := b.c.SetBucketPolicy(ctx, b.cfg.Bucket, pol); err != nil {
		return b.wrap("set bucket policy", dir, err)
	}
	return nil
}

// AbortUploadsBefore aborts the unfinished multipart uploads under prefix
// that were started before t, and says how many.
func (b *Bucket) AbortUploadsBefore(ctx context.Context, prefix string, t time.Time) (int, error) {
	n := 0
	for u := range b.c.ListIncompleteUploads(ctx, b.cfg.Bucket, b.key(prefix), true) {
		if u.Err != nil {
			return n, b.wrap("list uploads", prefix, u.Err)
		}
		if !u.Initiated.Before(t) {
			continue
		}
		if err := b.c.RemoveIncompleteUpload(ctx, b.cfg.Bucket, u.Key); err != nil {
			return n, b.wrap("abort upload", strings.TrimPrefix(u.Key, b.prefix), err)
		}
		n++
	}
	return n, nil
}
