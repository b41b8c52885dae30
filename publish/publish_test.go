package publish

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/catalog"
	"github.com/mephstore/mephstore/internal/fetch"
	"github.com/mephstore/mephstore/internal/pgp"
	"github.com/mephstore/mephstore/internal/testcheck"
	"github.com/mephstore/mephstore/internal/testtree"
	"github.com/mephstore/mephstore/snapshot"
)

var ctx = context.Background()

func TestMain(m *testing.M) {
	code := m.Run()
	testtree.Cleanup()
	os.Exit(code)
}

type fixture struct {
	r       *snapshot.Repo
	root    string
	signer  *pgp.Signer
	keyring string
}

func newFixture(t *testing.T, versions string, streams ...string) *fixture {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	if err := cas.Init(dir); err != nil {
		t.Fatal(err)
	}
	s, err := cas.Open(dir, cas.Options{Wait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r := snapshot.New(s)
	for _, st := range streams {
		if _, err := r.CreateStream(ctx, st, ""); err != nil {
			t.Fatal(err)
		}
	}
	tree := testtree.Make(t, nil, "--versions", versions)
	if _, err := r.Insert(ctx, tree, streams[0], snapshot.InsertOptions{Client: &fetch.Client{}}); err != nil {
		t.Fatal(err)
	}
	signer, err := pgp.GenerateKey("test", "t@example.invalid")
	if err != nil {
		t.Fatal(err)
	}
	var kr bytes.Buffer
	signer.WritePublic(&kr, false)
	f := &fixture{r: r, root: filepath.Join(t.TempDir(), "pub"), signer: signer, keyring: filepath.Join(t.TempDir(), "keyring.gpg")}
	os.WriteFile(f.keyring, kr.Bytes(), 0o644)
	return f
}

func (f *fixture) publish(t *testing.T, stream string, signed bool) *Result {
	t.Helper()
	o := Options{Root: f.root}
	if signed {
		o.Signer = f.signer
	}
	res, err := Publish(ctx, f.r, stream, o)
	if err != nil {
		t.Fatalf("publish %s: %v", stream, err)
	}
	return res
}

// ssValidate runs the shared validator on a published stream.
func ssValidate(t *testing.T, target, keyring string, args ...string) {
	t.Helper()
	testcheck.Validate(t, target, keyring, args...)
}

func counts(t *testing.T, r *snapshot.Repo, stream string) snapshot.Counts {
	st, err := r.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := r.Doc(st.Head)
	return d.Counts()
}

func mtimes(t *testing.T, root string) map[string]time.Time {
	out := map[string]time.Time{}
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			out[p] = fi.ModTime()
		}
		return nil
	})
	return out
}

