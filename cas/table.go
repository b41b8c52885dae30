package cas

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Kind is one kind of record in the store's database, each in its own key
// space. cas owns the list, so no two packages collide, and the byte a
// kind's keys start with is written nowhere else.
type Kind byte

// The kinds of record.
const (
	KindBlob    Kind = 'b' // cas: blob records
	KindIntent  Kind = 'i' // cas: commit intents
	KindDelete  Kind = 'd' // cas: delete intents
	KindStream  Kind = 's' // snapshot: stream heads
	KindHistory Kind = 'h' // snapshot: stream history entries
	KindOrphan  Kind = 'o' // gc: orphan records (blobs, publish-root files)
	KindLease   Kind = 'l' // cas: leases and their references
	KindBuild   Kind = 'p' // build: pending builds
	KindSetting Kind = 'c' // settings remembered in the store
)

// Key prefixes of the record kinds cas reads and writes itself.
const (
	PrefixBlob   = byte(KindBlob)
	PrefixIntent = byte(KindIntent)
	PrefixDelete = byte(KindDelete)
	PrefixLease  = byte(KindLease)
	PrefixConfig = byte(KindSetting)
)

// Codec encodes the keys (K) or the values (V) of a table. Decode of a
// value is given the record's key.
type Codec[T any] struct {
	Encode func(T) ([]byte, error)
	Decode func(key, b []byte) (T, error)
}

// Table is a typed record store: the records of one kind (within a
// sub-space of it), keys of type K, values of type V. The owner of a kind
// declares its table; every read and write of those records goes through
// it, inside a transaction (Records.View or Update) that may span several
// tables: one unit of work.
type Table[K, V any] struct {
	prefix []byte
	key    Codec[K]
	val    Codec[V]
}

// NewTable is the table of kind k within the sub-space sub (nil: the whole
// kind).
func NewTable[K, V any](k Kind, sub []byte, key Codec[K], val Codec[V]) Table[K, V] {
	return Table[K, V]{prefix: append([]byte{byte(k)}, sub...), key: key, val: val}
}

func (t Table[K, V]) rawKey(k K) ([]byte, error) {
	b, err := t.key.Encode(k)
	if err != nil {
		return nil, err
	}
	return append(append(make([]byte, 0, len(t.prefix)+len(b)), t.prefix...), b...), nil
}

// decode reads a record of the table.
func (t Table[K, V]) decode(rk, rv []byte) (K, V, error) {
	var v V
	kb := rk[len(t.prefix):]
	k, err := t.key.Decode(nil, kb)
	if err != nil {
		return k, v, fmt.Errorf("record key %q: %w", rk, err)
	}
	v, err = t.val.Decode(kb, rv)
	return k, v, err
}

// Get reads the value of k; a missing record is an error wrapping
// ErrNoRecord.
func (t Table[K, V]) Get(txn Txn, k K) (V, error) {
	var v V
	rk, err := t.rawKey(k)
	if err != nil {
		return v, err
	}
	rv, err := txn.Get(rk)
	if err != nil {
		return v, err
	}
	_, v, err = t.decode(rk, rv)
	return v, err
}

// Put writes the record of k.
func (t Table[K, V]) Put(txn Txn, k K, v V) error {
	rk, rv, err := t.encode(k, v)
	if err != nil {
		return err
	}
	return txn.Set(rk, rv)
}

func (t Table[K, V]) encode(k K, v V) ([]byte, []byte, error) {
	rk, err := t.rawKey(k)
	if err != nil {
		return nil, nil, err
	}
	rv, err := t.val.Encode(v)
	return rk, rv, err
}

// Delete removes the record of k; a missing one is no error.
func (t Table[K, V]) Delete(txn Txn, k K) error {
	rk, err := t.rawKey(k)
	if err != nil {
		return err
	}
	return txn.Delete(rk)
}

// PutIn adds a write of k to a batch.
func (t Table[K, V]) PutIn(b Batch, k K, v V) error {
	rk, rv, err := t.encode(k, v)
	if err != nil {
		return err
	}
	return b.Set(rk, rv)
}

// DeleteIn adds a removal of k to a batch.
func (t Table[K, V]) DeleteIn(b Batch, k K) error {
	rk, err := t.rawKey(k)
	if err != nil {
		return err
	}
	return b.Delete(rk)
}

// Scan calls fn for every record in key order; fn returning ErrStopScan
// ends the scan without error.
func (t Table[K, V]) Scan(txn Txn, fn func(K, V) error) error {
	return txn.Scan(t.prefix, nil, func(rk, rv []byte) error {
		k, v, err := t.decode(rk, rv)
		if err != nil {
			return err
		}
		return fn(k, v)
	})
}

