package cas

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/mephstore/mephstore/internal/flock"
)

// Remote is the truth of a store kept on shared storage (a bucket), so
// that several machines share one store: its pool, a log of committed
// record transactions, a writer lock and a clock. The store's directory
// on this machine is then a cache: the records (badger, replayed from the
// log) and the staging area of ingests; lose it and it is built again
// from the log on the next open.
//
// Every record transaction a writer commits becomes the next entry of the
// log, written only if no entry of that number exists (a conditional
// write): two writers can never both commit entry n, so no update is lost
// even when a writer lost its lock. The lock only keeps writers from
// wasting work; the log's conditional write is what keeps the records
// right.
type Remote interface {
	// String names the location (for messages).
	String() string
	// ID tells stores apart: a cache made for another store (one removed
	// and made again at the same place) is dropped.
	ID() string
	// Pool holds the store's blobs.
	Pool() BlobStore
	// Lock takes the store's writer lock, waiting up to wait, for the
	// operation op; unlock releases it.
	Lock(ctx context.Context, op string, wait time.Duration) (unlock func(), err error)
	// Append writes log entry seq (numbers start at 1 and have no gaps),
	// failing with ErrLogConflict when entry seq exists.
	Append(ctx context.Context, seq uint64, entry []byte) error
	// Entries calls fn with every entry after seq, in order.
	Entries(ctx context.Context, after uint64, fn func(seq uint64, entry []byte) error) error
	// Newer says whether the log has an entry after seq (one request).
	Newer(ctx context.Context, after uint64) (bool, error)
	// Now is the shared clock (the server's), which leases and the age of
	// records are measured with when machines' clocks differ.
	Now() time.Time
}

// ErrLogConflict is wrapped when another writer committed the log entry
// this one meant to write.
var ErrLogConflict = errors.New("another writer committed first")

// KindCache keys records of this machine's cache of a remote store: the
// last log entry applied and the store's ID. They are never logged.
const KindCache Kind = 'z'

var (
	cacheSeqKey = []byte{byte(KindCache), 's'}
	cacheIDKey  = []byte{byte(KindCache), 'i'}
)

// logOp is one write of a logged transaction.
type logOp struct {
	del      bool
	key, val []byte
}

const logFormat = 1

// encodeLog is a log entry: a format byte, then per write: op byte (1 set,
// 2 delete), uvarint key length, key, and for a set uvarint value length
// and value.
func encodeLog(ops []logOp) []byte {
	n := 1
	for _, o := range ops {
		n += 1 + 2*binary.MaxVarintLen32 + len(o.key) + len(o.val)
	}
	b := make([]byte, 1, n)
	b[0] = logFormat
	for _, o := range ops {
		if o.del {
			b = append(b, 2)
		} else {
			b = append(b, 1)
		}
		b = binary.AppendUvarint(b, uint64(len(o.key)))
		b = append(b, o.key...)
		if !o.del {
			b = binary.AppendUvarint(b, uint64(len(o.val)))
			b = append(b, o.val...)
		}
	}
	return b
}

