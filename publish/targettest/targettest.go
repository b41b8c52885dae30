package targettest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"testing"
	"time"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/publish"
)

var ctx = context.Background()

// Fixture is what a test runs on: an empty target, and a blob store
// holding nothing yet.
type Fixture struct {
	Target publish.Target
	Blobs  cas.BlobStore
	// Reopen is the same target as a new process would see it (after a
	// crash of the one that used Target).
	Reopen func() publish.Target
}

// Run runs every contract test of publish.Target on fixtures made by open.
func Run(t *testing.T, open func(t *testing.T) Fixture) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, Fixture)
	}{
		{"create, commit, read", createCommitRead},
		{"nothing visible before commit", invisibleUntilCommit},
		{"commit replaces", commitReplaces},
		{"contents read back", contentsReadBack},
		{"missing paths", missing},
		{"delete", deleteFiles},
		{"list", list},
		{"paths stay below the root", badPaths},
		{"switch index", switchIndex},
		{"readers never see a broken index", readersDuringSwitch},
		{"concurrent writers", concurrentWriters},
		{"crash between write and commit", crashBeforeCommit},
		{"locks", locks},
		{"put blob", putBlob},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

const stream = "daily"

var lay publish.Layout

// begin readies the stream of a fixture's target.
func begin(t *testing.T, tg publish.Target) {
	t.Helper()
	if err := tg.Begin(ctx, stream); err != nil {
		t.Fatal(err)
	}
}

// commit writes b at rel in one FileWriter.
func commit(t *testing.T, tg publish.Target, rel string, b []byte) {
	t.Helper()
	w, err := tg.Create(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx, rel); err != nil {
		t.Fatal(err)
	}
}

// read is the bytes at rel.
func read(t *testing.T, tg publish.Target, rel string) []byte {
	t.Helper()
	f, err := tg.Open(ctx, rel)
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

// names lists dir as name → entry.
func names(t *testing.T, tg publish.Target, dir string) map[string]publish.Entry {
	t.Helper()
	out := map[string]publish.Entry{}
	if err := tg.List(ctx, dir, func(e publish.Entry) error { out[e.Name] = e; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func createCommitRead(t *testing.T, f Fixture) {
	begin(t, f.Target)
	rel := lay.Meta(stream, "a.json")
	commit(t, f.Target, rel, []byte("hello\n"))
	if got := read(t, f.Target, rel); string(got) != "hello\n" {
		t.Fatalf("read %q", got)
	}
	e, err := f.Target.Stat(ctx, rel)
	if err != nil || e.Size != 6 || e.Dir || e.Name != "a.json" {
		t.Fatalf("stat: %+v %v", e, err)
	}
	if e := names(t, f.Target, lay.MetaDir(stream))["a.json"]; e.Size != 6 {
		t.Fatalf("list: %+v", e)
	}
}

func invisibleUntilCommit(t *testing.T, f Fixture) {
	begin(t, f.Target)
	rel := lay.Meta(stream, "b.json")
	w, err := f.Target.Create(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("partial"))
	if _, err := f.Target.Stat(ctx, rel); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat before commit: %v", err)
	}
	if n := names(t, f.Target, lay.MetaDir(stream)); len(n) != 0 {
		t.Fatalf("listed before commit: %v", n)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Target.Stat(ctx, rel); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat after close: %v", err)
	}
}

func commitReplaces(t *testing.T, f Fixture) {
	begin(t, f.Target)
	rel := lay.Meta(stream, "c.json")
	commit(t, f.Target, rel, []byte("one"))
	commit(t, f.Target, rel, []byte("second"))
	if got := read(t, f.Target, rel); string(got) != "second" {
		t.Fatalf("read %q", got)
	}
}

func contentsReadBack(t *testing.T, f Fixture) {
	begin(t, f.Target)
	w, err := f.Target.Create(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	body := bytes.Repeat([]byte("0123456789"), 100_000)
	w.Write(body)
	for range 2 {
		r, err := w.Contents()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("contents: %d bytes, %v", len(got), err)
		}
	}
	if err := w.Commit(ctx, lay.Meta(stream, "d.json")); err != nil {
		t.Fatal(err)
	}
	if got := read(t, f.Target, lay.Meta(stream, "d.json")); !bytes.Equal(got, body) {
		t.Fatalf("committed %d bytes, want %d", len(got), len(body))
	}
}

func missing(t *testing.T, f Fixture) {
	rel := lay.Meta(stream, "nothing.json")
	if _, err := f.Target.Stat(ctx, rel); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat: %v", err)
	}
	if _, err := f.Target.Open(ctx, rel); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("open: %v", err)
	}
	if err := f.Target.Delete(ctx, rel); err != nil {
		t.Errorf("delete: %v", err)
	}
	if n := names(t, f.Target, lay.MetaDir("nostream")); len(n) != 0 {
		t.Errorf("list: %v", n)
	}
}

func deleteFiles(t *testing.T, f Fixture) {
	begin(t, f.Target)
	a, b := lay.Meta(stream, "a.json"), lay.Meta(stream, "b.json")
	commit(t, f.Target, a, []byte("a"))
	commit(t, f.Target, b, []byte("b"))
	if err := f.Target.Delete(ctx, a); err != nil {
		t.Fatal(err)
	}
	if err := f.Target.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Target.Stat(ctx, a); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("deleted file: %v", err)
	}
	if string(read(t, f.Target, b)) != "b" {
		t.Fatal("the other file went too")
	}
	// A directory goes with what is below it.
	if err := f.Target.Delete(ctx, lay.MetaDir(stream)); err != nil {
		t.Fatal(err)
	}
	if n := names(t, f.Target, lay.MetaDir(stream)); len(n) != 0 {
		t.Fatalf("left: %v", n)
	}
	if err := f.Target.Delete(ctx, ""); err == nil {
		t.Fatal("deleted the root")
	}
}

func list(t *testing.T, f Fixture) {
	begin(t, f.Target)
	for i, n := range []string{"c.json", "a.json", "b.json"} {
		commit(t, f.Target, lay.Meta(stream, n), bytes.Repeat([]byte("x"), i+1))
	}
	var got []string
	err := f.Target.List(ctx, lay.MetaDir(stream), func(e publish.Entry) error {
		got = append(got, fmt.Sprintf("%s:%d:%v", e.Name, e.Size, e.Dir))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "[a.json:2:false b.json:3:false c.json:1:false]"; fmt.Sprint(got) != want {
		t.Fatalf("list %v, want %s", got, want)
	}
	root := names(t, f.Target, "")
	if e, ok := root[stream]; !ok || !e.Dir {
		t.Fatalf("root lists %v", root)
	}
	streams, err := publish.Streams(ctx, f.Target)
	if err != nil || fmt.Sprint(streams) != "["+stream+"]" {
		t.Fatalf("streams %v %v", streams, err)
	}
}

func badPaths(t *testing.T, f Fixture) {
	begin(t, f.Target)
	for _, rel := range []string{"../escape", "/etc/passwd", stream + "/../../x", "a//b", "./a"} {
		if _, err := f.Target.Stat(ctx, rel); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stat %q: %v, want a refusal", rel, err)
		}
		w, err := f.Target.Create(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("x"))
		if err := w.Commit(ctx, rel); err == nil {
			t.Errorf("commit %q: accepted", rel)
		}
		w.Close()
		if err := f.Target.Delete(ctx, rel); err == nil {
			t.Errorf("delete %q: accepted", rel)
		}
	}
}

// indexSet is the index files of set n: index.json names one products
// file that is committed first.
func indexSet(t *testing.T, tg publish.Target, n int) []publish.File {
	t.Helper()
	prod := fmt.Sprintf("p.%d.json", n)
	commit(t, tg, lay.Meta(stream, prod), []byte(fmt.Sprintf(`{"n":%d}`, n)))
	idx, _ := json.Marshal(map[string]any{"n": n, "path": publish.MetaRel(prod)})
	return []publish.File{
		{Name: "index.json.gpg", Data: []byte(fmt.Sprint(n))},
		{Name: "index.sjson", Data: []byte(fmt.Sprint(n))},
		{Name: publish.IndexFile, Data: idx},
	}
}

func switchIndex(t *testing.T, f Fixture) {
	begin(t, f.Target)
	if err := f.Target.SwitchIndex(ctx, stream, indexSet(t, f.Target, 1)); err != nil {
		t.Fatal(err)
	}
	begin(t, f.Target)
	set := indexSet(t, f.Target, 2)
	// An unsigned set after a signed one: the signed files go.
	if err := f.Target.SwitchIndex(ctx, stream, set[2:]); err != nil {
		t.Fatal(err)
	}
	var idx struct{ N int }
	json.Unmarshal(read(t, f.Target, lay.Index(stream)), &idx)
	if idx.N != 2 {
		t.Fatalf("index is set %d", idx.N)
	}
	n := names(t, f.Target, lay.MetaDir(stream))
	if _, ok := n["index.sjson"]; ok {
		t.Fatal("the stale signed index stayed")
	}
	for _, p := range []string{"p.1.json", "p.2.json"} {
		if _, ok := n[p]; !ok {
			t.Fatalf("products file %s gone: %v", p, n)
		}
	}
}

func readersDuringSwitch(t *testing.T, f Fixture) {
	begin(t, f.Target)
	if err := f.Target.SwitchIndex(ctx, stream, indexSet(t, f.Target, 0)); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var reads int
	var bad error
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := readIndex(f.Target); err != nil {
				bad = err
				return
			}
			reads++
		}
	})
	for n := 1; n <= 30; n++ {
		begin(t, f.Target)
		if err := f.Target.SwitchIndex(ctx, stream, indexSet(t, f.Target, n)); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if bad != nil {
		t.Fatalf("a reader saw: %v", bad)
	}
	t.Logf("%d reads during 30 switches", reads)
}