// ScanReverse is Scan from the last record to the first.
func (t Table[K, V]) ScanReverse(txn Txn, fn func(K, V) error) error {
	return txn.ScanReverse(t.prefix, func(rk, rv []byte) error {
		k, v, err := t.decode(rk, rv)
		if err != nil {
			return err
		}
		return fn(k, v)
	})
}

// Cursor walks the records in key order (to merge two tables in one
// pass). Close it when done.
func (t Table[K, V]) Cursor(txn Txn) *TableCursor[K, V] {
	return &TableCursor[K, V]{t: t, c: txn.Cursor(t.prefix)}
}

// TableCursor walks the records of a table.
type TableCursor[K, V any] struct {
	t Table[K, V]
	c Cursor
}

// Valid says whether the cursor is on a record.
func (c *TableCursor[K, V]) Valid() bool { return c.c.Valid() }

// Record decodes the current record.
func (c *TableCursor[K, V]) Record() (K, V, error) {
	rv, err := c.c.Value()
	if err != nil {
		var k K
		var v V
		return k, v, err
	}
	return c.t.decode(c.c.Key(), rv)
}

// Next moves to the next record.
func (c *TableCursor[K, V]) Next() { c.c.Next() }

// Close ends the walk.
func (c *TableCursor[K, V]) Close() { c.c.Close() }

// StringKey encodes string keys as their bytes.
func StringKey() Codec[string] {
	return Codec[string]{
		Encode: func(s string) ([]byte, error) { return []byte(s), nil },
		Decode: func(_, b []byte) (string, error) { return string(b), nil },
	}
}

// Uint64Key encodes numbers big-endian, so that keys sort as numbers.
func Uint64Key() Codec[uint64] {
	return Codec[uint64]{
		Encode: func(n uint64) ([]byte, error) { return binary.BigEndian.AppendUint64(nil, n), nil },
		Decode: func(_, b []byte) (uint64, error) {
			if len(b) != 8 {
				return 0, errors.New("not an 8-byte number")
			}
			return binary.BigEndian.Uint64(b), nil
		},
	}
}

// SumKey encodes raw sha256 sums.
func SumKey() Codec[[32]byte] {
	return Codec[[32]byte]{
		Encode: func(s [32]byte) ([]byte, error) { return s[:], nil },
		Decode: func(_, b []byte) ([32]byte, error) {
			var s [32]byte
			if len(b) != len(s) {
				return s, errors.New("not a 32-byte sum")
			}
			copy(s[:], b)
			return s, nil
		},
	}
}

// IDKey encodes 8-byte ids.
func IDKey() Codec[[8]byte] {
	return Codec[[8]byte]{
		Encode: func(id [8]byte) ([]byte, error) { return id[:], nil },
		Decode: func(_, b []byte) ([8]byte, error) {
			var id [8]byte
			if len(b) != len(id) {
				return id, errors.New("not an 8-byte id")
			}
			copy(id[:], b)
			return id, nil
		},
	}
}

// JSONValue encodes values as JSON.
func JSONValue[V any]() Codec[V] {
	return Codec[V]{
		Encode: func(v V) ([]byte, error) { return json.Marshal(v) },
		Decode: func(_, b []byte) (V, error) {
			var v V
			err := json.Unmarshal(b, &v)
			return v, err
		},
	}
}

// TimeValue encodes times as varint Unix nanoseconds (UTC).
func TimeValue() Codec[time.Time] {
	return Codec[time.Time]{
		Encode: func(t time.Time) ([]byte, error) { return binary.AppendVarint(nil, t.UnixNano()), nil },
		Decode: func(_, b []byte) (time.Time, error) {
			ns, n := binary.Varint(b)
			if n <= 0 || n != len(b) {
				return time.Time{}, errors.New("bad time")
			}
			return time.Unix(0, ns).UTC(), nil
		},
	}
}

// RefsValue encodes lists of references (EncodeRefs).
func RefsValue() Codec[[]Ref] {
	return Codec[[]Ref]{
		Encode: func(r []Ref) ([]byte, error) { return EncodeRefs(r), nil },
		Decode: func(_, b []byte) ([]Ref, error) { return DecodeRefs(b) },
	}
}

// PendingBuilds is the table of pending builds: the id of each (the first
// 8 bytes of its document's sha256) and the references it holds (its
// document first, then the blobs it uses). Build writes it; gc reads it
// as roots.
func PendingBuilds() Table[[8]byte, []Ref] { return NewTable(KindBuild, nil, IDKey(), RefsValue()) }

// BlobRecords is the table of blob records (read by gc's sweep; written
// by cas alone).
func BlobRecords() Table[[32]byte, Blob] {
	return NewTable(KindBlob, nil, SumKey(), Codec[Blob]{
		Encode: func(b Blob) ([]byte, error) { return encodeRecord(b), nil },
		Decode: func(k, v []byte) (Blob, error) {
			return decodeRecord(digestFromKey(append([]byte{PrefixBlob}, k...)), v)
		},
	})
}
