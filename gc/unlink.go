package gc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/mephstore/mephstore/internal/fsx"
)

// unlinkAll removes the files (rels, relative to dataDir; in parallel, a
// directory per worker at a time), syncs the file system once, then
// removes the directories left empty, up to dataDir. The kernel opens each
// directory beneath dataDir (openat2 RESOLVE_BENEATH): one that a symlink
// leads out of, or an absolute symlink on the way, is refused and nothing
// in it or above it is removed. Files are looked up and unlinked by name
// in their open directory, not by their whole path.
func unlinkAll(ctx context.Context, dataDir string, rels []string, jobs int) (int64, int, error) {
	root, err := unix.Open(dataDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("data directory %w", &os.PathError{Op: "open", Path: dataDir, Err: err})
	}
	defer unix.Close(root)
	byDir := map[string][]string{}
	for _, rel := range rels {
		d := filepath.Dir(rel)
		byDir[d] = append(byDir[d], filepath.Base(rel))
	}
	dirs := make([]string, 0, len(byDir))
	for d := range byDir {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	var (
		mu      sync.Mutex
		freed   int64
		gone    int
		errs    []error
		reached []string
		wg      sync.WaitGroup
	)
	next := make(chan string)
	for range jobs {
		wg.Go(func() {
			for d := range next {
				f, g, ok, err := reapDir(root, dataDir, d, byDir[d])
				mu.Lock()
				freed, gone = freed+f, gone+g
				if ok {
					reached = append(reached, d)
				}
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		})
	}
	for _, d := range dirs {
		if ctx.Err() != nil {
			break
		}
		next <- d
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	// One sync of the file system instead of one per directory (a tree of
	// 400k items has 100k of them).
	if err := fsx.Syncfs(dataDir); err != nil {
		errs = append(errs, err)
	}
	removeEmptyDirs(ctx, root, reached, jobs)
	return freed, gone, errors.Join(errs...)
}

// reapDir unlinks the named files of the directory d (relative to the
// root directory's descriptor). ok reports whether d was opened beneath
// the root, so that it and its parents may be removed once empty; a
// directory that is gone is not an error (nothing to reap there).
func reapDir(root int, dataDir, d string, names []string) (freed int64, gone int, ok bool, err error) {
	fd, err := openBeneath(root, d)
	switch {
	case errors.Is(err, unix.ENOENT):
		return 0, 0, false, nil
	case errors.Is(err, unix.EXDEV), errors.Is(err, unix.ELOOP):
		return 0, 0, false, fmt.Errorf("directory %s leads out of %s (a symlink); not reaping there", d, dataDir)
	case err != nil:
		return 0, 0, false, &os.PathError{Op: "open", Path: filepath.Join(dataDir, d), Err: err}
	}
	defer unix.Close(fd)
	var errs []error
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT == unix.S_IFDIR {
			continue
		}
		if err := unix.Unlinkat(fd, name, 0); err != nil {
			if !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("reap %w", &os.PathError{Op: "unlink", Path: filepath.Join(dataDir, d, name), Err: err}))
			}
			continue
		}
		freed += st.Size
		gone++
	}
	return freed, gone, true, errors.Join(errs...)
}

// openBeneath opens the directory rel under root for *at calls, refusing
// any way out of root ("..", an absolute symlink, a symlink leading out).
func openBeneath(root int, rel string) (int, error) {
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	for {
		fd, err := unix.Openat2(root, rel, &how)
		if err == unix.EINTR || err == unix.EAGAIN { // EAGAIN: a rename raced the lookup
			continue
		}
		return fd, err
	}
}

// removeEmptyDirs removes the directories (relative to root's descriptor)
// that are empty, then their parents that became empty, level by level
// from the deepest, each level in parallel: on a disk where a removal
// waits for the journal or for a discard, one at a time costs as much as
// the unlinks of the files did. Within a level, directories of different
// parents go first (spreadParents). dirs are directories reapDir reached
// beneath the root, so neither they nor their parents lead out of it; the
// root itself is never removed.
func removeEmptyDirs(ctx context.Context, root int, dirs []string, jobs int) {
	byDepth := map[int][]string{}
	deepest := 0
	seen := map[string]bool{}
	add := func(d string) {
		if d == "." || d == "/" || d == "" || seen[d] {
			return
		}
		seen[d] = true
		n := strings.Count(d, "/")
		byDepth[n] = append(byDepth[n], d)
		deepest = max(deepest, n)
	}
	for _, d := range dirs {
		add(d)
	}
	for depth := deepest; depth >= 0 && ctx.Err() == nil; depth-- {
		level := spreadParents(byDepth[depth])
		removed := make([]bool, len(level))
		next := make(chan int)
		var wg sync.WaitGroup
		for range jobs {
			wg.Go(func() {
				for i := range next {
					removed[i] = unix.Unlinkat(root, level[i], unix.AT_REMOVEDIR) == nil
				}
			})
		}
		for i := range level {
			next <- i
		}
		close(next)
		wg.Wait()
		for i, d := range level {
			if removed[i] {
				add(filepath.Dir(d))
			}
		}
	}
}

// spreadParents orders the directories of one level so that those removed
// at the same time have different parents: an rmdir holds its parent's
// lock until the directory's inode is freed, and freeing it waits for the
// device (the discard of its block on a disk mounted with discard), so
// siblings removed together wait for each other. It takes the first child
// of every parent, then the second of those that have one, and so on;
// linear in the number of directories.
func spreadParents(dirs []string) []string {
	byParent := map[string][]string{}
	var parents []string
	for _, d := range dirs {
		p := filepath.Dir(d)
		if _, ok := byParent[p]; !ok {
			parents = append(parents, p)
		}
		byParent[p] = append(byParent[p], d)
	}
	slices.Sort(parents)
	out := make([]string, 0, len(dirs))
	for i := 0; len(parents) > 0; i++ {
		left := parents[:0]
		for _, p := range parents {
			out = append(out, byParent[p][i])
			if i+1 < len(byParent[p]) {
				left = append(left, p)
			}
		}
		parents = left
	}
	return out
}
