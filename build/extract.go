package build

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// extract writes the entries of src under root (an empty directory),
// keeping owners, modes (setuid included), xattrs, hard links, device
// nodes and modification times. It must run as root. The source's guard
// has refused entries that would leave the root; on top of that, every
// entry's directory is opened by the kernel beneath the root with no
// symbolic link on the way (openat2), and the entry itself is made
// relative to that directory, never through a link. An entry replaces
// what an earlier one left at its path.
func extract(ctx context.Context, src Source, root string, count func()) error {
	ir, err := openImageRoot(root)
	if err != nil {
		return err
	}
	defer ir.Close()
	type dirTime struct {
		rel string
		t   unix.Timespec
	}
	var dirs []dirTime
	var rootTime []unix.Timespec
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		e, err := src.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if count != nil {
			count()
		}
		if e.Path == "" { // the root (a directory: tarSource refuses others)
			if err := os.Lchown(root, e.UID, e.GID); err != nil {
				return fmt.Errorf("unpack /: %w", err)
			}
			if err := unix.Chmod(root, e.Mode&0o7777); err != nil {
				return fmt.Errorf("unpack /: %w", err)
			}
			rootTime = []unix.Timespec{unix.NsecToTimespec(e.ModTime.UnixNano()), unix.NsecToTimespec(e.ModTime.UnixNano())}
			continue
		}
		d, base, err := ir.dir(e.Path, true)
		if err != nil {
			return fmt.Errorf("unpack %s: %w", e.Path, err)
		}
		done, err := extractEntry(ir, int(d.Fd()), base, e, buf)
		if err == nil && !done {
			err = setAttrs(int(d.Fd()), base, fdPath(d, base), e)
		}
		d.Close()
		if err != nil {
			return fmt.Errorf("unpack %s: %w", e.Path, err)
		}
		if e.Type == TypeDir {
			dirs = append(dirs, dirTime{e.Path, unix.NsecToTimespec(e.ModTime.UnixNano())})
		}
	}
	// Directory times last: creating their entries changed them.
	for i := len(dirs) - 1; i >= 0; i-- {
		dt := dirs[i]
		d, base, err := ir.dir(dt.rel, true)
		if err != nil {
			return fmt.Errorf("unpack %s: %w", dt.rel, err)
		}
		err = unix.UtimesNanoAt(int(d.Fd()), base, []unix.Timespec{dt.t, dt.t}, unix.AT_SYMLINK_NOFOLLOW)
		d.Close()
		if err != nil {
			return fmt.Errorf("unpack %s: %w", dt.rel, err)
		}
	}
	if rootTime != nil {
		return unix.UtimesNanoAt(unix.AT_FDCWD, root, rootTime, 0)
	}
	return nil
}

// extractEntry makes the entry base in the directory dfd. done says its
// attributes need no setting (hard links share the first name's; sockets
// are not unpacked).
func extractEntry(ir *imageRoot, dfd int, base string, e *Entry, buf []byte) (done bool, err error) {
	if err := clearAt(dfd, base, e.Type == TypeDir); err != nil {
		return false, err
	}
	switch e.Type {
	case TypeDir:
		if err := unix.Mkdirat(dfd, base, 0o700); err != nil && err != unix.EEXIST {
			return false, err
		}
	case TypeRegular:
		fd, err := unix.Openat(dfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return false, err
		}
		f := os.NewFile(uintptr(fd), base)
		n, err := io.CopyBuffer(f, e.Body, buf)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil && n != e.Size {
			err = fmt.Errorf("%w: %d bytes of %d", ErrCorrupt, n, e.Size)
		}
		if err != nil {
			return false, err
		}
	case TypeSymlink:
		if err := unix.Symlinkat(e.Link, dfd, base); err != nil {
			return false, err
		}
	case TypeHardlink:
		td, tbase, err := ir.dir(e.Link, true)
		if err != nil {
			return false, fmt.Errorf("hard link to %s: %w", e.Link, err)
		}
		err = unix.Linkat(int(td.Fd()), tbase, dfd, base, 0)
		td.Close()
		if err != nil {
			return false, fmt.Errorf("hard link to %s: %w", e.Link, err)
		}
		return true, nil
	case TypeChar, TypeBlock, TypeFIFO:
		mode := map[Type]uint32{TypeChar: unix.S_IFCHR, TypeBlock: unix.S_IFBLK, TypeFIFO: unix.S_IFIFO}[e.Type]
		if err := unix.Mknodat(dfd, base, mode|0o600, int(unix.Mkdev(e.DevMajor, e.DevMinor))); err != nil {
			return false, err
		}
	default:
		return true, nil // sockets are not unpacked
	}
	return false, nil
}

// setAttrs sets the owner, xattrs, mode and time of the entry base in the
// directory dfd (procPath names it for lsetxattr), never following a link.
func setAttrs(dfd int, base, procPath string, e *Entry) error {
	if err := unix.Fchownat(dfd, base, e.UID, e.GID, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	for k, v := range e.Xattrs {
		if err := unix.Lsetxattr(procPath, k, []byte(v), 0); err != nil {
			return fmt.Errorf("xattr %s: %w", k, err)
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(e.ModTime.UnixNano()), unix.NsecToTimespec(e.ModTime.UnixNano())}
	if e.Type != TypeSymlink {
		// chown clears setuid and setgid: the mode comes after it.
		if err := unix.Fchmodat(dfd, base, e.Mode&0o7777, 0); err != nil {
			return err
		}
	}
	if e.Type == TypeDir {
		return nil // its time is set last
	}
	return unix.UtimesNanoAt(dfd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
}

// clearAt removes what is at base in dfd so that a new entry can take its
// place, keeping a directory when the new entry is one too (a directory is
// removed through the /proc name of dfd: no link on the way).
func clearAt(dfd int, base string, dir bool) error {
	var st unix.Stat_t
	err := unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.ENOENT {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return unix.Unlinkat(dfd, base, 0)
	}
	if dir {
		return nil
	}
	return os.RemoveAll("/proc/self/fd/" + strconv.Itoa(dfd) + "/" + base)
}
