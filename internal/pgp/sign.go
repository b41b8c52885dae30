package pgp

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// ErrNoSigningKey is wrapped when a key file holds no usable secret key.
var ErrNoSigningKey = errors.New("no usable secret key")

// Signer signs simplestreams files.
type Signer struct {
	e   *openpgp.Entity
	cfg *packet.Config
}

func config(now func() time.Time) *packet.Config {
	// Version 4 Ed25519 (EdDSA legacy) keys and SHA-512: what gpg makes
	// today and what Debian 12's gpgv verifies (it predates v6 keys).
	return &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, DefaultHash: crypto.SHA512, Time: now}
}

// GenerateKey makes a new signing key for uid "name <email>".
func GenerateKey(name, email string) (*Signer, error) {
	cfg := config(nil)
	e, err := openpgp.NewEntity(name, "simplestreams signing key", email, cfg)
	if err != nil {
		return nil, err
	}
	return &Signer{e: e, cfg: cfg}, nil
}

// ReadSigningKey reads an armoured or binary secret key file (what
// `gpg --export-secret-keys [--armor]` writes), decrypting it with
// passphrase when it is protected.
func ReadSigningKey(path string, passphrase []byte) (*Signer, error) {
	el, err := readKeys(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w: %v", path, ErrNoSigningKey, err)
	}
	for _, e := range el {
		if e.PrivateKey == nil {
			continue
		}
		if e.PrivateKey.Encrypted {
			if len(passphrase) == 0 {
				return nil, fmt.Errorf("signing key %s: %w: it is protected by a passphrase (give --sign-passphrase-file or MEPHSTORE_SIGN_PASSPHRASE)", path, ErrNoSigningKey)
			}
			if err := e.DecryptPrivateKeys(passphrase); err != nil {
				return nil, fmt.Errorf("signing key %s: %w: wrong passphrase: %v", path, ErrNoSigningKey, err)
			}
		}
		return &Signer{e: e, cfg: config(nil)}, nil
	}
	return nil, fmt.Errorf("signing key %s: %w: it holds public keys only", path, ErrNoSigningKey)
}

// Fingerprint is the signing key's fingerprint in hex.
func (s *Signer) Fingerprint() string { return fmt.Sprintf("%X", s.e.PrimaryKey.Fingerprint) }

// WriteSecret writes the secret key, armoured.
func (s *Signer) WriteSecret(w io.Writer) error {
	aw, err := armor.Encode(w, openpgp.PrivateKeyType, nil)
	if err != nil {
		return err
	}
	if err := s.e.SerializePrivate(aw, s.cfg); err != nil {
		return err
	}
	return aw.Close()
}

// WritePublic writes the public key: a binary keyring (what MAAS and gpgv
// take) or armoured.
func (s *Signer) WritePublic(w io.Writer, armored bool) error {
	if !armored {
		return s.e.Serialize(w)
	}
	aw, err := armor.Encode(w, openpgp.PublicKeyType, nil)
	if err != nil {
		return err
	}
	if err := s.e.Serialize(aw); err != nil {
		return err
	}
	return aw.Close()
}

// ClearSign writes r clear-signed to w, streaming: the text (dash-escaped)
// goes to w as it is read while a text-mode signature is computed over it,
// then the signature follows, armoured with its CRC24 line. (go-crypto's
// clearsign writer leaves the CRC out, and gpgv 2.2, Debian 12's, then reads
// the END line as base64 and rejects the file.)
func (s *Signer) ClearSign(w io.Writer, r io.Reader) error {
	if _, err := io.WriteString(w, "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n"); err != nil {
		return err
	}
	pr, pw := io.Pipe()
	sig := new(bytes.Buffer)
	done := make(chan error, 1)
	go func() {
		err := openpgp.DetachSignText(sig, s.e, pr, s.cfg)
		pr.CloseWithError(err)
		done <- err
	}()
	esc := &dashEscaper{w: w, bol: true}
	_, err := io.Copy(io.MultiWriter(esc, pw), r)
	pw.CloseWithError(err)
	if serr := <-done; err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	if !esc.bol {
		return errors.New("clear-sign: the text must end with a newline")
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return err
	}
	return armorSignature(w, sig.Bytes())
}

// DetachSign writes an armoured detached signature of r to w.
func (s *Signer) DetachSign(w io.Writer, r io.Reader) error {
	sig := new(bytes.Buffer)
	if err := openpgp.DetachSign(sig, s.e, r, s.cfg); err != nil {
		return err
	}
	return armorSignature(w, sig.Bytes())
}

func armorSignature(w io.Writer, sig []byte) error {
	aw, err := armor.EncodeWithChecksumOption(w, "PGP SIGNATURE", nil, true)
	if err != nil {
		return err
	}
	if _, err := aw.Write(sig); err != nil {
		return err
	}
	if err := aw.Close(); err != nil {
		return err
	}
	_, err = io.WriteString(w, "\n")
	return err
}

// dashEscaper writes text, prefixing "- " to lines that start with '-'.
type dashEscaper struct {
	w   io.Writer
	bol bool // at the beginning of a line
}

func (d *dashEscaper) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if d.bol && p[0] == '-' {
			if _, err := io.WriteString(d.w, "- "); err != nil {
				return 0, err
			}
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if _, err := d.w.Write(p); err != nil {
				return 0, err
			}
			d.bol = false
			break
		}
		if _, err := d.w.Write(p[:i+1]); err != nil {
			return 0, err
		}
		d.bol = true
		p = p[i+1:]
	}
	return n, nil
}
