package cas

import (
	"bytes"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"
)

// ErrNoRecord is wrapped when a key has no record.
var ErrNoRecord = errors.New("no such record")

// Txn is one transaction on the store's records: a unit of work that may
// span record kinds (blob records, streams and their history, leases,
// orphan records, pending builds, settings), each kind under its own key
// prefix (Prefix*). It is valid only inside the View or Update call that
// gives it; the database behind it is this package's business alone.
type Txn struct{ t *badger.Txn }

// Get returns a copy of the value of key, or an error wrapping ErrNoRecord.
func (t *Txn) Get(key []byte) ([]byte, error) {
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
func (t *Txn) Set(key, val []byte) error { return t.t.Set(key, val) }

// Delete removes key (in an Update); a missing key is no error.
func (t *Txn) Delete(key []byte) error { return t.t.Delete(key) }

// Scan calls fn with every record whose key starts with prefix, in key
// order, from the first key at or after from (nil: the start). key and val
// are valid during the call only. fn returning errStop ends the scan.
func (t *Txn) Scan(prefix, from []byte, fn func(key, val []byte) error) error {
	c := t.Cursor(prefix)
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

// Cursor walks the records under a prefix in key order (for merging two
// kinds of records in one pass). Close it when done.
type Cursor struct{ it *badger.Iterator }

// Cursor starts a walk of the records under prefix, at the first one.
func (t *Txn) Cursor(prefix []byte) *Cursor {
	o := badger.DefaultIteratorOptions
	o.Prefix = prefix
	it := t.t.NewIterator(o)
	it.Rewind()
	return &Cursor{it: it}
}

// Valid says whether the cursor is on a record.
func (c *Cursor) Valid() bool { return c.it.Valid() }

// Key is the current record's key, valid until Next.
func (c *Cursor) Key() []byte { return c.it.Item().Key() }

// Value is a copy of the current record's value.
func (c *Cursor) Value() ([]byte, error) { return c.it.Item().ValueCopy(nil) }

// Next moves to the next record.
func (c *Cursor) Next() { c.it.Next() }

// Close ends the walk.
func (c *Cursor) Close() { c.it.Close() }

// Batch is a write batch: many Sets and Deletes written together, for
// record updates too large for one transaction. Flush writes it; Cancel
// drops what was not flushed.
type Batch struct{ wb *badger.WriteBatch }

// Set adds a write of key.
func (b *Batch) Set(key, val []byte) error { return b.wb.Set(key, val) }

// Delete adds a removal of key.
func (b *Batch) Delete(key []byte) error { return b.wb.Delete(key) }

// Flush writes the batch.
func (b *Batch) Flush() error { return b.wb.Flush() }

// Cancel drops the batch.
func (b *Batch) Cancel() { b.wb.Cancel() }

// ScanReverse is Scan from the last record under prefix to the first.
func (t *Txn) ScanReverse(prefix []byte, fn func(key, val []byte) error) error {
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
