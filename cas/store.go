package cas

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"

	"github.com/mephstore/mephstore/internal/flock"
	"github.com/mephstore/mephstore/internal/fsx"
)

// Errors callers can test with errors.Is.
var (
	ErrNoStore        = errors.New("no mephstore store here")
	ErrNotStore       = errors.New("not a mephstore store")
	ErrStoreExists    = errors.New("a store already exists")
	ErrLocked         = flock.ErrLocked
	ErrReadOnly       = errors.New("read-only session")
	ErrSizeMismatch   = errors.New("size mismatch")
	ErrDigestMismatch = errors.New("sha256 mismatch")
	ErrBlobNotFound   = errors.New("blob not found")
	ErrBadDigest      = errors.New("bad digest")
	ErrCorrupt        = errors.New("corrupt blob")
)

// DefaultWait is how long a writer waits for the store lock by default.
const DefaultWait = 5 * time.Second

// Options tune how a store is opened.
type Options struct {
	Wait   time.Duration    // how long to wait for a lock; 0 means DefaultWait
	Logger *slog.Logger     // nil discards
	Now    func() time.Time // nil means time.Now; tests inject a clock
	// CheckpointEvery is how many log entries of a remote store lie
	// between checkpoints (0: DefaultCheckpointEvery).
	CheckpointEvery int
}

// Store is an opened store directory. Opening it checks the layout and takes
// no lock; sessions (Writer, Reader) take the locks they need.
type Store struct {
	dir  string
	wait time.Duration
	log  *slog.Logger
	now  func() time.Time
	bufs sync.Pool // chunkSize buffers of the ingest pipeline
	// uploading bounds the background uploads of small blobs to a
	// remote's pool (stageRemote).
	uploading chan struct{}
	// ended holds the IDs of leases a session ended (EndLease) before
	// their holder released them: the release then has nothing to do.
	ended sync.Map
	// remote, when set, is the truth of the store: dir is then a cache
	// of its records and a staging area (see Remote).
	remote Remote
	// checkpointEvery: log entries between checkpoints of a remote.
	checkpointEvery int
	// tempPrefix starts the name of every temp file this process makes
	// in pool/.ingest: its pid and a dash. A writer session's recovery
	// passes over them unopened (they are this process's: live, or about
	// to be removed by it); it opened and tried to flock each before, 481
	// of them in a promote's commit at 77k items, 8 ms. A dead process's
	// file whose pid a live one has been given again waits for the
	// recovery of a process with another pid.
	tempPrefix string
	// shared is the reader that ShareReads lets sessions borrow.
	shared sharedReads
	// noTmpfile makes the store act as on a file system without
	// O_TMPFILE (named, flocked temp files only), for the tests of that
	// path.
	noTmpfile bool
}

// Init creates a new, empty store at dir with the default reserve (see
// MinFree). dir may exist if it is empty.
func Init(dir string) error { return InitWith(dir, DefaultReserve) }

