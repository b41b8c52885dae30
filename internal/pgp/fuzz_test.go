package pgp

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzVerifyClearsigned: whatever the bytes, the verifier returns the text
// of a document this key signed or an error that wraps ErrNotSigned or
// ErrBadSignature, in one line; it never panics.
func FuzzVerifyClearsigned(f *testing.F) {
	s, err := GenerateKey("fuzz", "f@example.invalid")
	if err != nil {
		f.Fatal(err)
	}
	text := "{\n \"a\": 1\n}\n"
	var signed, pub bytes.Buffer
	s.ClearSign(&signed, strings.NewReader(text))
	s.WritePublic(&pub, false)
	kr, err := ReadKeyringBytes(pub.Bytes())
	if err != nil {
		f.Fatal(err)
	}
	doc := signed.String()
	for _, seed := range []string{
		doc,
		strings.Replace(doc, "Hash: SHA512\n", "", 1),
		strings.Replace(doc, "Hash: SHA512\n", "Hash: SHA256\n", 1),
		strings.Replace(doc, "Hash: SHA512\n", "Hash: SHA512\nComment: x\n", 1),
		strings.Replace(doc, "\"a\": 1", "\"a\": 2", 1),
		"\ufeff" + doc,
		doc + "trailing",
		"-----BEGIN PGP SIGNED MESSAGE-----\n",
		"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nx\n-----BEGIN PGP SIGNATURE-----\n\n-----END PGP SIGNATURE-----\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := VerifyClearsigned("f.sjson", b, kr)
		if err != nil {
			if !errors.Is(err, ErrNotSigned) && !errors.Is(err, ErrBadSignature) {
				t.Fatalf("error %v wraps neither ErrNotSigned nor ErrBadSignature", err)
			}
			return
		}
		if norm(string(got)) != norm(text) {
			t.Fatalf("verified a text this key never signed: %q", got)
		}
	})
}

// norm drops what a clear signature does not cover: trailing blanks of a
// line and carriage returns.
func norm(s string) string {
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t")
	}
	return strings.Join(lines, "\n")
}
