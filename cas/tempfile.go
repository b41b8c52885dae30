package cas

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/mephstore/mephstore/internal/flock"
	"github.com/mephstore/mephstore/internal/fsx"
)

// createTempFile creates a new temp file in pool/.ingest, flocked, named
// with this process's prefix (see Store.tempPrefix).
func (s *Store) createTempFile() (string, *os.File, error) {
	path := s.tempPath()
	f, err := s.createLocked(path)
	return path, f, err
}

// tempPath is a new temp file name in pool/.ingest with this process's
// prefix.
func (s *Store) tempPath() string {
	return filepath.Join(s.ingestPath(), fsx.TempName(s.tempPrefix, partSuffix))
}

// createStagingFile creates the file a blob is staged in: an unnamed
// O_TMPFILE inode in pool/.ingest, which only Commit names, by linking it
// straight into the pool (linkNoReplace). Nothing can see it before that,
// so it needs no flock to mark it live, and a crash or a Discard leaves
// nothing behind; path is then "". File systems without O_TMPFILE get a
// named, flocked temp file (createThenLock, without asking for O_TMPFILE
// again).
func (s *Store) createStagingFile() (string, *os.File, error) {
	fd, err := s.openTmpfile()
	if errors.Is(err, errNoTmpfile) {
		path := s.tempPath()
		f, err := createThenLock(path)
		return path, f, err
	}
	if err != nil {
		return "", nil, err
	}
	return "", os.NewFile(uintptr(fd), filepath.Join(s.ingestPath(), "(unnamed)")), nil
}

// errNoTmpfile: the file system cannot make unnamed files (O_TMPFILE).
var errNoTmpfile = errors.New("no O_TMPFILE")

// openTmpfile makes an unnamed file in pool/.ingest and returns its
// descriptor, or errNoTmpfile where the file system cannot (or the store
// was told to act as if, see Store.noTmpfile).
func (s *Store) openTmpfile() (int, error) {
	if s.noTmpfile {
		return -1, errNoTmpfile
	}
	fd, err := unix.Open(s.ingestPath(), unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o644)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) {
		return -1, errNoTmpfile
	}
	return fd, err
}

// linkNoReplace gives the unnamed file f the name dst unless dst exists;
// it reports whether it did.
func linkNoReplace(f *os.File, dst string) (bool, error) {
	err := linkFD(int(f.Fd()), dst)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EEXIST):
		return false, nil
	default:
		return false, err
	}
}

// linkFD gives the open file fd the name dst (an O_TMPFILE file its first
// name): linkat of /proc/self/fd/N, which fails with EEXIST on an existing
// name.
func linkFD(fd int, dst string) error {
	return unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unix.AT_FDCWD, dst, unix.AT_SYMLINK_FOLLOW)
}

// createLocked creates the temp file path (in pool/.ingest) already
// flocked: recovery, which any writer session of this or another process
// runs, removes every temp file whose flock is free, so a file must never
// be visible under its name unlocked, not even between its creation and
// its flock. It is made as an unnamed O_TMPFILE inode, flocked, then
// linked to its name; a crash before the link leaves nothing. File systems
// without O_TMPFILE get create-then-flock (a window of two system calls).
func (s *Store) createLocked(path string) (*os.File, error) {
	fd, err := s.openTmpfile()
	if errors.Is(err, errNoTmpfile) {
		return createThenLock(path)
	}
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), path)
	if got, err := flock.TryExclusive(f); err != nil || !got {
		f.Close()
		return nil, fmt.Errorf("lock temp file %s: %v", path, err)
	}
	if err := linkFD(fd, path); err != nil {
		f.Close()
		return nil, fmt.Errorf("create temp file %s: %w", path, err)
	}
	return f, nil
}

func createThenLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	if got, err := flock.TryExclusive(f); err != nil || !got {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("lock temp file %s: %v", path, err)
	}
	return f, nil
}
