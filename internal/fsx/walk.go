package fsx

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// ListFiles returns every non-directory under root as a slash-separated
// path relative to root, in no particular order. Symbolic links to
// directories are listed as neither (they are not followed); other links,
// dangling ones included, are listed as files. skipDir, when not nil, is
// asked about every directory (never root itself) and prunes it when it
// returns true; skipFile likewise drops files.
//
// Directories are read by jobs goroutines at once with getdents(2) into a
// buffer each: a tree of 400k items has 170k directories, and reading them
// one after another, each through an *os.File, costs twice as much.
func ListFiles(ctx context.Context, root string, jobs int, skipDir, skipFile func(rel string) bool) ([]string, error) {
	if jobs < 1 {
		jobs = 1
	}
	rootFd, err := openRetry(unix.AT_FDCWD, root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", root, err)
	}
	defer unix.Close(rootFd)
	w := &lister{ctx: ctx, root: root, rootFd: rootFd, skipDir: skipDir, skipFile: skipFile, stack: []string{""}, active: jobs}
	w.cond = sync.NewCond(&w.mu)
	outs := make([][]string, jobs)
	var wg sync.WaitGroup
	for j := range jobs {
		wg.Go(func() { outs[j] = w.work() })
	}
	wg.Wait()
	if w.err != nil {
		return nil, w.err
	}
	n := 0
	for _, o := range outs {
		n += len(o)
	}
	all := make([]string, 0, n)
	for _, o := range outs {
		all = append(all, o...)
	}
	return all, nil
}

type lister struct {
	ctx               context.Context
	root              string
	rootFd            int // root, opened once: directories are opened relative to it
	skipDir, skipFile func(string) bool

	mu     sync.Mutex
	cond   *sync.Cond
	stack  []string // directories shared for any worker to read
	active int      // workers with directories of their own to read
	idle   atomic.Int32
	failed atomic.Bool
	err    error
}

// work reads directories depth first from a stack of its own, and hands
// half of it over to the shared stack when other workers wait for work, so
// that the lock is taken rarely. It returns the files it found when no
// worker has directories left (or one failed).
func (w *lister) work() []string {
	buf := make([]byte, 64<<10)
	var files, local []string
	for {
		if len(local) == 0 {
			w.mu.Lock()
			w.active--
			if w.active == 0 && len(w.stack) == 0 {
				w.cond.Broadcast()
			}
			for len(w.stack) == 0 && w.active > 0 && w.err == nil {
				w.idle.Add(1)
				w.cond.Wait()
				w.idle.Add(-1)
			}
			if len(w.stack) == 0 || w.err != nil {
				w.mu.Unlock()
				return files
			}
			local = append(local, w.stack[len(w.stack)-1])
			w.stack = w.stack[:len(w.stack)-1]
			w.active++
			w.mu.Unlock()
		}
		rel := local[len(local)-1]
		local = local[:len(local)-1]
		var err error
		files, local, err = w.readDir(rel, buf, files, local)
		if err == nil {
			err = w.ctx.Err()
		}
		if err != nil || w.failed.Load() {
			w.mu.Lock()
			if err != nil && w.err == nil {
				w.err = err
				w.failed.Store(true)
			}
			w.cond.Broadcast()
			w.mu.Unlock()
			local = local[:0]
			continue
		}
		if len(local) > 1 && w.idle.Load() > 0 {
			w.mu.Lock()
			half := len(local) / 2
			w.stack = append(w.stack, local[:half]...)
			local = append(local[:0], local[half:]...)
			w.cond.Broadcast()
			w.mu.Unlock()
		}
	}
}

func (w *lister) readDir(rel string, buf []byte, files, dirs []string) ([]string, []string, error) {
	at := "."
	flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC
	if rel != "" {
		at = rel
		flags |= unix.O_NOFOLLOW
	}
	fd, err := openDir(w.rootFd, at, flags)
	if rel != "" && errors.Is(err, unix.ENOENT) {
		return files, dirs, nil // removed since its parent was read
	}
	if err != nil {
		return files, dirs, fmt.Errorf("read directory %s: %w", w.path(rel), err)
	}
	defer unix.Close(fd)
	for {
		n, err := unix.Getdents(fd, buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return files, dirs, fmt.Errorf("read directory %s: %w", w.path(rel), err)
		}
		if n <= 0 {
			return files, dirs, nil
		}
		for off := 0; off < n; {
			// struct linux_dirent64: ino u64, off s64, reclen u16,
			// type u8, name NUL-terminated.
			rec := buf[off:n]
			if len(rec) < 19 {
				return files, dirs, fmt.Errorf("read directory %s: short directory entry", w.path(rel))
			}
			reclen := int(binary.NativeEndian.Uint16(rec[16:]))
			if reclen < 19 || reclen > len(rec) {
				return files, dirs, fmt.Errorf("read directory %s: bad directory entry length %d", w.path(rel), reclen)
			}
			off += reclen
			ino := binary.NativeEndian.Uint64(rec)
			typ := rec[18]
			name := rec[19:reclen]
			for i, c := range name {
				if c == 0 {
					name = name[:i]
					break
				}
			}
			if ino == 0 || string(name) == "." || string(name) == ".." {
				continue
			}
			child := string(name)
			if rel != "" {
				child = rel + "/" + child
			}
			isDir, ok, err := entryKind(fd, typ, name)
			if err != nil {
				if errors.Is(err, unix.ENOENT) {
					continue // gone since the directory was read
				}
				return files, dirs, fmt.Errorf("%s: %w", path.Join(w.path(rel), string(name)), err)
			}
			switch {
			case !ok:
				// a link to a directory: not followed, not a file
			case isDir:
				if w.skipDir == nil || !w.skipDir(child) {
					dirs = append(dirs, child)
				}
			default:
				if w.skipFile == nil || !w.skipFile(child) {
					files = append(files, child)
				}
			}
		}
	}
}

// path is the directory rel under the root, for messages: directories
// are opened relative to the root's descriptor, not by this path.
func (w *lister) path(rel string) string {
	if rel == "" {
		return w.root
	}
	return w.root + "/" + rel
}

// entryKind says whether a directory entry is a directory, and whether it
// is listed at all (a symbolic link to a directory is not).
func entryKind(dirfd int, typ byte, name []byte) (isDir, listed bool, err error) {
	switch typ {
	case unix.DT_DIR:
		return true, true, nil
	case unix.DT_LNK:
		var st unix.Stat_t
		if unix.Fstatat(dirfd, string(name), &st, 0) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return false, false, nil
		}
		return false, true, nil
	case unix.DT_UNKNOWN:
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, string(name), &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return false, false, err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return entryKind(dirfd, unix.DT_LNK, name)
		}
		return st.Mode&unix.S_IFMT == unix.S_IFDIR, true, nil
	}
	return false, true, nil
}

// openDir opens a directory to read without updating its access time
// (a scan that dirtied every directory's inode would cost journal writes
// for nothing); O_NOATIME is only for the owner or CAP_FOWNER, so on
// EPERM it opens the directory as usual.
func openDir(dirfd int, p string, flags int) (int, error) {
	fd, err := openRetry(dirfd, p, flags|unix.O_NOATIME)
	if errors.Is(err, unix.EPERM) {
		return openRetry(dirfd, p, flags)
	}
	return fd, err
}

// openRetry is openat(2) of p relative to dirfd, again when interrupted.
func openRetry(dirfd int, p string, flags int) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, p, flags, 0)
		if !errors.Is(err, unix.EINTR) {
			return fd, err
		}
	}
}
