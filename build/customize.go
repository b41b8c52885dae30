package build

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/flock"
	"github.com/mephstore/mephstore/internal/progress"
)

// ErrNeedsRoot is wrapped when a build must customise the image and does
// not run as root.
var ErrNeedsRoot = errors.New("needs root")

// ErrCustomize is wrapped when a step of the customisation fails.
var ErrCustomize = errors.New("customising the image failed")

// Customize is what a build installs and runs in the image before taking
// its kernels, initrds, manifest and squashfs.
type Customize struct {
	Packages []string `json:"packages,omitempty"` // besides the rows' kernel packages
	Repos    []string `json:"repos,omitempty"`    // "ppa:owner/name" or an apt source line
	Proposed bool     `json:"proposed,omitempty"` // enable the release's -proposed pocket
	Commands []string `json:"commands,omitempty"` // shell commands run in the image
	Kernels  []string `json:"kernels,omitempty"`  // kernel packages the image lacked
	// Purge is purged before anything is installed (meph2's
	// pre_purge_packages).
	Purge []string `json:"purge,omitempty"`
	// ProposedPackages are installed from the release's -proposed pocket
	// (which they enable), after the other packages.
	ProposedPackages []string `json:"proposed_packages,omitempty"`
}

// Requested says whether anything asks for a customisation.
func (c *Customize) Requested() bool {
	return c != nil && (len(c.Packages) > 0 || len(c.Repos) > 0 || c.Proposed || len(c.Commands) > 0 || len(c.Kernels) > 0 ||
		len(c.Purge) > 0 || len(c.ProposedPackages) > 0)
}

// WorkDirName is the directory of the store that holds customisation work
// trees: STORE/work/<id>/{lock,root}. Nothing else lives there.
const WorkDirName = "work"

// workspace is one customisation's work tree and the mounts made in it.
type workspace struct {
	dir, root string
	lock      *os.File
	mounts    []string // mounted, in order
	restore   []func() error
	log       *slog.Logger
}

// newWorkspace makes STORE/work/<random>/root, locked while this process
// lives so that CleanWork leaves it alone.
func newWorkspace(storeDir string, log *slog.Logger) (*workspace, error) {
	base := filepath.Join(storeDir, WorkDirName)
	if err := os.MkdirAll(base, 0o700); err != nil {
		return nil, err
	}
	id := make([]byte, 8)
	rand.Read(id)
	dir := filepath.Join(base, hex.EncodeToString(id))
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	lf, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if ok, err := flock.TryExclusive(lf); err != nil || !ok {
		lf.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("lock work directory %s: %v", dir, err)
	}
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		lf.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	return &workspace{dir: dir, root: root, lock: lf, log: log}, nil
}

// mountsUnder lists the mount points at or below dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	return out, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range s[i+1 : i+4] {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + byte(c-'0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unmountAll undoes every mount under dir, deepest first, and checks that
// none is left: removing a tree with /dev bound into it would remove the
// host's device nodes.
func unmountAll(dir string) error {
	mps, err := mountsUnder(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, mp := range mps {
		if err := unix.Unmount(mp, 0); err != nil {
			if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
			}
		}
	}
	if left, err := mountsUnder(dir); err == nil && len(left) > 0 {
		errs = append(errs, fmt.Errorf("still mounted under %s: %s", dir, strings.Join(left, ", ")))
	}
	return errors.Join(errs...)
}

