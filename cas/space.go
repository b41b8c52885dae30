package cas

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/mephstore/mephstore/internal/fsx"
)

// ErrNoSpace is wrapped when the store's file system has too little free
// space for a writer session.
var ErrNoSpace = errors.New("no space left")

// The database (badger) writes its logs and tables through memory maps: on
// a full file system a write to a mapped page is not an error but a
// SIGBUS. So no writer session opens the database unless MinFree bytes
// are free, and each store keeps a reserve: a file of real blocks that gc,
// the command that frees space, deletes when the disk is full, to have
// room for its own records, and puts back when it is done.
const (
	// MinFree is the free space a writer session needs: room for a
	// memtable flush (16 MiB) and its log, with a margin.
	MinFree = 32 << 20
	// DefaultReserve is the size of the reserve file init makes.
	DefaultReserve = 32 << 20
	reserveFile    = "reserve"
)

type reserveKey struct{}

// WithReserve marks ctx as the context of an operation that frees space
// (gc): its writer sessions may use the store's reserve when the disk is
// full.
func WithReserve(ctx context.Context) context.Context {
	return context.WithValue(ctx, reserveKey{}, true)
}

func mayUseReserve(ctx context.Context) bool { v, _ := ctx.Value(reserveKey{}).(bool); return v }

// freeBytes is what an unprivileged writer can still write on dir's file
// system.
func freeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// makeReserve writes the reserve file with size bytes of real blocks
// (fallocate), through a temp file, so that a reserve is whole or absent.
func makeReserve(dir string, size int64) error {
	if size <= 0 {
		return nil
	}
	tmp := filepath.Join(dir, fsx.TempName(".reserve.", ".tmp"))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	err = unix.Fallocate(int(f.Fd()), 0, 0, size)
	if errors.Is(err, unix.EOPNOTSUPP) {
		err = writeZeros(f, size)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("reserve: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, reserveFile)); err != nil {
		return err
	}
	return fsx.SyncDir(dir)
}

func writeZeros(f *os.File, size int64) error {
	buf := make([]byte, 1<<20)
	for size > 0 {
		n, err := f.Write(buf[:min(int64(len(buf)), size)])
		if err != nil {
			return err
		}
		size -= int64(n)
	}
	return nil
}

// reserveSize is the size of the store's reserve file (0 when it has none).
func (s *Store) reserveSize() int64 {
	fi, err := os.Stat(filepath.Join(s.dir, reserveFile))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// checkSpace runs before a writer session opens the database: it fails
// with ErrNoSpace below MinFree (a quarter of it for an operation that
// frees space, which writes little).
func (s *Store) checkSpace(ctx context.Context) error {
	free, err := freeBytes(s.dir)
	if err != nil {
		return fmt.Errorf("store %s: %w", s.dir, err)
	}
	need := int64(MinFree)
	if mayUseReserve(ctx) {
		need /= 4
	}
	if free >= need {
		return nil
	}
	hint := "free space, or run 'mephstore gc', which may use the store's reserve"
	if s.reserveSize() == 0 {
		hint = "free space (this store has no reserve left for gc to use)"
	}
	return fmt.Errorf("store %s: %w on its file system: %d MiB free, a writer needs %d MiB (%s)", s.dir, ErrNoSpace, free>>20, need>>20, hint)
}

// ReleaseReserve deletes the store's reserve when the file system has less
// than MinFree left, so that an operation that frees space (gc, with a
// context from WithReserve) has room for its own records. putBack makes the
// reserve again once there is room for it; call it when done.
func (s *Store) ReleaseReserve() (putBack func(), err error) {
	free, err := freeBytes(s.dir)
	size := s.reserveSize()
	if err != nil || free >= MinFree || size == 0 {
		return func() {}, err
	}
	if err := os.Remove(filepath.Join(s.dir, reserveFile)); err != nil {
		return func() {}, fmt.Errorf("store %s: release the reserve: %w", s.dir, err)
	}
	if err := fsx.SyncDir(s.dir); err != nil {
		return func() {}, err
	}
	s.log.Warn("the store's file system is full: using the store's reserve to free space", "store", s.dir, "free_bytes", free, "reserve_bytes", size)
	return func() { s.putReserve(size) }, nil
}

// putReserve makes the reserve again, if the space is there now; if not,
// the next gc finds none to use (and says so).
func (s *Store) putReserve(size int64) {
	free, err := freeBytes(s.dir)
	if err != nil || free < size+MinFree {
		s.log.Warn("could not put the store's reserve back: too little free space", "store", s.dir, "free_bytes", free, "reserve_bytes", size)
		return
	}
	if err := makeReserve(s.dir, size); err != nil {
		s.log.Warn("could not put the store's reserve back", "store", s.dir, "err", err)
	}
}