// InitWith is Init with a reserve of the given size (0: none).
func InitWith(dir string, reserve int64) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, formatFile)); err == nil {
		return fmt.Errorf("init %s: %w", dir, ErrStoreExists)
	}
	if ents, err := os.ReadDir(dir); err == nil {
		for _, e := range ents {
			// A half-done init left only our own directories: finish it.
			switch e.Name() {
			case dbDir, poolDir, lockFile, dbLockFile, reserveFile:
			default:
				return fmt.Errorf("init %s: directory is not empty and holds no store (found %q)", dir, e.Name())
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("init %s: %w", dir, err)
	}
	for _, d := range []string{filepath.Join(dir, poolDir, blobsDir), filepath.Join(dir, poolDir, ingestDir), filepath.Join(dir, dbDir)} {
		if err := fsx.MkdirDurable(d, 0o755); err != nil {
			return fmt.Errorf("init %s: %w", dir, err)
		}
	}
	db, err := badger.Open(badgerOptions(filepath.Join(dir, dbDir), false, nil))
	if err != nil {
		return fmt.Errorf("init %s: database: %w", dir, err)
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("init %s: database: %w", dir, err)
	}
	if err := makeReserve(dir, reserve); err != nil {
		return fmt.Errorf("init %s: %w", dir, err)
	}
	// The format file is written last: a directory without it is no store.
	if err := fsx.WriteFileAtomic(filepath.Join(dir, formatFile), []byte(formatContent), 0o644); err != nil {
		return fmt.Errorf("init %s: %w", dir, err)
	}
	return nil
}

// Open opens the store at dir. It fails with ErrNoStore when dir does not
// exist and ErrNotStore when it holds something else.
func Open(dir string, opts Options) (*Store, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, formatFile))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Stat(dir); serr != nil {
				return nil, fmt.Errorf("store %s: %w (create one with 'mephstore init')", dir, ErrNoStore)
			}
			return nil, fmt.Errorf("store %s: %w (no %s file; create one with 'mephstore init')", dir, ErrNotStore, formatFile)
		}
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
	if string(b) != formatContent {
		return nil, fmt.Errorf("store %s: %w (format %q, this mephstore reads %q)", dir, ErrNotStore,
			strings.TrimSpace(string(b)), strings.TrimSpace(formatContent))
	}
	s := &Store{dir: dir, wait: opts.Wait, log: opts.Logger, now: opts.Now, uploading: make(chan struct{}, 8),
		tempPrefix: strconv.Itoa(os.Getpid()) + "-"}
	if s.wait <= 0 {
		s.wait = DefaultWait
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// Dir is the store's absolute directory.
func (s *Store) Dir() string { return s.dir }

// Logger is the store's logger.
func (s *Store) Logger() *slog.Logger { return s.log }

// Now is the store's clock.
func (s *Store) Now() time.Time { return s.now() }

// Session is an open handle on the store's database: a writer session (one
// process at a time, holding the store lock) or a reader session.
type Session struct {
	s        *Store
	db       *badger.DB
	lock     *flock.Lock // nil for readers
	dbLock   *flock.Lock
	writable bool
	borrowed bool // a reader borrowing the store's shared reader (ShareReads)
	// For a store with a remote: the writer lock on it, the context of
	// the session's log writes, the last log entry in the cache, and why
	// the session can write no more (a failed log write).
	unlockRemote func()
	ctx          context.Context
	seq          uint64
	startSeq     uint64 // seq when the session opened (checkpoints)
	broken       error
	logMu        sync.Mutex // one log write at a time: entries are numbered
	// Recovered says what recovery did when this writer session opened.
	Recovered Recovery
}

// Writer opens a writer session for the operation op (shown to other
// processes that find the store locked). It waits up to the store's wait for
// the lock, then runs crash recovery. Keep writer sessions short; stage blob
// bytes before opening one.
func (s *Store) Writer(ctx context.Context, op string) (*Session, error) {
	s.endSharedReads()
	host, _ := os.Hostname()
	holder := &flock.Holder{PID: os.Getpid(), Host: host, Since: s.now(), Operation: op}
	start := time.Now()
	lk, err := flock.Acquire(ctx, filepath.Join(s.dir, lockFile), "store "+s.dir, flock.Exclusive, s.wait, holder)
	if err != nil {
		return nil, err
	}
	// Readers hold db.lock shared for the length of a listing; wait for them
	// within what is left of the same budget.
	left := s.wait - time.Since(start)
	unlockRemote := func() {}
	if s.remote != nil {
		if unlockRemote, err = s.remote.Lock(ctx, op, max(left, 0)); err != nil {
			lk.Unlock()
			return nil, err
		}
		left = s.wait - time.Since(start)
	}
	dl, err := flock.Acquire(ctx, filepath.Join(s.dir, dbLockFile), "store database "+s.dir+" (a reader is listing it)", flock.Exclusive, max(left, 0), nil)
	if err != nil {
		unlockRemote()
		lk.Unlock()
		return nil, err
	}
	err = s.checkSpace(ctx)
	if err == nil {
		err = s.dropEmptyValueLogs()
	}
	if err != nil {
		dl.Unlock()
		unlockRemote()
		lk.Unlock()
		return nil, err
	}
	db, err := badger.Open(badgerOptions(filepath.Join(s.dir, dbDir), false, s.log))
	if err != nil {
		dl.Unlock()
		unlockRemote()
		lk.Unlock()
		return nil, fmt.Errorf("store %s: open database: %w", s.dir, err)
	}
	ss := &Session{s: s, db: db, lock: lk, dbLock: dl, writable: true, unlockRemote: unlockRemote, ctx: ctx}
	if s.remote != nil {
		if err := ss.catchUp(ctx); err != nil {
			ss.Close()
			return nil, err
		}
		ss.startSeq = ss.seq
	}
	rec, err := ss.recover(ctx)
	if err != nil {
		ss.Close()
		return nil, fmt.Errorf("store %s: recovery: %w", s.dir, err)
	}
	ss.Recovered = rec
	if rec.TempFiles > 0 || rec.Intents > 0 || rec.Deleted > 0 {
		s.log.Info("recovered from an interrupted operation", "store", s.dir,
			"temp_files_removed", rec.TempFiles, "commits_finished", rec.Adopted, "commits_dropped", rec.Intents-rec.Adopted,
			"deletes_finished", rec.Deleted)
	}
	return ss, nil
}

// dropEmptyValueLogs removes zero-length badger log files (value logs
// *.vlog and memtable write-ahead logs *.mem). badger creates them empty and
// then sizes them; a process killed in between leaves a file that badger v4
// refuses to open ("Open existing file: ... Create a new file", "while
// opening memtables ... Create a new file"), bricking the database. An empty
// log holds no entries, so removing it loses nothing. Found by the SIGKILL
// ingest test.
func (s *Store) dropEmptyValueLogs() error {
	ents, err := os.ReadDir(filepath.Join(s.dir, dbDir))
	if err != nil {
		return fmt.Errorf("store %s: %w", s.dir, err)
	}
	removed := false
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".vlog") && !strings.HasSuffix(e.Name(), ".mem") {
			continue
		}
		fi, err := e.Info()
		if err != nil || fi.Size() != 0 {
			continue
		}
		p := filepath.Join(s.dir, dbDir, e.Name())
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("store %s: remove empty value log: %w", s.dir, err)
		}
		s.log.Info("removed an empty database log left by a crash", "file", p)
		removed = true
	}
	if !removed {
		return nil // nothing of ours to make durable
	}
	return fsx.SyncDir(filepath.Join(s.dir, dbDir))
}