// killChrooted kills the processes whose root lies in dir (a build killed
// while apt ran leaves them behind).
func killChrooted(dir string) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid := 0
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil || pid <= 1 {
			continue
		}
		root, err := os.Readlink(filepath.Join("/proc", e.Name(), "root"))
		if err == nil && (root == dir || strings.HasPrefix(root, dir+"/")) {
			unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// removeTree removes a work directory once nothing is mounted in it.
func removeTree(dir string) error {
	killChrooted(dir)
	if err := unmountAll(dir); err != nil {
		return fmt.Errorf("%w; not removing %s", err, dir)
	}
	return os.RemoveAll(dir)
}

// unmount restores the swapped files and undoes the mounts, leaving the
// tree as the customisation made it.
func (w *workspace) unmount() error {
	var errs []error
	for i := len(w.restore) - 1; i >= 0; i-- {
		if err := w.restore[i](); err != nil {
			errs = append(errs, err)
		}
	}
	w.restore = nil
	if err := unmountAll(w.root); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// close undoes the workspace: restores, unmounts, removes it.
func (w *workspace) close() error {
	err := w.unmount()
	if rerr := removeTree(w.dir); rerr != nil {
		err = errors.Join(err, rerr)
	}
	w.lock.Close()
	return err
}

// CleanWork removes the work trees of builds that died (their lock is
// free): their mounts first, then the trees. It returns what it removed.
// Without root, stale mounts cannot be undone and are reported.
func CleanWork(storeDir string) ([]string, error) {
	base := filepath.Join(storeDir, WorkDirName)
	ents, err := os.ReadDir(base)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, e := range ents {
		dir := filepath.Join(base, e.Name())
		lf, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR, 0)
		if err == nil {
			ok, _ := flock.TryExclusive(lf)
			if !ok {
				lf.Close()
				continue // a build in progress
			}
		}
		err = removeTree(dir)
		if lf != nil {
			lf.Close()
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, dir)
	}
	return removed, errors.Join(errs...)
}

// mount mounts proc, sys, dev and dev/pts in the tree, and puts the
// host's resolv.conf and a policy-rc.d that keeps services from starting.
func (w *workspace) mount() error {
	type m struct {
		src, target, fstype string
		flags               uintptr
		data                string
	}
	for _, mt := range []m{
		{"proc", "proc", "proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"sysfs", "sys", "sysfs", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RDONLY, ""},
		{"/dev", "dev", "", unix.MS_BIND, ""},
		{"devpts", "dev/pts", "devpts", unix.MS_NOSUID | unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620"},
	} {
		if err := w.mountAt(mt.src, mt.target, mt.fstype, mt.flags, mt.data); err != nil {
			return err
		}
	}
	// resolv.conf: the host's, for apt; the image's own is put back.
	if err := w.swapFile("etc/resolv.conf", hostFile("/etc/resolv.conf")); err != nil {
		return err
	}
	return w.swapFile("usr/sbin/policy-rc.d", []byte("#!/bin/sh\n# mephstore: no services start during a build\nexit 101\n"))
}

// mountAt mounts src on the directory target of the image, resolved within
// the image (a symlink of the image cannot make it mount over the host's
// own directories): what is there and is not a directory is replaced by
// one, and the mount goes through the /proc name of the opened directory.
func (w *workspace) mountAt(src, target, fstype string, flags uintptr, data string) error {
	ir, err := openImageRoot(w.root)
	if err != nil {
		return err
	}
	defer ir.Close()
	fd, err := ir.openat2(target, unix.O_PATH|unix.O_DIRECTORY, 0, inRootResolve)
	if err != nil {
		if err := ir.Remove(target); err != nil {
			return fmt.Errorf("mount point %s: %w", target, err)
		}
		if err := ir.MkdirAll(target); err != nil {
			return fmt.Errorf("mount point %s: %w", target, err)
		}
		if fd, err = ir.openat2(target, unix.O_PATH|unix.O_DIRECTORY, 0, inRootResolve); err != nil {
			return fmt.Errorf("mount point %s: %w", target, err)
		}
	}
	defer unix.Close(fd)
	at := "/proc/self/fd/" + strconv.Itoa(fd)
	if err := unix.Mount(src, at, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", src, target, err)
	}
	real, _ := os.Readlink(at)
	w.mounts = append(w.mounts, real)
	return nil
}

func hostFile(p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil
	}
	return b
}

// swapFile puts content at rel (mode 0755) for the customisation and
// registers the restoring of what was there (a file, a symlink, nothing).
func (w *workspace) swapFile(rel string, content []byte) error {
	ir, err := openImageRoot(w.root)
	if err != nil {
		return err
	}
	if err := ir.MkdirAll(path.Dir(rel)); err != nil {
		ir.Close()
		return err
	}
	saved := rel + ".mephstore-saved"
	had, err := ir.Exists(rel)
	if err == nil && had {
		err = ir.Rename(rel, saved)
	}
	if err != nil {
		ir.Close()
		return err
	}
	w.restore = append(w.restore, func() error {
		defer ir.Close()
		if err := ir.Remove(rel); err != nil {
			return err
		}
		if had {
			return ir.Rename(saved, rel)
		}
		return nil
	})
	return ir.WriteFile(rel, content, 0o755)
}

// chroot runs a shell command in the tree, its output to the log (and a
// progress line), and fails with the command's last lines of output.
func (w *workspace) chroot(ctx context.Context, meters progress.Factory, label, cmd string) error {
	chroot, err := exec.LookPath("chroot")
	if err != nil {
		chroot = "/usr/sbin/chroot" // coreutils, outside a non-root PATH
	}
	c := exec.CommandContext(ctx, chroot, w.root, "/usr/bin/env", "-i",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"DEBIAN_FRONTEND=noninteractive", "DEBCONF_NONINTERACTIVE_SEEN=true", "LANG=C.UTF-8", "HOME=/root",
		"/bin/sh", "-c", cmd)
	pr, pw := io.Pipe()
	c.Stdout, c.Stderr = pw, pw
	// Its own process group: an interrupt stops apt and dpkg too, not only
	// the shell, before the tree is unmounted and removed.
	c.SysProcAttr = &unix.SysProcAttr{Setpgid: true}
	c.Cancel = func() error { return unix.Kill(-c.Process.Pid, unix.SIGTERM) }
	c.WaitDelay = 30 * time.Second
	meter := meters.New(label, 0, progress.Items)
	var tail []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			w.log.Debug(label, "out", line)
			meter.Add(1)
			tail = append(tail, line)
			if len(tail) > 5 {
				tail = tail[1:]
			}
		}
		io.Copy(io.Discard, pr)
	}()
	err = c.Run()
	if c.Process != nil {
		unix.Kill(-c.Process.Pid, unix.SIGKILL) // whatever is left of the group
	}
	pw.Close()
	<-done
	meter.Done()
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", label, ctx.Err())
	}
	if err != nil {
		last := strings.Join(tail, " | ")
		if len(last) > 400 {
			last = "…" + last[len(last)-400:]
		}
		return fmt.Errorf("%w: %s: %v: %s", ErrCustomize, label, err, last)
	}
	return nil
}

