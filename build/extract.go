package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// extract writes the entries of src under root (an empty directory),
// keeping owners, modes (setuid included), xattrs, hard links, device
// nodes and modification times. It must run as root. The source's guard
// has refused entries that would leave the root, so paths are joined as
// they are; an entry replaces what an earlier one left at its path, never
// writing through a symbolic link.
func extract(ctx context.Context, src Source, root string, count func()) error {
	type dirTime struct {
		path string
		t    unix.Timespec
	}
	var dirs []dirTime
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
		p := filepath.Join(root, e.Path)
		if e.Type != TypeDir || e.Path != "" {
			if err := clearPath(p, e.Type == TypeDir); err != nil {
				return err
			}
		}
		switch e.Type {
		case TypeDir:
			if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
				return fmt.Errorf("unpack %s: %w", e.Path, err)
			}
		case TypeRegular:
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
			if err != nil {
				return fmt.Errorf("unpack %s: %w", e.Path, err)
			}
			n, err := io.CopyBuffer(f, e.Body, buf)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil && n != e.Size {
				err = fmt.Errorf("%w: %d bytes of %d", ErrCorrupt, n, e.Size)
			}
			if err != nil {
				return fmt.Errorf("unpack %s: %w", e.Path, err)
			}
		case TypeSymlink:
			if err := os.Symlink(e.Link, p); err != nil {
				return fmt.Errorf("unpack %s: %w", e.Path, err)
			}
		case TypeHardlink:
			if err := unix.Linkat(unix.AT_FDCWD, filepath.Join(root, e.Link), unix.AT_FDCWD, p, 0); err != nil {
				return fmt.Errorf("unpack %s: hard link to %s: %w", e.Path, e.Link, err)
			}
			continue // shares the first name's attributes
		case TypeChar, TypeBlock, TypeFIFO:
			mode := map[Type]uint32{TypeChar: unix.S_IFCHR, TypeBlock: unix.S_IFBLK, TypeFIFO: unix.S_IFIFO}[e.Type]
			if err := unix.Mknod(p, mode|0o600, int(unix.Mkdev(e.DevMajor, e.DevMinor))); err != nil {
				return fmt.Errorf("unpack %s: %w", e.Path, err)
			}
		default:
			continue // sockets are not unpacked
		}
		if err := os.Lchown(p, e.UID, e.GID); err != nil {
			return fmt.Errorf("unpack %s: %w", e.Path, err)
		}
		for k, v := range e.Xattrs {
			if err := unix.Lsetxattr(p, k, []byte(v), 0); err != nil {
				return fmt.Errorf("unpack %s: xattr %s: %w", e.Path, k, err)
			}
		}
		ts := []unix.Timespec{unix.NsecToTimespec(e.ModTime.UnixNano()), unix.NsecToTimespec(e.ModTime.UnixNano())}
		if e.Type == TypeSymlink {
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fmt.Errorf("unpack %s: %w", e.Path, err)
			}
			continue
		}
		// chown clears setuid and setgid: the mode comes after it.
		if err := unix.Chmod(p, e.Mode&0o7777); err != nil {
			return fmt.Errorf("unpack %s: %w", e.Path, err)
		}
		if e.Type == TypeDir {
			dirs = append(dirs, dirTime{p, ts[0]})
			continue
		}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("unpack %s: %w", e.Path, err)
		}
	}
	// Directory times last: creating their entries changed them.
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, d.path, []unix.Timespec{d.t, d.t}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("unpack %s: %w", d.path, err)
		}
	}
	return nil
}

// clearPath removes what is at p so that a new entry can take its place,
// keeping a directory when the new entry is one too.
func clearPath(p string, dir bool) error {
	fi, err := os.Lstat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		if dir {
			return nil
		}
		return os.RemoveAll(p)
	}
	return os.Remove(p)
}