// Reader opens a read-only session. It never takes the writer lock; it waits
// only while a writer session is committing. After a crash, badger needs a
// read-write open to replay its log: Reader then runs a short writer session
// (recovery) first. While reads are shared (ShareReads), it borrows the
// one shared reader.
func (s *Store) Reader(ctx context.Context) (*Session, error) {
	if ss, err := s.borrowReader(ctx); ss != nil || err != nil {
		return ss, err
	}
	return s.openReader(ctx)
}

// openReader opens a read-only session of its own.
func (s *Store) openReader(ctx context.Context) (*Session, error) {
	for attempt := 0; ; attempt++ {
		dl, err := flock.Acquire(ctx, filepath.Join(s.dir, dbLockFile), "store database "+s.dir+" (a writer is committing)", flock.Shared, s.wait, nil)
		if err != nil {
			return nil, err
		}
		db, err := badger.Open(badgerOptions(filepath.Join(s.dir, dbDir), true, s.log))
		if err == nil && s.remote != nil && attempt < 3 {
			var behind bool
			if behind, err = s.cacheBehind(ctx, db); err != nil {
				db.Close()
				dl.Unlock()
				return nil, err
			}
			if behind {
				db.Close()
				dl.Unlock()
				if err := s.refreshCache(ctx); err != nil {
					return nil, err
				}
				continue
			}
		}
		if err == nil {
			return &Session{s: s, db: db, dbLock: dl}, nil
		}
		dl.Unlock()
		if attempt > 0 {
			return nil, fmt.Errorf("store %s: open database read-only: %w", s.dir, err)
		}
		s.log.Debug("read-only open failed; running recovery", "err", err)
		w, werr := s.Writer(ctx, "recovery")
		if werr != nil {
			return nil, fmt.Errorf("store %s: database needs recovery after a crash: %w", s.dir, werr)
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	}
}

// Store is the store this session belongs to.
func (ss *Session) Store() *Store { return ss.s }

// View runs fn in a read transaction.
func (ss *Session) View(fn func(txn Txn) error) error {
	return ss.db.View(func(t *badger.Txn) error { return fn(&bTxn{t}) })
}

// Update runs fn in a read-write transaction; it fails on reader sessions.
// On a store with a remote, its writes are the next entry of the log.
func (ss *Session) Update(fn func(txn Txn) error) error { return ss.update(fn) }

func (ss *Session) update(fn func(txn Txn) error) error {
	if !ss.writable {
		return ErrReadOnly
	}
	if ss.s.remote != nil {
		return ss.updateRemote(fn)
	}
	return ss.db.Update(func(t *badger.Txn) error { return fn(&bTxn{t}) })
}

// Close closes the database and releases the locks (a borrowed reader
// gives the shared one back).
func (ss *Session) Close() error {
	if ss.db == nil {
		return nil
	}
	if ss.borrowed {
		ss.db = nil
		ss.s.returnReader()
		return nil
	}
	return ss.closeOwn()
}

// closeOwn closes a session that opened the database itself.
func (ss *Session) closeOwn() error {
	if ss.unlockRemote != nil && ss.writable {
		ss.checkpoint() // while the writer lock is still held
	}
	if ss.writable {
		if err := ss.MergeRecords(maxLevelZeroTables); err != nil {
			ss.s.log.Warn("database tables not merged; the next writer tries again", "err", err)
		}
	}
	err := ss.db.Close()
	ss.db = nil
	ss.dbLock.Unlock()
	if ss.unlockRemote != nil {
		ss.unlockRemote()
	}
	ss.lock.Unlock()
	if err != nil {
		return fmt.Errorf("store %s: close database: %w", ss.s.dir, err)
	}
	return nil
}

// maxLevelZeroTables is how many level-0 tables a writer session lets
// stand before it merges them. badger turns a writer session's memtable
// into a new level-0 table when it closes, and its compactors (off here,
// see badgerOptions) waited up to a second after an open before their
// first look, so sessions as short as this store's never compacted: every
// writer session left one more table that every later open maps and every
// lookup searches (60 sessions left 60 tables; a store in daily use for a
// year would hold thousands). gc, the scheduled maintenance, merges them
// every run (MergeRecords); this bound is for a store whose gc does not
// run.
const maxLevelZeroTables = 64

// noStall is a level-0 table count no store reaches (MergeRecords runs at
// maxLevelZeroTables): badger makes a flush wait for its compactors once
// level 0 holds this many, and there are none.
const noStall = 1 << 20

// MergeRecords merges the database's level-0 tables into the tree when
// there are at least min of them. It costs a rewrite of the records (a few
// MiB for a large stream, tens of milliseconds); the records are intact
// whether or not it finishes (badger's compaction commits through its
// manifest).
func (ss *Session) MergeRecords(min int) error {
	if !ss.writable {
		return ErrReadOnly
	}
	n := ss.LevelZeroTables()
	if n < max(min, 1) {
		return nil
	}
	start := time.Now()
	if err := ss.db.Flatten(1); err != nil {
		return fmt.Errorf("store %s: merge records: %w", ss.s.dir, err)
	}
	ss.s.log.Debug("merged the database's level-0 tables", "tables", n, "took", time.Since(start))
	return nil
}

// LevelZeroTables is how many level-0 tables the database has. (It runs
// at every writer close: the level's count, not Tables(), which describes
// every table of every level, reading each one's index.)
func (ss *Session) LevelZeroTables() int { return ss.db.Levels()[0].NumTables }

// memTableSize is the records database's memtable. badger allocates an
// arena of about 1.3 times this size at every open and clears it, and the
// flush at close walks it: in a session that writes a few hundred records
// (a change's commit, a lease) a 4 MiB memtable cost 10-15 ms of each open
// and close in page faults and clearing alone. The largest transaction it
// admits is 15% of it (157 KiB, 1638 entries): writers split big batches
// (maxTxnEntries), and values above valueThreshold go to the value log.
const (
	memTableSize   = 1 << 20
	valueThreshold = 128 << 10
)

// maxTxnEntries bounds the writes of one records transaction, well inside
// what a memtable of memTableSize admits (about 1638 entries and 157 KiB,
// a blob record being under 100 bytes).
const maxTxnEntries = 1000

// memTableFor is the memtable an open of the database in dir must use: a
// write-ahead log (*.mem) that a crash left behind is replayed into an
// arena sized from the memtable, so a log written with a larger memtable
// (by an older mephstore) is opened with that memtable's size.
func memTableFor(dir string) int64 {
	size := int64(memTableSize)
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".mem") {
			continue
		}
		if fi, err := e.Info(); err == nil {
			size = max(size, fi.Size()/2)
		}
	}
	return size
}

