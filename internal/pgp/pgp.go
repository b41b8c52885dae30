package pgp

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
)

// Errors callers can test with errors.Is.
var (
	ErrNotSigned    = errors.New("not clear-signed")
	ErrBadSignature = errors.New("bad signature")
	ErrBadKeyring   = errors.New("bad keyring")
)

// Keyring is a set of public keys.
type Keyring = openpgp.EntityList

// ReadKeyring reads a binary or ASCII-armoured keyring file (what
// `gpg --export` and `gpg --export --armor` write).
func ReadKeyring(path string) (Keyring, error) {
	kr, err := readKeys(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("keyring %s: %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("keyring %s: %w: %v", path, ErrBadKeyring, err)
	}
	if len(kr) == 0 {
		return nil, fmt.Errorf("keyring %s: %w: no keys", path, ErrBadKeyring)
	}
	return kr, nil
}

// readKeys reads an armoured or binary key file.
func readKeys(path string) (openpgp.EntityList, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ReadKeyringBytes(b)
}

const header = "-----BEGIN PGP SIGNED MESSAGE-----"

// VerifyClearsigned checks that data is one clear-signed message, starting
// at byte 0 and followed by nothing but white space, signed by a key of kr,
// and returns the signed text (dash-escaping undone). name is used in
// errors.
func VerifyClearsigned(name string, data []byte, kr Keyring) ([]byte, error) {
	if !bytes.HasPrefix(data, []byte(header)) {
		return nil, fmt.Errorf("%s: %w: it does not start with %q", name, ErrNotSigned, header)
	}
	block, rest := clearsign.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: %w: no complete signed message", name, ErrNotSigned)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, fmt.Errorf("%s: %w: %d bytes after the signature", name, ErrBadSignature, len(rest))
	}
	if _, err := block.VerifySignature(kr, nil); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", name, ErrBadSignature, err)
	}
	return block.Plaintext, nil
}

// VerifyDetached checks an armoured (or binary) detached signature of data
// by a key of kr. name is used in errors.
func VerifyDetached(name string, data, sig []byte, kr Keyring) error {
	var err error
	if bytes.HasPrefix(bytes.TrimSpace(sig), []byte("-----BEGIN PGP")) {
		_, err = openpgp.CheckArmoredDetachedSignature(kr, bytes.NewReader(data), bytes.NewReader(sig), nil)
	} else {
		_, err = openpgp.CheckDetachedSignature(kr, bytes.NewReader(data), bytes.NewReader(sig), nil)
	}
	if err != nil {
		return fmt.Errorf("%s: %w: %v", name, ErrBadSignature, err)
	}
	return nil
}

// ReadKeyringBytes reads a keyring held in memory.
func ReadKeyringBytes(b []byte) (Keyring, error) {
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte("-----BEGIN PGP")) {
		return openpgp.ReadArmoredKeyRing(bytes.NewReader(b))
	}
	return openpgp.ReadKeyRing(bytes.NewReader(b))
}
