package build

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"
)

// An ext4 reader: enough of the on-disk format (superblock, group
// descriptors, inodes, extent trees and block maps, linear and hashed
// directories, inline data, in-inode and block xattrs) to read a root file
// system as an entry stream, walked depth first in name order.

const (
	ext4Magic       = 0xef53
	incompat64bit   = 0x80
	flagExtents     = 0x80000
	flagInlineData  = 0x10000000
	extentMagic     = 0xf30a
	xattrMagic      = 0xea020000
	rootIno         = 2
	maxExtentDepth  = 8
	maxDirBytes     = 1 << 30
	maxInlineXattrs = 64 << 10
)

type ext4FS struct {
	r          io.ReaderAt
	name       string
	blockSize  int64
	inodeSize  int64
	inodesPerG uint32
	inodes     uint32
	descSize   int64
	gdtOffset  int64
	groups     uint32
	blocks     uint64
	incompat   uint32
	tables     map[uint32]int64 // inode table offset by group (read lazily)
}

func le16(b []byte, off int) uint16 { return binary.LittleEndian.Uint16(b[off:]) }
func le32(b []byte, off int) uint32 { return binary.LittleEndian.Uint32(b[off:]) }

// openExt4 reads the superblock of the file system in r.
func openExt4(r io.ReaderAt, name string) (*ext4FS, error) {
	sb := make([]byte, 1024)
	if _, err := r.ReadAt(sb, 1024); err != nil {
		return nil, fmt.Errorf("%s: %w: superblock: %w", name, ErrCorrupt, err)
	}
	if le16(sb, 56) != ext4Magic {
		return nil, fmt.Errorf("%s: %w: no ext2/3/4 superblock", name, ErrUnknownFormat)
	}
	logBS := le32(sb, 24)
	if logBS > 6 {
		return nil, fmt.Errorf("%s: %w: block size 2^%d", name, ErrCorrupt, 10+logBS)
	}
	fs := &ext4FS{r: r, name: name, blockSize: 1024 << logBS, inodesPerG: le32(sb, 40), inodes: le32(sb, 0),
		incompat: le32(sb, 96), tables: map[uint32]int64{}}
	fs.inodeSize = 128
	if le32(sb, 76) >= 1 {
		fs.inodeSize = int64(le16(sb, 88))
	}
	fs.blocks = uint64(le32(sb, 4))
	fs.descSize = 32
	if fs.incompat&incompat64bit != 0 {
		fs.blocks |= uint64(le32(sb, 0x150)) << 32
		if ds := int64(le16(sb, 254)); ds >= 64 {
			fs.descSize = ds
		}
	}
	if supported := uint32(0x2 | 0x4 | 0x8 | 0x10 | 0x40 | 0x80 | 0x200 | 0x400 | 0x1000 | 0x2000 | 0x8000 | 0x10000 | 0x20000); fs.incompat&^supported != 0 {
		return nil, fmt.Errorf("%s: ext4 features this reader does not know (incompat %#x)", name, fs.incompat&^supported)
	}
	if fs.incompat&0x10000 != 0 {
		return nil, fmt.Errorf("%s: encrypted ext4 file systems cannot be read", name)
	}
	bpg := le32(sb, 32)
	if fs.inodesPerG == 0 || bpg == 0 || fs.inodeSize < 128 || fs.inodeSize > fs.blockSize {
		return nil, fmt.Errorf("%s: %w: bad superblock geometry", name, ErrCorrupt)
	}
	fs.groups = uint32((fs.blocks - uint64(le32(sb, 20)) + uint64(bpg) - 1) / uint64(bpg))
	fs.gdtOffset = (int64(le32(sb, 20)) + 1) * fs.blockSize
	return fs, nil
}

func (fs *ext4FS) readAt(b []byte, off int64, what string) error {
	if _, err := fs.r.ReadAt(b, off); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("%s: %w: %s at byte %d: %w", fs.name, ErrCorrupt, what, off, err)
	}
	return nil
}

