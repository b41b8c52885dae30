package pgp

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
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
