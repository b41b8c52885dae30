package publish

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestServe(t *testing.T) {
	f := newFixture(t, "2", "daily")
	f.publish(t, "daily", true)
	os.Symlink("/etc", filepath.Join(f.root, "escape"))
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, "127.0.0.1:0", f.root, nil, func(a string) { addrc <- a }) }()
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