// readIndex reads the index as a client would and then the products file
// it names.
func readIndex(tg publish.Target) error {
	r, err := tg.Open(ctx, lay.Index(stream))
	if err != nil {
		return fmt.Errorf("index: %w", err)
	}
	b, err := io.ReadAll(r)
	r.Close()
	var idx struct{ Path string }
	if err != nil || json.Unmarshal(b, &idx) != nil || idx.Path == "" {
		return fmt.Errorf("index %q: %v", b, err)
	}
	p, err := tg.Open(ctx, stream+"/"+idx.Path)
	if err != nil {
		return fmt.Errorf("index names %s: %w", idx.Path, err)
	}
	return p.Close()
}

func concurrentWriters(t *testing.T, f Fixture) {
	begin(t, f.Target)
	var wg sync.WaitGroup
	errs := make([]error, 16)
	for i := range errs {
		wg.Go(func() {
			w, err := f.Target.Create(ctx, stream)
			if err != nil {
				errs[i] = err
				return
			}
			defer w.Close()
			w.Write(bytes.Repeat([]byte{byte('a' + i)}, 1000*(i+1)))
			errs[i] = w.Commit(ctx, lay.Meta(stream, fmt.Sprintf("f%02d.json", i)))
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	n := names(t, f.Target, lay.MetaDir(stream))
	for i := range errs {
		if e := n[fmt.Sprintf("f%02d.json", i)]; e.Size != int64(1000*(i+1)) {
			t.Fatalf("file %d: %+v", i, e)
		}
	}
}

func crashBeforeCommit(t *testing.T, f Fixture) {
	begin(t, f.Target)
	w, err := f.Target.Create(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("never committed"))
	// The process dies here: no Commit, no Close. Another one goes on.
	tg := f.Reopen()
	begin(t, tg)
	if n := names(t, tg, lay.MetaDir(stream)); len(n) != 0 {
		t.Fatalf("an uncommitted file is visible: %v", n)
	}
	commit(t, tg, lay.Meta(stream, "after.json"), []byte("ok"))
	if err := tg.SwitchIndex(ctx, stream, []publish.File{{Name: publish.IndexFile, Data: []byte("{}")}}); err != nil {
		t.Fatal(err)
	}
	if string(read(t, tg, lay.Index(stream))) != "{}" {
		t.Fatal("index not switched")
	}
}

func locks(t *testing.T, f Fixture) {
	unlock, err := f.Target.Lock(ctx, "", true)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := f.Reopen().Lock(short, "", false); err == nil {
		t.Fatal("a shared root lock while gc holds it exclusively")
	}
	unlock()
	u1, err := f.Target.Lock(ctx, "", false)
	if err != nil {
		t.Fatal(err)
	}
	u2, err := f.Reopen().Lock(ctx, "", false)
	if err != nil {
		t.Fatalf("two publishes share the root lock: %v", err)
	}
	s1, err := f.Target.Lock(ctx, stream, true)
	if err != nil {
		t.Fatal(err)
	}
	short2, cancel2 := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel2()
	if _, err := f.Reopen().Lock(short2, stream, true); err == nil {
		t.Fatal("two publishes of one stream at once")
	}
	other, err := f.Reopen().Lock(ctx, "other", true)
	if err != nil {
		t.Fatalf("publishes of two streams at once: %v", err)
	}
	for _, u := range []func(){other, s1, u2, u1} {
		u()
	}
	for name := range names(t, f.Target, "") { // at most the two stream directories
		if name != stream && name != "other" {
			t.Fatalf("locks are listed: %q", name)
		}
	}
}

func putBlob(t *testing.T, f Fixture) {
	body := bytes.Repeat([]byte("blob "), 200_000)
	s := sha256.Sum256(body)
	d := digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(s[:]))
	w, err := f.Blobs.Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(body)
	if _, _, err := w.Commit(ctx, cas.Expect{Digest: d, Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	begin(t, f.Target)
	for range 2 { // the second time it is there already
		if _, err := f.Target.PutBlob(ctx, stream, f.Blobs, d); err != nil {
			t.Fatal(err)
		}
	}
	rel := f.Target.DataPath(stream, d.Encoded())
	if got := read(t, f.Target, rel); !bytes.Equal(got, body) {
		t.Fatalf("data file: %d bytes", len(got))
	}
	// Item paths resolve from a stream's directory too.
	if got := read(t, f.Target, stream+"/"+publish.DataRel(d.Encoded())); !bytes.Equal(got, body) {
		t.Fatalf("through the stream: %d bytes", len(got))
	}
	missingD := digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(make([]byte, 32)))
	if _, err := f.Target.PutBlob(ctx, stream, f.Blobs, missingD); err == nil {
		t.Fatal("put a blob the store does not have")
	}
}
