package snapshot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/mephstore/mephstore/internal/digest"
)

// testDoc is a snapshot document with every field set, names that need
// escapes, an empty catalog and a product without version names.
func testDoc(products int) *Doc {
	d := &Doc{Format: DocFormat, Stream: "daily", Parent: digest.FromString("parent"),
		Time: time.Date(2026, 12, 6, 7, 8, 9, 123456789, time.UTC), Operation: "insert \"x\" daily",
		Summary: "+1 version <&> é \u2028"}
	cat := Catalog{ContentID: "com.ubuntu.maas:daily:v3:download", Header: json.RawMessage(`{"datatype":"image-ids","format":"products:1.0"}`)}
	for i := range products {
		names := []string{}
		for v := range i % 5 {
			names = append(names, fmt.Sprintf("2025%04d", v))
		}
		cat.Products = append(cat.Products, ProductRef{Name: fmt.Sprintf("com.ubuntu.maas.daily:v3:boot:%d:amd64:ga\\\t", i),
			Digest: digest.FromString(fmt.Sprint(i)), Versions: len(names), Items: 4 * len(names), VersionNames: names})
	}
	cat.Products = append(cat.Products, ProductRef{Name: "no names", Digest: digest.FromString("n")})
	d.Catalogs = []Catalog{cat, {ContentID: "empty", Header: json.RawMessage(`{}`), Products: []ProductRef{}}}
	return d
}

// parseDoc must read what encode writes exactly as encoding/json does.
func TestParseDocReadsWhatEncodingJSONReads(t *testing.T) {
	for _, d := range []*Doc{testDoc(0), testDoc(7), {Format: DocFormat, Catalogs: []Catalog{}}} {
		b, err := d.encode()
		if err != nil {
			t.Fatal(err)
		}
		compareWithJSON(t, b)
		// White space between tokens, as an indenting writer leaves it.
		var ind bytes.Buffer
		if err := json.Indent(&ind, b, " ", "\t"); err != nil {
			t.Fatal(err)
		}
		compareWithJSON(t, ind.Bytes())
	}
}

func compareWithJSON(t *testing.T, b []byte) {
	t.Helper()
	got, err := parseDoc(b)
	if err != nil {
		t.Fatalf("parseDoc: %v\n%s", err, b)
	}
	var want Doc
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*got, want) {
		t.Fatalf("parseDoc read\n%+v\nencoding/json read\n%+v", *got, want)
	}
}

func TestParseDocRefusesBadDocuments(t *testing.T) {
	good, _ := testDoc(2).encode()
	for name, b := range map[string]string{
		"empty":           "",
		"not an object":   `["format"]`,
		"truncated":       string(good[:len(good)-1]),
		"trailing data":   string(good) + " {}",
		"string as int":   `{"catalogs":[{"products":[{"versions":"3"}]}]}`,
		"float as int":    `{"catalogs":[{"products":[{"items":1.5}]}]}`,
		"number as name":  `{"catalogs":[{"products":[{"name":7}]}]}`,
		"bad time":        `{"time":"yesterday"}`,
		"catalog as list": `{"catalogs":[[]]}`,
		"bad escape":      `{"stream":"a\q"}`,
	} {
		if _, err := parseDoc([]byte(b)); err == nil {
			t.Errorf("%s: parsed", name)
		}
		if _, err := decodeDoc("sha256:x", []byte(b)); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

// FuzzParseDoc: parseDoc never panics, and what it reads encodes to a
// document that it and encoding/json read the same.
func FuzzParseDoc(f *testing.F) {
	for _, n := range []int{0, 3} {
		b, _ := testDoc(n).encode()
		f.Add(b)
	}
	f.Add([]byte(`{"catalogs":null,"time":null,"format":null}`))
	f.Add([]byte(`{"catalogs":[{"products":[{"version_names":["a",null]}]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := parseDoc(b)
		if err != nil {
			return
		}
		again, err := d.encode()
		if err != nil {
			return // a header that is not JSON: encode refuses it
		}
		compareWithJSON(t, again)
	})
}
