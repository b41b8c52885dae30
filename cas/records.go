package cas

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	_ "crypto/sha256" // go-digest needs the sha256 hash registered

	"github.com/mephstore/mephstore/internal/digest"
)

// Blob is what the store knows of a blob.
type Blob struct {
	Digest   digest.Digest `json:"digest"`
	Size     int64         `json:"size"`
	Ingested time.Time     `json:"ingested"` // when it first entered the store
}

const recordVersion = 1

func blobKey(prefix byte, d digest.Digest) []byte {
	raw, _ := hex.DecodeString(d.Encoded())
	return append([]byte{prefix}, raw...)
}

func digestFromKey(k []byte) digest.Digest {
	return digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(k[1:]))
}

func encodeRecord(b Blob) []byte {
	buf := make([]byte, 1, 1+2*binary.MaxVarintLen64)
	buf[0] = recordVersion
	buf = binary.AppendUvarint(buf, uint64(b.Size))
	return binary.AppendVarint(buf, b.Ingested.UnixNano())
}

func decodeRecord(d digest.Digest, v []byte) (Blob, error) {
	if len(v) < 1 || v[0] != recordVersion {
		return Blob{}, fmt.Errorf("blob record %s: unknown version", d)
	}
	size, n := binary.Uvarint(v[1:])
	if n <= 0 {
		return Blob{}, fmt.Errorf("blob record %s: bad size", d)
	}
	ns, m := binary.Varint(v[1+n:])
	if m <= 0 {
		return Blob{}, fmt.Errorf("blob record %s: bad time", d)
	}
	return Blob{Digest: d, Size: int64(size), Ingested: time.Unix(0, ns).UTC()}, nil
}

// ParseDigest accepts "sha256:<64 hex>" or a bare 64-hex sha256.
func ParseDigest(s string) (digest.Digest, error) {
	if !strings.Contains(s, ":") {
		s = "sha256:" + s
	}
	d, err := digest.Parse(s)
	if err != nil {
		return "", fmt.Errorf("digest %q: %w: %v", s, ErrBadDigest, err)
	}
	if d.Algorithm() != digest.SHA256 {
		return "", fmt.Errorf("digest %q: %w: only sha256 is supported", s, ErrBadDigest)
	}
	return d, nil
}

// GetBlob reads the record of d in txn.
func GetBlob(txn Txn, d digest.Digest) (Blob, error) {
	v, err := txn.Get(blobKey(PrefixBlob, d))
	if errors.Is(err, ErrNoRecord) {
		return Blob{}, fmt.Errorf("%s: %w", d, ErrBlobNotFound)
	}
	if err != nil {
		return Blob{}, err
	}
	return decodeRecord(d, v)
}

// Stat returns the record of blob d.
func (ss *Session) Stat(d digest.Digest) (Blob, error) {
	var b Blob
	err := ss.View(func(txn Txn) error {
		var err error
		b, err = GetBlob(txn, d)
		return err
	})
	return b, err
}

// Blobs calls fn for every blob record, in digest order, streaming: memory
// stays constant whatever the number of blobs.
func (ss *Session) Blobs(fn func(Blob) error) error {
	return ss.View(func(txn Txn) error {
		return txn.Scan([]byte{PrefixBlob}, nil, func(k, v []byte) error {
			b, err := decodeRecord(digestFromKey(k), v)
			if err != nil {
				return err
			}
			return fn(b)
		})
	})
}
