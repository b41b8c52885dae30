package cas_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mephstore/mephstore/cas"
)

// TestTables: typed record stores over the records: a round trip of each
// codec, key order, reverse order, sub-spaces that never see each other,
// a missing key, a record that does not decode, and a cursor.
func TestTables(t *testing.T) {
	s := freshStore(t)
	ss, err := s.Writer(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	type entry struct{ N int }
	a := cas.NewTable(cas.KindHistory, []byte("a\x00"), cas.Uint64Key(), cas.JSONValue[entry]())
	ab := cas.NewTable(cas.KindHistory, []byte("ab\x00"), cas.Uint64Key(), cas.JSONValue[entry]())
	times := cas.NewTable(cas.KindOrphan, []byte("t"), cas.StringKey(), cas.TimeValue())
	when := time.Date(2026, 12, 4, 1, 2, 3, 4, time.UTC)
	err = ss.Update(func(txn cas.Txn) error {
		for _, n := range []uint64{300, 2, 1 << 40} {
			if err := a.Put(txn, n, entry{int(n % 1000)}); err != nil {
				return err
			}
		}
		if err := ab.Put(txn, 7, entry{7}); err != nil {
			return err
		}
		return times.Put(txn, "x/y", when)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = ss.View(func(txn cas.Txn) error {
		var got, rev []uint64
		a.Scan(txn, func(k uint64, _ entry) error { got = append(got, k); return nil })
		a.ScanReverse(txn, func(k uint64, _ entry) error { rev = append(rev, k); return nil })
		if fmt.Sprint(got) != "[2 300 1099511627776]" || fmt.Sprint(rev) != "[1099511627776 300 2]" {
			return fmt.Errorf("order %v, reverse %v (a sub-space saw another's records?)", got, rev)
		}
		if e, err := a.Get(txn, 300); err != nil || e.N != 300 {
			return fmt.Errorf("get 300: %v %v", e, err)
		}
		if _, err := a.Get(txn, 7); !errors.Is(err, cas.ErrNoRecord) {
			return fmt.Errorf("get of another sub-space's key: %v", err)
		}
		if w, err := times.Get(txn, "x/y"); err != nil || !w.Equal(when) {
			return fmt.Errorf("time %v %v", w, err)
		}
		c := a.Cursor(txn)
		defer c.Close()
		n := 0
		for ; c.Valid(); c.Next() {
			if _, _, err := c.Record(); err != nil {
				return err
			}
			n++
		}
		if n != 3 {
			return fmt.Errorf("cursor saw %d records", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A record that does not decode is an error naming it, not a zero value.
	bad := cas.NewTable(cas.KindHistory, []byte("a\x00"), cas.Uint64Key(), cas.TimeValue())
	err = ss.View(func(txn cas.Txn) error { _, err := bad.Get(txn, 2); return err })
	if err == nil {
		t.Fatal("a JSON record read as a time")
	}
	err = ss.Update(func(txn cas.Txn) error {
		if err := a.Delete(txn, 999); err != nil { // missing: no error
			return err
		}
		return a.Delete(txn, 2)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ss.View(func(txn cas.Txn) error { _, err := a.Get(txn, 2); return err }); !errors.Is(err, cas.ErrNoRecord) {
		t.Fatalf("deleted record: %v", err)
	}
}
