package build

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
)

// Format is what a source's first bytes say it is.
type Format string

// The formats Detect recognises.
const (
	FormatTar      Format = "tar"
	FormatGzip     Format = "gzip"
	FormatXz       Format = "xz"
	FormatZstd     Format = "zstd"
	FormatSquashfs Format = "squashfs"
	FormatQcow2    Format = "qcow2"
	FormatExt4     Format = "ext4"
	FormatMBR      Format = "MBR disk image"
	FormatGPT      Format = "GPT disk image"
	FormatBzip2    Format = "bzip2"
	FormatZip      Format = "zip"
	FormatISO      Format = "ISO 9660"
	FormatUnknown  Format = ""
)

// Detect names the format of the stream from its first bytes (up to 64 KiB
// are peeked; nothing is consumed).
func Detect(br *bufio.Reader) Format {
	head, _ := br.Peek(64 << 10)
	return detectBytes(head)
}

func detectBytes(b []byte) Format {
	has := func(off int, magic string) bool {
		return len(b) >= off+len(magic) && string(b[off:off+len(magic)]) == magic
	}
	switch {
	case has(0, "\x1f\x8b"):
		return FormatGzip
	case has(0, "\xfd7zXZ\x00"):
		return FormatXz
	case has(0, "\x28\xb5\x2f\xfd"):
		return FormatZstd
	case has(0, "hsqs"):
		return FormatSquashfs
	case has(0, "QFI\xfb"):
		return FormatQcow2
	case has(0, "BZh"):
		return FormatBzip2
	case has(0, "PK\x03\x04"):
		return FormatZip
	case has(257, "ustar"):
		return FormatTar
	case has(512, "EFI PART"):
		return FormatGPT
	case len(b) >= 1082 && binary.LittleEndian.Uint16(b[1080:]) == 0xef53:
		return FormatExt4
	case has(0x8001, "CD001"):
		return FormatISO
	case len(b) >= 512 && b[510] == 0x55 && b[511] == 0xaa && hasPartition(b):
		return FormatMBR
	}
	return FormatUnknown
}

// hasPartition says whether an MBR's table has an entry.
func hasPartition(b []byte) bool {
	for i := range 4 {
		e := b[446+16*i : 446+16*(i+1)]
		if e[4] != 0 && !bytes.Equal(e, make([]byte, 16)) {
			return true
		}
	}
	return false
}

// describe says what a source that is not a usable one seems to be.
func describe(f Format, head []byte) string {
	if f != FormatUnknown {
		return string(f) + " data"
	}
	n := min(len(head), 8)
	if n == 0 {
		return "an empty file"
	}
	return fmt.Sprintf("data starting with % x", head[:n])
}
