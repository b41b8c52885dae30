package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mephstore/mephstore/internal/testtree"
)

// insert against a server that stalls: a one-line error naming the stall,
// within the --stall-timeout the user gave, and the store free and as it
// was.
func TestInsertStallTimeoutFlag(t *testing.T) {
	tree := testtree.Make(t, nil)
	done := make(chan struct{})
	files := http.FileServer(http.Dir(tree))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "boot-kernel") {
			<-done // accept, then never answer
			return
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(done) })
	_, s := newCLIStore(t)
	if r := cli(t, nil, append(s, "stream", "create", "daily")...); r.code != 0 {
		t.Fatal(r)
	}
	start := time.Now()
	r := cli(t, nil, append(s, "--stall-timeout", "300ms", "--retries", "1", "insert", "--no-verify", srv.URL+"/", "daily")...)
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	last := lines[len(lines)-1] // after the warnings of each retry
	if r.code != exitFailure || !strings.HasPrefix(last, "mephstore: ") || !strings.Contains(last, "server stalled: nothing received for 300ms") {
		t.Fatalf("insert from a stalling server: %+v", r)
	}
	if d := time.Since(start); d > time.Minute {
		t.Fatalf("took %v", d)
	}
	if r := cli(t, nil, append(s, "--wait", "0s", "stream", "create", "after")...); r.code != 0 {
		t.Fatalf("the store is not free after the failed insert: %+v", r)
	}
	if rows := streamList(t, s); rows["daily"].Versions != 0 {
		t.Fatalf("daily changed: %+v", rows["daily"])
	}
	if r := cli(t, nil, append(s, "--stall-timeout", "soon", "blobs")...); r.code != exitUsage {
		t.Fatalf("a bad --stall-timeout: %+v", r)
	}
}
