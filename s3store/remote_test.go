package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mephstore/mephstore/internal/s3api"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/cas/recordtest"
	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/internal/s3test"
)

// testStore makes a store on a fresh bucket of a real server and returns
// its config (to open it again from another cache).
func testStore(t *testing.T) (*s3test.Server, Config) {
	t.Helper()
	srv, b := testBucket(t, "store")
	cfg := b.Config()
	if _, err := InitStore(context.Background(), cfg, false); err != nil {
		t.Fatal(err)
	}
	return srv, cfg
}

// openCache opens the store of cfg with its own cache directory.
func openCache(t *testing.T, cfg Config, cache string) *cas.Store {
	t.Helper()
	r, err := OpenStore(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := cas.OpenRemote(cache, r, cas.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The records of a store on a bucket pass the record-store contract.
func TestStoreRecordsConformance(t *testing.T) {
	_, cfg := testStore(t)
	n := 0
	recordtest.Run(t, func(t *testing.T) cas.Records {
		n++
		c := cfg
		c.Prefix = cfg.Prefix + "-" + string(rune('a'+n)) + "/"
		if _, err := InitStore(context.Background(), c, false); err != nil {
			t.Fatal(err)
		}
		ss, err := openCache(t, c, t.TempDir()).Writer(context.Background(), "conformance")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ss.Close() })
		return ss
	})
}

func TestInitStoreTwiceAndMissing(t *testing.T) {
	srv, cfg := testStore(t)
	if _, err := InitStore(context.Background(), cfg, false); !errors.Is(err, cas.ErrStoreExists) {
		t.Fatalf("second init: %v", err)
	}
	other := cfg
	other.Prefix = "nothing-here/"
	if _, err := OpenStore(context.Background(), other); !errors.Is(err, ErrNoStore) {
		t.Fatalf("open of an empty prefix: %v", err)
	}
	missing := cfg
	missing.Bucket = "no-such-bucket"
	if _, err := InitStore(context.Background(), missing, false); !errors.Is(err, ErrNoBucket) {
		t.Fatalf("init in a missing bucket: %v", err)
	}
	if _, err := InitStore(context.Background(), missing, true); err != nil {
		t.Fatalf("init --create-bucket: %v", err)
	}
	bad := cfg
	bad.Creds = &s3api.Credentials{AccessKey: s3test.AccessKey, SecretKey: "wrong-secret"}
	_, err := OpenStore(context.Background(), bad)
	if !errors.Is(err, ErrAccess) || !strings.Contains(err.Error(), srv.Endpoint()) || !strings.Contains(err.Error(), cfg.Bucket) {
		t.Fatalf("wrong credentials: %v", err)
	}
}

// What one machine commits, another sees; a cache that is lost is
// rebuilt from the log, one of another store is dropped.
func TestTwoCachesShareOneStore(t *testing.T) {
	_, cfg := testStore(t)
	ctx := context.Background()
	a := openCache(t, cfg, t.TempDir())
	bDir := t.TempDir()
	b := openCache(t, cfg, bDir)
	data := []byte("shared between two machines")
	d := ingest(t, a, data)
	got, err := b.ReadBlob(d)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("other cache reads %q, %v", got, err)
	}
	rs, err := b.Reader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rs.Stat(d); err != nil {
		t.Fatalf("the other cache has no record: %v", err)
	}
	rs.Close()
	// Lose b's cache entirely: it comes back from the log.
	if err := os.RemoveAll(bDir); err != nil {
		t.Fatal(err)
	}
	b = openCache(t, cfg, bDir)
	if _, err := b.Resolve(d.Encoded()[:10]); err != nil {
		t.Fatalf("rebuilt cache: %v", err)
	}
	// The same directory made the cache of another store: dropped.
	_, cfg2 := testStore(t)
	c := openCache(t, cfg2, bDir)
	if _, err := c.Resolve(string(d)); !errors.Is(err, cas.ErrBlobNotFound) {
		t.Fatalf("a cache of another store kept its records: %v", err)
	}
}

