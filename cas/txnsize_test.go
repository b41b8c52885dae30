package cas

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/mephstore/mephstore/internal/digest"
)

// The memtable admits transactions of about 1638 entries: a commit, a
// delete and a lease's end of more than that (2500 blobs, 2000 reference
// lists) must still go through (in several transactions), leaving no
// intent behind.
func TestBatchesLargerThanATransaction(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	n := 2500
	blobs := make([][]byte, n)
	for i := range blobs {
		blobs[i] = []byte(fmt.Sprintf("blob %d", i))
	}
	ss, err := s.Writer(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	l, err := ss.CreateLease("test", time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := ss.PutBytes(WithLease(ctx, l), blobs...)
	if err != nil {
		t.Fatalf("commit of %d blobs: %v", n, err)
	}
	if got := leaseRefs(t, ss, l.ID); got != n {
		t.Fatalf("lease holds %d references, want %d", got, n)
	}
	// More reference lists than one transaction can delete.
	wb, err := ss.NewWriteBatch()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		k, _ := leaseRefsKey(l.ID)
		must(t, wb.Set(k, EncodeRefs([]Ref{{Kind: RefBlob, Digest: ds[i]}})))
		must(t, wb.Set(extraKey(ds[i]), []byte("x")))
	}
	must(t, wb.Flush())
	must(t, ss.DeleteLease(l.ID))
	if got := leaseRefs(t, ss, l.ID); got != 0 {
		t.Fatalf("lease still holds %d references after DeleteLease", got)
	}
	// keep drops a key of its own with each blob, as gc does.
	del, err := ss.Delete(ctx, ds, func(txn Txn, b Blob) (bool, error) {
		return false, txn.Delete(extraKey(b.Digest))
	})
	if err != nil || del.Blobs != n {
		t.Fatalf("delete of %d blobs: %d deleted, %v", n, del.Blobs, err)
	}
	for _, p := range []byte{PrefixIntent, PrefixDelete, PrefixBlob, 'x'} {
		if got := countPrefix(t, ss, p); got != 0 {
			t.Fatalf("%d keys under prefix %q left", got, p)
		}
	}
	if _, err := os.Stat(s.BlobPath(ds[n-1])); !os.IsNotExist(err) {
		t.Fatalf("pool file of a deleted blob: %v", err)
	}
}

func extraKey(d digest.Digest) []byte { return []byte("x" + d.Encoded()) }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// leaseRefs counts the references lease id holds.
func leaseRefs(t *testing.T, ss *Session, id string) int {
	t.Helper()
	n := 0
	must(t, ss.View(func(txn Txn) error {
		ls, err := Leases(txn)
		for _, l := range ls {
			if l.ID == id {
				n = len(l.Refs)
			}
		}
		return err
	}))
	return n
}

func countPrefix(t *testing.T, ss *Session, p byte) int {
	t.Helper()
	n := 0
	must(t, ss.View(func(txn Txn) error {
		return txn.Scan([]byte{p}, nil, func(_, _ []byte) error { n++; return nil })
	}))
	return n
}

// A write-ahead log left by a crash of a process whose memtable was larger
// (an older mephstore's 4 MiB) holds more than this memtable's arena: the
// next open must replay it whole, not fail or panic.
func TestOpensTheLogOfALargerMemtable(t *testing.T) {
	s := newStore(t)
	dir := filepath.Join(s.Dir(), dbDir)
	o := badgerOptions(dir, false, nil).WithMemTableSize(4 << 20).WithValueThreshold(512 << 10)
	db, err := badger.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	val := make([]byte, 100)
	const n = 24 << 10 // 2.4 MiB of values: more than a 1 MiB memtable holds
	wb := db.NewWriteBatch()
	for i := range n {
		must(t, wb.Set([]byte(fmt.Sprintf("test/%d", i)), val))
	}
	must(t, wb.Flush())
	// The crash: copy the database as it is on disk while it is open
	// (its log is a shared mapping, so the copy holds what was written).
	crashed := filepath.Join(t.TempDir(), "store")
	copyTree(t, s.Dir(), crashed)
	db.Close()
	if mems, _ := filepath.Glob(filepath.Join(crashed, dbDir, "*.mem")); len(mems) == 0 {
		t.Fatal("no write-ahead log in the crashed copy: the test no longer tests a replay")
	}
	c, err := Open(crashed, Options{Wait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	checkRecords(t, c, n, val)
}

// copyTree copies the regular files under src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	must(t, filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	}))
}
