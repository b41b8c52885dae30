package fsx

import (
	"fmt"
	"os"
	"runtime/debug"

	"golang.org/x/sys/unix"
)

// Mapped is a file mapped read-only into memory.
type Mapped struct {
	Data []byte
	mm   []byte
}

// MapFile maps the file at p read-only, all pages populated up front: for
// a products file of a hundred megabytes this is several times faster than
// reading it into fresh heap memory, which the kernel must fault in page by
// page. Empty files are returned as an empty slice without a mapping.
//
// A mapped file that another process truncates faults on access; read a
// mapping through Guard so that the fault becomes an error.
func MapFile(p string) (*Mapped, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", p)
	}
	size := fi.Size()
	if size == 0 {
		return &Mapped{Data: []byte{}}, nil
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("%s: too large to map", p)
	}
	mm, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("map %s: %w", p, err)
	}
	return &Mapped{Data: mm, mm: mm}, nil
}

// Close unmaps the file; Data must not be used afterwards.
func (m *Mapped) Close() error {
	if m.mm == nil {
		return nil
	}
	err := unix.Munmap(m.mm)
	m.mm, m.Data = nil, nil
	return err
}

// Guard runs fn, turning a memory fault while it reads a mapping (the file
// was truncated under it) into an error naming the file.
func Guard(name string, fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			if _, ok := r.(interface{ Addr() uintptr }); ok {
				err = fmt.Errorf("%s: changed while being read (truncated?)", name)
				return
			}
			panic(r)
		}
	}()
	return fn()
}