// aptGet runs apt-get VERB on the packages in the image, from the suite
// when given (-t).
func (w *workspace) aptGet(ctx context.Context, meters progress.Factory, verb string, pkgs []string, suite string) error {
	q := make([]string, len(pkgs))
	for i, p := range pkgs {
		q[i] = shellQuote(p)
	}
	cmd := "apt-get -q -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "
	if suite != "" {
		cmd += "-t " + shellQuote(suite) + " "
	}
	cmd += verb + " " + strings.Join(q, " ")
	return w.chroot(ctx, meters, "apt-get "+verb+" "+strings.Join(pkgs, " "), cmd)
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// customise runs the apt work and the commands in the mounted tree.
func (w *workspace) customise(ctx context.Context, c *Customize, meters progress.Factory, step func(name string)) error {
	var lines []string
	for _, r := range c.Repos {
		if strings.HasPrefix(r, "ppa:") {
			if err := w.chroot(ctx, meters, "add-apt-repository "+r, "add-apt-repository -y -n "+shellQuote(r)); err != nil {
				return err
			}
			continue
		}
		if !strings.HasPrefix(r, "deb ") && !strings.HasPrefix(r, "deb-src ") {
			return fmt.Errorf("%w: repository %q: want ppa:OWNER/NAME or an apt source line (deb URI SUITE COMPONENT...)", ErrCustomize, r)
		}
		lines = append(lines, r)
	}
	var proposedSuite string
	if c.Proposed || len(c.ProposedPackages) > 0 {
		uri, suite, comps, err := firstSource(w.root)
		if err != nil {
			return fmt.Errorf("%w: --proposed: %w", ErrCustomize, err)
		}
		proposedSuite = suite + "-proposed"
		lines = append(lines, fmt.Sprintf("deb %s %s %s", uri, proposedSuite, comps))
	}
	if len(lines) > 0 {
		if err := writeInImage(w.root, "etc/apt/sources.list.d/mephstore.list", []byte(strings.Join(lines, "\n")+"\n")); err != nil {
			return err
		}
	}
	if len(c.Purge) > 0 {
		if err := w.aptGet(ctx, meters, "purge", c.Purge, ""); err != nil {
			return err
		}
	}
	pkgs := append(slices.Clone(c.Kernels), c.Packages...)
	if len(pkgs) > 0 || len(lines) > 0 || len(c.Repos) > 0 {
		if err := w.chroot(ctx, meters, "apt-get update", "apt-get -q update"); err != nil {
			return err
		}
	}
	if len(c.ProposedPackages) > 0 {
		if err := w.aptGet(ctx, meters, "install", c.ProposedPackages, proposedSuite); err != nil {
			return err
		}
	}
	if len(pkgs) > 0 {
		q := make([]string, len(pkgs))
		for i, p := range pkgs {
			q[i] = shellQuote(p)
		}
		cmd := "apt-get -q -y -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install " + strings.Join(q, " ")
		if err := w.chroot(ctx, meters, "apt-get install "+strings.Join(pkgs, " "), cmd); err != nil {
			return err
		}
	}
	step("apt")
	for i, cmd := range c.Commands {
		if err := w.chroot(ctx, meters, fmt.Sprintf("customize command %d (%s)", i+1, cmd), cmd); err != nil {
			return err
		}
	}
	step("customize")
	// The initramfs of every kernel, regenerated after the commands (they
	// may change what goes into it).
	if err := w.chroot(ctx, meters, "update-initramfs", "if command -v update-initramfs >/dev/null; then update-initramfs -u -k all; fi"); err != nil {
		return err
	}
	step("initramfs")
	err := w.chroot(ctx, meters, "apt-get clean", "apt-get clean")
	step("apt")
	return err
}

// writeInImage writes a file (0644) of the image, making its directory,
// resolving every path within the image.
func writeInImage(root, rel string, content []byte) error {
	ir, err := openImageRoot(root)
	if err != nil {
		return err
	}
	defer ir.Close()
	if err := ir.MkdirAll(path.Dir(rel)); err != nil {
		return err
	}
	return ir.WriteFile(rel, content, 0o644)
}

// readInImage reads a file of the image, resolving its path within the
// image.
func readInImage(root, rel string) ([]byte, error) {
	ir, err := openImageRoot(root)
	if err != nil {
		return nil, err
	}
	defer ir.Close()
	return ir.ReadFile(rel)
}

// firstSource reads the image's first apt source: URI, suite, components.
func firstSource(root string) (string, string, string, error) {
	ir, err := openImageRoot(root)
	if err != nil {
		return "", "", "", err
	}
	defer ir.Close()
	if b, err := ir.ReadFile("etc/apt/sources.list"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) >= 4 && f[0] == "deb" && !strings.HasPrefix(f[1], "[") {
				return f[1], f[2], strings.Join(f[3:], " "), nil
			}
		}
	}
	ms, _ := ir.Glob("etc/apt/sources.list.d", "*.sources")
	slices.Sort(ms)
	for _, m := range ms {
		b, err := ir.ReadFile(m)
		if err != nil {
			continue
		}
		var uri, suite, comps string
		for _, l := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(l, ":")
			if !ok {
				continue
			}
			v = strings.TrimSpace(v)
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "uris":
				uri = strings.Fields(v)[0]
			case "suites":
				suite = strings.Fields(v)[0]
			case "components":
				comps = v
			}
		}
		if uri != "" && suite != "" && comps != "" {
			return uri, suite, comps, nil
		}
	}
	return "", "", "", errors.New("the image has no apt source to derive the -proposed pocket from")
}

// OpenStore opens the store at dir and removes the work trees of builds
// that died (their mounts included), so that a build killed while
// customising is cleaned up by whatever command runs next.
func OpenStore(dir string, o cas.Options) (*cas.Store, error) {
	return OpenStoreAt(func() (*cas.Store, error) { return cas.Open(dir, o) })
}

// OpenStoreAt is OpenStore of the store open opens (a store on a bucket,
// whose work trees are in its local cache directory).
func OpenStoreAt(open func() (*cas.Store, error)) (*cas.Store, error) {
	s, err := open()
	if err != nil {
		return nil, err
	}
	if removed, err := CleanWork(s.Dir()); err != nil {
		s.Logger().Warn("stale build work trees", "err", err)
	} else if len(removed) > 0 {
		s.Logger().Info("removed the work trees of builds that died", "trees", strings.Join(removed, ", "))
	}
	return s, nil
}
