package pgp

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The armour headers of a clear-signed message decide which hash gpgv
// computes: mephstore accepts exactly what gpgv accepts, judged by the real
// gpgv on the same bytes.
func TestClearsignHashHeaderLikeGpgv(t *testing.T) {
	if _, err := exec.LookPath("gpgv"); err != nil {
		t.Fatal("gpgv is needed (scripts/deps installs it)")
	}
	s, err := GenerateKey("test", "t@example.invalid")
	if err != nil {
		t.Fatal(err)
	}
	var signed, pub bytes.Buffer
	if err := s.ClearSign(&signed, strings.NewReader("{\n \"a\": 1\n}\n")); err != nil {
		t.Fatal(err)
	}
	s.WritePublic(&pub, false)
	dir := t.TempDir()
	keyring := filepath.Join(dir, "keyring.gpg")
	os.WriteFile(keyring, pub.Bytes(), 0o644)
	home := filepath.Join(dir, "gh")
	os.Mkdir(home, 0o700)
	kr, _ := ReadKeyring(keyring)
	const ours = "Hash: SHA512\n" // what ClearSign writes
	if !strings.Contains(signed.String(), ours) {
		t.Fatalf("ClearSign no longer writes %q", ours)
	}
	for _, tc := range []struct {
		name, header string
		ok           bool
	}{
		{"as signed", ours, true},
		{"no Hash header (MD5 assumed)", "", false},
		{"wrong hash", "Hash: SHA256\n", false},
		{"weaker hash", "Hash: SHA1\n", false},
		{"a list holding it", "Hash: SHA256,SHA512\n", true},
		{"two lines, one holding it", "Hash: SHA1\nHash: SHA512\n", true},
		{"unknown name", "Hash: SHA512,WHIRLPOOL\n", false},
		{"another header", "Hash: SHA512\nComment: hello\n", false},
		{"no space after the colon", "Hash:SHA512\n", false},
		{"lower case", "hash: SHA512\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(signed.String(), ours, tc.header, 1)
			f := filepath.Join(dir, "f.sjson")
			os.WriteFile(f, []byte(doc), 0o644)
			gpgvOK := exec.Command("gpgv", "--homedir", home, "--keyring", keyring, f).Run() == nil
			_, err := VerifyClearsigned("f.sjson", []byte(doc), kr)
			if gpgvOK != tc.ok {
				t.Fatalf("gpgv says ok=%v, the table says %v", gpgvOK, tc.ok)
			}
			if (err == nil) != gpgvOK {
				t.Fatalf("mephstore: %v; gpgv ok=%v", err, gpgvOK)
			}
			if err != nil && !errors.Is(err, ErrBadSignature) {
				t.Fatalf("%v does not wrap ErrBadSignature", err)
			}
		})
	}
}
