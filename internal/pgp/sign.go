package pgp

import (
	"bufio"
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/mephstore/mephstore/internal/fsx"
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
func (s *Signer) ClearSign(out io.Writer, r io.Reader) error {
	// The dash escaper writes line by line: buffer them into large writes.
	w := bufio.NewWriterSize(out, 64<<10)
	if err := s.clearSign(w, r); err != nil {
		return err
	}
	return w.Flush()
}

func (s *Signer) clearSign(w io.Writer, r io.Reader) error {
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

// KeyFiles are the files WriteNewKey writes.
type KeyFiles struct {
	Secret  string // armoured secret key, 0600
	Public  string // binary public keyring (for MAAS and gpgv)
	Armored string // armoured public key
}

// NewKeyFiles names the key files in dir.
func NewKeyFiles(dir string) KeyFiles {
	return KeyFiles{Secret: filepath.Join(dir, "signing-key.asc"), Public: filepath.Join(dir, "keyring.gpg"), Armored: filepath.Join(dir, "keyring.asc")}
}

// WriteNewKey makes a signing key and writes it into dir (made if
// needed): the secret key, and the public keyring binary and armoured. An
// existing key is never overwritten.
func WriteNewKey(dir, name, email string) (*Signer, KeyFiles, error) {
	files := NewKeyFiles(dir)
	for _, p := range []string{files.Secret, files.Public, files.Armored} {
		if _, err := os.Stat(p); err == nil {
			return nil, files, fmt.Errorf("%s exists: not overwriting a key", p)
		}
	}
	s, err := GenerateKey(name, email)
	if err != nil {
		return nil, files, err
	}
	if err := fsx.MkdirDurable(dir, 0o700); err != nil {
		return nil, files, err
	}
	var sec, pub, arm strings.Builder
	if err := s.WriteSecret(&sec); err != nil {
		return nil, files, err
	}
	s.WritePublic(&pub, false)
	s.WritePublic(&arm, true)
	for _, f := range []struct {
		path, data string
		mode       os.FileMode
	}{{files.Secret, sec.String(), 0o600}, {files.Public, pub.String(), 0o644}, {files.Armored, arm.String(), 0o644}} {
		if err := fsx.WriteFileAtomic(f.path, []byte(f.data), f.mode); err != nil {
			return nil, files, err
		}
	}
	return s, files, nil
}
