package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mephstore/mephstore/internal/s3api"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/internal/s3test"
)

func bigBlob(n int) ([]byte, digest.Digest) {
	b := bytes.Repeat([]byte("mephstore-s3-fault-"), n/19+1)[:n]
	s := sha256.Sum256(b)
	return b, digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(s[:]))
}

// poolKeys is every object under pool/ (blobs and temp uploads).
func poolKeys(t *testing.T, b *Bucket) []string {
	t.Helper()
	var keys []string
	if err := b.List(context.Background(), "pool/", "", func(o Info) error {
		keys = append(keys, o.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// A large blob whose bytes do not match what was expected never appears,
// and its temp upload is removed.
func TestPoolLargeMismatchLeavesNothing(t *testing.T) {
	_, b := testBucket(t, "store")
	p := NewPool(b)
	data, _ := bigBlob(40 << 20)
	w, _ := p.Create(context.Background())
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	_, _, err := w.Commit(context.Background(), cas.Expect{Size: int64(len(data)), Digest: digest.FromString("other")})
	if !errors.Is(err, cas.ErrDigestMismatch) {
		t.Fatalf("commit of wrong bytes: %v", err)
	}
	if keys := poolKeys(t, b); len(keys) != 0 {
		t.Fatalf("left on the bucket: %v", keys)
	}
}

// The server dies in the middle of an upload: the write fails, the blob
// never appears; once the server is back the next run stores it.
func TestPoolServerStopsMidUpload(t *testing.T) {
	srv, b := testBucket(t, "store")
	b.cfg.Retries = 1
	b2, err := Dial(b.cfg) // fail fast: no retries while the server is down
	if err != nil {
		t.Fatal(err)
	}
	p := NewPool(b2)
	data, d := bigBlob(64 << 20)
	w, _ := p.Create(context.Background())
	half := len(data) / 2
	if _, err := w.Write(data[:half]); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	_, werr := w.Write(data[half:])
	_, _, cerr := w.Commit(context.Background(), cas.Expect{Size: int64(len(data)), Digest: d})
	if werr == nil && cerr == nil {
		t.Fatal("the upload succeeded with the server down")
	}
	srv.Restart()
	if _, err := p.Stat(context.Background(), d); !errors.Is(err, cas.ErrBlobNotFound) {
		t.Fatalf("after the failed upload the blob is visible (or: %v)", err)
	}
	w, _ = p.Create(context.Background())
	w.Write(data)
	if _, _, err := w.Commit(context.Background(), cas.Expect{Size: int64(len(data)), Digest: d}); err != nil {
		t.Fatalf("the next run: %v", err)
	}
	if err := b.AbortUploads(context.Background(), "pool/"); err != nil {
		t.Fatal(err)
	}
	if keys := poolKeys(t, b); len(keys) != 1 {
		t.Fatalf("pool holds %v, want the one blob", keys)
	}
}

// Wrong credentials: a one-line error naming the endpoint and the bucket.
func TestWrongCredentials(t *testing.T) {
	srv, b := testBucket(t, "store")
	cfg := b.Config()
	cfg.Creds = &s3api.Credentials{AccessKey: s3test.AccessKey, SecretKey: "not-the-secret"}
	_, err := Open(context.Background(), cfg)
	if !errors.Is(err, ErrAccess) {
		t.Fatalf("wrong secret: %v", err)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, srv.Endpoint()) || !strings.Contains(msg, cfg.Bucket) {
		t.Fatalf("error is not one line naming endpoint and bucket: %q", msg)
	}
}

// A bucket that does not exist: a clear error; MakeBucket creates it.
func TestMissingBucket(t *testing.T) {
	srv, b := testBucket(t, "")
	cfg := b.Config()
	cfg.Bucket = "no-such-bucket"
	_, err := Open(context.Background(), cfg)
	if !errors.Is(err, ErrNoBucket) || !strings.Contains(err.Error(), "no-such-bucket") || !strings.Contains(err.Error(), srv.Endpoint()) {
		t.Fatalf("missing bucket: %v", err)
	}
	nb, _ := Dial(cfg)
	if err := nb.MakeBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), cfg); err != nil {
		t.Fatalf("after MakeBucket: %v", err)
	}
}

// stallProxy forwards TCP to the server, or, while stalled, takes
// connections and their bytes and never answers.
type stallProxy struct {
	l       net.Listener
	stalled atomic.Bool
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{l: l}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.serve(c, target)
		}
	}()
	return p
}

func (p *stallProxy) serve(c net.Conn, target string) {
	defer c.Close()
	if p.stalled.Load() {
		io.Copy(io.Discard, c) // read everything, answer nothing
		return
	}
	s, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer s.Close()
	go io.Copy(s, c)
	io.Copy(c, s)
}

