package cas

import (
	"bytes"
	"testing"
)

// Log entries come from a bucket: decodeLog never panics, refuses what is
// not a well-formed entry, and what it accepts encodes back to the same
// bytes.
func FuzzDecodeLog(f *testing.F) {
	f.Add(encodeLog([]logOp{{key: []byte("ca"), val: []byte("1")}, {del: true, key: []byte("b\x00\x01")}}))
	f.Add([]byte{logFormat})
	f.Add([]byte{logFormat, 1, 200, 1})
	f.Add([]byte{logFormat, 1, 1, byte(KindCache), 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ops, err := decodeLog(b)
		if err != nil {
			return
		}
		if again := encodeLog(ops); !bytes.Equal(again, b) {
			t.Fatalf("%x decoded to %d ops that encode to %x", b, len(ops), again)
		}
	})
}

// Checkpoints come from a bucket too: readCheckpoint never panics and
// hands on only records with a key outside the cache's own kind.
func FuzzReadCheckpoint(f *testing.F) {
	f.Add(encodeLog([]logOp{{key: []byte("ca"), val: []byte("1")}, {key: []byte("b1"), val: nil}}))
	f.Add([]byte{logFormat, 1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{logFormat, 2, 1, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		readCheckpoint(bytes.NewReader(b), 1, func(k, v []byte) error {
			if len(k) == 0 || k[0] == byte(KindCache) || len(k) > maxCheckpointKey {
				t.Fatalf("handed on key %x", k)
			}
			return nil
		})
	})
}
