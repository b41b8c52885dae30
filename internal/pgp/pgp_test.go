package pgp

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
)

func sign(t *testing.T, e *openpgp.Entity, text string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := clearsign.Encode(&buf, e.PrivateKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(text))
	w.Close()
	return buf.Bytes()
}

func writeKeyring(t *testing.T, e *openpgp.Entity, armored bool) string {
	t.Helper()
	var buf bytes.Buffer
	if armored {
		w, _ := armor.Encode(&buf, openpgp.PublicKeyType, nil)
		e.Serialize(w)
		w.Close()
	} else {
		e.Serialize(&buf)
	}
	p := filepath.Join(t.TempDir(), "kr")
	os.WriteFile(p, buf.Bytes(), 0o644)
	return p
}

func TestVerifyClearsigned(t *testing.T) {
	key, _ := openpgp.NewEntity("test", "", "t@example.invalid", nil)
	other, _ := openpgp.NewEntity("other", "", "o@example.invalid", nil)
	text := "{\n \"a\": 1\n}\n- dash line\n"
	signed := sign(t, key, text)
	for _, armored := range []bool{false, true} {
		kr, err := ReadKeyring(writeKeyring(t, key, armored))
		if err != nil {
			t.Fatal(err)
		}
		got, err := VerifyClearsigned("index.sjson", signed, kr)
		if err != nil || string(got) != text {
			t.Fatalf("verify (armored %v): %q %v", armored, got, err)
		}
		tampered := bytes.Replace(signed, []byte(`"a": 1`), []byte(`"a": 2`), 1)
		if _, err := VerifyClearsigned("x", tampered, kr); !errors.Is(err, ErrBadSignature) {
			t.Errorf("tampered: %v", err)
		}
		if _, err := VerifyClearsigned("x", []byte(text), kr); !errors.Is(err, ErrNotSigned) {
			t.Errorf("unsigned: %v", err)
		}
		if _, err := VerifyClearsigned("x", append([]byte("\ufeff"), signed...), kr); !errors.Is(err, ErrNotSigned) {
			t.Errorf("BOM: %v", err)
		}
		if _, err := VerifyClearsigned("x", append(append([]byte{}, signed...), "trailing junk"...), kr); !errors.Is(err, ErrBadSignature) {
			t.Errorf("trailing data: %v", err)
		}
	}
	okr, _ := ReadKeyring(writeKeyring(t, other, false))
	if _, err := VerifyClearsigned("x", signed, okr); !errors.Is(err, ErrBadSignature) {
		t.Errorf("other key: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, []byte("not a keyring"), 0o644)
	if _, err := ReadKeyring(bad); !errors.Is(err, ErrBadKeyring) {
		t.Errorf("bad keyring: %v", err)
	}
}

// Keys made here sign files that gpgv (the verifier MAAS uses) accepts.
func TestGeneratedKeySignsForGpgv(t *testing.T) {
	if _, err := exec.LookPath("gpgv"); err != nil {
		t.Fatal("gpgv is needed (scripts/deps installs it)")
	}
	s, err := GenerateKey("test", "t@example.invalid")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var sec, pub bytes.Buffer
	s.WriteSecret(&sec)
	s.WritePublic(&pub, false)
	os.WriteFile(filepath.Join(dir, "key.asc"), sec.Bytes(), 0o600)
	os.WriteFile(filepath.Join(dir, "keyring.gpg"), pub.Bytes(), 0o644)
	s2, err := ReadSigningKey(filepath.Join(dir, "key.asc"), nil)
	if err != nil || s2.Fingerprint() != s.Fingerprint() {
		t.Fatalf("read back: %v", err)
	}
	text := "{\n \"a\": \"-1\"\n}\n"
	var signed, det bytes.Buffer
	if err := s2.ClearSign(&signed, strings.NewReader(text)); err != nil {
		t.Fatal(err)
	}
	s2.DetachSign(&det, strings.NewReader(text))
	os.WriteFile(filepath.Join(dir, "f.sjson"), signed.Bytes(), 0o644)
	os.WriteFile(filepath.Join(dir, "f.json"), []byte(text), 0o644)
	os.WriteFile(filepath.Join(dir, "f.json.gpg"), det.Bytes(), 0o644)
	home := filepath.Join(dir, "gh")
	os.Mkdir(home, 0o700)
	for _, args := range [][]string{{"f.sjson"}, {"f.json.gpg", "f.json"}} {
		cmd := exec.Command("gpgv", append([]string{"--homedir", home, "--keyring", filepath.Join(dir, "keyring.gpg")}, args...)...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("gpgv %v: %v\n%s", args, err, out)
		}
	}
	kr, _ := ReadKeyring(filepath.Join(dir, "keyring.gpg"))
	if got, err := VerifyClearsigned("f.sjson", signed.Bytes(), kr); err != nil || string(got) != text {
		t.Fatalf("verify: %q %v", got, err)
	}
}

func TestClearSignDashEscapes(t *testing.T) {
	s, _ := GenerateKey("test", "t@example.invalid")
	text := "-starts with a dash\nplain\n--\n"
	var signed, pub bytes.Buffer
	if err := s.ClearSign(&signed, strings.NewReader(text)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(signed.String(), "\n- -starts with a dash\n") || !strings.Contains(signed.String(), "\n- --\n") {
		t.Fatalf("not dash-escaped:\n%s", signed.String())
	}
	s.WritePublic(&pub, true)
	p := filepath.Join(t.TempDir(), "kr.asc")
	os.WriteFile(p, pub.Bytes(), 0o644)
	kr, _ := ReadKeyring(p)
	if got, err := VerifyClearsigned("x", signed.Bytes(), kr); err != nil || string(got) != text {
		t.Fatalf("verify: %q %v", got, err)
	}
	if err := s.ClearSign(&signed, strings.NewReader("no final newline")); err == nil {
		t.Fatal("text without a final newline accepted")
	}
}

func TestPassphraseProtectedKey(t *testing.T) {
	s, _ := GenerateKey("test", "t@example.invalid")
	if err := s.e.PrivateKey.Encrypt([]byte("sesame")); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.e.SerializePrivateWithoutSigning(&buf, nil); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "key.gpg")
	os.WriteFile(p, buf.Bytes(), 0o600)
	if _, err := ReadSigningKey(p, nil); !errors.Is(err, ErrNoSigningKey) || !strings.Contains(err.Error(), "passphrase") {
		t.Fatalf("no passphrase: %v", err)
	}
	if _, err := ReadSigningKey(p, []byte("wrong")); !errors.Is(err, ErrNoSigningKey) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	s2, err := ReadSigningKey(p, []byte("sesame"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := s2.ClearSign(&out, strings.NewReader("x\n")); err != nil {
		t.Fatalf("sign with the decrypted key: %v", err)
	}
	var pub bytes.Buffer
	s.WritePublic(&pub, false)
	kp := filepath.Join(t.TempDir(), "pub.gpg")
	os.WriteFile(kp, pub.Bytes(), 0o644)
	if _, err := ReadSigningKey(kp, nil); !errors.Is(err, ErrNoSigningKey) || !strings.Contains(err.Error(), "public keys only") {
		t.Fatalf("public key as signing key: %v", err)
	}
}
