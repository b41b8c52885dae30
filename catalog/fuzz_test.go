package catalog

import (
	"path/filepath"
	"strings"
	"testing"
)

// FuzzNames: an accepted content id, product, version or item name is one
// file-name component; an accepted item path stays below any root it is
// joined to.
func FuzzNames(f *testing.F) {
	for _, s := range []string{
		"com.ubuntu.maas:daily:v3:download", "com.ubuntu.maas:../../x", "..", ".", "", "a/b",
		"noble/amd64/20240615/ga-24.04/generic/boot-kernel", "../../outside/boot-kernel", "/etc/passwd",
		"a//b", "a/./b", "http://h/x", strings.Repeat("1", 30000), "a\x00b", "a\nb",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if err := CheckName("content_id", s); err == nil {
			if s == "." || s == ".." || strings.ContainsAny(s, "/\\\x00\n") || filepath.Base(s) != s || len(s) > MaxNameLen {
				t.Fatalf("name %q accepted", s)
			}
		} else if strings.Contains(err.Error(), "\n") {
			t.Fatalf("two-line error %q", err)
		}
		if err := CheckItemPath(s); err == nil {
			j := filepath.Join("/srv/root", s)
			if !strings.HasPrefix(j, "/srv/root/") || filepath.Clean(j) != j || len(s) > MaxPathLen {
				t.Fatalf("path %q accepted, joins to %q", s, j)
			}
			for _, c := range strings.Split(s, "/") {
				if c == "" || c == "." || c == ".." || strings.HasPrefix(c, ".") {
					t.Fatalf("path %q accepted with component %q", s, c)
				}
			}
		} else if strings.Contains(err.Error(), "\n") {
			t.Fatalf("two-line error %q", err)
		}
	})
}

// FuzzParseFilter: any expression parses or fails in one line; a parsed
// filter prints as an expression that parses to the same filter.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"arch=amd64", "release~(xenial|bionic)", "ftype!=root-image.gz", "key !~ ^a", "=x", "k", "k~(", "k~" + strings.Repeat("(a*)*", 100), "a|b=c", "0> =", "k< ==x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fl, err := ParseFilter(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") && !strings.Contains(s, "\n") {
				t.Fatalf("two-line error for a one-line expression: %q", err)
			}
			return
		}
		again, err := ParseFilter(fl.String())
		if err != nil || again.Key != fl.Key || again.Op != fl.Op || again.Value != fl.Value {
			t.Fatalf("%q -> %q -> %+v, %v", s, fl.String(), again, err)
		}
	})
}

// FuzzCompareVersions: the serial order is a total order (clean-md keeps
// the newest by it).
func FuzzCompareVersions(f *testing.F) {
	f.Add("20240101", "20240101.1", "20231231")
	f.Add("20240101_01", "20240101.10", "20240101.9")
	f.Add("", "a", "01")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		if CompareVersions(a, a) != 0 {
			t.Fatalf("%q != itself", a)
		}
		if CompareVersions(a, b) != -CompareVersions(b, a) {
			t.Fatalf("not antisymmetric: %q %q", a, b)
		}
		if CompareVersions(a, b) < 0 && CompareVersions(b, c) < 0 && CompareVersions(a, c) >= 0 {
			t.Fatalf("not transitive: %q < %q < %q", a, b, c)
		}
	})
}

// FuzzParseBlob: the one-pass parse of a product blob agrees with
// SplitProduct and ProductOf on any input.
func FuzzParseBlob(f *testing.F) {
	for _, s := range []string{
		`{"arch":"amd64","versions":{"1":{"items":{"a":{"sha256":"ab","size":1}},"label":"x"}}}`,
		`{"versions":{"1":{"items":{"i":{"f":1},"i":{"f":2}}},"1":{}},"versions":{}}`,
		`{"versions":{"1":{"items":{"a":{"f":1}},"items":{"i":{"f":1},"i":{"f":2}}}}}`,
		`{"versions":"x","versions":{"1":{"items":{}}}}`, `{"\u0061":1}`, `{} x`, `[]`, `{"a":`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) { sameParse(t, raw) })
}
