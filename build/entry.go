package build

import (
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
)

// Errors wrapped by the sources.
var (
	// ErrEscape: an entry would land outside the root.
	ErrEscape = errors.New("entry escapes the root")
	// ErrCorrupt: the archive or image is truncated or damaged.
	ErrCorrupt = errors.New("corrupt source")
	// ErrUnknownFormat: the source is none of the formats a build reads.
	ErrUnknownFormat = errors.New("not a root tarball, squashfs or ext4 disk image")
)

// Type is the kind of a file-system entry.
type Type uint8

// The entry types.
const (
	TypeRegular Type = iota + 1
	TypeDir
	TypeSymlink
	TypeHardlink // a second name of an earlier regular file (Link names it)
	TypeChar
	TypeBlock
	TypeFIFO
	TypeSocket
)

func (t Type) String() string {
	switch t {
	case TypeRegular:
		return "file"
	case TypeDir:
		return "directory"
	case TypeSymlink:
		return "symlink"
	case TypeHardlink:
		return "hard link"
	case TypeChar:
		return "character device"
	case TypeBlock:
		return "block device"
	case TypeFIFO:
		return "fifo"
	case TypeSocket:
		return "socket"
	}
	return fmt.Sprintf("type %d", uint8(t))
}

// Entry is one file-system entry of a source, normalised: Path is relative
// to the root, slash-separated, clean, without a leading "./" or "/"; the
// root itself has Path "".
type Entry struct {
	Path     string
	Type     Type
	Mode     uint32 // permission bits with setuid, setgid and sticky (07777)
	UID, GID int
	ModTime  time.Time // whole seconds
	Size     int64     // regular files
	Link     string    // symlink target, or the path a hard link names
	DevMajor uint32
	DevMinor uint32
	Xattrs   map[string]string
	// Body reads a regular file's contents; valid until the next call to
	// Next.
	Body io.Reader
}

// Source is a stream of entries. Next returns io.EOF after the last one.
type Source interface {
	Next() (*Entry, error)
	Close() error
}

// cleanPath normalises an archive path, refusing one that leaves the root.
func cleanPath(name string) (string, error) {
	p := strings.TrimPrefix(name, "./")
	if p == "." || p == "" || p == "./" {
		return "", nil
	}
	if strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%q: %w (absolute path)", name, ErrEscape)
	}
	for _, c := range strings.Split(strings.TrimSuffix(p, "/"), "/") {
		if c == ".." {
			return "", fmt.Errorf("%q: %w (a .. component)", name, ErrEscape)
		}
	}
	p = path.Clean(p)
	if p == "." {
		return "", nil
	}
	return p, nil
}

// guard refuses entries below a symbolic link the stream already holds
// (extracting them would write through the link) and hard links to paths
// outside the root. It keeps the set of symlink paths seen: memory grows
// with their number, not with the image.
type guard struct {
	links map[string]bool
}

// belowLink returns the symbolic link of the stream that p lies below, or "".
func (g *guard) belowLink(p string) string {
	for d := path.Dir(p); d != "." && d != "/" && d != ""; d = path.Dir(d) {
		if g.links[d] {
			return d
		}
	}
	return ""
}

func (g *guard) check(e *Entry) error {
	if d := g.belowLink(e.Path); d != "" {
		return fmt.Errorf("%q: %w (it lies below the symbolic link %q)", e.Path, ErrEscape, d)
	}
	switch e.Type {
	case TypeSymlink:
		if g.links == nil {
			g.links = map[string]bool{}
		}
		g.links[e.Path] = true
	case TypeHardlink:
		l, err := cleanPath(e.Link)
		if err != nil {
			return fmt.Errorf("hard link %q: %w", e.Path, err)
		}
		if l == "" {
			return fmt.Errorf("hard link %q: %w (it names the root)", e.Path, ErrEscape)
		}
		// A target reached through a symbolic link of the image would
		// be resolved on the host: refused, like entries below one.
		if d := g.belowLink(l); d != "" {
			return fmt.Errorf("hard link %q to %q: %w (the target lies below the symbolic link %q)", e.Path, l, ErrEscape, d)
		}
		e.Link = l
	default:
		if g.links[e.Path] {
			// A symlink replaced by a file or directory of the same name:
			// later entries below it are no longer written through a link.
			delete(g.links, e.Path)
		}
	}
	return nil
}