func ingest(t *testing.T, s *cas.Store, data []byte) digest.Digest {
	t.Helper()
	ctx := context.Background()
	st, err := s.Stage(ctx, bytes.NewReader(data), cas.Unknown, nil)
	if err != nil {
		t.Fatal(err)
	}
	ss, err := s.Writer(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	if _, err := ss.Commit(ctx, st); err != nil {
		t.Fatal(err)
	}
	return st.Digest
}

// A writer that lost the race for a log entry (its lock lapsed and
// another writer committed) fails, and the cache keeps nothing of it.
func TestLogConflictLosesNoUpdate(t *testing.T) {
	_, cfg := testStore(t)
	ctx := context.Background()
	s := openCache(t, cfg, t.TempDir())
	ss, err := s.Writer(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	if err := ss.SetSetting("a", "1"); err != nil {
		t.Fatal(err)
	}
	// Another writer commits entry 2 behind this one's back.
	r, err := OpenStore(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Append(ctx, 2, []byte{1}); err != nil {
		t.Fatal(err)
	}
	err = ss.SetSetting("b", "2")
	if !errors.Is(err, cas.ErrLogConflict) {
		t.Fatalf("write over another's entry: %v", err)
	}
	if v, _ := ss.Setting("b"); v != "" {
		t.Fatalf("the cache kept a write the log refused: %q", v)
	}
	if err := ss.SetSetting("c", "3"); !errors.Is(err, cas.ErrLogConflict) {
		t.Fatalf("a session that lost the log wrote on: %v", err)
	}
}

// fsck of a store on a bucket: clean, then an object whose bytes do not
// match its key (--deep), a record whose object is gone, and an old object
// without a record.
func TestCheckBucketPool(t *testing.T) {
	_, cfg := testStore(t)
	ctx := context.Background()
	s := openCache(t, cfg, t.TempDir())
	good := ingest(t, s, []byte("good bytes"))
	bad := ingest(t, s, []byte("bytes to be corrupted"))
	gone := ingest(t, s, []byte("bytes to be lost"))
	rep, err := s.Check(ctx, cas.CheckOptions{Deep: true})
	if err != nil || len(rep.Problems) != 0 || rep.Blobs != 3 || rep.Hashed != 3 {
		t.Fatalf("clean store: %+v, %v", rep, err)
	}
	r := s.Remote().(*Store)
	if _, err := r.Bucket().Put(ctx, BlobKey(bad), []byte("other bytes, same size"), Cond{}); err != nil {
		t.Fatal(err)
	}
	if err := r.Bucket().Delete(ctx, BlobKey(gone)); err != nil {
		t.Fatal(err)
	}
	rep, err = s.Check(ctx, cas.CheckOptions{Deep: true})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[digest.Digest]string{}
	for _, p := range rep.Problems {
		kinds[p.Digest] = p.Kind
	}
	if kinds[bad] != cas.ProblemSize && kinds[bad] != cas.ProblemCorrupt || kinds[gone] != cas.ProblemMissing || kinds[good] != "" {
		t.Fatalf("problems: %v", rep.Problems)
	}
	// Same size, other bytes: only --deep sees it.
	same := ingest(t, s, []byte("0123456789"))
	if _, err := r.Bucket().Put(ctx, BlobKey(same), []byte("9876543210"), Cond{}); err != nil {
		t.Fatal(err)
	}
	rep, err = s.Check(ctx, cas.CheckOptions{Deep: true})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range rep.Problems {
		found = found || p.Digest == same && p.Kind == cas.ProblemCorrupt
	}
	if !found {
		t.Fatalf("--deep missed a corrupt object: %v", rep.Problems)
	}
}

// The clock of a store on a bucket is the server's (from its Date
// headers), not this machine's: a lease made here expires by the server's
// time, so machines whose clocks differ agree on it.
func TestStoreClockIsTheServers(t *testing.T) {
	srv, cfg := testStore(t)
	const ahead = 2 * time.Hour
	real, _ := url.Parse(srv.Endpoint())
	rp := httputil.NewSingleHostReverseProxy(real)
	rp.ModifyResponse = func(r *http.Response) error {
		r.Header.Set("Date", time.Now().Add(ahead).UTC().Format(http.TimeFormat))
		return nil
	}
	front := httptest.NewServer(rp)
	defer front.Close()
	cfg.Endpoint = front.URL
	s := openCache(t, cfg, t.TempDir())
	checkSweep(t, s)
	ss, err := s.Writer(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	l, err := ss.CreateLease("build", time.Minute, nil)
	ss.Close()
	if err != nil {
		t.Fatal(err)
	}
	if skew := time.Until(l.Created); skew < ahead-time.Minute || skew > ahead+time.Minute {
		t.Fatalf("lease made at %v, %v from this machine's clock; the server is %v ahead", l.Created, skew, ahead)
	}
}

// checkSweep (on a store whose server clock runs two hours ahead, so
// what is written now is two hours old): gc's sweep of the bucket pool
// removes objects no record names and unfinished multipart uploads, and
// leaves recorded blobs; a store whose clock is right leaves young ones.
func checkSweep(t *testing.T, s *cas.Store) {
	t.Helper()
	ctx := context.Background()
	r := s.Remote().(*Store)
	kept := ingest(t, s, []byte("recorded"))
	stray := digest.FromString("uploaded, never committed")
	if _, err := r.Bucket().Put(ctx, BlobKey(stray), []byte("uploaded, never committed"), Cond{}); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), PartSize+1)
	w, err := r.pool.CreateExpecting(ctx, cas.Expect{Digest: digest.FromBytes(big), Size: int64(len(big))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(big); err != nil { // one part sent, never completed
		t.Fatal(err)
	}
	dry, err := s.SweepUploads(ctx, 0, true)
	if err != nil || dry.Objects != 1 || dry.Aborted != 0 {
		t.Fatalf("dry run: %+v %v", dry, err)
	}
	if _, err := r.pool.Stat(ctx, stray); err != nil {
		t.Fatalf("a dry run removed: %v", err)
	}
	sw, err := s.SweepUploads(ctx, 0, false)
	if err != nil || sw.Objects != 1 || sw.Aborted != 1 {
		t.Fatalf("sweep: %+v %v", sw, err)
	}
	if _, err := r.pool.Stat(ctx, stray); !errors.Is(err, cas.ErrBlobNotFound) {
		t.Fatalf("the unrecorded object is still there: %v", err)
	}
	if _, err := r.pool.Stat(ctx, kept); err != nil {
		t.Fatalf("the sweep removed a recorded blob: %v", err)
	}
}

// Objects younger than an hour may be uploads another machine is about
// to commit: the sweep leaves them.
func TestSweepLeavesYoungUploads(t *testing.T) {
	_, cfg := testStore(t)
	ctx := context.Background()
	s := openCache(t, cfg, t.TempDir())
	r := s.Remote().(*Store)
	young := digest.FromString("young")
	if _, err := r.Bucket().Put(ctx, BlobKey(young), []byte("young"), Cond{}); err != nil {
		t.Fatal(err)
	}
	if sw, err := s.SweepUploads(ctx, 0, false); err != nil || sw.Objects != 0 {
		t.Fatalf("sweep: %+v %v", sw, err)
	}
	if _, err := r.pool.Stat(ctx, young); err != nil {
		t.Fatal(err)
	}
}

// A Date header within its one-second resolution of this machine's clock
// leaves the clock alone (two machines with right clocks then agree to
// the millisecond); beyond it, the server's time is taken, mid-second.
func TestClockSkew(t *testing.T) {
	for _, tc := range []struct{ seen, want time.Duration }{
		{0, 0},
		{-999 * time.Millisecond, 0}, // truncated to the second, read late
		{-1900 * time.Millisecond, 0},
		{900 * time.Millisecond, 0},
		{2 * time.Hour, 2*time.Hour + 500*time.Millisecond},
		{-3 * time.Second, -2500 * time.Millisecond},
	} {
		if got := clockSkew(tc.seen); got != tc.want {
			t.Errorf("clockSkew(%v) = %v, want %v", tc.seen, got, tc.want)
		}
	}
}

// A writer that crosses a multiple of the checkpoint interval leaves a
// checkpoint; a new cache loads the newest and replays only the entries
// after it (the ones before are made unreadable to prove it), and ends
// with every record, deletes included.
func TestCheckpointBoundsCacheRebuild(t *testing.T) {
	_, cfg := testStore(t)
	ctx := context.Background()
	r, err := OpenStore(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := cas.OpenRemote(t.TempDir(), r, cas.Options{CheckpointEvery: 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 23 { // a session each: 24 entries (the 13th session makes two)
		if err := s.WithWriter(ctx, "test", func(ss *cas.Session) error {
			if err := ss.SetSetting(fmt.Sprintf("k%02d", i), "v"); err != nil {
				return err
			}
			if i == 12 {
				return ss.Update(func(txn cas.Txn) error { return txn.Delete([]byte("ck03")) })
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	seq, rc, err := r.LatestCheckpoint(ctx)
	if err != nil || rc == nil {
		t.Fatalf("no checkpoint: %v", err)
	}
	rc.Close()
	if seq != 20 {
		t.Fatalf("newest checkpoint at %d, want 20", seq)
	}
	for n := uint64(1); n <= seq; n++ { // what a checkpoint covers is never read again
		if err := r.Bucket().Delete(ctx, logKey(n)); err != nil {
			t.Fatal(err)
		}
	}
	fresh, err := cas.OpenRemote(t.TempDir(), r, cas.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := fresh.ReadSettings(ctx, "k00", "k03", "k12", "k22")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"v", "", "v", "v"}; !slices.Equal(got, want) {
		t.Fatalf("settings after a rebuild from the checkpoint at %d: %q, want %q", seq, got, want)
	}
}