func TestPublishedTreeValidates(t *testing.T) {
	f := newFixture(t, "3", "daily", "stable")
	res := f.publish(t, "daily", true)
	c := counts(t, f.r, "daily")
	ssValidate(t, filepath.Join(f.root, "daily"), f.keyring, "--expect-products", strconv.Itoa(c.Products), "--expect-items", strconv.Itoa(c.Items))
	if res.DataNew != 24 || res.Unchanged {
		t.Fatalf("first publish: %+v", res)
	}
	// Republishing the unchanged head writes nothing.
	before := mtimes(t, f.root)
	if res := f.publish(t, "daily", true); !res.Unchanged {
		t.Fatalf("second publish: %+v", res)
	}
	if after := mtimes(t, f.root); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatal("an unchanged publish touched files")
	}
	// An index that is not the one written (a root put back from an
	// older copy, an edit by hand) is published again, whole.
	index := filepath.Join(f.root, Layout{}.Index("daily"))
	good, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(index, []byte(`{"format": "index:1.0", "index": {}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := f.publish(t, "daily", true); res.Unchanged || res.DataNew != 0 {
		t.Fatalf("publish over a changed index: %+v; want it written again, no data added", res)
	}
	if got, _ := os.ReadFile(index); !bytes.Equal(got, good) {
		t.Fatal("the index was not written again as it was")
	}
	ssValidate(t, filepath.Join(f.root, "daily"), f.keyring, "--expect-items", strconv.Itoa(c.Items))
	if res := f.publish(t, "daily", true); !res.Unchanged {
		t.Fatalf("publish after the repair: %+v, want unchanged", res)
	}
	// Promote, then publish stable: no new data bytes.
	if _, err := f.r.Promote(ctx, "daily", "stable", snapshot.PromoteOptions{Version: "20240102"}); err != nil {
		t.Fatal(err)
	}
	res = f.publish(t, "stable", true)
	if res.DataNew != 0 || res.DataBytes != 0 {
		t.Fatalf("publish of a promoted stream added data: %+v", res)
	}
	ssValidate(t, filepath.Join(f.root, "stable"), f.keyring, "--expect-items", "8")
	ssValidate(t, filepath.Join(f.root, "daily"), f.keyring)
	// Data is stored once: hard links to the store's blobs.
	n := 0
	filepath.Walk(filepath.Join(f.root, "data"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n++
			sum := filepath.Base(p)
			d, _ := cas.ParseDigest(sum)
			sfi, _ := os.Stat(f.r.Store().BlobPath(d))
			if !os.SameFile(fi, sfi) {
				t.Errorf("%s is not a hard link to the store's blob", p)
			}
		}
		return nil
	})
	if n != 24 {
		t.Fatalf("%d data files, want 24", n)
	}
}

func TestUnsignedAndExactIndex(t *testing.T) {
	f := newFixture(t, "1", "daily")
	f.publish(t, "daily", true)
	res := f.publish(t, "daily", false)
	meta := filepath.Join(f.root, "daily", "streams", "v1")
	for _, gone := range []string{"index.sjson", "index.json.gpg"} {
		if _, err := os.Stat(filepath.Join(meta, gone)); !os.IsNotExist(err) {
			t.Errorf("unsigned publish left %s", gone)
		}
	}
	ssValidate(t, filepath.Join(f.root, "daily"), "")
	st, _ := f.r.Stream(ctx, "daily")
	doc, _ := f.r.Doc(st.Head)
	b, _ := os.ReadFile(filepath.Join(meta, "index.json"))
	var products string
	for _, fw := range res.FilesWritten {
		if strings.Contains(fw, "download.") {
			products = fw
		}
	}
	pb, _ := os.ReadFile(filepath.Join(f.root, "daily", products))
	if products == "" {
		// the products file was written by the signed publish already
		ents, _ := os.ReadDir(meta)
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".json") && strings.HasPrefix(e.Name(), "com.") {
				products = "streams/v1/" + e.Name()
				pb, _ = os.ReadFile(filepath.Join(meta, e.Name()))
			}
		}
	}
	h := sha256.Sum256(pb)
	if !strings.HasSuffix(products, "."+hex.EncodeToString(h[:])[:16]+".json") {
		t.Fatalf("products file %s is not named by its content", products)
	}
	upd := doc.Time.UTC().Format(TimeFormat)
	want := `{
 "format": "index:1.0",
 "index": {
  "com.ubuntu.maas:daily:v3:download": {
   "datatype": "image-ids",
   "format": "products:1.0",
   "path": "` + products + `",
   "products": [
    "com.ubuntu.maas.daily:v3:boot:24.04:amd64:ga-24.04",
    "com.ubuntu.maas.daily:v3:boot:24.04:arm64:ga-24.04"
   ],
   "updated": "` + upd + `"
  }
 },
 "updated": "` + upd + `"
}
`
	if string(b) != want {
		t.Fatalf("index.json:\n%s\nwant:\n%s", b, want)
	}
	for _, l := range strings.Split(string(pb), "\n") {
		if strings.HasPrefix(l, "-") {
			t.Fatalf("products file line starts with '-': %q", l)
		}
	}
	var pf map[string]any
	if err := json.Unmarshal(pb, &pf); err != nil || pf["updated"] != upd {
		t.Fatalf("products file: %v", err)
	}
}

// A reader that reads the index, then the products file, then the data
// never meets a missing file or a mix of two states while publishes,
// promotes and rollbacks run.
func TestReadersSeeConsistentTrees(t *testing.T) {
	f := newFixture(t, "4", "daily", "stable")
	f.publish(t, "daily", false)
	f.publish(t, "stable", false)
	stable := filepath.Join(f.root, "stable")
	var stop atomic.Bool
	var reads, bad atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	wg.Go(func() {
		for !stop.Load() {
			if err := readTree(stable); err != nil {
				bad.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			}
			reads.Add(1)
		}
	})
	versions := []string{"20240101", "20240102", "20240103", "20240104"}
	for i := range 100 {
		switch i % 3 {
		case 0:
			_, err := f.r.Promote(ctx, "daily", "stable", snapshot.PromoteOptions{Version: versions[(i/3)%4]})
			if err != nil && !strings.Contains(err.Error(), "nothing to do") {
				t.Fatal(err)
			}
		case 1:
			if _, err := f.r.Rollback(ctx, "stable", "", 1, false); err != nil {
				t.Fatal(err)
			}
		case 2:
			fs, _ := catalog.ParseFilters([]string{"arch=amd64"})
			f.r.CleanMD(ctx, "stable", 1, fs, false)
		}
		f.publish(t, "stable", false)
	}
	stop.Store(true)
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d of %d reads saw an inconsistent tree; first: %v", bad.Load(), reads.Load(), firstErr.Load())
	}
	if reads.Load() < 20 {
		t.Fatalf("only %d reads ran", reads.Load())
	}
	t.Logf("%d consistent reads during 100 changes and publishes", reads.Load())
}

// readTree reads a published tree the way a client does and checks it.
func readTree(root string) error {
	ib, err := os.ReadFile(filepath.Join(root, "streams", "v1", "index.json"))
	if err != nil {
		return err
	}
	var idx struct {
		Index map[string]struct {
			Path     string   `json:"path"`
			Products []string `json:"products"`
		} `json:"index"`
	}
	if err := json.Unmarshal(ib, &idx); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	for cid, e := range idx.Index {
		pb, err := os.ReadFile(filepath.Join(root, e.Path))
		if err != nil {
			return fmt.Errorf("%s: %w", cid, err)
		}
		var pf struct {
			Products map[string]struct {
				Versions map[string]struct {
					Items map[string]struct {
						Path   string `json:"path"`
						SHA256 string `json:"sha256"`
						Size   int64  `json:"size"`
					} `json:"items"`
				} `json:"versions"`
			} `json:"products"`
		}
		if err := json.Unmarshal(pb, &pf); err != nil {
			return fmt.Errorf("%s: %w", e.Path, err)
		}
		if len(pf.Products) != len(e.Products) {
			return fmt.Errorf("%s: %d products, the index lists %d", e.Path, len(pf.Products), len(e.Products))
		}
		for _, p := range e.Products {
			prod, ok := pf.Products[p]
			if !ok {
				return fmt.Errorf("%s: no product %s", e.Path, p)
			}
			for _, v := range prod.Versions {
				for _, it := range v.Items {
					b, err := os.ReadFile(filepath.Join(root, it.Path))
					if err != nil {
						return err
					}
					h := sha256.Sum256(b)
					if int64(len(b)) != it.Size || hex.EncodeToString(h[:]) != it.SHA256 {
						return fmt.Errorf("%s: wrong bytes", it.Path)
					}
				}
			}
		}
	}
	return nil
}

// Keys made and exported by gpg, armoured or binary, sign trees that
// validate.
func TestPublishWithGpgExportedKey(t *testing.T) {
	home := filepath.Join(t.TempDir(), "gnupg")
	os.Mkdir(home, 0o700)
	defer exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run()
	uid := "Exported <exported@example.invalid>"
	if out, err := exec.Command("gpg", "--homedir", home, "--batch", "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never").CombinedOutput(); err != nil {
		t.Fatalf("gpg --quick-gen-key: %v\n%s", err, out)
	}
	keyring := filepath.Join(t.TempDir(), "keyring.gpg")
	if out, err := exec.Command("gpg", "--homedir", home, "--batch", "--output", keyring, "--export", uid).CombinedOutput(); err != nil {
		t.Fatalf("gpg --export: %v\n%s", err, out)
	}
	f := newFixture(t, "1", "daily")
	for i, args := range [][]string{{"--armor"}, {}} {
		out, err := exec.Command("gpg", append(append([]string{"--homedir", home, "--batch", "--export-secret-keys"}, args...), uid)...).Output()
		if err != nil || len(out) == 0 {
			t.Fatalf("gpg export: %v", err)
		}
		p := filepath.Join(t.TempDir(), "secret")
		os.WriteFile(p, out, 0o600)
		s, err := pgp.ReadSigningKey(p, nil)
		if err != nil {
			t.Fatalf("read gpg-exported key %v: %v", args, err)
		}
		root := filepath.Join(t.TempDir(), "pub"+strconv.Itoa(i))
		if _, err := Publish(ctx, f.r, "daily", Options{Root: root, Signer: s}); err != nil {
			t.Fatal(err)
		}
		ssValidate(t, filepath.Join(root, "daily"), keyring)
	}
}

// A publish root on another file system gets copies (hard links cannot
// cross), made through temp files, and still validates.
func TestPublishAcrossFileSystemsCopies(t *testing.T) {
	f := newFixture(t, "1", "daily")
	shm, err := os.MkdirTemp("/dev/shm", "mephstore-pub-")
	if err != nil {
		t.Fatalf("need /dev/shm (tmpfs) for a second file system: %v", err)
	}
	defer os.RemoveAll(shm)
	var a, b unix.Statfs_t
	unix.Statfs(shm, &a)
	unix.Statfs(f.r.Store().Dir(), &b)
	if a.Fsid == b.Fsid {
		t.Fatalf("/dev/shm is on the store's file system here; this test needs two")
	}
	res, err := Publish(ctx, f.r, "daily", Options{Root: shm, Signer: f.signer})
	if err != nil {
		t.Fatal(err)
	}
	if res.DataNew != 8 || res.DataCopied != 8 {
		t.Fatalf("data %d new, %d copied; want 8 copies", res.DataNew, res.DataCopied)
	}
	ssValidate(t, filepath.Join(shm, "daily"), f.keyring)
}

// failingSwitch is a directory target whose index switch fails.
type failingSwitch struct{ *DirTarget }

var errSwitch = errors.New("switch refused by the test")

func (failingSwitch) SwitchIndex(context.Context, string, []File) error { return errSwitch }

// failingSync is a directory target whose sync fails.
type failingSync struct{ *DirTarget }

var errSync = errors.New("sync refused by the test")

func (failingSync) Sync(context.Context) error { return errSync }

// The store's session that records a publish opens while the data is
// made durable; when that fails, it records nothing: the store still
// remembers the last publish, the root keeps its index, and the next
// publish writes the new one.
func TestFailedSyncRecordsNothing(t *testing.T) {
	f := newFixture(t, "3", "daily")
	dt, before := failPublish(t, f, func(dt *DirTarget) Target { return failingSync{dt} }, errSync)
	key := publishKey(dt.String(), "daily")
	if after, err := f.r.Store().ReadSettings(ctx, key); err != nil || !slices.Equal(after, before) {
		t.Fatalf("after the failed sync the store remembers %q (%v), want %q", after, err, before)
	}
	res := f.publish(t, "daily", true)
	if res.Unchanged || len(res.FilesWritten) == 0 {
		t.Fatalf("publish after the failed sync: %+v, want the new index written", res)
	}
	ssValidate(t, filepath.Join(f.root, "daily"), f.keyring)
}

// failPublish publishes daily, cleans it to one version and publishes it
// again to the target wrap makes of the root, which must fail with want
// and leave the index as it was. It returns the root's directory target
// and what the store remembered of the first publish.
func failPublish(t *testing.T, f *fixture, wrap func(*DirTarget) Target, want error) (*DirTarget, []string) {
	t.Helper()
	f.publish(t, "daily", true)
	index := filepath.Join(f.root, Layout{}.Index("daily"))
	old, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	dt, err := NewDirTarget(f.root)
	if err != nil {
		t.Fatal(err)
	}
	before, err := f.r.Store().ReadSettings(ctx, publishKey(dt.String(), "daily"))
	if err != nil || len(before) != 1 {
		t.Fatalf("remembered publish: %q %v", before, err)
	}
	if _, err := f.r.CleanMD(ctx, "daily", 1, nil, false); err != nil {
		t.Fatal(err)
	}
	_, err = Publish(ctx, f.r, "daily", Options{Target: wrap(dt), Signer: f.signer})
	if !errors.Is(err, want) {
		t.Fatalf("publish to a failing target: %v, want %v", err, want)
	}
	if got, _ := os.ReadFile(index); !bytes.Equal(got, old) {
		t.Fatal("the failed publish changed the index")
	}
	return dt, before
}

// The store records a publish while its index is switched: when the
// switch fails, the publish fails, the root keeps its old index, and the
// next publish writes the new one (it is not taken for unchanged).
func TestFailedSwitchIsPublishedAgain(t *testing.T) {
	f := newFixture(t, "3", "daily")
	dt, _ := failPublish(t, f, func(dt *DirTarget) Target { return failingSwitch{dt} }, errSwitch)
	// The store recorded it all the same (the case a crash between the
	// two also leaves).
	st, _ := f.r.Stream(ctx, "daily")
	key := publishKey(dt.String(), "daily")
	saved, err := f.r.Store().ReadSettings(ctx, key)
	if err != nil || len(saved) != 1 || !strings.HasPrefix(saved[0], string(st.Head)+" ") {
		t.Fatalf("after the failed switch the store remembers %q (%v), want the new head %s", saved, err, st.Head)
	}
	ssValidate(t, filepath.Join(f.root, "daily"), f.keyring)
	res := f.publish(t, "daily", true)
	if res.Unchanged || len(res.FilesWritten) == 0 {
		t.Fatalf("publish after the failed switch: %+v, want the new index written", res)
	}
	c := counts(t, f.r, "daily")
	ssValidate(t, filepath.Join(f.root, "daily"), f.keyring, "--expect-items", strconv.Itoa(c.Items))
	if res := f.publish(t, "daily", true); !res.Unchanged {
		t.Fatalf("publish after the repair: %+v, want unchanged", res)
	}
}
