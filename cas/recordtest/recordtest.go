package recordtest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/mephstore/mephstore/cas"
)

// Run runs every contract test of cas.Records on fresh, empty record
// stores made by open.
func Run(t *testing.T, open func(t *testing.T) cas.Records) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, cas.Records)
	}{
		{"missing keys", missingKeys},
		{"update commits all or nothing", allOrNothing},
		{"scan order, prefix and start", scanOrder},
		{"scan stops", scanStops},
		{"reverse scan", reverseScan},
		{"cursors merge two kinds", cursorsMerge},
		{"batches", batches},
		{"concurrent writers", concurrentWriters},
		{"values are copies", valuesAreCopies},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func set(t *testing.T, r cas.Records, kv ...string) {
	t.Helper()
	must(t, r.Update(func(txn cas.Txn) error {
		for i := 0; i < len(kv); i += 2 {
			if err := txn.Set([]byte(kv[i]), []byte(kv[i+1])); err != nil {
				return err
			}
		}
		return nil
	}))
}

func get(t *testing.T, r cas.Records, k string) (string, error) {
	t.Helper()
	var v []byte
	err := r.View(func(txn cas.Txn) error {
		var err error
		v, err = txn.Get([]byte(k))
		return err
	})
	return string(v), err
}

func scan(t *testing.T, r cas.Records, prefix, from string) []string {
	t.Helper()
	var out []string
	var f []byte
	if from != "" {
		f = []byte(from)
	}
	must(t, r.View(func(txn cas.Txn) error {
		return txn.Scan([]byte(prefix), f, func(k, v []byte) error {
			out = append(out, string(k)+"="+string(v))
			return nil
		})
	}))
	return out
}

func missingKeys(t *testing.T, r cas.Records) {
	if _, err := get(t, r, "nope"); !errors.Is(err, cas.ErrNoRecord) {
		t.Fatalf("get of a missing key: %v, want ErrNoRecord", err)
	}
	must(t, r.Update(func(txn cas.Txn) error { return txn.Delete([]byte("nope")) }))
	set(t, r, "k", "v")
	must(t, r.Update(func(txn cas.Txn) error { return txn.Delete([]byte("k")) }))
	if _, err := get(t, r, "k"); !errors.Is(err, cas.ErrNoRecord) {
		t.Fatalf("get of a deleted key: %v", err)
	}
}

func allOrNothing(t *testing.T, r cas.Records) {
	set(t, r, "a", "1")
	boom := errors.New("boom")
	err := r.Update(func(txn cas.Txn) error {
		txn.Set([]byte("a"), []byte("2"))
		txn.Set([]byte("b"), []byte("2"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("update: %v", err)
	}
	if v, _ := get(t, r, "a"); v != "1" {
		t.Fatalf("a failed update changed a to %q", v)
	}
	if _, err := get(t, r, "b"); !errors.Is(err, cas.ErrNoRecord) {
		t.Fatalf("a failed update wrote b: %v", err)
	}
	// Within an update, its own writes are visible.
	must(t, r.Update(func(txn cas.Txn) error {
		txn.Set([]byte("c"), []byte("3"))
		v, err := txn.Get([]byte("c"))
		if err != nil || string(v) != "3" {
			return fmt.Errorf("own write: %q %v", v, err)
		}
		return nil
	}))
}

func scanOrder(t *testing.T, r cas.Records) {
	// Keys with the bytes a store's keys hold: 0x00 separators and
	// 0xff, given out of order.
	set(t, r, "p\xff", "5", "p\x00b", "2", "p", "0", "p\x00a", "1", "pz", "4", "q", "x", "o", "y", "p\x01", "3")
	want := []string{"p=0", "p\x00a=1", "p\x00b=2", "p\x01=3", "pz=4", "p\xff=5"}
	if got := scan(t, r, "p", ""); !slices.Equal(got, want) {
		t.Fatalf("scan p: %q, want %q", got, want)
	}
	if got := scan(t, r, "p", "p\x01"); !slices.Equal(got, want[3:]) {
		t.Fatalf("scan p from p\\x01: %q", got)
	}
	if got := scan(t, r, "p\x00", ""); !slices.Equal(got, want[1:3]) {
		t.Fatalf("scan p\\x00: %q", got)
	}
	if got := scan(t, r, "none", ""); len(got) != 0 {
		t.Fatalf("scan of an empty prefix: %q", got)
	}
}

func scanStops(t *testing.T, r cas.Records) {
	set(t, r, "s1", "a", "s2", "b", "s3", "c")
	n := 0
	err := r.View(func(txn cas.Txn) error {
		return txn.Scan([]byte("s"), nil, func(k, v []byte) error {
			n++
			if n == 2 {
				return cas.ErrStopScan
			}
			return nil
		})
	})
	if err != nil || n != 2 {
		t.Fatalf("stop after 2: %d calls, %v", n, err)
	}
	boom := errors.New("boom")
	err = r.View(func(txn cas.Txn) error {
		return txn.Scan([]byte("s"), nil, func(k, v []byte) error { return boom })
	})
	if !errors.Is(err, boom) {
		t.Fatalf("a callback's error: %v", err)
	}
}

func reverseScan(t *testing.T, r cas.Records) {
	set(t, r, "h\x00\x00\x01", "1", "h\x00\x00\x02", "2", "h\x00\x01\x00", "3", "i", "x", "h", "0")
	var got []string
	must(t, r.View(func(txn cas.Txn) error {
		return txn.ScanReverse([]byte("h\x00"), func(k, v []byte) error {
			got = append(got, string(v))
			if len(got) == 2 {
				return cas.ErrStopScan
			}
			return nil
		})
	}))
	if !slices.Equal(got, []string{"3", "2"}) {
		t.Fatalf("reverse: %q", got)
	}
}

func cursorsMerge(t *testing.T, r cas.Records) {
	set(t, r, "a1", "x", "a3", "x", "a5", "x", "b2", "y", "b3", "y")
	var merged []string
	must(t, r.View(func(txn cas.Txn) error {
		ca, cb := txn.Cursor([]byte("a")), txn.Cursor([]byte("b"))
		defer ca.Close()
		defer cb.Close()
		for ca.Valid() || cb.Valid() {
			switch {
			case !cb.Valid() || ca.Valid() && bytes.Compare(ca.Key()[1:], cb.Key()[1:]) <= 0:
				v, err := ca.Value()
				if err != nil {
					return err
				}
				merged = append(merged, string(ca.Key())+string(v))
				ca.Next()
			default:
				merged = append(merged, string(cb.Key()))
				cb.Next()
			}
		}
		return nil
	}))
	if want := []string{"a1x", "b2", "a3x", "b3", "a5x"}; !slices.Equal(merged, want) {
		t.Fatalf("merge: %q, want %q", merged, want)
	}
}

func batches(t *testing.T, r cas.Records) {
	set(t, r, "old", "1")
	b, err := r.NewWriteBatch()
	must(t, err)
	for i := range 10000 { // more than one transaction holds
		must(t, b.Set(fmt.Appendf(nil, "n%05d", i), []byte("v")))
	}
	must(t, b.Delete([]byte("old")))
	must(t, b.Flush())
	if n := len(scan(t, r, "n", "")); n != 10000 {
		t.Fatalf("%d records after the batch", n)
	}
	if _, err := get(t, r, "old"); !errors.Is(err, cas.ErrNoRecord) {
		t.Fatalf("deleted by the batch: %v", err)
	}
	b, err = r.NewWriteBatch()
	must(t, err)
	b.Set([]byte("cancelled"), []byte("v"))
	b.Cancel()
	if _, err := get(t, r, "cancelled"); !errors.Is(err, cas.ErrNoRecord) {
		t.Fatalf("a cancelled batch wrote: %v", err)
	}
}

func concurrentWriters(t *testing.T, r cas.Records) {
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 50 {
				if err := r.Update(func(txn cas.Txn) error {
					return txn.Set(fmt.Appendf(nil, "w%d-%02d", w, i), []byte("v"))
				}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := len(scan(t, r, "w", "")); n != 400 {
		t.Fatalf("%d of 400 concurrent writes landed", n)
	}
}

func valuesAreCopies(t *testing.T, r cas.Records) {
	set(t, r, "c", "value")
	var v []byte
	must(t, r.View(func(txn cas.Txn) error {
		var err error
		v, err = txn.Get([]byte("c"))
		return err
	}))
	set(t, r, "c", "VALUE")
	if string(v) != "value" {
		t.Fatalf("a value read before a write changed to %q", v)
	}
}
