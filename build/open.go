package build

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// Opened is a source opened for reading.
type Opened struct {
	Source
	Format      Format // of the file system: tar, squashfs, ext4
	Compression Format // of a tarball: gzip, xz, zstd; "" when none
	// Squashfs is the source file when it is a squashfs: a build that
	// changes nothing publishes it as it is.
	Squashfs string
	hash     hash.Hash
	file     *os.File
}

// Describe names the source's format, like "tar (xz)".
func (o *Opened) Describe() string {
	if o.Compression != "" {
		return fmt.Sprintf("%s (%s)", o.Format, o.Compression)
	}
	return string(o.Format)
}

// Digest is the sha256 of the source file's bytes read so far: all of them
// once the entries are exhausted (Drain reads the rest).
func (o *Opened) Digest() string { return "sha256:" + hex.EncodeToString(o.hash.Sum(nil)) }

// Drain reads what is left of the source file after its last entry (tar
// padding, the rest of a squashfs), so that Digest covers all of it.
func (o *Opened) Drain() error {
	if o.file == nil {
		return nil
	}
	_, err := io.Copy(o.hash, o.file)
	return err
}

func (o *Opened) Close() error {
	err := o.Source.Close()
	if o.file != nil {
		if cerr := o.file.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// Open opens the image at path, recognised by content.
func Open(ctx context.Context, path string) (*Opened, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("source %w", err)
	}
	fi, err := f.Stat()
	if err == nil && fi.IsDir() {
		err = fmt.Errorf("source %s: is a directory, not an image", path)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	o := &Opened{hash: sha256.New(), file: f}
	raw := bufio.NewReaderSize(io.TeeReader(f, o.hash), 1<<20)
	format := Detect(raw)
	head, _ := raw.Peek(16)
	fail := func(err error) (*Opened, error) {
		f.Close()
		return nil, err
	}
	switch format {
	case FormatGzip, FormatXz, FormatZstd:
		dr, release, err := decompressor(ctx, format, raw)
		if err != nil {
			return fail(fmt.Errorf("source %s: %w: %s: %w", path, ErrCorrupt, format, err))
		}
		inner := bufio.NewReaderSize(dr, 256<<10)
		in := Detect(inner)
		if in != FormatTar {
			ihead, _ := inner.Peek(16)
			release()
			return fail(fmt.Errorf("source %s: %w: found %s data holding %s", path, ErrUnknownFormat, format, describe(in, ihead)))
		}
		o.Format, o.Compression = FormatTar, format
		o.Source = newTarSource(path, inner, release)
		return o, nil
	case FormatTar:
		o.Format = FormatTar
		o.Source = newTarSource(path, raw, nil)
		return o, nil
	case FormatSquashfs:
		// sqfs2tar (squashfs-tools-ng) reads the file system; the file is
		// hashed separately, since sqfs2tar reads it out of order.
		src, err := squashfsSource(ctx, path)
		if err != nil {
			return fail(err)
		}
		o.Format, o.Squashfs, o.Source = FormatSquashfs, path, src
		// Digest covers the whole file: Drain hashes it from the start.
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			src.Close()
			return fail(err)
		}
		o.hash.Reset()
		return o, nil
	case FormatExt4, FormatMBR, FormatGPT, FormatQcow2:
		var disk io.ReaderAt = f
		size := fi.Size()
		kind := "raw"
		if format == FormatQcow2 {
			q, err := openQcow2(f, "source "+path)
			if err != nil {
				return fail(err)
			}
			disk, size, kind = q, q.Size(), "qcow2"
		}
		part, where, err := rootPartition(disk, size, "source "+path)
		if err != nil {
			return fail(err)
		}
		fs, err := openExt4(part, "source "+path)
		if err != nil {
			return fail(err)
		}
		o.Format, o.Compression = FormatExt4, Format(kind+", "+where)
		o.Source = newExt4Source(fs, nil)
		// Digest covers the whole file: Drain hashes it from the start.
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fail(err)
		}
		o.hash.Reset()
		return o, nil
	}
	return fail(fmt.Errorf("source %s: %w: found %s", path, ErrUnknownFormat, describe(format, head)))
}

// squashfsSource reads a squashfs through sqfs2tar.
func squashfsSource(ctx context.Context, path string) (*tarSource, error) {
	bin, err := exec.LookPath("sqfs2tar")
	if err != nil {
		return nil, fmt.Errorf("source %s is a squashfs: reading it needs sqfs2tar (Debian package squashfs-tools-ng): %w", path, err)
	}
	cmd := exec.CommandContext(ctx, bin, "--root-becomes", ".", "--no-skip", path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("source %s: sqfs2tar: %w", path, err)
	}
	wait := sync.OnceValue(func() error {
		out.Close()
		if err := cmd.Wait(); err != nil {
			msg := strings.TrimSpace(stderr.String())
			if msg == "" {
				msg = err.Error()
			}
			return fmt.Errorf("source %s: %w: sqfs2tar: %s", path, ErrCorrupt, msg)
		}
		return nil
	})
	return newTarSource(path, &cmdOut{r: out, wait: wait}, wait), nil
}

// cmdOut reports the command's own error (a corrupt input) instead of a
// bare EOF or a tar error when its output ends early.
type cmdOut struct {
	r    io.Reader
	wait func() error
	err  error
}

func (c *cmdOut) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.r.Read(p)
	if err == io.EOF {
		if werr := c.wait(); werr != nil {
			c.err = werr
			return n, werr
		}
		c.err = io.EOF
	}
	return n, err
}
