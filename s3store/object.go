package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Object is an open object: sequential reads from the current offset in
// one request each, ranged reads in one request each.
type Object struct {
	ctx  context.Context
	b    *Bucket
	key  string
	size int64
	off  int64
	body io.ReadCloser // reading from off; nil until a Read
}

// Size is the object's size when it was opened.
func (o *Object) Size() int64 { return o.size }

// Read reads from the current offset.
func (o *Object) Read(p []byte) (int, error) {
	if o.off >= o.size {
		return 0, io.EOF
	}
	if o.body == nil {
		body, _, err := o.b.c.Get(o.ctx, o.b.cfg.Bucket, o.b.key(o.key), o.off, -1)
		if err != nil {
			return 0, o.b.wrap("read", o.key, err)
		}
		o.body = body
	}
	n, err := o.body.Read(p)
	o.off += int64(n)
	if err == io.EOF && o.off < o.size {
		err = o.b.wrap("read", o.key, fmt.Errorf("%w: object ends at %d of %d bytes", io.ErrUnexpectedEOF, o.off, o.size))
	}
	return n, err
}

// Seek moves the offset; the next Read starts a new request there.
func (o *Object) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += o.off
	case io.SeekEnd:
		offset += o.size
	}
	if offset < 0 {
		return 0, errors.New("seek before the start of the object")
	}
	if offset != o.off && o.body != nil {
		o.body.Close()
		o.body = nil
	}
	o.off = offset
	return offset, nil
}

// ReadAt reads len(p) bytes at off, in one ranged request.
func (o *Object) ReadAt(p []byte, off int64) (int, error) {
	if off >= o.size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), o.size-off)
	body, _, err := o.b.c.Get(o.ctx, o.b.cfg.Bucket, o.b.key(o.key), off, n)
	if err != nil {
		return 0, o.b.wrap("read", o.key, err)
	}
	defer body.Close()
	got, err := io.ReadFull(body, p[:n])
	if err != nil {
		return got, o.b.wrap("read", o.key, err)
	}
	if n < int64(len(p)) {
		return got, io.EOF
	}
	return got, nil
}

// Close ends a sequential read in flight.
func (o *Object) Close() error {
	if o.body == nil {
		return nil
	}
	err := o.body.Close()
	o.body = nil
	return err
}