// inode is a parsed inode.
type inode struct {
	ino    uint32
	raw    []byte
	mode   uint16
	uid    uint32
	gid    uint32
	size   int64
	mtime  int64
	links  uint16
	flags  uint32
	acl    uint64 // xattr block
	iblock []byte // the 60 bytes of i_block
}

func (fs *ext4FS) inode(ino uint32) (*inode, error) {
	if ino == 0 || ino > fs.inodes {
		return nil, fmt.Errorf("%s: %w: inode %d out of range", fs.name, ErrCorrupt, ino)
	}
	g := (ino - 1) / fs.inodesPerG
	table, ok := fs.tables[g]
	if !ok {
		d := make([]byte, fs.descSize)
		if err := fs.readAt(d, fs.gdtOffset+int64(g)*fs.descSize, "group descriptor"); err != nil {
			return nil, err
		}
		t := uint64(le32(d, 8))
		if fs.descSize >= 64 {
			t |= uint64(le32(d, 0x28)) << 32
		}
		table = int64(t) * fs.blockSize
		fs.tables[g] = table
	}
	raw := make([]byte, fs.inodeSize)
	if err := fs.readAt(raw, table+int64((ino-1)%fs.inodesPerG)*fs.inodeSize, fmt.Sprintf("inode %d", ino)); err != nil {
		return nil, err
	}
	in := &inode{ino: ino, raw: raw, mode: le16(raw, 0), links: le16(raw, 26), flags: le32(raw, 32), iblock: raw[40:100]}
	in.uid = uint32(le16(raw, 2)) | uint32(le16(raw, 120))<<16
	in.gid = uint32(le16(raw, 24)) | uint32(le16(raw, 122))<<16
	in.size = int64(le32(raw, 4)) | int64(le32(raw, 108))<<32
	in.acl = uint64(le32(raw, 104)) | uint64(le16(raw, 118))<<32
	in.mtime = int64(int32(le32(raw, 16)))
	if fs.inodeSize > 128 {
		extra := int64(le16(raw, 128))
		if 128+extra >= 0x8c && 0x8c <= fs.inodeSize { // i_mtime_extra present
			in.mtime += int64(le32(raw, 0x88)&3) << 32
		}
	}
	return in, nil
}

// extent is a run of a file's blocks.
type extent struct {
	logical uint64 // first file block
	length  uint64
	start   uint64 // first disk block; 0 for a hole
	zero    bool   // uninitialised: reads as zeros
}

// extents lists a file's data runs, in file order.
func (fs *ext4FS) extents(in *inode) ([]extent, error) {
	if in.flags&flagExtents != 0 {
		var out []extent
		if err := fs.extentNode(in, in.iblock, 0, &out); err != nil {
			return nil, err
		}
		slices.SortFunc(out, func(a, b extent) int { return cmp.Compare(a.logical, b.logical) })
		return out, nil
	}
	return fs.blockMap(in)
}

func (fs *ext4FS) extentNode(in *inode, node []byte, level int, out *[]extent) error {
	if len(node) < 12 || le16(node, 0) != extentMagic {
		return fmt.Errorf("%s: %w: inode %d: bad extent header", fs.name, ErrCorrupt, in.ino)
	}
	n, depth := int(le16(node, 2)), int(le16(node, 6))
	if level > maxExtentDepth || 12+12*n > len(node) {
		return fmt.Errorf("%s: %w: inode %d: bad extent tree", fs.name, ErrCorrupt, in.ino)
	}
	for i := range n {
		e := node[12+12*i:]
		if depth == 0 {
			l := uint64(le16(e, 4))
			zero := false
			if l > 32768 {
				l, zero = l-32768, true
			}
			start := uint64(le32(e, 8)) | uint64(le16(e, 6))<<32
			if start+l > fs.blocks {
				return fmt.Errorf("%s: %w: inode %d: extent beyond the file system", fs.name, ErrCorrupt, in.ino)
			}
			*out = append(*out, extent{logical: uint64(le32(e, 0)), length: l, start: start, zero: zero})
			continue
		}
		leaf := uint64(le32(e, 4)) | uint64(le16(e, 8))<<32
		if leaf >= fs.blocks {
			return fmt.Errorf("%s: %w: inode %d: extent index beyond the file system", fs.name, ErrCorrupt, in.ino)
		}
		child := make([]byte, fs.blockSize)
		if err := fs.readAt(child, int64(leaf)*fs.blockSize, fmt.Sprintf("inode %d extent block", in.ino)); err != nil {
			return err
		}
		if err := fs.extentNode(in, child, level+1, out); err != nil {
			return err
		}
	}
	return nil
}

