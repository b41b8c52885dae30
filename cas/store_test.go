package cas

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mephstore/mephstore/internal/flock"
)

func TestInitAndOpen(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "s")
	if _, err := Open(dir, Options{}); !errors.Is(err, ErrNoStore) {
		t.Fatalf("open before init: %v, want ErrNoStore", err)
	}
	if err := Init(dir); err != nil {
		t.Fatal(err)
	}
	if err := Init(dir); !errors.Is(err, ErrStoreExists) {
		t.Fatalf("second init: %v, want ErrStoreExists", err)
	}
	if _, err := Open(dir, Options{}); err != nil {
		t.Fatalf("open: %v", err)
	}
	for _, want := range []string{"format", "db", "pool"} {
		if _, err := os.Stat(filepath.Join(dir, want)); err != nil {
			t.Errorf("store lacks %s: %v", want, err)
		}
	}

	other := filepath.Join(root, "other")
	os.MkdirAll(other, 0o755)
	if _, err := Open(other, Options{}); !errors.Is(err, ErrNotStore) {
		t.Fatalf("open of a plain directory: %v, want ErrNotStore", err)
	}
	os.WriteFile(filepath.Join(other, "notes.txt"), []byte("x"), 0o644)
	if err := Init(other); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("init of a non-empty directory: %v", err)
	}
	os.WriteFile(filepath.Join(other, "format"), []byte("mephstore-store 99\n"), 0o644)
	if _, err := Open(other, Options{}); !errors.Is(err, ErrNotStore) || !strings.Contains(err.Error(), "99") {
		t.Fatalf("open of a future format: %v", err)
	}
}

func TestDefaultDir(t *testing.T) {
	env := map[string]string{"HOME": "/home/u", "XDG_DATA_HOME": ""}
	get := func(k string) string { return env[k] }
	if got := DefaultDir(get, 0); got != "/var/lib/mephstore" {
		t.Errorf("root: %s", got)
	}
	if got := DefaultDir(get, 1000); got != "/home/u/.local/share/mephstore" {
		t.Errorf("user: %s", got)
	}
	env["XDG_DATA_HOME"] = "/data"
	if got := DefaultDir(get, 1000); got != "/data/mephstore" {
		t.Errorf("user with XDG_DATA_HOME: %s", got)
	}
}

func TestIngestHashesLikeSHA256(t *testing.T) {
	s := newStore(t)
	for i, n := range []int{0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 3*chunkSize + 17, writebackEvery*2 + 5} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			b := randBytes(n, uint64(i))
			c, err := ingest(t, s, b, Unknown)
			if err != nil {
				t.Fatal(err)
			}
			if c.Digest != sha(b) || c.Size != int64(n) || !c.New {
				t.Fatalf("got %s %d new=%v, want %s %d new", c.Digest, c.Size, c.New, sha(b), n)
			}
			got, err := os.ReadFile(s.BlobPath(c.Digest))
			if err != nil || !bytes.Equal(got, b) {
				t.Fatalf("pool file differs from input (%v)", err)
			}
			fi, _ := os.Stat(s.BlobPath(c.Digest))
			if fi.Mode().Perm() != 0o444 {
				t.Errorf("blob mode %v, want read-only", fi.Mode())
			}
		})
	}
	if p := check(t, s, true); len(p) != 0 {
		t.Fatalf("fsck after ingests: %v", p)
	}
	if got := entries(t, s.ingestPath()); len(got) != 0 {
		t.Fatalf("temp files left: %v", got)
	}
}

