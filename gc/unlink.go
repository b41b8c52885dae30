package gc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/mephstore/mephstore/internal/fsx"
)

// unlinkAll removes the files (rels, relative to dataDir) and the
// directories that leaves empty, up to dataDir, then syncs the file system
// once. The kernel opens each directory beneath dataDir (openat2
// RESOLVE_BENEATH): one that a symlink leads out of, or an absolute
// symlink on the way, is refused and nothing in it or above it is
// removed. Files are looked up and unlinked by name in their open
// directory, not by their whole path.
//
// jobs workers take the work from one queue: the files of a directory
// (directories of different parents first, spreadParents), and a
// directory's rmdir as soon as everything planned below it is done, so
// the removal of the directories overlaps that of the files instead of
// following it (a removal mostly waits for the device).
func unlinkAll(ctx context.Context, dataDir string, rels []string, jobs int) (int64, int, error) {
	root, err := unix.Open(dataDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, 0, fmt.Errorf("data directory %w", &os.PathError{Op: "open", Path: dataDir, Err: err})
	}
	defer unix.Close(root)
	plan := newReapPlan(rels)
	var (
		mu    sync.Mutex
		freed int64
		gone  int
		errs  []error
		wg    sync.WaitGroup
	)
	work := plan.start(&wg)
	for range jobs {
		go func() {
			for it := range work {
				if ctx.Err() == nil {
					f, g, err := plan.do(root, dataDir, it)
					mu.Lock()
					freed, gone = freed+f, gone+g
					if err != nil {
						errs = append(errs, err)
					}
					mu.Unlock()
				}
				wg.Done()
			}
		}()
	}
	wg.Wait()
	close(work)
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	// One sync of the file system instead of one per directory (a tree of
	// 400k items has 100k of them).
	if err := fsx.Syncfs(dataDir); err != nil {
		errs = append(errs, err)
	}
	return freed, gone, errors.Join(errs...)
}

// reapPlan is the work of a reap: the files of each directory, and the
// directories above them to remove once empty. A directory's rmdir is
// queued when nothing planned below it is left (pending reaches 0) and
// something below it was removed: a directory reached beneath the root,
// which vouches for the path of its parents.
type reapPlan struct {
	files   map[string][]string // directory -> names of the files to reap
	parent  map[string]string   // planned directory -> its parent ("." for none)
	mu      sync.Mutex
	pending map[string]int  // directory -> planned units below it not yet done
	removed map[string]bool // directory -> something below it was removed
	wg      *sync.WaitGroup
	work    chan reapItem
}

// reapItem is a unit of work: the files of dir, or dir itself.
type reapItem struct {
	dir   string
	rmdir bool
}

func newReapPlan(rels []string) *reapPlan {
	p := &reapPlan{files: map[string][]string{}, parent: map[string]string{},
		pending: map[string]int{}, removed: map[string]bool{}}
	for _, rel := range rels {
		d := filepath.Dir(rel)
		if _, ok := p.files[d]; !ok {
			p.pending[d]++ // its files are a unit
			p.add(d)
		}
		p.files[d] = append(p.files[d], filepath.Base(rel))
	}
	return p
}

// add plans dir and, the first time, counts it in its parent's pending
// units, up to the root.
func (p *reapPlan) add(dir string) {
	for dir != "." && dir != "/" && dir != "" {
		if _, ok := p.parent[dir]; ok {
			return
		}
		up := filepath.Dir(dir)
		p.parent[dir] = up
		p.pending[up]++
		dir = up
	}
}

// start queues the files of every directory and returns the queue, which
// never blocks: it holds every unit of the plan.
func (p *reapPlan) start(wg *sync.WaitGroup) chan reapItem {
	p.wg = wg
	p.work = make(chan reapItem, len(p.files)+len(p.parent))
	dirs := make([]string, 0, len(p.files))
	for d := range p.files {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	wg.Add(len(dirs))
	for _, d := range spreadParents(dirs) {
		p.work <- reapItem{dir: d}
	}
	return p.work
}

// do runs one unit, then counts it done in its directory (files) or the
// directory's parent (rmdir).
func (p *reapPlan) do(root int, dataDir string, it reapItem) (freed int64, gone int, err error) {
	if it.rmdir {
		removed := unix.Unlinkat(root, it.dir, unix.AT_REMOVEDIR) == nil
		p.done(p.parent[it.dir], removed)
		return 0, 0, nil
	}
	freed, gone, reached, err := reapDir(root, dataDir, it.dir, p.files[it.dir])
	p.done(it.dir, reached)
	return freed, gone, err
}

// done counts a unit below dir as done (removed: it went, or its files
// were reached) and queues dir's rmdir when it was the last.
func (p *reapPlan) done(dir string, removed bool) {
	if dir == "." || dir == "/" || dir == "" {
		return
	}
	p.mu.Lock()
	p.pending[dir]--
	p.removed[dir] = p.removed[dir] || removed
	ready := p.pending[dir] == 0
	removed = p.removed[dir]
	p.mu.Unlock()
	switch {
	case ready && removed:
		p.wg.Add(1)
		p.work <- reapItem{dir: dir, rmdir: true}
	case ready:
		p.done(p.parent[dir], false)
	}
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