// blockMap reads an ext2/3 style block map into extents.
func (fs *ext4FS) blockMap(in *inode) ([]extent, error) {
	nblocks := uint64((in.size + fs.blockSize - 1) / fs.blockSize)
	per := uint64(fs.blockSize / 4)
	var out []extent
	add := func(logical, block uint64) {
		if block == 0 {
			return
		}
		if n := len(out); n > 0 && out[n-1].logical+out[n-1].length == logical && out[n-1].start+out[n-1].length == block {
			out[n-1].length++
			return
		}
		out = append(out, extent{logical: logical, length: 1, start: block})
	}
	var walk func(block uint64, level int, first uint64) error
	walk = func(block uint64, level int, first uint64) error {
		if block == 0 || first >= nblocks {
			return nil
		}
		if block >= fs.blocks {
			return fmt.Errorf("%s: %w: inode %d: block map beyond the file system", fs.name, ErrCorrupt, in.ino)
		}
		b := make([]byte, fs.blockSize)
		if err := fs.readAt(b, int64(block)*fs.blockSize, fmt.Sprintf("inode %d block map", in.ino)); err != nil {
			return err
		}
		span := uint64(1)
		for range level {
			span *= per
		}
		for i := range per {
			ptr := uint64(le32(b, int(4*i)))
			at := first + i*span
			if at >= nblocks {
				break
			}
			if level == 0 {
				add(at, ptr)
			} else if err := walk(ptr, level-1, at); err != nil {
				return err
			}
		}
		return nil
	}
	for i := range uint64(12) {
		if i < nblocks {
			add(i, uint64(le32(in.iblock, int(4*i))))
		}
	}
	first := uint64(12)
	for level := range 3 {
		if err := walk(uint64(le32(in.iblock, 48+4*level)), level, first); err != nil {
			return nil, err
		}
		span := uint64(1)
		for range level + 1 {
			span *= per
		}
		first += span
	}
	return out, nil
}

// fileReader reads a file's contents through its extents.
type fileReader struct {
	fs   *ext4FS
	in   *inode
	ext  []extent
	off  int64
	data []byte // inline data
}

func (fs *ext4FS) open(in *inode) (*fileReader, error) {
	if in.flags&flagInlineData != 0 {
		d, err := fs.inlineData(in)
		if err != nil {
			return nil, err
		}
		return &fileReader{fs: fs, in: in, data: d}, nil
	}
	ext, err := fs.extents(in)
	if err != nil {
		return nil, err
	}
	return &fileReader{fs: fs, in: in, ext: ext}, nil
}