func TestIngestSameBytesTwiceAddsNothing(t *testing.T) {
	s := newStore(t)
	b := randBytes(100_000, 7)
	first, err := ingest(t, s, b, Unknown)
	if err != nil {
		t.Fatal(err)
	}
	fi1, _ := os.Stat(s.BlobPath(first.Digest))
	second, err := ingest(t, s, b, Expect{Size: int64(len(b)), Digest: sha(b)})
	if err != nil {
		t.Fatal(err)
	}
	if second.New {
		t.Error("second ingest says new")
	}
	if !second.Ingested.Equal(first.Ingested) {
		t.Errorf("first-ingested time changed: %v then %v", first.Ingested, second.Ingested)
	}
	fi2, _ := os.Stat(s.BlobPath(first.Digest))
	if !os.SameFile(fi1, fi2) || !fi1.ModTime().Equal(fi2.ModTime()) {
		t.Error("pool file was rewritten")
	}
	if n := countRecords(t, s); n != 1 {
		t.Errorf("%d records, want 1", n)
	}
	if got := entries(t, filepath.Join(s.blobsPath(), first.Digest.Encoded()[:2])); len(got) != 1 {
		t.Errorf("pool directory holds %v", got)
	}
}

func TestIngestMismatchLeavesNothing(t *testing.T) {
	b := randBytes(3*chunkSize+5, 3)
	other := randBytes(10, 4)
	for _, tc := range []struct {
		name string
		exp  Expect
		want error
	}{
		{"size too small", Expect{Size: int64(len(b)) - 1}, ErrSizeMismatch},
		{"size too large", Expect{Size: int64(len(b)) + 1}, ErrSizeMismatch},
		{"size far too small (aborts early)", Expect{Size: 10}, ErrSizeMismatch},
		{"sha256", Expect{Size: -1, Digest: sha(other)}, ErrDigestMismatch},
		{"right size wrong sha256", Expect{Size: int64(len(b)), Digest: sha(other)}, ErrDigestMismatch},
		{"not a sha256", Expect{Size: -1, Digest: "md5:d41d8cd98f00b204e9800998ecf8427e"}, ErrBadDigest},
		{"right sha256 wrong md5", Expect{Size: int64(len(b)), Digest: sha(b), MD5: "d41d8cd98f00b204e9800998ecf8427e"}, ErrDigestMismatch},
		{"small, wrong md5", Expect{Size: -1, MD5: "d41d8cd98f00b204e9800998ecf8427e"}, ErrDigestMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			_, err := ingest(t, s, b, tc.exp)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if got := entries(t, s.ingestPath()); len(got) != 0 {
				t.Errorf("temp files left: %v", got)
			}
			if got := entries(t, s.blobsPath()); len(got) != 0 {
				t.Errorf("pool holds %v", got)
			}
			if n := countRecords(t, s); n != 0 {
				t.Errorf("%d records", n)
			}
		})
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, io.ErrClosedPipe
	}
	k := min(len(p), f.n)
	f.n -= k
	return k, nil
}

func TestIngestChecksMD5(t *testing.T) {
	b := randBytes(3*chunkSize+5, 3)
	s := newStore(t)
	m := md5.Sum(b)
	if _, err := ingest(t, s, b, Expect{Size: -1, MD5: hex.EncodeToString(m[:])}); err != nil {
		t.Fatal(err)
	}
	got, err := s.BlobMD5(context.Background(), sha(b))
	if err != nil || got != hex.EncodeToString(m[:]) {
		t.Fatalf("BlobMD5: %s %v", got, err)
	}
}

func TestStageReadErrorAndCancel(t *testing.T) {
	s := newStore(t)
	_, err := s.Stage(context.Background(), &failingReader{n: 3 * chunkSize}, Unknown, nil)
	if !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("read error: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = s.Stage(ctx, bytes.NewReader(randBytes(3*chunkSize, 1)), Unknown, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if got := entries(t, s.ingestPath()); len(got) != 0 {
		t.Errorf("temp files left: %v", got)
	}
}

