package catalog

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/mephstore/mephstore/internal/jsonc"
)

// longWay is what ParseBlob must agree with: SplitProduct, then each
// version read level by level (what ProductOf did before ParseVersion
// took the one pass).
func longWay(name string, raw []byte) (*Product, []jsonc.Field, error) {
	fields, versions, err := SplitProduct(name, raw)
	if err != nil {
		return nil, nil, err
	}
	p := &Product{Name: name, Fields: fields}
	for _, vf := range versions {
		v, err := parseVersionLong(vf.Key, vf.Value)
		if err != nil {
			return nil, nil, fmt.Errorf("product %s: %w", name, err)
		}
		p.Versions = append(p.Versions, v)
	}
	return p, versions, nil
}

// sameParse fails t unless ParseBlob and the long way agree on raw: both
// fail, or both give the same product and raw versions. It reports
// whether the one pass took raw itself.
func sameParse(t *testing.T, raw []byte) (onePass bool) {
	t.Helper()
	sameVersionParse(t, raw)
	want, wantV, werr := longWay("p", raw)
	got, gotV, gerr := ParseBlob("p", raw)
	if (werr == nil) != (gerr == nil) {
		t.Fatalf("%q: ParseBlob error %v, the long way %v", raw, gerr, werr)
	}
	if werr != nil {
		if gerr.Error() != werr.Error() {
			t.Fatalf("%q: ParseBlob error %q, the long way %q", raw, gerr, werr)
		}
		return false
	}
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(gotV, wantV) {
		t.Fatalf("%q:\nParseBlob  %+v %q\nlong way   %+v %q", raw, got, gotV, want, wantV)
	}
	_, _, err := parseBlob("p", raw)
	return err == nil
}

// sameVersionParse fails t unless ParseVersion and the long way agree on
// raw read as a version.
func sameVersionParse(t *testing.T, raw []byte) {
	t.Helper()
	want, werr := parseVersionLong("v", raw)
	got, gerr := ParseVersion("v", raw)
	if (werr == nil) != (gerr == nil) || werr != nil && gerr.Error() != werr.Error() || !reflect.DeepEqual(got, want) {
		t.Fatalf("%q as a version: ParseVersion %+v %v, the long way %+v %v", raw, got, gerr, want, werr)
	}
}

func TestParseBlob(t *testing.T) {
	canonical := func(p *Product) []byte {
		b, err := p.Blob()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	item := func(name, sum string) Item {
		return Item{Name: name, Fields: []jsonc.Field{
			{Key: "ftype", Value: jsonc.Quote(name)}, {Key: "sha256", Value: jsonc.Quote(sum)}, {Key: "size", Value: []byte("12")}}}
	}
	full := &Product{Name: "p", Fields: []jsonc.Field{{Key: "arch", Value: jsonc.Quote("amd64")}, {Key: "release", Value: jsonc.Quote("noble")}},
		Versions: []Version{
			{Name: "20240101", Fields: []jsonc.Field{{Key: "label", Value: jsonc.Quote("release")}}, Items: []Item{item("boot-initrd", "aa"), item("boot-kernel", "bb")}},
			{Name: "20240102", Items: []Item{item("squashfs", "cc")}},
			{Name: "20240103"},
		}}
	for _, tc := range []struct {
		name     string
		raw      []byte
		onePass  bool // the one pass takes it (else the long way)
		parseErr bool
	}{
		{"canonical", canonical(full), true, false},
		{"no versions", canonical(&Product{Name: "p", Fields: full.Fields}), true, false},
		{"empty", []byte(`{}`), true, false},
		{"indented and unsorted", []byte("{\n \"versions\": {\"2\": {\"items\": {\"b\": {\"z\": 1, \"a\": [1, {\"x\": 2}]}, \"a\": {}}, \"label\": \"x\"}, \"1\": {}},\n \"arch\": \"amd64\"\n}\n"), true, false},
		{"keys given twice, the last counts", []byte(`{"a":1,"versions":{"1":{"items":{"i":{"f":1}}}},"a":2,"versions":{"2":{"k":"v"},"2":{"items":{"i":{"f":1},"j":{"f":2}},"items":{"i":{"f":1},"i":{"f":2}}}}}`), true, false},
		{"escaped keys", []byte(`{"\u0061rch":"x","versions":{"v\u0031":{"items":{"it\u0065m":{"sha\u0032\u0035\u0036":"ab"}}}}}`), true, false},
		{"an earlier versions that is not an object", []byte(`{"versions":"nope","versions":{"1":{}}}`), false, false},
		{"a version that is not an object", []byte(`{"versions":{"1":[]}}`), false, true},
		{"an item that is not an object", []byte(`{"versions":{"1":{"items":{"i":2}}}}`), false, true},
		{"not an object", []byte(`[1]`), false, true},
		{"data after the object", []byte(`{} {}`), false, true},
		{"truncated", canonical(full)[:40], false, true},
		{"bad value", []byte(`{"a":tru}`), false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if onePass := sameParse(t, tc.raw); onePass != tc.onePass {
				t.Errorf("taken by the one pass: %v, want %v", onePass, tc.onePass)
			}
			if _, _, err := ParseBlob("p", tc.raw); (err != nil) != tc.parseErr {
				t.Errorf("error %v, want one: %v", err, tc.parseErr)
			}
		})
	}
}

// benchProduct is a product of 40 versions of 7 items, the shape of the
// bench trees' products before clean-md.
func benchProduct(b *testing.B) []byte {
	p := &Product{Name: "com.ubuntu.maas.daily:v3:boot:24.04:amd64:ga-24.04", Fields: []jsonc.Field{
		{Key: "arch", Value: jsonc.Quote("amd64")}, {Key: "label", Value: jsonc.Quote("daily")}, {Key: "os", Value: jsonc.Quote("ubuntu")},
		{Key: "release", Value: jsonc.Quote("noble")}, {Key: "subarches", Value: jsonc.Quote("generic,hwe-p,hwe-q")}}}
	for v := range 40 {
		ver := Version{Name: fmt.Sprintf("2024%04d", v), Fields: []jsonc.Field{{Key: "label", Value: jsonc.Quote("daily")}}}
		for i := range 7 {
			ver.Items = append(ver.Items, Item{Name: fmt.Sprintf("item-%d", i), Fields: []jsonc.Field{
				{Key: "ftype", Value: jsonc.Quote("boot-kernel")},
				{Key: "kpackage", Value: jsonc.Quote("linux-generic")},
				{Key: "path", Value: jsonc.Quote(fmt.Sprintf("noble/amd64/2024%04d/ga-24.04/generic/item-%d", v, i))},
				{Key: "sha256", Value: jsonc.Quote(fmt.Sprintf("%064x", v*7+i))},
				{Key: "size", Value: []byte("12345678")}}})
		}
		p.Versions = append(p.Versions, ver)
	}
	raw, err := p.Blob()
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// BenchmarkParseBlob compares the one-pass parse of a product blob with
// SplitProduct and ProductOf. Run: go test -bench ParseBlob ./catalog
func BenchmarkParseBlob(b *testing.B) {
	raw := benchProduct(b)
	for _, c := range []struct {
		name  string
		parse func(string, []byte) (*Product, []jsonc.Field, error)
	}{{"one-pass", ParseBlob}, {"long-way", longWay}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := c.parse("p", raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