// decodeLog reads a log entry; keys and values are slices of b.
func decodeLog(b []byte) ([]logOp, error) {
	if len(b) < 1 || b[0] != logFormat {
		return nil, errors.New("unknown log entry format")
	}
	var ops []logOp
	rest := b[1:]
	field := func() ([]byte, error) {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return nil, errors.New("truncated log entry")
		}
		if k != len(binary.AppendUvarint(nil, n)) {
			return nil, errors.New("log entry: length not in its shortest form")
		}
		f := rest[k : k+int(n)]
		rest = rest[k+int(n):]
		return f, nil
	}
	for len(rest) > 0 {
		op := logOp{del: rest[0] == 2}
		if rest[0] != 1 && rest[0] != 2 {
			return nil, fmt.Errorf("log entry: unknown operation %d", rest[0])
		}
		rest = rest[1:]
		var err error
		if op.key, err = field(); err != nil {
			return nil, err
		}
		if len(op.key) == 0 || op.key[0] == byte(KindCache) {
			return nil, errors.New("log entry: bad key")
		}
		if !op.del {
			if op.val, err = field(); err != nil {
				return nil, err
			}
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// logTxn is a transaction of a remote store's writer: it records its
// writes for the log.
type logTxn struct {
	bTxn
	ops []logOp
}

func (t *logTxn) Set(key, val []byte) error {
	if err := t.bTxn.Set(key, val); err != nil {
		return err
	}
	t.ops = append(t.ops, logOp{key: bytes.Clone(key), val: bytes.Clone(val)})
	return nil
}

func (t *logTxn) Delete(key []byte) error {
	if err := t.bTxn.Delete(key); err != nil {
		return err
	}
	t.ops = append(t.ops, logOp{del: true, key: bytes.Clone(key)})
	return nil
}

// updateRemote runs fn in a transaction whose writes are appended to the
// remote's log before the cache commits them.
func (ss *Session) updateRemote(fn func(txn Txn) error) error {
	ss.logMu.Lock()
	defer ss.logMu.Unlock()
	if ss.broken != nil {
		return ss.broken
	}
	var next uint64
	err := ss.db.Update(func(t *badger.Txn) error {
		lt := &logTxn{bTxn: bTxn{t}}
		if err := fn(lt); err != nil {
			return err
		}
		if len(lt.ops) == 0 {
			return nil
		}
		next = ss.seq + 1
		if err := ss.appendLog(next, lt.ops); err != nil {
			next = 0
			return err
		}
		return t.Set(cacheSeqKey, seqBytes(next))
	})
	if next != 0 {
		if err != nil {
			// The log has the entry, the cache does not: the next
			// session replays it. This one can write no more.
			ss.broken = fmt.Errorf("store %s: committed to the log, but the local cache failed: %w", ss.s.remote, err)
			return ss.broken
		}
		ss.seq = next
	}
	return err
}

func (ss *Session) appendLog(seq uint64, ops []logOp) error {
	err := ss.s.remote.Append(ss.context(), seq, encodeLog(ops))
	if errors.Is(err, ErrLogConflict) {
		ss.broken = fmt.Errorf("store %s: log entry %d: %w (this writer lost its lock); nothing was changed, run the command again", ss.s.remote, seq, err)
		return ss.broken
	}
	return err
}

func seqBytes(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// logBatch is a write batch of a remote store's writer: its writes are
// appended to the log in entries of at most maxLogEntry bytes, each
// applied to the cache once logged.
type logBatch struct {
	ss   *Session
	ops  []logOp
	size int
}

const maxLogEntry = 8 << 20

func (b *logBatch) Set(key, val []byte) error {
	b.ops = append(b.ops, logOp{key: bytes.Clone(key), val: bytes.Clone(val)})
	b.size += len(key) + len(val) + 8
	if b.size >= maxLogEntry {
		return b.Flush()
	}
	return nil
}

func (b *logBatch) Delete(key []byte) error {
	b.ops = append(b.ops, logOp{del: true, key: bytes.Clone(key)})
	b.size += len(key) + 8
	if b.size >= maxLogEntry {
		return b.Flush()
	}
	return nil
}

// Flush logs and applies what was added since the last flush.
func (b *logBatch) Flush() error {
	if len(b.ops) == 0 {
		return nil
	}
	ss := b.ss
	ss.logMu.Lock()
	defer ss.logMu.Unlock()
	if ss.broken != nil {
		return ss.broken
	}
	next := ss.seq + 1
	if err := ss.appendLog(next, b.ops); err != nil {
		return err
	}
	err := applyOps(ss.db, b.ops, next)
	b.ops, b.size = nil, 0
	if err != nil {
		ss.broken = fmt.Errorf("store %s: committed to the log, but the local cache failed: %w", ss.s.remote, err)
		return ss.broken
	}
	ss.seq = next
	return nil
}

func (b *logBatch) Cancel() { b.ops, b.size = nil, 0 }

// applyOps writes logged operations and the log position to the cache.
func applyOps(db *badger.DB, ops []logOp, seq uint64) error {
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	for _, o := range ops {
		var err error
		if o.del {
			err = wb.Delete(o.key)
		} else {
			err = wb.Set(o.key, o.val)
		}
		if err != nil {
			return err
		}
	}
	if err := wb.Set(cacheSeqKey, seqBytes(seq)); err != nil {
		return err
	}
	return wb.Flush()
}

// cachePosition is the last log entry a cache applied and the ID of the
// store it was made for (nil for a new cache).
func cachePosition(db *badger.DB) (seq uint64, id []byte, err error) {
	err = db.View(func(t *badger.Txn) error {
		txn := &bTxn{t}
		if v, err := txn.Get(cacheSeqKey); err == nil && len(v) == 8 {
			seq = binary.BigEndian.Uint64(v)
		}
		id, _ = txn.Get(cacheIDKey)
		return nil
	})
	return seq, id, err
}

// catchUp applies to the cache every log entry it has not seen. A cache
// made for another store is emptied first.
func (ss *Session) catchUp(ctx context.Context) error {
	r := ss.s.remote
	seq, id, err := cachePosition(ss.db)
	if err != nil {
		return err
	}
	if string(id) != r.ID() {
		if id != nil {
			ss.s.log.Info("the local cache belongs to another store; rebuilding it", "store", r.String())
		}
		if err := ss.db.DropAll(); err != nil {
			return fmt.Errorf("drop stale cache: %w", err)
		}
		if err := ss.db.Update(func(t *badger.Txn) error { return t.Set(cacheIDKey, []byte(r.ID())) }); err != nil {
			return err
		}
		seq = 0
	}
	if seq == 0 {
		if seq, err = ss.loadLatestCheckpoint(ctx); err != nil {
			return fmt.Errorf("store %s: %w", r, err)
		}
	}
	applied := 0
	err = r.Entries(ctx, seq, func(n uint64, entry []byte) error {
		if n != seq+1 {
			return fmt.Errorf("log entry %d follows %d: the log has a gap", n, seq)
		}
		ops, err := decodeLog(entry)
		if err != nil {
			return fmt.Errorf("log entry %d: %w", n, err)
		}
		if err := applyOps(ss.db, ops, n); err != nil {
			return err
		}
		seq = n
		applied++
		return nil
	})
	ss.seq = seq
	if err != nil {
		return fmt.Errorf("store %s: read the log: %w", r, err)
	}
	if applied > 0 {
		ss.s.log.Debug("caught up with the store's log", "store", r.String(), "entries", applied, "at", seq)
	}
	return nil
}

// cacheBehind says whether the remote's log has entries the cache db has
// not applied (or the cache is another store's).
func (s *Store) cacheBehind(ctx context.Context, db *badger.DB) (bool, error) {
	seq, id, err := cachePosition(db)
	if err != nil {
		return false, err
	}
	if string(id) != s.remote.ID() {
		return true, nil
	}
	newer, err := s.remote.Newer(ctx, seq)
	if err != nil {
		return false, fmt.Errorf("store %s: read the log: %w", s.remote, err)
	}
	return newer, nil
}

// refreshCache brings the cache up to the remote's log, holding the
// database gate alone (no writer lock: reading the log needs none).
func (s *Store) refreshCache(ctx context.Context) error {
	dl, err := flock.Acquire(ctx, filepath.Join(s.dir, dbLockFile), "store database "+s.dir+" (a writer is committing)", flock.Exclusive, s.wait, nil)
	if err != nil {
		return err
	}
	defer dl.Unlock()
	db, err := badger.Open(badgerOptions(filepath.Join(s.dir, dbDir), false, s.log))
	if err != nil {
		return fmt.Errorf("cache of %s: open database: %w", s.remote, err)
	}
	ss := &Session{s: s, db: db}
	err = ss.catchUp(ctx)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return err
}
