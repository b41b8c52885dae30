package fsx

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// SyncDir fsyncs the directory dir so that renames and creations of its
// entries are durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// MkdirDurable creates dir (and missing parents) with perm and fsyncs every
// parent whose entries changed, so that the new directory survives a crash.
func MkdirDurable(dir string, perm fs.FileMode) error {
	return mkdir(filepath.Clean(dir), perm, true)
}

// MkdirPerm creates dir (and missing parents) with perm whatever the
// umask, and syncs nothing: for a caller that makes the whole file system
// durable (Syncfs) before anything depends on the directories.
func MkdirPerm(dir string, perm fs.FileMode) error {
	return mkdir(filepath.Clean(dir), perm, false)
}

func mkdir(dir string, perm fs.FileMode, durable bool) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("mkdir %s: %w", dir, fs.ErrExist)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdir(parent, perm, durable); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	} else if err == nil {
		// perm whatever the umask.
		if err := os.Chmod(dir, perm); err != nil {
			return err
		}
	}
	if !durable {
		return nil
	}
	return SyncDir(parent)
}

// TempName returns a random file name with the given prefix and suffix.
func TempName(prefix, suffix string) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return prefix + hex.EncodeToString(b[:]) + suffix
}

// WriteFileAtomic writes data to path through a temp file in the same
// directory: write, fsync, rename over path, fsync the directory. Readers see
// either the old file or the new one, never a partial file.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) error {
	if err := WriteAtomic(path, perm, func(w io.Writer) error { _, err := w.Write(data); return err }); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// WriteBuffer is the buffer for writing a metadata file (WriteAtomic's, a
// products file's): a write larger than it goes straight to the file (so
// does an io.Copy from a file), and a buffer of fresh memory costs a page
// fault per 4 KiB at its first use (about 11 µs each on a virtual machine:
// 1 MiB was 3 ms of every index file).
const WriteBuffer = 64 << 10

// WriteAtomic writes path through a temp file in its directory: fn writes
// the bytes (buffered), then the file gets perm (whatever the umask), is
// fsynced and renamed over path. The directory is not synced: callers
// writing many files sync it (or the file system) once.
func WriteAtomic(path string, perm fs.FileMode, fn func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	bw := bufio.NewWriterSize(f, WriteBuffer)
	if err := fn(bw); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: fsync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Syncfs makes everything written to the file system that holds dir
// durable: one syncfs(2), cheaper than an fsync per file when there are
// many.
func Syncfs(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("syncfs %s: %w", dir, err)
	}
	return nil
}