func TestRecoveryRemovesOnlyStaleTempFiles(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	stale := filepath.Join(s.ingestPath(), "dead.part")
	os.WriteFile(stale, []byte("half"), 0o644)
	// Another process's (pid 1 is never this test's), its flock gone.
	staleOther := filepath.Join(s.ingestPath(), "1-0123456789abcdef.part")
	os.WriteFile(staleOther, []byte("half"), 0o644)
	// This process's own, unlocked: recovery passes over it unopened.
	own := filepath.Join(s.ingestPath(), s.tempPrefix+"0123456789abcdef.part")
	os.WriteFile(own, []byte("mine"), 0o644)
	// A live named temp file (a Temp's, a blob writer's), its flock held.
	livePath, liveFile, err := s.createTempFile()
	if err != nil {
		t.Fatal(err)
	}
	defer liveFile.Close()
	// A staged blob not yet committed: unnamed, nothing recovery can see.
	staged, err := s.Stage(ctx, bytes.NewReader([]byte("live")), Unknown, nil)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := s.Writer(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	if ss.Recovered.TempFiles != 2 {
		t.Errorf("removed %d temp files, want 2", ss.Recovered.TempFiles)
	}
	for _, p := range []string{stale, staleOther} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("stale temp file %s survived", filepath.Base(p))
		}
	}
	if _, err := os.Stat(own); err != nil {
		t.Errorf("this process's temp file removed: %v", err)
	}
	if !strings.HasPrefix(filepath.Base(livePath), s.tempPrefix) {
		t.Errorf("temp file %s lacks this process's prefix %q", filepath.Base(livePath), s.tempPrefix)
	}
	if _, err := os.Stat(livePath); err != nil {
		t.Errorf("live temp file removed: %v", err)
	}
	out, err := ss.Commit(context.Background(), staged)
	ss.Close()
	if err != nil || out[0].Digest != sha([]byte("live")) {
		t.Fatalf("commit of the live ingest: %v", err)
	}
}

// crashAfterPlace does what Commit does up to placing the file in the
// pool, then stops as a crash would: intent recorded, file in place, no
// record.
func crashAfterPlace(t *testing.T, s *Store, b []byte, ghosts ...[]byte) *Staged {
	t.Helper()
	ctx := context.Background()
	st, err := s.Stage(ctx, bytes.NewReader(b), Unknown, nil)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := s.Writer(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	batch := []*Staged{st}
	for _, g := range ghosts { // in the batch, but never placed
		batch = append(batch, &Staged{Digest: sha(g)})
	}
	if err := ss.update(func(txn Txn) error { return txn.Set(intentKey(), encodeIntent(batch)) }); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(s.BlobPath(st.Digest)), 0o755)
	if placed, err := st.place(s.BlobPath(st.Digest)); err != nil || !placed {
		t.Fatalf("place: %v %v", placed, err)
	}
	st.Discard()
	ss.Close()
	return st
}

func TestRecoveryFinishesInterruptedCommit(t *testing.T) {
	s := newStore(t)
	b := randBytes(5000, 11)
	st := crashAfterPlace(t, s, b, []byte("never placed"))

	ss, err := s.Writer(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	if r := ss.Recovered; r.Intents != 2 || r.Adopted != 1 {
		t.Errorf("recovery %+v, want 2 intents, 1 adopted", r)
	}
	rec, err := ss.Stat(st.Digest)
	ss.Close()
	if err != nil || rec.Size != int64(len(b)) {
		t.Fatalf("record after recovery: %+v %v", rec, err)
	}
	if p := check(t, s, true); len(p) != 0 {
		t.Fatalf("fsck: %v", p)
	}
}

func TestRecoveryRefusesCorruptFile(t *testing.T) {
	s := newStore(t)
	st := crashAfterPlace(t, s, randBytes(5000, 12))
	p := s.BlobPath(st.Digest)
	os.Chmod(p, 0o644)
	os.WriteFile(p, []byte("garbage"), 0o444)
	probs := check(t, s, false) // Check opens a writer, so recovery runs first
	if len(probs) != 1 || probs[0].Kind != ProblemUnrecorded || probs[0].Digest != st.Digest {
		t.Fatalf("problems %v, want one unrecorded %s", probs, st.Digest)
	}
}

func TestSecondWriterWaitsThenNamesHolder(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	w1, err := s.Writer(ctx, "publish daily")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = s.Writer(ctx, "ingest")
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second writer: %v, want ErrLocked", err)
	}
	if waited := time.Since(start); waited < s.wait {
		t.Errorf("gave up after %v, before the %v wait", waited, s.wait)
	}
	host, _ := os.Hostname()
	for _, want := range []string{"locked by pid " + strconv.Itoa(os.Getpid()), "on host " + host, "(publish daily)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// A reader does not take the writer lock, but waits for the database
	// while a writer session has it open.
	if _, err := s.Reader(ctx); !errors.Is(err, ErrLocked) {
		t.Fatalf("reader during a writer session: %v", err)
	}
	w1.Close()
	r1, err := s.Reader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := s.Reader(ctx)
	if err != nil {
		t.Fatalf("second reader: %v", err)
	}
	if _, err := s.Writer(ctx, "ingest"); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "reader") {
		t.Fatalf("writer while readers list: %v", err)
	}
	if err := r1.Update(func(Txn) error { return nil }); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("update in a reader session: %v", err)
	}
	r1.Close()
	r2.Close()
	w2, err := s.Writer(ctx, "ingest")
	if err != nil {
		t.Fatalf("writer after everyone left: %v", err)
	}
	w2.Close()
}

