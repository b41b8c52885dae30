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
	root      *reapNode   // the data directory: never removed
	withFiles []*reapNode // directories with files to reap, in the order to queue them
	nodes     int         // directories planned, the root among them
	mu        sync.Mutex  // guards the nodes' pending, removed and rmdir
	wg        *sync.WaitGroup
	work      chan *reapNode
}

// reapNode is a directory of a reap plan, queued once for its files (if
// it has any) and at most once more for its rmdir.
type reapNode struct {
	dir     string
	parent  *reapNode
	names   []string // the files to reap in it
	pending int      // planned units below it not yet done (its files are one)
	removed bool     // something below it was removed
	rmdir   bool     // queued for its rmdir
}

// newReapPlan plans the removal of rels; the directories with files come
// in spreadParents order.
func newReapPlan(rels []string) *reapPlan {
	p := &reapPlan{root: &reapNode{dir: "."}}
	nodes := map[string]*reapNode{".": p.root}
	var node func(dir string) *reapNode
	node = func(dir string) *reapNode {
		if dir == "/" || dir == "" {
			dir = "."
		}
		if n := nodes[dir]; n != nil {
			return n
		}
		n := &reapNode{dir: dir, parent: node(filepath.Dir(dir))}
		n.parent.pending++
		nodes[dir] = n
		return n
	}
	var dirs []string
	for _, rel := range rels {
		n := node(filepath.Dir(rel))
		if n.names == nil {
			n.pending++ // its files are a unit
			dirs = append(dirs, n.dir)
		}
		n.names = append(n.names, filepath.Base(rel))
	}
	slices.Sort(dirs)
	for _, d := range spreadParents(dirs) {
		p.withFiles = append(p.withFiles, nodes[d])
	}
	p.nodes = len(nodes)
	return p
}

// start queues the files of every directory and returns the queue, which
// never blocks: it holds every unit of the plan.
func (p *reapPlan) start(wg *sync.WaitGroup) chan *reapNode {
	p.wg = wg
	p.work = make(chan *reapNode, len(p.withFiles)+p.nodes)
	wg.Add(len(p.withFiles))
	for _, n := range p.withFiles {
		p.work <- n
	}
	return p.work
}

// do runs one unit, then counts it done in its directory (files) or the
// directory's parent (rmdir).
func (p *reapPlan) do(root int, dataDir string, n *reapNode) (freed int64, gone int, err error) {
	if n.rmdir {
		removed := unix.Unlinkat(root, n.dir, unix.AT_REMOVEDIR) == nil
		p.done(n.parent, removed)
		return 0, 0, nil
	}
	freed, gone, reached, err := reapDir(root, dataDir, n.dir, n.names)
	p.done(n, reached)
	return freed, gone, err
}

// done counts a unit below n as done (removed: it went, or its files were
// reached) and queues n's rmdir when it was the last.
func (p *reapPlan) done(n *reapNode, removed bool) {
	for ; n != p.root; n, removed = n.parent, false {
		p.mu.Lock()
		n.pending--
		n.removed = n.removed || removed
		ready := n.pending == 0
		n.rmdir = ready && n.removed
		p.mu.Unlock()
		if !ready {
			return
		}
		if n.rmdir {
			p.wg.Add(1)
			p.work <- n
			return
		}
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

// spreadParents orders directories so that those worked on at the same
// time have different parents: a reap removes a directory right after its
// files, an rmdir holds its parent's lock until the directory's inode is
// freed, and freeing it waits for the device (the discard of its block on
// a disk mounted with discard), so siblings removed together wait for
// each other. It takes the first child of every parent, then the second
// of those that have one, and so on; linear in the number of directories.
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
