package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/mephstore/mephstore/internal/jsonc"
)

// ErrBadCatalog is wrapped by errors in products files and product blobs.
var ErrBadCatalog = errors.New("bad simplestreams metadata")

// Item is one file of a version.
type Item struct {
	Name   string
	Fields []jsonc.Field // sorted
}

// Version is one version (serial) of a product.
type Version struct {
	Name   string
	Fields []jsonc.Field // sorted; without "items"
	Items  []Item        // sorted by name
}

// Product is one product of a catalog.
type Product struct {
	Name     string
	Fields   []jsonc.Field // sorted; without "versions"
	Versions []Version     // sorted by name (byte order, as JSON keys)
}

// Field returns the raw value of key in fields.
func Field(fs []jsonc.Field, key string) ([]byte, bool) { return jsonc.Get(fs, key) }

// StringField returns the value of key if it is a JSON string.
func StringField(fs []jsonc.Field, key string) string {
	v, ok := jsonc.Get(fs, key)
	if !ok {
		return ""
	}
	s, _ := jsonc.String(v)
	return s
}

// ParseProduct parses the JSON object of the product called name.
func ParseProduct(name string, raw []byte) (*Product, error) {
	fields, versions, err := SplitProduct(name, raw)
	if err != nil {
		return nil, err
	}
	return ProductOf(name, fields, versions)
}

// SplitProduct reads a product one level deep: its fields other than
// "versions", and its versions as raw JSON, both sorted by key.
func SplitProduct(name string, raw []byte) (fields, versions []jsonc.Field, err error) {
	fs, err := jsonc.Object(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("product %s: %w: %w", name, ErrBadCatalog, err)
	}
	for _, f := range jsonc.Sort(fs) {
		if f.Key != "versions" {
			fields = append(fields, f)
			continue
		}
		versions, err = jsonc.Object(f.Value)
		if err != nil {
			return nil, nil, fmt.Errorf("product %s: versions: %w: %w", name, ErrBadCatalog, err)
		}
		versions = jsonc.Sort(versions)
	}
	return fields, versions, nil
}

// ProductOf is the product called name with fields and the raw versions
// SplitProduct returned, each version parsed.
func ProductOf(name string, fields, versions []jsonc.Field) (*Product, error) {
	p := &Product{Name: name, Fields: fields}
	for _, vf := range versions {
		v, err := ParseVersion(vf.Key, vf.Value)
		if err != nil {
			return nil, fmt.Errorf("product %s: %w", name, err)
		}
		p.Versions = append(p.Versions, v)
	}
	return p, nil
}

// ParseVersion parses the version called name from its raw JSON, in one
// pass over its bytes where it can (parseVersionAt), else the long way.
func ParseVersion(name string, raw []byte) (Version, error) {
	if v, end, err := parseVersionAt(name, raw, 0); err == nil && onlySpace(raw[end:]) {
		return v, nil
	}
	return parseVersionLong(name, raw)
}

// parseVersionLong parses a version by reading each level as an object,
// whose values are then read again at the level below.
func parseVersionLong(name string, raw []byte) (Version, error) {
	fs, err := jsonc.Object(raw)
	if err != nil {
		return Version{}, fmt.Errorf("version %s: %w: %w", name, ErrBadCatalog, err)
	}
	v := Version{Name: name}
	for _, f := range jsonc.Sort(fs) {
		if f.Key != "items" {
			v.Fields = append(v.Fields, f)
			continue
		}
		ifs, err := jsonc.Object(f.Value)
		if err != nil {
			return Version{}, fmt.Errorf("version %s: items: %w: %w", name, ErrBadCatalog, err)
		}
		for _, itf := range jsonc.Sort(ifs) {
			fields, err := jsonc.Object(itf.Value)
			if err != nil {
				return Version{}, fmt.Errorf("version %s: item %s: %w: %w", name, itf.Key, ErrBadCatalog, err)
			}
			v.Items = append(v.Items, Item{Name: itf.Key, Fields: jsonc.Sort(fields)})
		}
	}
	return v, nil
}

// Version returns the version called name, or nil.
func (p *Product) Version(name string) *Version {
	i, ok := slices.BinarySearchFunc(p.Versions, name, func(v Version, n string) int { return strings.Compare(v.Name, n) })
	if !ok {
		return nil
	}
	return &p.Versions[i]
}

// AddVersion inserts v, keeping the versions sorted. It reports false (and
// changes nothing) when the product already has a version of that name.
func (p *Product) AddVersion(v Version) bool {
	i, ok := slices.BinarySearchFunc(p.Versions, v.Name, func(x Version, n string) int { return strings.Compare(x.Name, n) })
	if ok {
		return false
	}
	p.Versions = slices.Insert(p.Versions, i, v)
	return true
}

