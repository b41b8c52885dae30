package build

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// qcow2 presents a qcow2 image (version 2 or 3, no backing file, no
// encryption, clusters plain, zero or compressed with deflate or zstd) as
// the raw disk it holds.
type qcow2 struct {
	f           io.ReaderAt
	name        string
	clusterBits uint32
	clusterSize int64
	size        int64
	l1          []uint64
	zstd        bool

	mu      sync.Mutex
	l2      map[uint64][]uint64 // L2 tables by offset (a few kept)
	l2order []uint64
	cache   struct {
		off  uint64
		data []byte
	}
}

const (
	qcowOffsetMask = 0x00fffffffffffe00
	qcowCompressed = 1 << 62
	qcowZeroFlag   = 1
	l2CacheTables  = 16
)

func openQcow2(f io.ReaderAt, name string) (*qcow2, error) {
	h := make([]byte, 112)
	if _, err := f.ReadAt(h, 0); err != nil && err != io.EOF {
		return nil, fmt.Errorf("%s: %w: qcow2 header: %w", name, ErrCorrupt, err)
	}
	be := binary.BigEndian
	version := be.Uint32(h[4:])
	if version != 2 && version != 3 {
		return nil, fmt.Errorf("%s: qcow2 version %d: only 2 and 3 are read", name, version)
	}
	if be.Uint64(h[8:]) != 0 {
		return nil, fmt.Errorf("%s: a qcow2 image with a backing file: convert it first (qemu-img convert -O qcow2)", name)
	}
	if be.Uint32(h[32:]) != 0 {
		return nil, fmt.Errorf("%s: an encrypted qcow2 image", name)
	}
	q := &qcow2{f: f, name: name, clusterBits: be.Uint32(h[20:]), size: int64(be.Uint64(h[24:])), l2: map[uint64][]uint64{}}
	if q.clusterBits < 9 || q.clusterBits > 21 {
		return nil, fmt.Errorf("%s: %w: qcow2 cluster bits %d", name, ErrCorrupt, q.clusterBits)
	}
	q.clusterSize = 1 << q.clusterBits
	if version == 3 {
		incompat := be.Uint64(h[72:])
		if incompat&0x2 != 0 {
			return nil, fmt.Errorf("%s: %w: the qcow2 image is marked corrupt", name, ErrCorrupt)
		}
		if incompat&0x4 != 0 {
			return nil, fmt.Errorf("%s: a qcow2 image with an external data file", name)
		}
		if incompat&^uint64(0x1|0x8|0x10) != 0 {
			return nil, fmt.Errorf("%s: qcow2 features this reader does not know (%#x)", name, incompat)
		}
		if incompat&0x8 != 0 && be.Uint32(h[100:]) > 104 && h[104] == 1 {
			q.zstd = true
		}
	}
	l1Size := be.Uint32(h[36:])
	need := (uint64(q.size) + uint64(q.clusterSize)*uint64(q.clusterSize/8) - 1) / (uint64(q.clusterSize) * uint64(q.clusterSize/8))
	if uint64(l1Size) < need || l1Size > 1<<24 {
		return nil, fmt.Errorf("%s: %w: qcow2 L1 table of %d entries for %d bytes", name, ErrCorrupt, l1Size, q.size)
	}
	l1 := make([]byte, 8*int(l1Size))
	if _, err := f.ReadAt(l1, int64(be.Uint64(h[40:]))); err != nil {
		return nil, fmt.Errorf("%s: %w: qcow2 L1 table: %w", name, ErrCorrupt, err)
	}
	q.l1 = make([]uint64, l1Size)
	for i := range q.l1 {
		q.l1[i] = be.Uint64(l1[8*i:])
	}
	return q, nil
}

// Size is the virtual disk size.
func (q *qcow2) Size() int64 { return q.size }

