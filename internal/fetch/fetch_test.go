package fetch

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var payload = bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB

// flaky serves payload; the first breaks requests cut the connection after
// cut bytes; the first fail503 requests get 503.
func flaky(t *testing.T, breaks, fail503 int32, cut int) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		if i <= fail503 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		if i <= fail503+breaks {
			start := 0
			if rg := r.Header.Get("Range"); rg != "" {
				start, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
				w.Header().Set("Content-Range", "bytes "+strconv.Itoa(start)+"-"+strconv.Itoa(len(payload)-1)+"/"+strconv.Itoa(len(payload)))
				w.Header().Set("Content-Length", strconv.Itoa(len(payload)-start))
				w.WriteHeader(http.StatusPartialContent)
			} else {
				w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
				w.Header().Set("ETag", `"v1"`)
			}
			w.Write(payload[start : start+min(cut, len(payload)-start)])
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			conn.Close()
			return
		}
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(w, r, "f", time.Time{}, bytes.NewReader(payload))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestResumesBrokenTransfers(t *testing.T) {
	srv, n := flaky(t, 3, 0, 200_000)
	c := &Client{Backoff: time.Millisecond}
	r, size, err := c.Get(context.Background(), srv.URL+"/f")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(len(payload)) || !bytes.Equal(got, payload) {
		t.Fatalf("got %d bytes (size %d), want the %d-byte payload", len(got), size, len(payload))
	}
	if n.Load() != 4 {
		t.Fatalf("%d requests, want 4 (3 broken + 1 resumed to the end)", n.Load())
	}
}

func TestRetriesTransientStatus(t *testing.T) {
	srv, _ := flaky(t, 0, 2, 0)
	c := &Client{Backoff: time.Millisecond}
	r, _, err := c.Get(context.Background(), srv.URL+"/f")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if !bytes.Equal(got, payload) {
		t.Fatal("wrong body")
	}
}

func TestGivesUp(t *testing.T) {
	srv, _ := flaky(t, 0, 100, 0)
	c := &Client{Backoff: time.Millisecond, Retries: 2}
	if _, _, err := c.Get(context.Background(), srv.URL+"/f"); !errors.Is(err, ErrHTTP) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("got %v", err)
	}
	srv2, n := flaky(t, 0, 0, 0)
	if _, _, err := c.Get(context.Background(), srv2.URL+"/missing"); !errors.Is(err, ErrHTTP) || !strings.Contains(err.Error(), "404") || n.Load() != 1 {
		t.Fatalf("404: %v after %d requests (404 is not retried)", err, n.Load())
	}
	srv3, _ := flaky(t, 100, 0, 1000)
	r, _, err := c.Get(context.Background(), srv3.URL+"/f")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r); err == nil || !strings.Contains(err.Error(), "giving up") {
		t.Fatalf("endlessly broken transfer: %v", err)
	}
}
