package snapshot

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/fetch"
	"github.com/mephstore/mephstore/internal/testtree"
)

// hostileServer serves tree, except that a GET of a path ending in what
// (index.sjson, boot-kernel...) gets how: "stall" (half the file, then
// nothing), "endless" (no Content-Length, bytes without end), "huge"
// (a Content-Length of 1 TiB).
func hostileServer(t *testing.T, tree, what, how string) string {
	done := make(chan struct{})
	files := http.FileServer(http.Dir(tree))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, what) {
			files.ServeHTTP(w, r)
			return
		}
		switch how {
		case "stall":
			w.Write([]byte("{"))
			w.(http.Flusher).Flush()
			<-done
		case "endless":
			chunk := []byte(strings.Repeat(" ", 1<<20))
			for {
				if _, err := w.Write(chunk); err != nil {
					return
				}
				select {
				case <-done:
					return
				default:
				}
			}
		case "huge":
			w.Header().Set("Content-Length", "1099511627776")
			w.Write([]byte("{"))
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(done) })
	return srv.URL + "/"
}

func TestInsertFromHostileServers(t *testing.T) {
	k := testtree.KeysFor(t, "good")
	tree := testtree.Make(t, k)
	for _, tc := range []struct {
		what, how string
		want      error
	}{
		{"index.sjson", "stall", fetch.ErrStalled},
		{"boot-kernel", "stall", fetch.ErrStalled},
		{"index.sjson", "huge", ErrTooLarge},
		{"index.sjson", "endless", ErrTooLarge}, // read to the default cap, no further
		{".sjson", "huge", ErrTooLarge},
	} {
		t.Run(tc.what+" "+tc.how, func(t *testing.T) {
			url := hostileServer(t, tree, tc.what, tc.how)
			r := newRepo(t, "daily")
			blobs := blobCount(t, r)
			o := signedOpts(t, k)
			o.Client = &fetch.Client{Stall: time.Second, Retries: 1, Backoff: time.Millisecond}
			start := time.Now()
			_, err := r.Insert(ctx, url, "daily", o)
			if !errors.Is(err, tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if d := time.Since(start); d > 30*time.Second {
				t.Fatalf("took %v", d)
			}
			if head(t, r, "daily").Seq != 1 {
				t.Fatal("the stream changed")
			}
			// Files of the tree fetched whole before the failure may stay
			// in the pool (unreferenced: gc reaps them; a new insert does
			// not fetch them again); nothing else, and nothing partial.
			files := map[string]bool{}
			for _, vs := range sourceItems(t, tree, "daily") {
				for _, its := range vs {
					for _, it := range its {
						files[it.SHA256] = true
					}
				}
			}
			if added := blobCount(t, r) - blobs; added < 0 || added >= len(files) {
				t.Fatalf("%d blobs added by a failed insert of a tree of %d files", added, len(files))
			}
			if rep, err := r.s.Check(ctx, cas.CheckOptions{Deep: true}); err != nil || len(rep.Problems) > 0 {
				t.Fatalf("fsck after the failure: %v %v", err, rep.Problems)
			}
			// The store lock is free again: a writer gets it at once.
			r2 := New(r.s)
			if _, err := r2.CreateStream(ctx, "after", ""); err != nil {
				t.Fatalf("a writer after the failed insert: %v", err)
			}
		})
	}
}

// A source's caps are its own: a smaller one is obeyed too, and a
// document's whole read is bounded in time even when bytes keep coming.
func TestSourceMetadataCaps(t *testing.T) {
	tree := testtree.Make(t, nil)
	url := hostileServer(t, tree, "index.json", "endless")
	s, err := OpenSource(url, &fetch.Client{Retries: 1})
	if err != nil {
		t.Fatal(err)
	}
	s.MaxMetadata = 4 << 20
	if _, err := s.ReadAll(ctx, "streams/v1/index.json"); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "more than 4 MiB") {
		t.Fatalf("4 MiB cap: %v", err)
	}
	s.MaxMetadata, s.MetadataTimeout = 1<<40, 300*time.Millisecond
	if _, err := s.ReadAll(ctx, "streams/v1/index.json"); !errors.Is(err, ErrBadSource) || !strings.Contains(err.Error(), "not read within") {
		t.Fatalf("time cap: %v", err)
	}
	// A normal document still reads.
	s.MetadataTimeout = 0
	if b, err := s.ReadAll(ctx, "streams/v1/"+"com.ubuntu.maas:daily:v3:download.json"); err != nil || len(b) == 0 {
		t.Fatalf("products file: %d bytes, %v", len(b), err)
	}
	_ = io.EOF
}

// An item whose sha256 names a blob the pool holds is still checked: its
// size against the pool's record, its md5 against the blob's bytes.
func TestInsertChecksItemsOfPooledBlobs(t *testing.T) {
	k := testtree.KeysFor(t, "good")
	good := testtree.Make(t, k)
	for _, tc := range []struct {
		brk  string
		want error
	}{
		{"size", cas.ErrSizeMismatch},
		{"md5", cas.ErrDigestMismatch},
	} {
		t.Run(tc.brk, func(t *testing.T) {
			r := newRepo(t, "daily", "other")
			mustInsert(t, r, good, "other", signedOpts(t, k))
			blobs := blobCount(t, r)
			// The same tree (same seed: same bytes), one item lying.
			bad := testtree.Make(t, k, "--break", tc.brk)
			_, err := r.Insert(ctx, bad, "daily", signedOpts(t, k))
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), "boot-kernel") || !strings.Contains(err.Error(), "pooled blob") {
				t.Fatalf("got %v, want %v about the pooled blob", err, tc.want)
			}
			if head(t, r, "daily").Seq != 1 || blobCount(t, r) != blobs {
				t.Fatal("the store changed")
			}
		})
	}
}

// A source given as a file:// URL or as its products file reads the same
// catalogs as its root.
func TestSourceForms(t *testing.T) {
	tree := testtree.Make(t, nil)
	for _, src := range []string{tree, "file://" + tree, tree + "/streams/v1/index.json", tree + "/streams/v1/com.ubuntu.maas:daily:v3:download.json"} {
		s, err := OpenSource(src, &fetch.Client{})
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		cats, err := s.ReadCatalogs(ctx, nil, false)
		if err != nil || len(cats) != 1 || cats[0].ContentID != "com.ubuntu.maas:daily:v3:download" || len(cats[0].Products) != 2 {
			t.Fatalf("%s: %d catalogs, %v", src, len(cats), err)
		}
	}
}