func TestResolve(t *testing.T) {
	s := newStore(t)
	c, err := ingest(t, s, []byte("hello"), Unknown)
	if err != nil {
		t.Fatal(err)
	}
	hex := c.Digest.Encoded()
	for _, ref := range []string{string(c.Digest), hex, hex[:6], "sha256:" + hex[:10]} {
		if d, err := s.Resolve(ref); err != nil || d != c.Digest {
			t.Errorf("Resolve(%q) = %s, %v", ref, d, err)
		}
	}
	for ref, want := range map[string]error{hex[:5]: ErrBadDigest, "zzzzzzzz": ErrBadDigest, "000000": ErrBlobNotFound, strings.Repeat("0", 64): ErrBlobNotFound} {
		if _, err := s.Resolve(ref); !errors.Is(err, want) {
			t.Errorf("Resolve(%q): %v, want %v", ref, err, want)
		}
	}
}

func TestOpenBlobDetectsCorruption(t *testing.T) {
	s := newStore(t)
	c, _ := ingest(t, s, randBytes(10_000, 5), Unknown)
	flipByte(t, s.BlobPath(c.Digest), 1234)
	r, err := s.OpenBlob(c.Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := io.Copy(io.Discard, r); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("reading a corrupt blob: %v, want ErrCorrupt", err)
	}
}

func flipByte(t testing.TB, p string, off int64) {
	t.Helper()
	os.Chmod(p, 0o644)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	f.ReadAt(b[:], off)
	b[0] ^= 0xff
	f.WriteAt(b[:], off)
	f.Close()
	os.Chmod(p, 0o444)
}

// A process killed while badger creates a log file leaves it empty; the
// next writer must still open the store (found by the SIGKILL test).
func TestEmptyValueLogFromCrashIsDropped(t *testing.T) {
	s := newStore(t)
	if _, err := ingest(t, s, []byte("before"), Unknown); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"000099.vlog", "00099.mem"} {
		if err := os.WriteFile(filepath.Join(s.Dir(), "db", name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := ingest(t, s, []byte("after"), Unknown)
	if err != nil {
		t.Fatalf("ingest after a crash in value-log creation: %v", err)
	}
	if n := countRecords(t, s); n != 2 || c.Digest != sha([]byte("after")) {
		t.Fatalf("%d records after recovery", n)
	}
}

// Regular files take the copy_file_range path; it must give the same bytes
// and digests as the pipeline, honour the size limit, and leave the source
// offset at the end.
func TestStageFromFile(t *testing.T) {
	s := newStore(t)
	dir := t.TempDir()
	for i, n := range []int{0, 1, copyRangeSize - 1, copyRangeSize + chunkSize + 3} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			b := randBytes(n, uint64(50+i))
			p := filepath.Join(dir, strconv.Itoa(n))
			os.WriteFile(p, b, 0o644)
			f, _ := os.Open(p)
			defer f.Close()
			st, err := s.Stage(context.Background(), f, Expect{Size: int64(n), Digest: sha(b)}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Discard()
			got, _ := io.ReadAll(io.NewSectionReader(st.f, 0, st.Size))
			if st.Digest != sha(b) || st.Size != int64(n) || !bytes.Equal(got, b) {
				t.Fatalf("staged %s %d", st.Digest, st.Size)
			}
			if off, _ := f.Seek(0, io.SeekCurrent); off != int64(n) {
				t.Errorf("source offset %d after stage, want %d", off, n)
			}
		})
	}
	b := randBytes(3*copyRangeSize, 60)
	p := filepath.Join(dir, "big")
	os.WriteFile(p, b, 0o644)
	f, _ := os.Open(p)
	defer f.Close()
	if _, err := s.Stage(context.Background(), f, Expect{Size: 100}, nil); !errors.Is(err, ErrSizeMismatch) {
		t.Fatalf("oversized file: %v", err)
	}
	// A file read from an offset ingests the rest of it.
	f.Seek(int64(len(b)-10), io.SeekStart)
	st, err := s.Stage(context.Background(), f, Unknown, nil)
	if err != nil || st.Digest != sha(b[len(b)-10:]) {
		t.Fatalf("stage from offset: %v", err)
	}
	st.Discard()
	if got := entries(t, s.ingestPath()); len(got) != 0 {
		t.Errorf("temp files left: %v", got)
	}
}

