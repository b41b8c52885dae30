package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/digest"
)

var ctx = context.Background()

// Run runs every contract test of cas.BlobStore on fresh, empty blob
// stores made by open.
func Run(t *testing.T, open func(t *testing.T) cas.BlobStore) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, cas.BlobStore)
	}{
		{"write, stat, read", writeStatRead},
		{"ranged reads", rangedReads},
		{"a mismatch never becomes visible", mismatch},
		{"a cancelled writer leaves nothing", cancelled},
		{"the same bytes twice", sameBytesTwice},
		{"concurrent writers of one blob", concurrentSameBlob},
		{"missing blobs", missing},
		{"delete", deleteBlob},
		{"walk", walk},
		{"large blob", largeBlob},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

func sum(b []byte) digest.Digest {
	return digest.FromBytes(b)
}

// put writes b and commits it expecting exp.
func put(t *testing.T, s cas.BlobStore, b []byte, exp cas.Expect) (cas.BlobInfo, bool, error) {
	t.Helper()
	w, err := s.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	return w.Commit(ctx, exp)
}

func mustPut(t *testing.T, s cas.BlobStore, b []byte) cas.BlobInfo {
	t.Helper()
	info, _, err := put(t, s, b, cas.Expect{Size: int64(len(b)), Digest: sum(b)})
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func readAll(t *testing.T, s cas.BlobStore, d digest.Digest) []byte {
	t.Helper()
	f, err := s.Open(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeStatRead(t *testing.T, s cas.BlobStore) {
	b := []byte("hello, blob store\n")
	info := mustPut(t, s, b)
	if info.Digest != sum(b) || info.Size != int64(len(b)) {
		t.Fatalf("commit: %+v", info)
	}
	st, err := s.Stat(ctx, sum(b))
	if err != nil || st.Size != int64(len(b)) || st.Digest != sum(b) {
		t.Fatalf("stat: %+v %v", st, err)
	}
	if got := readAll(t, s, sum(b)); !bytes.Equal(got, b) {
		t.Fatalf("read %q", got)
	}
	// Anything: no expectation.
	info, _, err = put(t, s, []byte("x"), cas.Expect{Size: -1})
	if err != nil || info.Digest != sum([]byte("x")) {
		t.Fatalf("commit without expectations: %+v %v", info, err)
	}
}

func rangedReads(t *testing.T, s cas.BlobStore) {
	b := bytes.Repeat([]byte("0123456789"), 1000)
	mustPut(t, s, b)
	f, err := s.Open(ctx, sum(b))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Size() != int64(len(b)) {
		t.Fatalf("size %d", f.Size())
	}
	p := make([]byte, 7)
	if _, err := f.ReadAt(p, 4321); err != nil || string(p) != string(b[4321:4328]) {
		t.Fatalf("ReadAt: %q %v", p, err)
	}
	if _, err := f.Seek(9990, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(f)
	if err != nil || string(rest) != string(b[9990:]) {
		t.Fatalf("after Seek: %q %v", rest, err)
	}
}

func mismatch(t *testing.T, s cas.BlobStore) {
	b := []byte("the real bytes")
	other := []byte("other bytes")
	for _, exp := range []cas.Expect{
		{Size: int64(len(b)) + 1, Digest: sum(b)},
		{Size: int64(len(b)), Digest: sum(other)},
		{Size: -1, Digest: sum(other)},
	} {
		_, _, err := put(t, s, b, exp)
		if !errors.Is(err, cas.ErrSizeMismatch) && !errors.Is(err, cas.ErrDigestMismatch) {
			t.Fatalf("expect %+v: %v", exp, err)
		}
	}
	if _, err := s.Stat(ctx, sum(b)); !errors.Is(err, cas.ErrBlobNotFound) {
		t.Fatalf("a refused blob is visible: %v", err)
	}
	if _, err := s.Stat(ctx, sum(other)); !errors.Is(err, cas.ErrBlobNotFound) {
		t.Fatalf("the expected digest is visible: %v", err)
	}
}

func cancelled(t *testing.T, s cas.BlobStore) {
	b := []byte("written, then dropped")
	w, err := s.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	if err := w.Cancel(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, sum(b)); !errors.Is(err, cas.ErrBlobNotFound) {
		t.Fatalf("a cancelled blob is visible: %v", err)
	}
	if _, _, err := w.Commit(ctx, cas.Unknown); err == nil {
		t.Fatal("commit after cancel succeeded")
	}
	n := 0
	s.Walk(ctx, func(cas.BlobInfo) error { n++; return nil })
	if n != 0 {
		t.Fatalf("walk sees %d blobs after a cancel", n)
	}
}

func sameBytesTwice(t *testing.T, s cas.BlobStore) {
	b := []byte("twice")
	first := mustPut(t, s, b)
	second, had, err := put(t, s, b, cas.Expect{Size: int64(len(b)), Digest: sum(b)})
	if err != nil || !had || second.Digest != first.Digest {
		t.Fatalf("second commit: %+v had=%v %v", second, had, err)
	}
	if got := readAll(t, s, sum(b)); !bytes.Equal(got, b) {
		t.Fatalf("read %q", got)
	}
}

func concurrentSameBlob(t *testing.T, s cas.BlobStore) {
	b := bytes.Repeat([]byte("race"), 100000)
	var wg sync.WaitGroup
	var mu sync.Mutex
	news := 0
	for range 8 {
		wg.Go(func() {
			w, err := s.Create(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			for off := 0; off < len(b); off += 4096 {
				w.Write(b[off:min(off+4096, len(b))])
			}
			_, had, err := w.Commit(ctx, cas.Expect{Size: int64(len(b)), Digest: sum(b)})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			if !had {
				news++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if news != 1 {
		t.Fatalf("%d writers made the blob new, want 1", news)
	}
	if got := readAll(t, s, sum(b)); !bytes.Equal(got, b) {
		t.Fatal("the blob is not whole")
	}
}

func missing(t *testing.T, s cas.BlobStore) {
	d := sum([]byte("never written"))
	if _, err := s.Stat(ctx, d); !errors.Is(err, cas.ErrBlobNotFound) {
		t.Fatalf("stat: %v", err)
	}
	if _, err := s.Open(ctx, d); !errors.Is(err, cas.ErrBlobNotFound) {
		t.Fatalf("open: %v", err)
	}
	if err := s.Delete(ctx, d); err != nil {
		t.Fatalf("delete of a missing blob: %v", err)
	}
}

func deleteBlob(t *testing.T, s cas.BlobStore) {
	b := []byte("to be deleted")
	mustPut(t, s, b)
	if err := s.Delete(ctx, sum(b)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, sum(b)); !errors.Is(err, cas.ErrBlobNotFound) {
		t.Fatalf("stat after delete: %v", err)
	}
	mustPut(t, s, b) // and back
	if got := readAll(t, s, sum(b)); !bytes.Equal(got, b) {
		t.Fatal("rewritten after delete: wrong bytes")
	}
}

func walk(t *testing.T, s cas.BlobStore) {
	want := map[digest.Digest]int64{}
	for _, b := range [][]byte{[]byte("a"), []byte("bb"), []byte("ccc"), bytes.Repeat([]byte("d"), 70000)} {
		mustPut(t, s, b)
		want[sum(b)] = int64(len(b))
	}
	// A writer in progress is not walked.
	w, _ := s.Create(ctx)
	w.Write([]byte("in progress"))
	defer w.Cancel()
	got := map[digest.Digest]int64{}
	if err := s.Walk(ctx, func(i cas.BlobInfo) error { got[i.Digest] += i.Size; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("walk: %v, want %v", got, want)
	}
	for d, n := range want {
		if got[d] != n {
			t.Fatalf("walk: %s size %d, want %d", d, got[d], n)
		}
	}
	stop := errors.New("stop")
	if err := s.Walk(ctx, func(cas.BlobInfo) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("walk's callback error: %v", err)
	}
}

func largeBlob(t *testing.T, s cas.BlobStore) {
	chunk := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	w, err := s.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	for range 32 {
		w.Write(chunk)
		h.Write(chunk)
	}
	d := digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil)))
	info, _, err := w.Commit(ctx, cas.Expect{Size: 32 << 20, Digest: d})
	if err != nil || info.Size != 32<<20 {
		t.Fatalf("32 MiB blob: %+v %v", info, err)
	}
}