// A server that stops answering: the request fails after the stall
// timeout and its retries with a clear error, instead of hanging; once
// it answers again, requests succeed.
func TestStalledServer(t *testing.T) {
	srv, b := testBucket(t, "store")
	p := newStallProxy(t, srv.Addr)
	cfg := b.Config()
	cfg.Endpoint = "http://" + p.l.Addr().String()
	cfg.Stall, cfg.Retries = 300*time.Millisecond, 2
	sb, err := Dial(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.stalled.Store(true)
	start := time.Now()
	_, err = sb.Put(context.Background(), "x", []byte("x"), Cond{})
	took := time.Since(start)
	if err == nil || took > 20*time.Second || !strings.Contains(err.Error(), cfg.Endpoint) || !errors.Is(err, ErrStalled) {
		t.Fatalf("stalled put: %v after %v", err, took)
	}
	t.Logf("stalled put failed after %v: %v", took.Round(time.Millisecond), err)
	p.stalled.Store(false)
	if _, err := sb.Put(context.Background(), "x", []byte("x"), Cond{}); err != nil {
		t.Fatalf("after the stall: %v", err)
	}
}

// A server that answers 503 SlowDown now and then: requests are retried
// with backoff and succeed.
func TestSlowDownIsRetried(t *testing.T) {
	srv, b := testBucket(t, "store")
	var left atomic.Int32
	left.Store(3)
	sb, _ := inFront(t, srv, b, func(w http.ResponseWriter, r *http.Request) bool {
		if left.Add(-1) >= 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
			return true
		}
		return false
	})
	if _, err := sb.Put(context.Background(), "x", []byte("after slow down"), Cond{}); err != nil {
		t.Fatalf("put through three 503s: %v", err)
	}
	if got, _, err := b.Get(context.Background(), "x", 100); err != nil || string(got) != "after slow down" {
		t.Fatalf("read back %q %v", got, err)
	}
	if left.Load() >= 0 {
		t.Fatal("the 503s were never sent")
	}
}

// A server that sends the headers of an object and then stops sending its
// body: the read fails with ErrStalled after the stall timeout instead of
// hanging, and the error names the endpoint.
func TestStalledBody(t *testing.T) {
	srv, b := testBucket(t, "store")
	if _, err := b.Put(context.Background(), "big", make([]byte, 1<<16), Cond{}); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	b.cfg.Stall, b.cfg.Retries = 300*time.Millisecond, 1
	sb, endpoint := inFront(t, srv, b, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet {
			return false
		}
		w.Header().Set("Content-Length", "65536")
		w.Header().Set("ETag", `"0123"`)
		w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
		w.WriteHeader(http.StatusOK)
		w.Write(make([]byte, 100))
		w.(http.Flusher).Flush()
		<-release
		return true
	})
	t.Cleanup(func() { close(release) }) // before the front's Close, which waits for the handler
	_, _, err := sb.Get(context.Background(), "big", 1<<20)
	if !errors.Is(err, ErrStalled) || !strings.Contains(err.Error(), endpoint) {
		t.Fatalf("stalled body: %v", err)
	}
}

// A server that ignores Range and sends the whole object: a ranged read
// fails instead of handing out the object's first bytes as those at the
// offset.
func TestRangeIgnored(t *testing.T) {
	srv, b := testBucket(t, "store")
	data := []byte("0123456789abcdefghij")
	if _, err := b.Put(context.Background(), "o", data, Cond{}); err != nil {
		t.Fatal(err)
	}
	sb, _ := inFront(t, srv, b, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet {
			return false
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.WriteHeader(http.StatusOK)
		w.Write(data)
		return true
	})
	o, _, err := sb.Open(context.Background(), "o")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	buf := make([]byte, 5)
	if n, err := o.ReadAt(buf, 10); !errors.Is(err, s3api.ErrRangeIgnored) {
		t.Fatalf("ReadAt(10) through a server that ignores Range: %d %q %v", n, buf[:n], err)
	}
	if n, err := o.ReadAt(buf, 0); err != nil || string(buf[:n]) != "01234" {
		t.Fatalf("ReadAt(0): %q %v", buf[:n], err)
	}
}

// inFront opens b's bucket through a server in front of srv: answer
// answers a request itself (and returns true) or leaves it to srv. It
// returns the bucket and the front's endpoint.
func inFront(t *testing.T, srv *s3test.Server, b *Bucket, answer func(http.ResponseWriter, *http.Request) bool) (*Bucket, string) {
	t.Helper()
	real, _ := url.Parse(srv.Endpoint())
	rp := httputil.NewSingleHostReverseProxy(real)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !answer(w, r) {
			rp.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(front.Close)
	cfg := b.Config()
	cfg.Endpoint = front.URL
	sb, err := Dial(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return sb, front.URL
}
