package build

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// squasher turns the entry stream into a squashfs: entries are written as
// a tar stream into tar2sqfs, which writes the image to out.
type squasher struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	bw     *bufio.Writer
	tw     *tar.Writer
	stderr *strings.Builder
	wait   func() error
	// dropped counts the xattrs squashfs cannot hold (POSIX ACLs).
	dropped int
}

// newSquasher starts tar2sqfs writing to out with the compressor and jobs.
func newSquasher(ctx context.Context, out, compressor string, jobs int) (*squasher, error) {
	bin, err := exec.LookPath("tar2sqfs")
	if err != nil {
		return nil, fmt.Errorf("making the squashfs needs tar2sqfs (Debian package squashfs-tools-ng): %w", err)
	}
	args := []string{
		"--quiet", "--force", "--no-skip",
		"--compressor", compressor,
		"--num-jobs", strconv.Itoa(max(jobs, 1)),
		// Implicit directories (none when the stream has its own) get
		// fixed attributes, so that the image depends on the entries only.
		"--defaults", "uid=0,gid=0,mode=0755,mtime=0",
		out,
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	sq := &squasher{cmd: cmd, stderr: &strings.Builder{}}
	cmd.Stderr = sq.stderr
	cmd.Stdout = sq.stderr
	if sq.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("tar2sqfs: %w", err)
	}
	sq.wait = sync.OnceValue(func() error {
		sq.stdin.Close()
		if err := cmd.Wait(); err != nil {
			msg := strings.TrimSpace(sq.stderr.String())
			if msg == "" {
				msg = err.Error()
			}
			return fmt.Errorf("tar2sqfs: %s", msg)
		}
		return nil
	})
	sq.bw = bufio.NewWriterSize(sq.stdin, 1<<20)
	sq.tw = tar.NewWriter(sq.bw)
	return sq, nil
}

// header is the tar header of an entry: numeric owners only, whole-second
// modification time, no access or change times, xattrs as SCHILY.xattr
// records, so that the same tree always gives the same tar stream. ok is
// false for entries tar cannot hold (sockets).
func header(e *Entry) (h *tar.Header, ok bool) {
	h = &tar.Header{
		Name:    e.Path,
		Mode:    int64(e.Mode & 0o7777),
		Uid:     e.UID,
		Gid:     e.GID,
		ModTime: e.ModTime,
	}
	switch e.Type {
	case TypeRegular:
		h.Typeflag, h.Size = tar.TypeReg, e.Size
	case TypeDir:
		h.Typeflag = tar.TypeDir
		h.Name += "/"
		if e.Path == "" {
			h.Name = "./"
		}
	case TypeSymlink:
		h.Typeflag, h.Linkname = tar.TypeSymlink, e.Link
	case TypeHardlink:
		h.Typeflag, h.Linkname = tar.TypeLink, e.Link
	case TypeChar:
		h.Typeflag, h.Devmajor, h.Devminor = tar.TypeChar, int64(e.DevMajor), int64(e.DevMinor)
	case TypeBlock:
		h.Typeflag, h.Devmajor, h.Devminor = tar.TypeBlock, int64(e.DevMajor), int64(e.DevMinor)
	case TypeFIFO:
		h.Typeflag = tar.TypeFifo
	default:
		return nil, false
	}
	for k, v := range e.Xattrs {
		if !SquashfsXattr(k) {
			continue
		}
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
			h.Format = tar.FormatPAX
		}
		h.PAXRecords["SCHILY.xattr."+k] = v
	}
	return h, true
}

// SquashfsXattr says whether squashfs can hold an xattr: the kernel's
// squashfs knows the user, trusted and security name spaces only, so POSIX
// ACLs (system.posix_acl_access, system.posix_acl_default) cannot be kept.
func SquashfsXattr(name string) bool {
	return strings.HasPrefix(name, "user.") || strings.HasPrefix(name, "trusted.") || strings.HasPrefix(name, "security.")
}

// add writes an entry, with body as its contents (nil for non-files).
func (sq *squasher) add(e *Entry, body io.Reader) error {
	for k := range e.Xattrs {
		if !SquashfsXattr(k) {
			sq.dropped++
		}
	}
	h, ok := header(e)
	if !ok {
		return nil
	}
	if err := sq.tw.WriteHeader(h); err != nil {
		return sq.failed(fmt.Errorf("entry %q: %w", e.Path, err))
	}
	if e.Type != TypeRegular {
		return nil
	}
	n, err := io.Copy(sq.tw, body)
	if err != nil {
		return sq.failed(err)
	}
	if n != e.Size {
		return fmt.Errorf("entry %q: %w: %d bytes of the %d its header gives", e.Path, ErrCorrupt, n, e.Size)
	}
	return nil
}

// failed prefers tar2sqfs's own error when writing to it failed because it
// stopped.
func (sq *squasher) failed(err error) error {
	if strings.Contains(err.Error(), "broken pipe") || strings.Contains(err.Error(), "closed pipe") {
		if werr := sq.wait(); werr != nil {
			return werr
		}
	}
	return err
}

// finish ends the tar stream and waits for tar2sqfs.
func (sq *squasher) finish() error {
	if err := sq.tw.Close(); err != nil {
		return sq.failed(err)
	}
	if err := sq.bw.Flush(); err != nil {
		return sq.failed(err)
	}
	return sq.wait()
}

// abort stops tar2sqfs.
func (sq *squasher) abort() {
	if sq.cmd.Process != nil {
		sq.cmd.Process.Kill()
	}
	sq.wait()
}
