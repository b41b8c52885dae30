package digest

import (
	"errors"
	"strings"
	"testing"
)

const empty = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

func TestFromBytes(t *testing.T) {
	if d := FromBytes(nil); d != empty {
		t.Errorf("FromBytes(nil) = %s", d)
	}
	if d := FromString("abc"); d.Encoded() != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" || d.Algorithm() != SHA256 {
		t.Errorf("FromString(abc) = %s", d)
	}
	if d := NewDigestFromEncoded(SHA256, Digest(empty).Encoded()); d != empty || d.String() != empty {
		t.Errorf("NewDigestFromEncoded = %s", d)
	}
}

func TestValidate(t *testing.T) {
	hex := Digest(empty).Encoded()
	for _, c := range []struct {
		in   string
		want error
	}{
		{empty, nil},
		{"", ErrFormat},
		{hex, ErrFormat},
		{"sha512:" + hex, ErrAlgorithm},
		{"SHA256:" + hex, ErrAlgorithm},
		{":" + hex, ErrAlgorithm},
		{"sha256:" + strings.ToUpper(hex), ErrEncodedForm},
		{"sha256:" + hex[1:], ErrEncodedForm},
		{"sha256:" + hex + "0", ErrEncodedForm},
		{"sha256:" + hex[:63] + "g", ErrEncodedForm},
		{"sha256:../../" + hex[6:], ErrEncodedForm},
		{"sha256:" + hex[:32] + "/" + hex[33:], ErrEncodedForm},
	} {
		d, err := Parse(c.in)
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("Parse(%q) = %v, want %v", c.in, err, c.want)
		}
		if string(d) != c.in {
			t.Errorf("Parse(%q) returned %q", c.in, d)
		}
	}
}

func TestPartsOfMalformed(t *testing.T) {
	d := Digest("no-colon")
	if d.Encoded() != "" || d.Algorithm() != "no-colon" {
		t.Errorf("parts of %q: %q %q", d, d.Algorithm(), d.Encoded())
	}
}

// FuzzParse: whatever the input, Parse never panics, and what it accepts
// is "sha256:" and 64 hex digits that take apart and put back together.
func FuzzParse(f *testing.F) {
	for _, s := range []string{empty, "", "sha256:", "sha512:00", "sha256:" + strings.Repeat("A", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Parse(s)
		if err != nil {
			return
		}
		if len(s) != len("sha256:")+64 || d.Algorithm() != SHA256 {
			t.Fatalf("accepted %q", s)
		}
		if NewDigestFromEncoded(d.Algorithm(), d.Encoded()) != d {
			t.Fatalf("%q does not round-trip", s)
		}
		if strings.ContainsAny(d.Encoded(), "/.:ABCDEF") {
			t.Fatalf("accepted encoded form %q", d.Encoded())
		}
	})
}