func TestPutBytesBatchesAndDedupes(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	var blobs [][]byte
	for i := range 20 {
		blobs = append(blobs, []byte("metadata "+strconv.Itoa(i%15)))
	}
	ss, err := s.Writer(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	ds, err := ss.PutBytes(ctx, blobs...)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ss.PutBytes(ctx, blobs[:3]...)
	ss.Close()
	if err != nil || again[0] != ds[0] {
		t.Fatalf("second put: %v", err)
	}
	for i, b := range blobs {
		if ds[i] != sha(b) {
			t.Fatalf("digest %d", i)
		}
		got, err := s.ReadBlob(ds[i])
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("read back %d: %v", i, err)
		}
	}
	if n := countRecords(t, s); n != 15 {
		t.Fatalf("%d records, want 15 distinct blobs", n)
	}
	if p := check(t, s, true); len(p) != 0 {
		t.Fatal(p)
	}
}

// A temp file is never visible unlocked: recovery, run by a writer session
// while an ingest is creating its temp file, must never remove it (a
// parallel sync lost a build's staged file to this race once under load;
// the window was two system calls wide, so this guards rather than
// reliably reproduces it).
func TestTempFilesAreBornLocked(t *testing.T) {
	s := newStore(t)
	s.wait = 30 * time.Second // the writers take turns
	// One recovering writer session races each ingest. (A goroutine that
	// opened sessions back to back could starve the ingests of the lock on
	// a busy machine: flock is not fair.)
	turn := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		var first error
		for range turn {
			ss, err := s.Writer(context.Background(), "recovery")
			if err == nil {
				err = ss.Close()
			}
			if first == nil {
				first = err
			}
		}
		done <- first
	}()
	for i := range 60 {
		turn <- struct{}{}
		b := randBytes(100, uint64(i)+50)
		if _, err := ingest(t, s, b, Expect{Size: int64(len(b)), Digest: sha(b)}); err != nil {
			close(turn)
			t.Fatalf("ingest %d beside recovering writers: %v", i, err)
		}
	}
	close(turn)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// badger starts a value log file at every open and keeps each that holds
// a value: records of a kilobyte or more (intents, lease refs) once left
// one file per writer session, and every open mapped them all, so opening
// the store grew with its history. Values now stay in the tree; the files
// in the database directory must stay bounded however many sessions ran.
func TestValueLogFilesDoNotGrowWithSessions(t *testing.T) {
	s := newStore(t)
	big := bytes.Repeat([]byte("r"), 8<<10)
	writeInSessions(t, s, 40, big)
	vlogs, _ := filepath.Glob(filepath.Join(s.Dir(), "db", "*.vlog"))
	if len(vlogs) > 2 {
		t.Fatalf("%d value log files after 40 writer sessions", len(vlogs))
	}
	checkRecords(t, s, 40, big)
}