func badgerOptions(dir string, readOnly bool, log *slog.Logger) badger.Options {
	// Small tables and no caches: records are tiny, sessions are short, and
	// the memory budget of a whole ingest is 64 MiB. Values stay in the
	// tree up to valueThreshold: badger starts a value log file at every
	// open and keeps each that holds a value, so with kilobyte values
	// (intents, lease refs) every writer session left a file that every
	// later open mapped (TestValueLogFilesDoNotGrowWithSessions).
	// No background compactors: they start at a random moment in the
	// first second after an open, so in a session of a few hundred
	// milliseconds one sometimes began merging tables and the close waited
	// for it (a tenth of a promote's samples at 77k items). Tables are
	// merged when this store decides (MergeRecords); with nothing to
	// compact, a flush must never wait for a compaction (noStall).
	o := badger.DefaultOptions(dir).
		WithReadOnly(readOnly).
		WithSyncWrites(true).
		WithCompression(options.None).
		WithBlockCacheSize(0).
		WithIndexCacheSize(0).
		WithMemTableSize(memTableFor(dir)).
		WithNumMemtables(2).
		WithValueLogFileSize(64 << 20).
		WithValueThreshold(valueThreshold).
		WithNumCompactors(0).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(noStall).
		WithNumVersionsToKeep(1).
		WithDetectConflicts(false).
		WithMetricsEnabled(false)
	if log != nil {
		o = o.WithLogger(badgerLogger{log})
	} else {
		o = o.WithLogger(nil)
	}
	return o
}

// LevelTrace is below debug: badger's chatter, shown with -vv.
const LevelTrace = slog.LevelDebug - 4

// badgerLogger sends badger's chatter to slog at trace level, warnings and
// errors at their own levels.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn("badger: " + strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Infof(f string, a ...any) {
	b.l.Log(context.Background(), LevelTrace, "badger: "+strings.TrimSpace(fmt.Sprintf(f, a...)))
}
func (b badgerLogger) Debugf(f string, a ...any) {
	b.l.Log(context.Background(), LevelTrace, "badger: "+strings.TrimSpace(fmt.Sprintf(f, a...)))
}

// NewWriteBatch starts a batch of writes (many keys, one sync) in this
// writer session.
func (ss *Session) NewWriteBatch() (Batch, error) {
	if !ss.writable {
		return nil, ErrReadOnly
	}
	if ss.s.remote != nil {
		return &logBatch{ss: ss}, nil
	}
	return &bBatch{ss.db.NewWriteBatch()}, nil
}
