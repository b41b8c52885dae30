package cas

import (
	"bytes"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"
)

// ErrNoRecord is wrapped when a key has no record.
var ErrNoRecord = errors.New("no such record")

// Records is a store of records: ordered keys and their values, read and
// written in transactions. Every record kind of the store (blob records,
// streams and their history, leases, orphan records, pending builds,
// settings) lives under its own key prefix (Prefix*). A writer Session is
// the local implementation (badger, embedded); recordtest.Run is the
// contract every implementation passes.
//
// Contract: View sees one consistent state; Update commits all its writes
// or, when fn fails, none; a Txn is valid only inside the call that gives
// it, and a key or value it hands to a callback only during that call; a
// missing key is ErrNoRecord on Get and no error on Delete; scans run in
// byte order of the keys; a Batch applies its writes when flushed, and
// none of them when cancelled.
type Records interface {
	View(fn func(txn Txn) error) error
	Update(fn func(txn Txn) error) error
	NewWriteBatch() (Batch, error)
}

// Txn is one transaction on the records: a unit of work that may span
// record kinds.
type Txn interface {
	// Get returns a copy of the value of key, or an error wrapping
	// ErrNoRecord.
	Get(key []byte) ([]byte, error)
	// Set writes key (in an Update).
	Set(key, val []byte) error
	// Delete removes key (in an Update); a missing key is no error.
	Delete(key []byte) error
	// Scan calls fn with every record whose key starts with prefix, in
	// key order, from the first key at or after from (nil: the start);
	// fn returning ErrStopScan ends the scan without error.
	Scan(prefix, from []byte, fn func(key, val []byte) error) error
	// ScanReverse is Scan from the last record under prefix to the first.
	ScanReverse(prefix []byte, fn func(key, val []byte) error) error
	// Cursor starts a walk of the records under prefix (for merging two
	// record kinds in one pass). Close it when done.
	Cursor(prefix []byte) Cursor
}

// Cursor walks records in key order.
type Cursor interface {
	Valid() bool            // on a record
	Key() []byte            // the current key, valid until Next
	Value() ([]byte, error) // a copy of the current value
	Next()
	Close()
}

// Batch is a write batch: many Sets and Deletes written together, for
// record updates too large for one transaction.
type Batch interface {
	Set(key, val []byte) error
	Delete(key []byte) error
	Flush() error // write them
	Cancel()      // drop what was not flushed
}

// bTxn is a Txn on badger.
type bTxn struct{ t *badger.Txn }

// Get returns a copy of the value of key, or an error wrapping ErrNoRecord.
func (t *bTxn) Get(key []byte) ([]byte, error) {
	it, err := t.t.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w", ErrNoRecord)
	}
	if err != nil {
		return nil, err
	}
	return it.ValueCopy(nil)
}

// Set writes key (in an Update).
func (t *bTxn) Set(key, val []byte) error { return t.t.Set(key, val) }

// Delete removes key (in an Update); a missing key is no error.
func (t *bTxn) Delete(key []byte) error { return t.t.Delete(key) }

// Scan calls fn with every record whose key starts with prefix, in key
// order, from the first key at or after from (nil: the start). key and val
// are valid during the call only. fn returning errStop ends the scan.
func (t *bTxn) Scan(prefix, from []byte, fn func(key, val []byte) error) error {
	c := t.cursor(prefix)
	defer c.Close()
	if from != nil {
		c.it.Seek(from)
	}
	for ; c.Valid(); c.Next() {
		var err error
		if verr := c.it.Item().Value(func(v []byte) error { err = fn(c.Key(), v); return nil }); verr != nil {
			return verr
		}
		if errors.Is(err, ErrStopScan) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// ErrStopScan, returned by a Scan callback, ends the scan without error.
var ErrStopScan = errors.New("stop scan")

// bCursor is a Cursor on a badger iterator.
type bCursor struct{ it *badger.Iterator }

// Cursor starts a walk of the records under prefix, at the first one.
func (t *bTxn) Cursor(prefix []byte) Cursor { return t.cursor(prefix) }

func (t *bTxn) cursor(prefix []byte) *bCursor {
	o := badger.DefaultIteratorOptions
	o.Prefix = prefix
	it := t.t.NewIterator(o)
	it.Rewind()
	return &bCursor{it: it}
}

// Valid says whether the cursor is on a record.
func (c *bCursor) Valid() bool { return c.it.Valid() }

// Key is the current record's key, valid until Next.
func (c *bCursor) Key() []byte { return c.it.Item().Key() }

// Value is a copy of the current record's value.
func (c *bCursor) Value() ([]byte, error) { return c.it.Item().ValueCopy(nil) }

// Next moves to the next record.
func (c *bCursor) Next() { c.it.Next() }

// Close ends the walk.
func (c *bCursor) Close() { c.it.Close() }

// bBatch is a Batch on badger.
type bBatch struct{ wb *badger.WriteBatch }

// Set adds a write of key.
func (b *bBatch) Set(key, val []byte) error { return b.wb.Set(key, val) }

// Delete adds a removal of key.
func (b *bBatch) Delete(key []byte) error { return b.wb.Delete(key) }

// Flush writes the batch.
func (b *bBatch) Flush() error { return b.wb.Flush() }

// Cancel drops the batch.
func (b *bBatch) Cancel() { b.wb.Cancel() }

// ScanReverse is Scan from the last record under prefix to the first.
func (t *bTxn) ScanReverse(prefix []byte, fn func(key, val []byte) error) error {
	o := badger.DefaultIteratorOptions
	o.Prefix = prefix
	o.Reverse = true
	it := t.t.NewIterator(o)
	defer it.Close()
	// The first key after every key under prefix: prefix followed by more
	// 0xff bytes than any of our keys is long.
	seek := append(append([]byte{}, prefix...), bytes.Repeat([]byte{0xff}, 256)...)
	for it.Seek(seek); it.Valid(); it.Next() {
		var err error
		if verr := it.Item().Value(func(v []byte) error { err = fn(it.Item().Key(), v); return nil }); verr != nil {
			return verr
		}
		if errors.Is(err, ErrStopScan) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}
