package snapshot

import (
	"errors"
	"strings"
	"testing"

	"github.com/mephstore/mephstore/catalog"
	"github.com/mephstore/mephstore/internal/jsonc"
)

func TestCompareVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"20240101", "20240102", -1},
		{"20240101.9", "20240101.10", -1},
		{"20240101.10", "20240101.2", 1},
		{"20240101", "20240101.1", -1},
		{"20240101_01", "20240101_02", -1},
		{"20240101", "20240101", 0},
		{"20231231.99", "20240101", -1},
		{"v2", "v10", -1},
		{"007", "7", 1}, // same number: the longer spelling sorts after
	} {
		if got := catalog.CompareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := catalog.CompareVersions(tc.b, tc.a); got != -tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}

func testScope(t *testing.T) *catalog.Scope {
	t.Helper()
	p, err := catalog.ParseProduct("com.ubuntu.maas.daily:v3:boot:24.04:amd64:ga-24.04", []byte(`{
	 "arch": "amd64", "release": "noble", "label": "daily", "num": 12, "flag": true,
	 "versions": {"20240101": {"pubname": "noble-x", "items": {
	   "boot-kernel": {"ftype": "boot-kernel", "size": 64, "arch": "override"}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	return &catalog.Scope{Header: jsonc.Sort([]jsonc.Field{{Key: "content_id", Value: []byte(`"com.ubuntu.maas:daily:v3:download"`)}}),
		Product: p, Version: &p.Versions[0], Item: &p.Versions[0].Items[0]}
}

func TestFilterSemantics(t *testing.T) {
	s := testScope(t)
	for _, tc := range []struct {
		expr string
		want bool
	}{
		{"release=noble", true},
		{"release = noble", true},
		{"release=jammy", false},
		{"release!=jammy", true},
		{"release~^no", true},
		{"release~ble$", true},
		{"release~oble", true}, // search, not full match
		{"release!~^(jammy|focal)$", true},
		{"arch=override", true}, // the item's own field wins
		{"pubname=noble-x", true},
		{"content_id~:daily:", true},
		{"num=12", true},
		{"flag=True", true},
		{"missing=", true}, // a missing key is ""
		{"missing!=", false},
		{"product_name~amd64", true},
		{"version_name=20240101", true},
		{"version_name>=20240101", true},
		{"version_name>=20240101.1", false},
		{"version_name>20231231.9", true},
		{"version_name<20240101.10", true},
		{"version_name<=20231231", false},
		{"size>9", true}, // numbers compare as numbers
		{"item_name=boot-kernel", true},
		{"size=64", true},
	} {
		f, err := catalog.ParseFilter(tc.expr)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		if got := catalog.MatchScope([]catalog.Filter{f}, s); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.expr, got, tc.want)
		}
	}
	for _, bad := range []string{"", "=x", "release", "release:noble", "release~(", "release!~[", "!=x"} {
		if _, err := catalog.ParseFilter(bad); !errors.Is(err, catalog.ErrBadFilter) {
			t.Errorf("ParseFilter(%q) = %v, want ErrBadFilter", bad, err)
		}
	}
	fs, _ := catalog.ParseFilters([]string{"release=noble", "arch=amd64"}) // arch is overridden by the item
	if catalog.MatchScope(fs, s) {
		t.Error("all filters must match")
	}
}

func TestProductRoundTripKeepsUnknownFields(t *testing.T) {
	raw := `{"zeta":{"b":1,"a":[1,2]},"arch":"amd64","versions":{"2":{"x-new":"kept","items":{"i":{"size":1,"ftype":"f"}},"zz":null},"10":{"items":{}}},"_aliases":{"k":"v"}}`
	p, err := catalog.ParseProduct("p", []byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Blob()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"_aliases":{"k":"v"},"arch":"amd64","versions":{"10":{"items":{}},"2":{"items":{"i":{"ftype":"f","size":1}},"x-new":"kept","zz":null}},"zeta":{"a":[1,2],"b":1}}`
	if string(b) != want {
		t.Fatalf("blob\n%s\nwant\n%s", b, want)
	}
	w := jsonc.Writer{Indent: " "}
	if err := p.Encode(&w, 0); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(w.Buf), "\n") {
		if strings.HasPrefix(l, "-") {
			t.Fatalf("indented output has a line starting with '-': %q", l)
		}
	}
	p2, err := catalog.ParseProduct("p", b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := p2.Blob()
	if string(b2) != string(b) {
		t.Fatal("encoding is not stable")
	}
	if _, err := catalog.ParseProduct("p", []byte(`{"versions": [1]}`)); !errors.Is(err, catalog.ErrBadCatalog) {
		t.Fatalf("versions as a list: %v", err)
	}
}

func TestShallowEditEncodesLikeFullModel(t *testing.T) {
	raw := []byte(`{"zeta": 1, "arch": "amd64", "versions": {"20240102": {"items": {"b": {"size": 2, "ftype": "x"}, "a": {"size": 1}}}}}`)
	full, err := catalog.ParseProduct("p", raw)
	if err != nil {
		t.Fatal(err)
	}
	newRaw := []byte(`{"items": {"k": {"sha256": "ab", "size": 3}}, "label": "daily"}`)
	v, _ := catalog.ParseVersion("20240101", newRaw)
	full.AddVersion(v)
	want, _ := full.Blob()

	orig, _ := catalog.ParseProduct("p", raw)
	blob, _ := orig.Blob()
	sh, err := parseShallow("p", blob, 2)
	if err != nil {
		t.Fatal(err)
	}
	canon, err := canonicalVersion(newRaw)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := sh.add("20240101", canon); !ok {
		t.Fatal("add")
	}
	if ok, _ := sh.add("20240101", canon); ok {
		t.Fatal("second add")
	}
	got, items, err := sh.blob()
	if err != nil || string(got) != string(want) || items != 3 {
		t.Fatalf("shallow blob\n%s (%d items, %v)\nfull blob\n%s", got, items, err, want)
	}
	if ok, _ := sh.remove("20240102"); !ok {
		t.Fatal("remove")
	}
	if ok, _ := sh.remove("20240102"); ok {
		t.Fatal("second remove")
	}
	if _, items, _ := sh.blob(); items != 1 {
		t.Fatalf("items after remove: %d", items)
	}
}

func TestEachItemPath(t *testing.T) {
	cat := []byte(`{"content_id": "c", "format": "products:1.0", "products": {
	 "p1": {"arch": "amd64", "versions": {
	   "v1": {"items": {"k": {"path": "a/k", "sha256": "x"}, "i": {"path": "a/i"}}},
	   "v2": {"label": "x", "items": {"k": {"ftype": "root-tgz"}}}}},
	 "p2": {"versions": {"v1": {"items": {"k": {"path": "b\/k"}, "k": {"path": "b/dup"}}}}},
	 "p3": {"arch": "arm64"}}}`)
	var got []string
	if err := catalog.EachItemPath(cat, func(p string) error { got = append(got, p); return nil }); err != nil {
		t.Fatal(err)
	}
	if s := strings.Join(got, ","); s != "a/k,a/i,b/k,b/dup" {
		t.Fatalf("paths %s", s)
	}
	for name, bad := range map[string]string{
		"no content_id":  `{"products": {}}`,
		"no products":    `{"content_id": "c"}`,
		"path number":    `{"content_id": "c", "products": {"p": {"versions": {"v": {"items": {"i": {"path": 1}}}}}}}`,
		"versions list":  `{"content_id": "c", "products": {"p": {"versions": []}}}`,
		"trailing data":  `{"content_id": "c", "products": {}} x`,
		"truncated file": `{"content_id": "c", "products": {"p": {"versions": {`,
		"truncated head": `{"content_id": `,
	} {
		if err := catalog.EachItemPath([]byte(bad), func(string) error { return nil }); !errors.Is(err, catalog.ErrBadCatalog) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