func (f *fileReader) Read(p []byte) (int, error) {
	if f.off >= f.in.size {
		return 0, io.EOF
	}
	if f.data != nil {
		if f.off >= int64(len(f.data)) {
			return 0, io.EOF
		}
		n := copy(p, f.data[f.off:])
		f.off += int64(n)
		return n, nil
	}
	if rem := f.in.size - f.off; int64(len(p)) > rem {
		p = p[:rem]
	}
	bs := f.fs.blockSize
	lblock := uint64(f.off / bs)
	within := f.off % bs
	for len(f.ext) > 0 && f.ext[0].logical+f.ext[0].length <= lblock {
		f.ext = f.ext[1:]
	}
	if len(f.ext) == 0 || f.ext[0].logical > lblock || f.ext[0].zero {
		// A hole (up to the next extent) or an uninitialised extent.
		end := f.in.size
		if len(f.ext) > 0 {
			e := f.ext[0]
			if e.logical > lblock {
				end = min(end, int64(e.logical)*bs)
			} else {
				end = min(end, int64(e.logical+e.length)*bs)
			}
		}
		n := int(min(int64(len(p)), end-f.off))
		clear(p[:n])
		f.off += int64(n)
		return n, nil
	}
	e := f.ext[0]
	runEnd := int64(e.logical+e.length) * bs
	n := int(min(int64(len(p)), runEnd-f.off))
	disk := int64(e.start+(lblock-e.logical))*bs + within
	if err := f.fs.readAt(p[:n], disk, fmt.Sprintf("inode %d data", f.in.ino)); err != nil {
		return 0, err
	}
	f.off += int64(n)
	return n, nil
}

// inlineData returns the data of an inode with the inline data flag: the
// 60 bytes of i_block, then the value of the system.data xattr.
func (fs *ext4FS) inlineData(in *inode) ([]byte, error) {
	d := slices.Clone(in.iblock)
	xs, err := fs.xattrs(in, true)
	if err != nil {
		return nil, err
	}
	d = append(d, xs["system.data"]...)
	if int64(len(d)) > in.size {
		d = d[:in.size]
	}
	return d, nil
}

var xattrPrefixes = map[byte]string{1: "user.", 2: "system.posix_acl_access", 3: "system.posix_acl_default", 4: "trusted.", 6: "security.", 7: "system.", 8: "system.richacl"}

// xattrs reads the inode's extended attributes (in the inode and in its
// xattr block). system.data (inline data) is kept only when withData.
func (fs *ext4FS) xattrs(in *inode, withData bool) (map[string]string, error) {
	out := map[string]string{}
	if fs.inodeSize > 128 {
		extra := int64(le16(in.raw, 128))
		start := 128 + extra
		if start+4 <= fs.inodeSize && le32(in.raw, int(start)) == xattrMagic {
			region := in.raw[start+4:]
			if err := fs.xattrEntries(in, region, region, out); err != nil {
				return nil, err
			}
		}
	}
	if in.acl != 0 {
		if in.acl >= fs.blocks {
			return nil, fmt.Errorf("%s: %w: inode %d: xattr block beyond the file system", fs.name, ErrCorrupt, in.ino)
		}
		b := make([]byte, fs.blockSize)
		if err := fs.readAt(b, int64(in.acl)*fs.blockSize, fmt.Sprintf("inode %d xattr block", in.ino)); err != nil {
			return nil, err
		}
		if le32(b, 0) != xattrMagic {
			return nil, fmt.Errorf("%s: %w: inode %d: bad xattr block", fs.name, ErrCorrupt, in.ino)
		}
		if err := fs.xattrEntries(in, b[32:], b, out); err != nil {
			return nil, err
		}
	}
	if !withData {
		delete(out, "system.data")
	}
	return out, nil
}