// writeInSessions runs n writer sessions, each setting one record
// test/<i>, to val or, if val is nil, to its own key.
func writeInSessions(t *testing.T, s *Store, n int, val []byte) {
	t.Helper()
	for i := range n {
		ss, err := s.Writer(context.Background(), "test")
		if err != nil {
			t.Fatal(err)
		}
		key := []byte(fmt.Sprintf("test/%d", i))
		v := val
		if v == nil {
			v = key
		}
		if err := ss.Update(func(txn Txn) error { return txn.Set(key, v) }); err != nil {
			t.Fatal(err)
		}
		if err := ss.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// checkRecords fails unless the n records of writeInSessions(val) are
// there; it returns the reader's count of level-0 tables.
func checkRecords(t *testing.T, s *Store, n int, val []byte) int {
	t.Helper()
	ss, err := s.Reader(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	for i := range n {
		key := []byte(fmt.Sprintf("test/%d", i))
		want := val
		if want == nil {
			want = key
		}
		if err := ss.View(func(txn Txn) error {
			v, err := txn.Get(key)
			if err == nil && !bytes.Equal(v, want) {
				err = fmt.Errorf("record %s changed", key)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ss.MergeRecords(1); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("MergeRecords on a reader: %v, want ErrReadOnly", err)
	}
	return ss.LevelZeroTables()
}

// Every writer session leaves a level-0 table, and badger's compactors do
// not start within a session this short: the tables must not pile up
// without bound however many sessions ran.
func TestLevelZeroTablesStayBounded(t *testing.T) {
	s := newStore(t)
	n := maxLevelZeroTables + 8
	writeInSessions(t, s, n, nil)
	if got := checkRecords(t, s, n, nil); got > maxLevelZeroTables {
		t.Fatalf("%d level-0 tables after %d writer sessions, want at most %d", got, n, maxLevelZeroTables)
	}
}

func TestMergeRecordsMergesLevelZero(t *testing.T) {
	s := newStore(t)
	writeInSessions(t, s, 12, nil)
	if got := checkRecords(t, s, 12, nil); got < 12 {
		t.Fatalf("%d level-0 tables after 12 writer sessions: the test no longer makes any", got)
	}
	ss, err := s.Writer(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := ss.MergeRecords(2); err != nil {
		t.Fatal(err)
	}
	if err := ss.Close(); err != nil {
		t.Fatal(err)
	}
	if got := checkRecords(t, s, 12, nil); got > 0 {
		t.Fatalf("%d level-0 tables after MergeRecords", got)
	}
}

// There are no background compactors (tables merge in MergeRecords): a
// session that writes more than a memtable holds flushes level-0 tables
// while it runs, and those flushes must not wait for a compaction that
// nothing would ever run, however many level-0 tables there are.
func TestLargeWriteAfterManySessionsDoesNotStall(t *testing.T) {
	s := newStore(t)
	writeInSessions(t, s, 12, nil)
	done := make(chan error, 1)
	go func() {
		ss, err := s.Writer(context.Background(), "test")
		if err != nil {
			done <- err
			return
		}
		defer ss.Close()
		wb, err := ss.NewWriteBatch()
		if err != nil {
			done <- err
			return
		}
		val := bytes.Repeat([]byte("v"), 1<<10)
		for i := range 24 << 10 { // 24 MiB: several memtables
			if err := wb.Set([]byte(fmt.Sprintf("big/%08d", i)), val); err != nil {
				done <- err
				return
			}
		}
		if err := wb.Flush(); err != nil {
			done <- err
			return
		}
		done <- ss.Close()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("a 24 MiB write after 12 sessions did not finish in 2 minutes: a flush is waiting for a compaction")
	}
	if got := checkRecords(t, s, 12, nil); got <= 12 {
		t.Fatalf("%d level-0 tables: the large write flushed none while it ran (the test no longer tests a stall)", got)
	}
}

// A staged blob has no name until Commit links it into the pool: the
// staging directory stays empty while it waits, a Discard leaves nothing,
// and the committed file is the bytes, read-only. (A crash in between
// therefore leaves nothing for recovery.)
func TestStagedBlobIsUnnamedUntilCommit(t *testing.T) {
	s := newStore(t)
	st, dropped, b := stageTwo(t, s)
	if got := entries(t, s.ingestPath()); len(got) != 0 {
		t.Errorf("staged blobs have names in the staging directory: %v", got)
	}
	if _, err := os.Stat(s.BlobPath(st.Digest)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("staged blob in the pool before its commit: %v", err)
	}
	if err := dropped.Discard(); err != nil {
		t.Fatal(err)
	}
	commitAndCheck(t, s, st, b)
	if _, err := os.Stat(s.BlobPath(dropped.Digest)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("discarded blob in the pool: %v", err)
	}
}

// stageTwo stages two small blobs without committing them: st (its bytes
// b) and dropped.
func stageTwo(t *testing.T, s *Store) (st, dropped *Staged, b []byte) {
	t.Helper()
	ctx := context.Background()
	b = []byte("a product document")
	st, err := s.StageUnsynced(ctx, bytes.NewReader(b), Unknown, nil)
	if err != nil {
		t.Fatal(err)
	}
	dropped, err = s.Stage(ctx, bytes.NewReader([]byte("dropped")), Unknown, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st, dropped, b
}

// commitAndCheck commits st in a writer session and checks that the pool
// file is b, read-only, and that the staging directory is empty after.
func commitAndCheck(t *testing.T, s *Store, st *Staged, b []byte) {
	t.Helper()
	ctx := context.Background()
	ss, err := s.Writer(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	out, err := ss.Commit(ctx, st)
	ss.Close()
	if err != nil || !out[0].New {
		t.Fatalf("commit: %+v %v", out, err)
	}
	fi, err := os.Stat(s.BlobPath(st.Digest))
	if err != nil || fi.Mode().Perm() != 0o444 {
		t.Fatalf("pool file: %v %v", fi, err)
	}
	if got, _ := os.ReadFile(s.BlobPath(st.Digest)); !bytes.Equal(got, b) {
		t.Errorf("pool file holds %q", got)
	}
	if got := entries(t, s.ingestPath()); len(got) != 0 {
		t.Errorf("staging directory after the commit: %v", got)
	}
}

// On a file system without O_TMPFILE a staged blob is a named temp file in
// pool/.ingest, flocked from its creation: another process's recovery
// leaves it alone while it is live, a Discard removes it, and its Commit
// moves it into the pool.
func TestStagingWithoutTmpfile(t *testing.T) {
	s := newStore(t)
	s.noTmpfile = true
	st, dropped, b := stageTwo(t, s)
	names := entries(t, s.ingestPath())
	if len(names) != 2 {
		t.Fatalf("staging directory holds %v, want two named temp files", names)
	}
	for _, n := range names {
		if !strings.HasPrefix(n, s.tempPrefix) {
			t.Errorf("temp file %s lacks this process's prefix %q", n, s.tempPrefix)
		}
		f, err := os.Open(filepath.Join(s.ingestPath(), n))
		if err != nil {
			t.Fatal(err)
		}
		got, err := flock.TryExclusive(f)
		f.Close()
		if err != nil || got {
			t.Errorf("temp file %s is not flocked (lock taken: %v, %v)", n, got, err)
		}
	}
	// Another process's writer session: its recovery opens our files
	// (they lack its prefix) and finds them locked.
	other, err := Open(s.dir, Options{Wait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	other.tempPrefix = "999999999-"
	ss, err := other.Writer(context.Background(), "other")
	if err != nil {
		t.Fatal(err)
	}
	ss.Close()
	if ss.Recovered.TempFiles != 0 || len(entries(t, s.ingestPath())) != 2 {
		t.Fatalf("another process's recovery removed %d live temp files", ss.Recovered.TempFiles)
	}
	if err := dropped.Discard(); err != nil {
		t.Fatal(err)
	}
	if got := entries(t, s.ingestPath()); len(got) != 1 {
		t.Errorf("after a discard the staging directory holds %v", got)
	}
	commitAndCheck(t, s, st, b)
}
