package build

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// imageRoot is an unpacked image's root directory, for the file
// operations mephstore itself does in it (outside the chroot). Every path
// is resolved by the kernel within the root, the way the chroot sees it
// (openat2 RESOLVE_IN_ROOT: an absolute symlink or a ".." stops at the
// root), so no link of the image can lead an operation to the host.
type imageRoot struct {
	fd   int
	path string
}

func openImageRoot(dir string) (*imageRoot, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("image root %s: %w", dir, err)
	}
	return &imageRoot{fd: fd, path: dir}, nil
}

func (r *imageRoot) Close() error { return unix.Close(r.fd) }

// how is the resolution of every lookup: in the root, never through
// /proc magic links.
const inRootResolve = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

// openat2 opens rel (slash-separated, relative or absolute: both start at
// the root) with flags under the given resolution rules.
func (r *imageRoot) openat2(rel string, flags uint64, mode uint64, resolve uint64) (int, error) {
	rel = strings.TrimLeft(rel, "/")
	if rel == "" {
		rel = "."
	}
	for {
		fd, err := unix.Openat2(r.fd, rel, &unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Mode: mode, Resolve: resolve})
		if err == unix.EINTR || err == unix.EAGAIN { // EAGAIN: a rename raced the lookup
			continue
		}
		if errors.Is(err, unix.ENOSYS) {
			return -1, fmt.Errorf("openat2: %w (mephstore needs Linux 5.6 or later to unpack images safely)", err)
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: path.Join(r.path, rel), Err: err}
		}
		return fd, nil
	}
}

// dir opens the directory holding rel and returns it with rel's last
// component. strict refuses every symlink on the way (extract: no entry
// may lie below one); otherwise links resolve within the root.
func (r *imageRoot) dir(rel string, strict bool) (*os.File, string, error) {
	rel = strings.Trim(rel, "/")
	if rel == "" || rel == "." {
		return nil, "", fmt.Errorf("%s: %w (the root itself)", r.path, ErrEscape)
	}
	resolve := uint64(inRootResolve)
	if strict {
		resolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS
	}
	fd, err := r.openat2(path.Dir(rel), unix.O_PATH|unix.O_DIRECTORY, 0, resolve)
	if err != nil {
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
			err = fmt.Errorf("%s: %w (a symbolic link on the way)", rel, ErrEscape)
		}
		return nil, "", err
	}
	return os.NewFile(uintptr(fd), path.Join(r.path, path.Dir(rel))), path.Base(rel), nil
}

// fdPath names base in the directory d for the calls that only take paths
// (lsetxattr, mount): the kernel resolves the /proc link to d itself.
func fdPath(d *os.File, base string) string {
	return "/proc/self/fd/" + strconv.Itoa(int(d.Fd())) + "/" + base
}

// ReadFile reads rel, following links within the root.
func (r *imageRoot) ReadFile(rel string) ([]byte, error) {
	fd, err := r.openat2(rel, unix.O_RDONLY, 0, inRootResolve)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), path.Join(r.path, rel))
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 64<<20))
}

// MkdirAll makes rel and its missing parents (0755), within the root.
func (r *imageRoot) MkdirAll(rel string) error {
	rel = strings.Trim(rel, "/")
	if rel == "" {
		return nil
	}
	if fd, err := r.openat2(rel, unix.O_PATH|unix.O_DIRECTORY, 0, inRootResolve); err == nil {
		return unix.Close(fd)
	}
	if err := r.MkdirAll(path.Dir(rel)); err != nil {
		return err
	}
	d, base, err := r.dir(rel, false)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Mkdirat(int(d.Fd()), base, 0o755); err != nil && err != unix.EEXIST {
		return &os.PathError{Op: "mkdir", Path: path.Join(r.path, rel), Err: err}
	}
	return nil
}

// WriteFile creates rel anew (after removing what is there, a symlink
// included, without following it) with content and mode.
func (r *imageRoot) WriteFile(rel string, content []byte, mode uint32) error {
	d, base, err := r.dir(rel, false)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Unlinkat(int(d.Fd()), base, 0); err != nil && err != unix.ENOENT {
		return &os.PathError{Op: "remove", Path: path.Join(r.path, rel), Err: err}
	}
	fd, err := unix.Openat(int(d.Fd()), base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
	if err != nil {
		return &os.PathError{Op: "create", Path: path.Join(r.path, rel), Err: err}
	}
	f := os.NewFile(uintptr(fd), path.Join(r.path, rel))
	_, err = f.Write(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Fchmodat(int(d.Fd()), base, mode, 0)
	}
	return err
}

// Exists says whether something (a symlink included) is at rel.
func (r *imageRoot) Exists(rel string) (bool, error) {
	d, base, err := r.dir(rel, false)
	if err != nil {
		return false, err
	}
	defer d.Close()
	var st unix.Stat_t
	err = unix.Fstatat(int(d.Fd()), base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.ENOENT {
		return false, nil
	}
	return err == nil, err
}

// Rename renames rel to rel2 (both within the root; a symlink is moved,
// not followed).
func (r *imageRoot) Rename(rel, rel2 string) error {
	d, base, err := r.dir(rel, false)
	if err != nil {
		return err
	}
	defer d.Close()
	d2, base2, err := r.dir(rel2, false)
	if err != nil {
		return err
	}
	defer d2.Close()
	if err := unix.Renameat(int(d.Fd()), base, int(d2.Fd()), base2); err != nil {
		return &os.PathError{Op: "rename", Path: path.Join(r.path, rel), Err: err}
	}
	return nil
}

// Remove removes the file or symlink at rel.
func (r *imageRoot) Remove(rel string) error {
	d, base, err := r.dir(rel, false)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Unlinkat(int(d.Fd()), base, 0); err != nil && err != unix.ENOENT {
		return &os.PathError{Op: "remove", Path: path.Join(r.path, rel), Err: err}
	}
	return nil
}

// Glob lists the names in directory rel that match pattern (path.Match).
func (r *imageRoot) Glob(rel, pattern string) ([]string, error) {
	fd, err := r.openat2(rel, unix.O_RDONLY|unix.O_DIRECTORY, 0, inRootResolve)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), path.Join(r.path, rel))
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		if ok, _ := path.Match(pattern, n); ok {
			out = append(out, path.Join(rel, n))
		}
	}
	return out, nil
}