func (fs *ext4FS) xattrEntries(in *inode, entries, values []byte, out map[string]string) error {
	bad := fmt.Errorf("%s: %w: inode %d: bad xattr entry", fs.name, ErrCorrupt, in.ino)
	for off := 0; off+16 <= len(entries); {
		e := entries[off:]
		if le32(e, 0) == 0 {
			return nil
		}
		nameLen, idx := int(e[0]), e[1]
		voff, vino, vsize := int(le16(e, 2)), le32(e, 4), int(le32(e, 8))
		if 16+nameLen > len(e) {
			return bad
		}
		name := xattrPrefixes[idx] + string(e[16:16+nameLen])
		if vino != 0 {
			return fmt.Errorf("%s: inode %d: xattr %s is stored in an inode (ea_inode): not supported", fs.name, in.ino, name)
		}
		if voff+vsize > len(values) || vsize > maxInlineXattrs {
			return bad
		}
		v := values[voff : voff+vsize]
		if idx == 2 || idx == 3 {
			conv, err := ext4ACL(v)
			if err != nil {
				return fmt.Errorf("%s: inode %d: %s: %w", fs.name, in.ino, name, err)
			}
			v = conv
		}
		out[name] = string(v)
		off += (16 + nameLen + 3) &^ 3
	}
	return nil
}

// ext4ACL turns ext4's compact POSIX ACL into the xattr form
// (system.posix_acl_*) tar and squashfs carry.
func ext4ACL(b []byte) ([]byte, error) {
	if len(b) < 4 || le32(b, 0) != 1 {
		return nil, errors.New("bad ACL header")
	}
	out := binary.LittleEndian.AppendUint32(nil, 2)
	for i := 4; i < len(b); {
		if i+4 > len(b) {
			return nil, errors.New("truncated ACL")
		}
		tag, perm := le16(b, i), le16(b, i+2)
		id := uint32(0xffffffff)
		switch tag {
		case 0x01, 0x04, 0x10, 0x20: // USER_OBJ, GROUP_OBJ, MASK, OTHER
			i += 4
		case 0x02, 0x08: // USER, GROUP
			if i+8 > len(b) {
				return nil, errors.New("truncated ACL")
			}
			id = le32(b, i+4)
			i += 8
		default:
			return nil, fmt.Errorf("ACL tag %#x", tag)
		}
		out = binary.LittleEndian.AppendUint16(out, tag)
		out = binary.LittleEndian.AppendUint16(out, perm)
		out = binary.LittleEndian.AppendUint32(out, id)
	}
	return out, nil
}

// dirent is one directory entry.
type dirent struct {
	name string
	ino  uint32
}