// Encode writes the product as canonical JSON (sorted keys; "versions"
// in its place among the fields) at depth.
func (p *Product) Encode(w *jsonc.Writer, depth int) error {
	err := w.FieldsWith(p.Fields, "versions", func() error {
		if len(p.Versions) == 0 {
			w.Buf = append(w.Buf, '{', '}')
			return nil
		}
		w.Buf = append(w.Buf, '{')
		for i := range p.Versions {
			v := &p.Versions[i]
			if i > 0 {
				w.Buf = append(w.Buf, ',')
			}
			w.Newline(depth + 2)
			w.Key(v.Name)
			if err := v.encode(w, depth+2); err != nil {
				return fmt.Errorf("version %s: %w", v.Name, err)
			}
		}
		w.Newline(depth + 1)
		w.Buf = append(w.Buf, '}')
		return nil
	}, depth)
	if err != nil {
		return fmt.Errorf("product %s: %w", p.Name, err)
	}
	return nil
}

func (v *Version) encode(w *jsonc.Writer, depth int) error {
	return w.FieldsWith(v.Fields, "items", func() error {
		if len(v.Items) == 0 {
			w.Buf = append(w.Buf, '{', '}')
			return nil
		}
		w.Buf = append(w.Buf, '{')
		for i, it := range v.Items {
			if i > 0 {
				w.Buf = append(w.Buf, ',')
			}
			w.Newline(depth + 2)
			w.Key(it.Name)
			if err := w.Fields(it.Fields, depth+2); err != nil {
				return fmt.Errorf("item %s: %w", it.Name, err)
			}
		}
		w.Newline(depth + 1)
		w.Buf = append(w.Buf, '}')
		return nil
	}, depth)
}

// Blob is the product's canonical compact encoding: what is stored in the
// pool.
func (p *Product) Blob() ([]byte, error) {
	w := jsonc.Writer{}
	if err := p.Encode(&w, 0); err != nil {
		return nil, err
	}
	return w.Buf, nil
}

// Scope looks up a key in an item with simplestreams inheritance: the item's
// own fields, then its version's, its product's and its catalog's, plus the
// names product_name, version_name and item_name.
type Scope struct {
	Header  []jsonc.Field
	Product *Product
	Version *Version
	Item    *Item
}

// Get returns the raw value of key (names as JSON strings).
func (s *Scope) Get(key string) ([]byte, bool) {
	switch key {
	case "product_name":
		return jsonc.Quote(s.Product.Name), true
	case "version_name":
		if s.Version != nil {
			return jsonc.Quote(s.Version.Name), true
		}
	case "item_name":
		if s.Item != nil {
			return jsonc.Quote(s.Item.Name), true
		}
	}
	if s.Item != nil {
		if v, ok := jsonc.Get(s.Item.Fields, key); ok {
			return v, true
		}
	}
	if s.Version != nil {
		if v, ok := jsonc.Get(s.Version.Fields, key); ok {
			return v, true
		}
	}
	if s.Product != nil {
		if v, ok := jsonc.Get(s.Product.Fields, key); ok {
			return v, true
		}
	}
	if key == "products" {
		return nil, false
	}
	return jsonc.Get(s.Header, key)
}

// Text returns the value of key as filters see it ("" when missing).
func (s *Scope) Text(key string) string {
	v, ok := s.Get(key)
	if !ok {
		return ""
	}
	return jsonc.Text(v)
}

// Flatten returns every field the item sees, merged (the item's own fields
// win), plus product_name, version_name and item_name, sorted: what query
// prints. Nested objects of the upper levels (such as _aliases) are left out.
func (s *Scope) Flatten() []jsonc.Field {
	m := map[string][]byte{}
	add := func(fs []jsonc.Field) {
		for _, f := range fs {
			if f.Key == "products" || (len(f.Value) > 0 && f.Value[0] == '{') {
				continue
			}
			m[f.Key] = f.Value
		}
	}
	add(s.Header)
	add(s.Product.Fields)
	add(s.Version.Fields)
	for _, f := range s.Item.Fields {
		m[f.Key] = f.Value
	}
	m["product_name"] = jsonc.Quote(s.Product.Name)
	m["version_name"] = jsonc.Quote(s.Version.Name)
	m["item_name"] = jsonc.Quote(s.Item.Name)
	out := make([]jsonc.Field, 0, len(m))
	for k, v := range m {
		out = append(out, jsonc.Field{Key: k, Value: v})
	}
	return jsonc.Sort(out)
}

// equalFields reports whether two sorted field lists are the same.
func EqualFields(a, b []jsonc.Field) bool {
	return slices.EqualFunc(a, b, func(x, y jsonc.Field) bool { return x.Key == y.Key && bytes.Equal(x.Value, y.Value) })
}

// EqualVersions reports whether two versions have the same fields and items.
func EqualVersions(a, b *Version) bool {
	return EqualFields(a.Fields, b.Fields) && slices.EqualFunc(a.Items, b.Items, func(x, y Item) bool {
		return x.Name == y.Name && EqualFields(x.Fields, y.Fields)
	})
}
