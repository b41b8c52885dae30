package fetch

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
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

// stallServer answers with headers and the first half of payload, then
// sends nothing more until the test ends; silent accepts connections and
// never answers at all.
func stallServer(t *testing.T) (halfway, silent string) {
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Range") != "" { // a resume: headers, then nothing
			w.WriteHeader(http.StatusPartialContent)
		} else {
			w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
			w.Write(payload[:len(payload)/2])
		}
		w.(http.Flusher).Flush()
		<-done
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c) // held open, never answered
		}
	}()
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(done); ln.Close() })
	return srv.URL + "/f", "http://" + ln.Addr().String() + "/f"
}

func TestStalledServersFail(t *testing.T) {
	halfway, silent := stallServer(t)
	const stall = 200 * time.Millisecond
	c := &Client{Stall: stall, Retries: 2, Backoff: time.Millisecond}
	for _, tc := range []struct {
		name, url string
	}{{"no response", silent}, {"body stops half-way", halfway}} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			var err error
			r, _, gerr := c.Get(context.Background(), tc.url)
			if err = gerr; err == nil {
				_, err = io.Copy(io.Discard, r)
				r.Close()
			}
			if !errors.Is(err, ErrStalled) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want ErrStalled", err)
			}
			// Three attempts of one stall each, and some slack.
			if d := time.Since(start); d > 20*stall {
				t.Fatalf("took %v", d)
			}
		})
	}
}

// A slow server that keeps sending is never cut off, however long the
// whole transfer takes.
func TestSlowServerNotCut(t *testing.T) {
	// Pauses a tenth of the stall time, so that a loaded machine does not
	// make them look like a stall; the whole transfer takes longer than
	// one.
	const stall = time.Second
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
		tick := time.NewTicker(stall / 10)
		defer tick.Stop()
		for off := 0; off < len(payload); off += len(payload) / 16 {
			<-tick.C
			w.Write(payload[off : off+len(payload)/16])
			w.(http.Flusher).Flush()
		}
	}))
	defer srv.Close()
	c := &Client{Stall: stall, Retries: 1}
	start := time.Now()
	r, _, err := c.Get(context.Background(), srv.URL+"/f")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(b, payload) {
		t.Fatalf("read %d bytes: %v", len(b), err)
	}
	if d := time.Since(start); d < stall {
		t.Fatalf("took %v: not longer than the stall time, proves nothing", d)
	}
}
