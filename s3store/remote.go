package s3store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/fsx"
)

// Store is a whole mephstore store on a bucket (cas.Remote): the pool,
// the log of record transactions, the writer lock and the server's clock.
// See paths.go for the layout.
type Store struct {
	b    *Bucket
	pool *Pool
	id   string
}

var _ cas.Remote = (*Store)(nil)

// formatDoc is the store's format object.
type formatDoc struct {
	Format string `json:"format"`
	ID     string `json:"id"`
}

const storeFormat = "mephstore-store 1 s3"

// maxLogEntry bounds what a log entry read may hold (writers make them
// at most 8 MiB).
const maxLogEntry = 64 << 20

// ErrNoStore is wrapped when the location holds no store.
var ErrNoStore = errors.New("no mephstore store here")

// InitStore makes a new, empty store at b (its format object, written
// only if none exists); with create, it makes the bucket first when the
// bucket does not exist.
func InitStore(ctx context.Context, cfg Config, create bool) (*Store, error) {
	b, err := Dial(cfg)
	if err != nil {
		return nil, err
	}
	if err := b.Check(ctx); errors.Is(err, ErrNoBucket) && create {
		if err := b.MakeBucket(ctx); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	doc, _ := json.Marshal(formatDoc{Format: storeFormat, ID: fsx.TempName("", "")})
	if _, err := b.Put(ctx, formatKey, append(doc, '\n'), Cond{IfNoneMatch: true}); err != nil {
		if errors.Is(err, ErrPrecondition) {
			return nil, fmt.Errorf("init %s: %w", b, cas.ErrStoreExists)
		}
		return nil, fmt.Errorf("init %s: %w", b, err)
	}
	return OpenStore(ctx, cfg)
}

// OpenStore opens the store at cfg's location.
func OpenStore(ctx context.Context, cfg Config) (*Store, error) {
	b, err := Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	raw, _, err := b.Get(ctx, formatKey, 4096)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("store %s: %w (create one with 'mephstore init %s')", b, ErrNoStore, b.URL())
	}
	if err != nil {
		return nil, err
	}
	var doc formatDoc
	if err := json.Unmarshal(raw, &doc); err != nil || doc.Format != storeFormat || doc.ID == "" {
		return nil, fmt.Errorf("store %s: %w (format object %q)", b, cas.ErrNotStore, strings.TrimSpace(string(raw)))
	}
	return &Store{b: b, pool: NewPool(b), id: doc.ID}, nil
}

// Bucket is where the store is.
func (s *Store) Bucket() *Bucket { return s.b }

// String names the store: s3://bucket/prefix at its endpoint.
func (s *Store) String() string { return s.b.String() }

// ID is the store's identity, made by InitStore.
func (s *Store) ID() string { return s.id }

// Pool is the store's blob pool.
func (s *Store) Pool() cas.BlobStore { return s.pool }

// Now is the server's time.
func (s *Store) Now() time.Time { return s.b.Now() }

// Lock takes the store's writer lock, waiting up to wait.
func (s *Store) Lock(ctx context.Context, op string, wait time.Duration) (func(), error) {
	lctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	unlock, err := s.b.Lock(lctx, locksDir, "store", true)
	if errors.Is(err, ErrLocked) && ctx.Err() == nil {
		return nil, fmt.Errorf("store %s: another writer holds it (waited %s for %s; see %s%s/store/x): %w",
			s.b, wait, op, s.b.prefix, locksDir, cas.ErrLocked)
	}
	return unlock, err
}

func logKey(seq uint64) string { return fmt.Sprintf("%s%020d", logDir, seq) }

// Append writes log entry seq if no entry seq exists.
func (s *Store) Append(ctx context.Context, seq uint64, entry []byte) error {
	_, err := s.b.Put(ctx, logKey(seq), entry, Cond{IfNoneMatch: true})
	if errors.Is(err, ErrPrecondition) {
		return fmt.Errorf("log entry %d: %w", seq, cas.ErrLogConflict)
	}
	return err
}

// Entries calls fn with every log entry after seq, in order.
func (s *Store) Entries(ctx context.Context, after uint64, fn func(uint64, []byte) error) error {
	return s.b.List(ctx, logDir, logKey(after), func(o Info) error {
		n, err := strconv.ParseUint(strings.TrimPrefix(o.Key, logDir), 10, 64)
		if err != nil || len(o.Key) != len(logKey(0)) {
			return fmt.Errorf("log: stray object %s", o.Key)
		}
		entry, _, err := s.b.Get(ctx, o.Key, maxLogEntry)
		if err != nil {
			return err
		}
		return fn(n, entry)
	})
}

var errFound = errors.New("found")

var _ cas.Checkpoints = (*Store)(nil)

func checkpointKey(seq uint64) string { return fmt.Sprintf("%s%020d", checkpointDir, seq) }

// PutCheckpoint stores the records as of log entry seq. Its bytes are
// the same whoever writes them, so it needs no condition.
func (s *Store) PutCheckpoint(ctx context.Context, seq uint64, r io.Reader) error {
	_, err := s.b.PutStream(ctx, checkpointKey(seq), r, -1, PartSize)
	return err
}

// LatestCheckpoint opens the newest checkpoint.
func (s *Store) LatestCheckpoint(ctx context.Context) (uint64, io.ReadCloser, error) {
	var last string
	err := s.b.List(ctx, checkpointDir, "", func(o Info) error {
		if len(o.Key) == len(checkpointKey(0)) {
			last = o.Key
		}
		return nil
	})
	if err != nil || last == "" {
		return 0, nil, err
	}
	seq, err := strconv.ParseUint(strings.TrimPrefix(last, checkpointDir), 10, 64)
	if err != nil {
		return 0, nil, fmt.Errorf("checkpoint %s: %w", last, err)
	}
	rc, _, err := s.b.Reader(ctx, last)
	return seq, rc, err
}

// Newer says whether the log has an entry after seq.
func (s *Store) Newer(ctx context.Context, after uint64) (bool, error) {
	err := s.b.List(ctx, logDir, logKey(after), func(Info) error { return errFound })
	if errors.Is(err, errFound) {
		return true, nil
	}
	return false, err
}

// OpenCached opens the store at location (s3://bucket/prefix, with an
// optional ?endpoint=URL) with cache as this machine's cache of its
// records (made when missing).
func OpenCached(ctx context.Context, location, cache string, opts cas.Options) (*cas.Store, error) {
	cfg, err := ParseRoot(location, "")
	if err != nil {
		return nil, err
	}
	r, err := OpenStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return cas.OpenRemote(cache, r, opts)
}

// CacheName is the directory name of a location's cache under a cache
// root: readable, and unique per bucket and prefix.
func CacheName(location string) string {
	loc, _, _ := strings.Cut(location, "?")
	sum := sha256.Sum256([]byte(loc))
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, strings.ToLower(strings.TrimPrefix(loc, Scheme)))
	if len(name) > 60 {
		name = name[:60]
	}
	return name + "-" + hex.EncodeToString(sum[:4])
}
