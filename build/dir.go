package build

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// dirSource reads an unpacked tree as an entry stream: depth first, names
// sorted, owners, modes, times, xattrs, hard links and device nodes as
// lstat(2) and llistxattr(2) give them. Mount points below the root are
// not entered (a customised tree has its mounts undone before the walk;
// this keeps a leftover one from being packed).
type dirSource struct {
	root  string
	dev   uint64
	stack []string
	links map[[2]uint64]string
	open  *os.File
}

func newDirSource(root string) (*dirSource, error) {
	var st unix.Stat_t
	if err := unix.Lstat(root, &st); err != nil {
		return nil, fmt.Errorf("tree %s: %w", root, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return nil, fmt.Errorf("tree %s: not a directory", root)
	}
	return &dirSource{root: root, dev: st.Dev, stack: []string{""}, links: map[[2]uint64]string{}}, nil
}

func (d *dirSource) Close() error {
	if d.open != nil {
		d.open.Close()
		d.open = nil
	}
	return nil
}

func (d *dirSource) Next() (*Entry, error) {
	if d.open != nil {
		d.open.Close()
		d.open = nil
	}
	if len(d.stack) == 0 {
		return nil, io.EOF
	}
	rel := d.stack[len(d.stack)-1]
	d.stack = d.stack[:len(d.stack)-1]
	p := filepath.Join(d.root, rel)
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return nil, fmt.Errorf("tree %s: %w", p, err)
	}
	e := &Entry{Path: rel, Mode: st.Mode & 0o7777, UID: int(st.Uid), GID: int(st.Gid), ModTime: time.Unix(st.Mtim.Sec, 0)}
	typ := st.Mode & unix.S_IFMT
	if typ != unix.S_IFDIR && st.Nlink > 1 {
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := d.links[key]; ok {
			e.Type, e.Link = TypeHardlink, first
			return e, nil
		}
		d.links[key] = rel
	}
	xs, err := listXattrs(p)
	if err != nil {
		return nil, fmt.Errorf("tree %s: %w", p, err)
	}
	e.Xattrs = xs
	switch typ {
	case unix.S_IFREG:
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("tree %s: %w", p, err)
		}
		d.open = f
		e.Type, e.Size, e.Body = TypeRegular, st.Size, io.LimitReader(f, st.Size)
	case unix.S_IFDIR:
		e.Type = TypeDir
		if st.Dev != d.dev {
			return e, nil // a mount point: its own directory only
		}
		f, err := os.Open(p)
		if err != nil {
			return nil, fmt.Errorf("tree %s: %w", p, err)
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("tree %s: %w", p, err)
		}
		slices.Sort(names)
		for i := len(names) - 1; i >= 0; i-- {
			d.stack = append(d.stack, filepath.Join(rel, names[i]))
		}
	case unix.S_IFLNK:
		t, err := os.Readlink(p)
		if err != nil {
			return nil, fmt.Errorf("tree %s: %w", p, err)
		}
		e.Type, e.Link = TypeSymlink, t
	case unix.S_IFCHR, unix.S_IFBLK:
		e.Type = TypeChar
		if typ == unix.S_IFBLK {
			e.Type = TypeBlock
		}
		e.DevMajor, e.DevMinor = unix.Major(st.Rdev), unix.Minor(st.Rdev)
	case unix.S_IFIFO:
		e.Type = TypeFIFO
	case unix.S_IFSOCK:
		e.Type = TypeSocket
	}
	return e, nil
}

// listXattrs reads a file's extended attributes (nil when it has none).
func listXattrs(p string) (map[string]string, error) {
	buf := make([]byte, 1024)
	for {
		n, err := unix.Llistxattr(p, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, nil
		}
		out := map[string]string{}
		for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
			v := make([]byte, 256)
			for {
				m, err := unix.Lgetxattr(p, name, v)
				if errors.Is(err, unix.ERANGE) {
					v = make([]byte, 2*len(v))
					continue
				}
				if errors.Is(err, unix.ENODATA) {
					break
				}
				if err != nil {
					return nil, fmt.Errorf("xattr %s: %w", name, err)
				}
				out[name] = string(v[:m])
				break
			}
		}
		return out, nil
	}
}