func (q *qcow2) l2Table(off uint64) ([]uint64, error) {
	if t, ok := q.l2[off]; ok {
		return t, nil
	}
	raw := make([]byte, q.clusterSize)
	if _, err := q.f.ReadAt(raw, int64(off)); err != nil {
		return nil, fmt.Errorf("%s: %w: qcow2 L2 table at byte %d: %w", q.name, ErrCorrupt, off, err)
	}
	t := make([]uint64, q.clusterSize/8)
	for i := range t {
		t[i] = binary.BigEndian.Uint64(raw[8*i:])
	}
	if len(q.l2order) >= l2CacheTables {
		delete(q.l2, q.l2order[0])
		q.l2order = q.l2order[1:]
	}
	q.l2[off] = t
	q.l2order = append(q.l2order, off)
	return t, nil
}

// ReadAt reads the virtual disk.
func (q *qcow2) ReadAt(p []byte, off int64) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for n < len(p) {
		if off >= q.size {
			return n, io.EOF
		}
		within := off & (q.clusterSize - 1)
		chunk := min(int64(len(p)-n), q.clusterSize-within, q.size-off)
		dst := p[n : n+int(chunk)]
		if err := q.readCluster(dst, off, within); err != nil {
			return n, err
		}
		n += int(chunk)
		off += chunk
	}
	return n, nil
}

func (q *qcow2) readCluster(dst []byte, off, within int64) error {
	l2Entries := q.clusterSize / 8
	ci := off >> q.clusterBits
	l1i := ci / l2Entries
	if l1i >= int64(len(q.l1)) {
		clear(dst)
		return nil
	}
	l2off := q.l1[l1i] & qcowOffsetMask
	if l2off == 0 {
		clear(dst)
		return nil
	}
	t, err := q.l2Table(l2off)
	if err != nil {
		return err
	}
	e := t[ci%l2Entries]
	switch {
	case e&qcowCompressed != 0:
		data, err := q.compressed(e)
		if err != nil {
			return err
		}
		copy(dst, data[within:])
	case e&qcowZeroFlag != 0 || e&qcowOffsetMask == 0:
		clear(dst)
	default:
		if _, err := q.f.ReadAt(dst, int64(e&qcowOffsetMask)+within); err != nil {
			return fmt.Errorf("%s: %w: qcow2 cluster at byte %d: %w", q.name, ErrCorrupt, e&qcowOffsetMask, err)
		}
	}
	return nil
}

// compressed returns a compressed cluster, decompressed (the last one is
// kept: reads run through a cluster in pieces).
func (q *qcow2) compressed(e uint64) ([]byte, error) {
	x := 62 - (q.clusterBits - 8)
	hostOff := e & (1<<x - 1)
	sectors := (e>>x)&(1<<(62-x)-1) + 1
	if q.cache.data != nil && q.cache.off == hostOff {
		return q.cache.data, nil
	}
	clen := int64(sectors)*512 - int64(hostOff&511)
	raw := make([]byte, clen)
	n, err := q.f.ReadAt(raw, int64(hostOff))
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("%s: %w: qcow2 compressed cluster at byte %d: %w", q.name, ErrCorrupt, hostOff, err)
	}
	raw = raw[:n]
	out := make([]byte, q.clusterSize)
	if q.zstd {
		d, err := zstd.NewReader(nil)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		dec, err := d.DecodeAll(raw, out[:0])
		if err != nil || int64(len(dec)) < q.clusterSize {
			return nil, fmt.Errorf("%s: %w: qcow2 compressed cluster at byte %d: %v", q.name, ErrCorrupt, hostOff, err)
		}
		out = dec[:q.clusterSize]
	} else {
		zr := flate.NewReader(bytes.NewReader(raw))
		if _, err := io.ReadFull(zr, out); err != nil {
			return nil, fmt.Errorf("%s: %w: qcow2 compressed cluster at byte %d: %w", q.name, ErrCorrupt, hostOff, err)
		}
	}
	q.cache.off, q.cache.data = hostOff, out
	return out, nil
}
