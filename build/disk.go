package build

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// partition is a byte range of a disk image.
type partition struct {
	index       int
	start, size int64
}

// rootPartition finds the ext4 file system of a disk image: the image
// itself, or the largest ext4 partition of its GPT or MBR table.
func rootPartition(r io.ReaderAt, size int64, name string) (io.ReaderAt, string, error) {
	head := make([]byte, 4096)
	n, _ := r.ReadAt(head, 0)
	head = head[:n]
	if len(head) >= 1082 && binary.LittleEndian.Uint16(head[1080:]) == ext4Magic {
		return r, "ext4", nil
	}
	var parts []partition
	var table string
	switch {
	case len(head) >= 520 && string(head[512:520]) == "EFI PART":
		table = "GPT"
		var err error
		if parts, err = gptPartitions(r, head, name); err != nil {
			return nil, "", err
		}
	case len(head) >= 512 && head[510] == 0x55 && head[511] == 0xaa:
		table = "MBR"
		for i := range 4 {
			e := head[446+16*i : 446+16*(i+1)]
			typ := e[4]
			if typ == 0 || typ == 0x05 || typ == 0x0f || typ == 0x85 || typ == 0xee {
				continue
			}
			parts = append(parts, partition{index: i + 1, start: int64(binary.LittleEndian.Uint32(e[8:])) * 512, size: int64(binary.LittleEndian.Uint32(e[12:])) * 512})
		}
	default:
		return nil, "", fmt.Errorf("%s: %w: a disk image with no ext4 file system and no partition table", name, ErrUnknownFormat)
	}
	var best *partition
	var found []string
	for i := range parts {
		p := parts[i]
		if p.start <= 0 || p.size <= 0 || p.start+p.size > size {
			found = append(found, fmt.Sprintf("#%d (beyond the image)", p.index))
			continue
		}
		sb := make([]byte, 2)
		if _, err := r.ReadAt(sb, p.start+1080); err != nil || binary.LittleEndian.Uint16(sb) != ext4Magic {
			found = append(found, fmt.Sprintf("#%d (%d MiB, not ext4)", p.index, p.size>>20))
			continue
		}
		found = append(found, fmt.Sprintf("#%d (%d MiB, ext4)", p.index, p.size>>20))
		if best == nil || p.size > best.size {
			best = &parts[i]
		}
	}
	if best == nil {
		return nil, "", fmt.Errorf("%s: %w: %s partition table with no ext4 partition (found %v)", name, ErrUnknownFormat, table, found)
	}
	return io.NewSectionReader(r, best.start, best.size), fmt.Sprintf("ext4 in %s partition %d", table, best.index), nil
}

func gptPartitions(r io.ReaderAt, head []byte, name string) ([]partition, error) {
	h := head[512:]
	entLBA := int64(binary.LittleEndian.Uint64(h[72:]))
	count := binary.LittleEndian.Uint32(h[80:])
	entSize := binary.LittleEndian.Uint32(h[84:])
	if entSize < 128 || entSize > 4096 || count > 1024 {
		return nil, fmt.Errorf("%s: %w: bad GPT header", name, ErrCorrupt)
	}
	tbl := make([]byte, int64(count)*int64(entSize))
	if _, err := r.ReadAt(tbl, entLBA*512); err != nil {
		return nil, fmt.Errorf("%s: %w: GPT partition entries: %w", name, ErrCorrupt, err)
	}
	var out []partition
	zero := make([]byte, 16)
	for i := range int(count) {
		e := tbl[i*int(entSize):]
		if bytes.Equal(e[:16], zero) {
			continue
		}
		first, last := int64(binary.LittleEndian.Uint64(e[32:])), int64(binary.LittleEndian.Uint64(e[40:]))
		if last < first {
			continue
		}
		out = append(out, partition{index: i + 1, start: first * 512, size: (last - first + 1) * 512})
	}
	return out, nil
}