// readDir lists a directory's entries (without . and ..), sorted by name.
func (fs *ext4FS) readDir(in *inode) ([]dirent, error) {
	if in.size > maxDirBytes {
		return nil, fmt.Errorf("%s: %w: inode %d: directory of %d bytes", fs.name, ErrCorrupt, in.ino, in.size)
	}
	f, err := fs.open(in)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	var out []dirent
	parse := func(b []byte) error {
		for off := 0; off+8 <= len(b); {
			ino, recLen, nameLen := le32(b, off), int(le16(b, off+4)), int(b[off+6])
			if recLen < 8 || off+recLen > len(b) || 8+nameLen > recLen {
				return fmt.Errorf("%s: %w: directory inode %d: bad entry at byte %d", fs.name, ErrCorrupt, in.ino, off)
			}
			name := string(b[off+8 : off+8+nameLen])
			if ino != 0 && name != "." && name != ".." {
				out = append(out, dirent{name: name, ino: ino})
			}
			off += recLen
		}
		return nil
	}
	if in.flags&flagInlineData != 0 {
		// Four bytes of parent inode, then entries; more in system.data.
		if len(data) < 4 {
			return nil, fmt.Errorf("%s: %w: directory inode %d: short inline directory", fs.name, ErrCorrupt, in.ino)
		}
		head := data[4:min(len(data), 60)]
		if err := parse(head); err != nil {
			return nil, err
		}
		if len(data) > 60 {
			if err := parse(data[60:]); err != nil {
				return nil, err
			}
		}
	} else {
		for b := int64(0); b < int64(len(data)); b += fs.blockSize {
			if err := parse(data[b:min(int64(len(data)), b+fs.blockSize)]); err != nil {
				return nil, err
			}
		}
	}
	slices.SortFunc(out, func(a, b dirent) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

// ext4Source walks an ext4 file system depth first in name order.
type ext4Source struct {
	fs     *ext4FS
	stack  []pending
	links  map[uint32]string // first path of inodes with several links
	seen   map[uint32]bool   // directories read (a second visit is a loop)
	closer func() error
}

type pending struct {
	path string
	ino  uint32
}

func newExt4Source(fs *ext4FS, closer func() error) *ext4Source {
	return &ext4Source{fs: fs, stack: []pending{{"", rootIno}}, links: map[uint32]string{}, seen: map[uint32]bool{}, closer: closer}
}

func (s *ext4Source) Close() error {
	if s.closer != nil {
		return s.closer()
	}
	return nil
}

func (s *ext4Source) Next() (*Entry, error) {
	if len(s.stack) == 0 {
		return nil, io.EOF
	}
	p := s.stack[len(s.stack)-1]
	s.stack = s.stack[:len(s.stack)-1]
	in, err := s.fs.inode(p.ino)
	if err != nil {
		return nil, err
	}
	e := &Entry{Path: p.path, Mode: uint32(in.mode) & 0o7777, UID: int(in.uid), GID: int(in.gid), ModTime: time.Unix(in.mtime, 0)}
	where := "/" + p.path
	if in.mode&0xf000 != 0x4000 && in.links > 1 {
		if first, ok := s.links[p.ino]; ok {
			e.Type, e.Link = TypeHardlink, first
			return e, nil
		}
		s.links[p.ino] = p.path
	}
	if e.Xattrs, err = s.fs.xattrs(in, false); err != nil {
		return nil, err
	}
	if len(e.Xattrs) == 0 {
		e.Xattrs = nil
	}
	switch in.mode & 0xf000 {
	case 0x8000:
		f, err := s.fs.open(in)
		if err != nil {
			return nil, err
		}
		e.Type, e.Size, e.Body = TypeRegular, in.size, f
	case 0x4000:
		if s.seen[p.ino] {
			return nil, fmt.Errorf("%s: %w: directory %s loops", s.fs.name, ErrCorrupt, where)
		}
		s.seen[p.ino] = true
		e.Type = TypeDir
		ents, err := s.fs.readDir(in)
		if err != nil {
			return nil, fmt.Errorf("%w (directory %s)", err, where)
		}
		for i := len(ents) - 1; i >= 0; i-- {
			d := ents[i]
			if strings.Contains(d.name, "/") || d.name == "" {
				return nil, fmt.Errorf("%s: %w: directory %s: entry name %q", s.fs.name, ErrCorrupt, where, d.name)
			}
			s.stack = append(s.stack, pending{path.Join(p.path, d.name), d.ino})
		}
	case 0xa000:
		e.Type = TypeSymlink
		if in.size < 60 && in.flags&(flagExtents|flagInlineData) == 0 && le32(in.raw, 28) == 0 {
			e.Link = string(in.iblock[:in.size])
		} else {
			f, err := s.fs.open(in)
			if err != nil {
				return nil, err
			}
			b, err := io.ReadAll(io.LimitReader(f, 4096))
			if err != nil {
				return nil, err
			}
			e.Link = string(b)
		}
	case 0x2000, 0x6000:
		e.Type = TypeChar
		if in.mode&0xf000 == 0x6000 {
			e.Type = TypeBlock
		}
		if old := le32(in.iblock, 0); old != 0 {
			e.DevMajor, e.DevMinor = (old>>8)&0xff, old&0xff
		} else {
			dev := le32(in.iblock, 4)
			e.DevMajor, e.DevMinor = (dev>>8)&0xfff, (dev&0xff)|((dev>>12)&0xfff00)
		}
	case 0x1000:
		e.Type = TypeFIFO
	case 0xc000:
		e.Type = TypeSocket
	default:
		return nil, fmt.Errorf("%s: %w: %s: inode %d has mode %#o", s.fs.name, ErrCorrupt, where, p.ino, in.mode)
	}
	return e, nil
}
