package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
)

// failingReader gives n bytes, then an error.
type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("the source broke")
	}
	k := min(len(p), f.n)
	f.n -= k
	return k, nil
}

// PutStream writes objects of any size whole, in one request or in
// parts, and one whose reader fails or holds the wrong number of bytes
// never appears (and leaves no upload behind).
func TestPutStream(t *testing.T) {
	_, b := testBucket(t, "store")
	const part = 5 << 20 // S3's smallest part
	ctx := context.Background()
	for _, n := range []int{0, 100, part, 2*part + 7} {
		data := bytes.Repeat([]byte{byte(n)}, n)
		key := fmt.Sprintf("obj-%d", n)
		got, err := b.PutStream(ctx, key, bytes.NewReader(data), int64(n), part)
		if err != nil || got != int64(n) {
			t.Fatalf("%d bytes: %d, %v", n, got, err)
		}
		back, _, err := b.Get(ctx, key, int64(n))
		if err != nil || !bytes.Equal(back, data) {
			t.Fatalf("%d bytes read back as %d: %v", n, len(back), err)
		}
	}
	for name, c := range map[string]struct {
		r    io.Reader
		size int64
	}{
		"short, one part":   {bytes.NewReader(make([]byte, 10)), 11},
		"long, one part":    {bytes.NewReader(make([]byte, 12)), 11},
		"long by one, part": {bytes.NewReader(make([]byte, part)), part - 1},
		"short, in parts":   {bytes.NewReader(make([]byte, 2*part)), 2*part + 1},
		"long, in parts":    {bytes.NewReader(make([]byte, 3*part)), 2 * part},
		"failing, in parts": {&failingReader{n: part + 1}, -1},
	} {
		if _, err := b.PutStream(ctx, "bad", c.r, c.size, part); err == nil {
			t.Fatalf("%s: no error", name)
		}
		if _, err := b.Head(ctx, "bad"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("%s: the object appeared (or: %v)", name, err)
		}
	}
	noUploads(t, b)
}

// Listings page through more keys than one answer holds (1,000), in key
// order, and ListDir merges objects and "directories" in name order.
func TestListPagesAndDirs(t *testing.T) {
	_, b := testBucket(t, "store")
	ctx := context.Background()
	var keys []string
	for i := range 1010 {
		keys = append(keys, fmt.Sprintf("many/%04d", i))
	}
	keys = append(keys, "dir/a", "dir/b/c", "dir/b/d", "dir/c", "dir/d/e")
	var wg sync.WaitGroup
	errs := make(chan error, len(keys))
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < len(keys); i += 8 {
				if _, err := b.Put(ctx, keys[i], []byte(keys[i]), Cond{}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var listed []string
	if err := b.List(ctx, "many/", "many/0004", func(o Info) error {
		listed = append(listed, o.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1005 || listed[0] != "many/0005" || listed[1004] != "many/1009" {
		t.Fatalf("listed %d keys, from %v", len(listed), listed[:min(3, len(listed))])
	}
	var entries []string
	if err := b.ListDir(ctx, "dir", func(name string, size int64, isDir bool) error {
		entries = append(entries, fmt.Sprintf("%s:%v", name, isDir))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, want := fmt.Sprint(entries), "[a:false b:true c:false d:true]"; got != want {
		t.Fatalf("ListDir: %s, want %s", got, want)
	}
}

// An opened object reads sequentially, after seeks, and at offsets.
func TestObjectReads(t *testing.T) {
	_, b := testBucket(t, "store")
	ctx := context.Background()
	data := make([]byte, 1000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if _, err := b.Put(ctx, "o", data, Cond{}); err != nil {
		t.Fatal(err)
	}
	o, info, err := b.Open(ctx, "o")
	if err != nil || info.Size != 1000 || o.Size() != 1000 {
		t.Fatalf("open: %+v %v", info, err)
	}
	defer o.Close()
	buf := make([]byte, 100)
	if n, err := o.ReadAt(buf, 250); n != 100 || err != nil || !bytes.Equal(buf, data[250:350]) {
		t.Fatalf("ReadAt 250: %d %v", n, err)
	}
	if n, err := o.ReadAt(buf, 950); n != 50 || err != io.EOF || !bytes.Equal(buf[:50], data[950:]) {
		t.Fatalf("ReadAt past the end: %d %v", n, err)
	}
	if _, err := o.Seek(-10, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(o); err != nil || !bytes.Equal(rest, data[990:]) {
		t.Fatalf("read after seek: %d %v", len(rest), err)
	}
	o.Seek(0, io.SeekStart)
	if all, err := io.ReadAll(o); err != nil || !bytes.Equal(all, data) {
		t.Fatalf("read from the start: %d %v", len(all), err)
	}
	if _, _, err := b.Open(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open of a missing key: %v", err)
	}
}
