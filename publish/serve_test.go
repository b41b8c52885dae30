package publish

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestServe(t *testing.T) {
	f := newFixture(t, "2", "daily")
	f.publish(t, "daily", true)
	os.Symlink("/etc", filepath.Join(f.root, "escape"))
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, "127.0.0.1:0", f.root, ServeOptions{}, nil, func(a string) { addrc <- a }) }()
	base := "http://" + <-addrc

	// The reference validator reads the tree over HTTP.
	ssValidate(t, base+"/daily/", f.keyring, "--expect-items", "16")

	get := func(method, path string, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := get("GET", "/daily/streams/v1/index.json", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(resp.Header.Get("Cache-Control"), "max-age=60") || !strings.Contains(body, "index:1.0") {
		t.Fatalf("index: %d %v", resp.StatusCode, resp.Header)
	}
	// A data file: Range, ETag, immutable caching, conditional GET, HEAD.
	var sum string
	filepath.Walk(filepath.Join(f.root, "data"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && sum == "" {
			sum = fi.Name()
		}
		return nil
	})
	dataURL := "/daily/data/sha256/" + sum[:2] + "/" + sum
	full, _ := os.ReadFile(filepath.Join(f.root, "data", "sha256", sum[:2], sum))
	resp, body = get("GET", dataURL, map[string]string{"Range": "bytes=5-9"})
	if resp.StatusCode != 206 || body != string(full[5:10]) || resp.Header.Get("ETag") != `"`+sum+`"` || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
		t.Fatalf("range: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if resp, _ = get("GET", dataURL, map[string]string{"If-None-Match": `"` + sum + `"`}); resp.StatusCode != 304 {
		t.Fatalf("If-None-Match: %d", resp.StatusCode)
	}
	resp, body = get("HEAD", dataURL, nil)
	if resp.StatusCode != 200 || body != "" || resp.ContentLength != int64(len(full)) {
		t.Fatalf("HEAD: %d %q %d", resp.StatusCode, body, resp.ContentLength)
	}
	if resp, _ = get("GET", "/daily/streams/v1/nothing.json", nil); resp.StatusCode != 404 {
		t.Fatalf("missing file: %d", resp.StatusCode)
	}
	if resp, _ = get("POST", "/daily/", nil); resp.StatusCode != 405 {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
	if resp, body = get("GET", "/daily/streams/v1/", nil); resp.StatusCode != 200 || !strings.Contains(body, "index.json") {
		t.Fatalf("listing: %d %s", resp.StatusCode, body)
	}
	if resp, _ = get("GET", "/escape/passwd", nil); resp.StatusCode != 403 {
		t.Fatalf("symlink out of the root: %d", resp.StatusCode)
	}
	// Raw requests, so no client cleans the path first.
	for _, p := range []string{"/daily/../../etc/passwd", "/daily/%2e%2e/%2e%2e/etc/passwd", "/%2E%2E/etc/passwd", "/daily/..%2f..%2fetc/passwd"} {
		status := rawGet(t, strings.TrimPrefix(base, "http://"), p)
		if status == 200 {
			t.Errorf("%s: served", p)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func rawGet(t *testing.T, addr, path string) int {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// serveRoot serves root with o on a free port until the test ends.
func serveRoot(t *testing.T, root string, o ServeOptions) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, "127.0.0.1:0", root, o, nil, func(a string) { addrc <- a }) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case a := <-addrc:
		return a
	case err := <-done:
		t.Fatal(err)
	}
	return ""
}

// closedWithin reads c until the server closes it, failing if that takes
// longer than limit.
func closedWithin(t *testing.T, c net.Conn, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	c.SetReadDeadline(start.Add(limit))
	_, err := io.Copy(io.Discard, c)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after %v", limit)
	}
	return time.Since(start)
}

func TestServeBoundsClients(t *testing.T) {
	root := t.TempDir()
	big := make([]byte, 8<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	os.WriteFile(filepath.Join(root, "big"), big, 0o644)
	os.WriteFile(filepath.Join(root, ".publish.lock"), []byte("lock"), 0o644)
	os.MkdirAll(filepath.Join(root, "daily", "streams", ".v1.123"), 0o755)
	os.WriteFile(filepath.Join(root, "daily", "streams", ".v1.123", "index.json"), []byte("{}"), 0o644)
	const stall = 300 * time.Millisecond
	addr := serveRoot(t, root, ServeOptions{HeaderTimeout: stall, ReadTimeout: 2 * stall, IdleTimeout: stall, StallTimeout: stall, MaxHeaderBytes: 4 << 10})

	t.Run("half a request is cut off", func(t *testing.T) {
		c, _ := net.Dial("tcp", addr)
		defer c.Close()
		fmt.Fprintf(c, "GET /big HTTP/1.1\r\nHost: x\r\n") // and never the blank line
		closedWithin(t, c, 20*stall)
	})
	t.Run("an idle keep-alive connection is closed", func(t *testing.T) {
		c, _ := net.Dial("tcp", addr)
		defer c.Close()
		fmt.Fprintf(c, "HEAD /big HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("HEAD: %v %v", resp, err)
		}
		c.SetReadDeadline(time.Now().Add(20 * stall))
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("idle connection: %v, want EOF", err)
		}
	})
	t.Run("huge headers are refused", func(t *testing.T) {
		c, _ := net.Dial("tcp", addr)
		defer c.Close()
		fmt.Fprintf(c, "GET /big HTTP/1.1\r\nHost: x\r\nX-Junk: %s\r\n\r\n", strings.Repeat("a", 64<<10))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("64 KiB header: %v %v", resp, err)
		}
	})
	t.Run("hidden files are not served", func(t *testing.T) {
		for _, p := range []string{"/.publish.lock", "/daily/streams/.v1.123/index.json", "/daily/streams/%2ev1.123/index.json"} {
			if st := rawGet(t, addr, p); st != 404 {
				t.Errorf("%s: %d, want 404", p, st)
			}
		}
	})
	t.Run("a client that stops reading is cut off", func(t *testing.T) {
		c, _ := net.Dial("tcp", addr)
		defer c.Close()
		c.(*net.TCPConn).SetReadBuffer(4 << 10)
		fmt.Fprintf(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
		// Not reading is the behaviour under test: wait well past the
		// stall time, then take what the server had sent before it gave up.
		<-time.After(10 * stall)
		c.SetReadDeadline(time.Now().Add(5 * stall))
		n, _ := io.Copy(io.Discard, c)
		if n >= int64(len(big)) {
			t.Fatalf("a stalled client got the whole %d bytes", n)
		}
	})
	t.Run("a slow large Range download is not cut off", func(t *testing.T) {
		// Its own server, with a stall time ten times the pauses of the
		// reader below, so that a loaded machine does not make the pauses
		// look like a stall.
		const stall = time.Second
		addr := serveRoot(t, root, ServeOptions{StallTimeout: stall})
		req, _ := http.NewRequest("GET", "http://"+addr+"/big", nil)
		req.Header.Set("Range", "bytes=1000-")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 206 {
			t.Fatalf("range: %v %v", resp, err)
		}
		defer resp.Body.Close()
		// 256 KiB every stall/10: the whole download takes about three
		// stall periods, no pause comes near one.
		tick := time.NewTicker(stall / 10)
		defer tick.Stop()
		start := time.Now()
		var got []byte
		buf := make([]byte, 256<<10)
		for {
			<-tick.C
			n, err := io.ReadFull(resp.Body, buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		if !bytes.Equal(got, big[1000:]) {
			t.Fatalf("got %d bytes, want %d", len(got), len(big)-1000)
		}
		if d := time.Since(start); d < 2*stall {
			t.Fatalf("download took %v: not slower than the stall time, proves nothing", d)
		}
	})
}
