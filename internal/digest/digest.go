package digest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Algorithm names a hash function; SHA256 is the only one mephstore uses.
type Algorithm string

// SHA256 is the algorithm of every digest in a store.
const SHA256 Algorithm = "sha256"

// Errors Validate and Parse wrap.
var (
	ErrFormat      = errors.New("not algorithm:hex")
	ErrAlgorithm   = errors.New("unsupported algorithm (want sha256)")
	ErrEncodedForm = errors.New("not 64 lower-case hex digits")
)

// encodedLen is the length of a SHA-256 sum in hex.
const encodedLen = 2 * sha256.Size

// Digest is "sha256:" and the hex of a SHA-256 sum.
type Digest string

// NewDigestFromEncoded makes the digest of algorithm a whose sum is the
// hex string enc (not checked; Validate does).
func NewDigestFromEncoded(a Algorithm, enc string) Digest {
	return Digest(string(a) + ":" + enc)
}

// FromBytes is the SHA-256 digest of b.
func FromBytes(b []byte) Digest {
	sum := sha256.Sum256(b)
	return NewDigestFromEncoded(SHA256, hex.EncodeToString(sum[:]))
}

// FromString is the SHA-256 digest of s.
func FromString(s string) Digest { return FromBytes([]byte(s)) }

// Parse checks s and returns it as a Digest.
func Parse(s string) (Digest, error) {
	d := Digest(s)
	return d, d.Validate()
}

// Validate says whether d is a well-formed SHA-256 digest.
func (d Digest) Validate() error {
	alg, enc, ok := strings.Cut(string(d), ":")
	switch {
	case !ok:
		return fmt.Errorf("digest %.80q: %w", string(d), ErrFormat)
	case Algorithm(alg) != SHA256:
		return fmt.Errorf("digest %.80q: %w", string(d), ErrAlgorithm)
	case len(enc) != encodedLen || !IsLowerHex(enc):
		return fmt.Errorf("digest %.80q: %w", string(d), ErrEncodedForm)
	}
	return nil
}

// IsLowerHex says whether s is made of lower-case hex digits only (the
// form of an encoded digest and of the pool's directory names).
func IsLowerHex(s string) bool {
	for i := range len(s) {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Algorithm is the part before the colon.
func (d Digest) Algorithm() Algorithm {
	alg, _, _ := strings.Cut(string(d), ":")
	return Algorithm(alg)
}

// Encoded is the hex after the colon ("" when there is none).
func (d Digest) Encoded() string {
	_, enc, _ := strings.Cut(string(d), ":")
	return enc
}

// String is d as written.
func (d Digest) String() string { return string(d) }
