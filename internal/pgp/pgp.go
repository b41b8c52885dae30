package pgp

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
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
	declared, err := hashHeaders(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", name, ErrBadSignature, err)
	}
	block, rest := clearsign.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%s: %w: no complete signed message", name, ErrNotSigned)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, fmt.Errorf("%s: %w: %d bytes after the signature", name, ErrBadSignature, len(rest))
	}
	sig, err := io.ReadAll(io.LimitReader(block.ArmoredSignature.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %v", name, ErrBadSignature, err)
	}
	if err := signatureHashDeclared(sig, declared); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", name, ErrBadSignature, err)
	}
	block.ArmoredSignature.Body = bytes.NewReader(sig)
	if _, err := block.VerifySignature(kr, nil); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", name, ErrBadSignature, err)
	}
	return block.Plaintext, nil
}

// hashNames are the names a clear-signed message's Hash header may give
// (RFC 4880 9.4), and the hash each stands for.
var hashNames = map[string]crypto.Hash{
	"MD5": crypto.MD5, "SHA1": crypto.SHA1, "RIPEMD160": crypto.RIPEMD160,
	"SHA224": crypto.SHA224, "SHA256": crypto.SHA256, "SHA384": crypto.SHA384, "SHA512": crypto.SHA512,
}

// hashHeaders reads the armour headers of a clear-signed message the way
// gpgv does: only "Hash: " lines, each a comma-separated list of known
// names; none at all means MD5 (RFC 4880 7).
func hashHeaders(data []byte) (map[crypto.Hash]bool, error) {
	lines := bytes.SplitN(data, []byte("\n"), 64)
	out := map[crypto.Hash]bool{}
	for _, l := range lines[1:] {
		l = bytes.TrimSuffix(l, []byte("\r"))
		if len(bytes.TrimRight(l, " \t")) == 0 {
			if len(out) == 0 {
				out[crypto.MD5] = true
			}
			return out, nil
		}
		v, ok := bytes.CutPrefix(l, []byte("Hash: "))
		if !ok {
			return nil, fmt.Errorf("armour header %q: only Hash headers may precede the text", clip(l))
		}
		for _, n := range strings.Split(string(v), ",") {
			h, ok := hashNames[n]
			if !ok {
				return nil, fmt.Errorf("armour header %q: unknown hash %q", clip(l), clip([]byte(n)))
			}
			out[h] = true
		}
	}
	return nil, errors.New("no end to the armour headers")
}

func clip(b []byte) string {
	if len(b) > 60 {
		return string(b[:60]) + "..."
	}
	return string(b)
}

// signatureHashDeclared checks that every signature packet uses a hash the
// Hash header declared (gpgv: "signature digest conflict in message").
func signatureHashDeclared(sig []byte, declared map[crypto.Hash]bool) error {
	pr := packet.NewReader(bytes.NewReader(sig))
	n := 0
	for {
		p, err := pr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		s, ok := p.(*packet.Signature)
		if !ok {
			continue
		}
		n++
		if !declared[s.Hash] {
			return fmt.Errorf("signed with %v, but the Hash header does not declare it", s.Hash)
		}
	}
	if n == 0 {
		return errors.New("no signature packet")
	}
	return nil
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
