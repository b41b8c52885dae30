package fsx

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// OpenRead opens the file p for reading with one open(2). os.Open on Linux
// also offers every file to the runtime's poller, which a regular file
// refuses: four fcntl and an epoll_ctl more, each a few microseconds on a
// virtual machine, for each of the hundreds of blobs a stream operation
// reads. The file it returns is not in the poller (reads block the
// thread, as they do for a regular file anyway).
func OpenRead(p string) (*os.File, error) {
	fd, err := openRetry(unix.AT_FDCWD, p, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return os.NewFile(uintptr(fd), p), nil
}

// ReadFile reads the whole file p with open, fstat, read (until it
// returns nothing) and close: os.ReadFile's work without os.Open's poller
// calls, for the many small files a stream operation reads (product
// blobs). It reads at most one byte more than fstat's size: a file that
// grows while it is read comes back longer than that size (a caller that
// knows the size or the sha256 sees it), never without bound.
func ReadFile(p string) ([]byte, error) {
	fd, err := openRetry(unix.AT_FDCWD, p, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "fstat", Path: p, Err: err}
	}
	// One byte more than the size, so that the read that meets the end
	// needs no second buffer.
	b := make([]byte, st.Size+1)
	n := 0
	for n < len(b) {
		m, err := unix.Read(fd, b[n:])
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return nil, &os.PathError{Op: "read", Path: p, Err: err}
		case m == 0:
			return b[:n], nil
		}
		n += m
	}
	return b, nil
}
