package catalog

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/mephstore/mephstore/internal/jsonc"
)

// ParseBlob parses a product blob, the product's canonical encoding as
// Blob writes it, in one pass over its bytes. The result, and the raw
// versions it also returns, are those of SplitProduct and ProductOf, which
// scan every value again at each level below it: an item's fields, most
// of a blob, five times. Input that the one pass does not take (a value
// where an object belongs, even in a key given twice of which only the
// last counts) goes the long way, so the two agree on every input.
func ParseBlob(name string, raw []byte) (*Product, []jsonc.Field, error) {
	if p, versions, err := parseBlob(name, raw); err == nil {
		return p, versions, nil
	}
	fields, versions, err := SplitProduct(name, raw)
	if err != nil {
		return nil, nil, err
	}
	p, err := ProductOf(name, fields, versions)
	return p, versions, err
}

// parsedVersion is a version with its raw bytes, before the sort.
type parsedVersion struct {
	raw jsonc.Field
	v   Version
}

func parseBlob(name string, raw []byte) (*Product, []jsonc.Field, error) {
	p := &Product{Name: name}
	var parsed []parsedVersion
	end, err := jsonc.Members(raw, 0, func(k []byte, at int) (int, error) {
		if string(k) == "versions" {
			var end int
			var err error
			parsed, end, err = parseVersions(raw, at) // the last "versions" counts
			return end, err
		}
		end, err := jsonc.Skip(raw, at)
		if err == nil {
			p.Fields = append(p.Fields, jsonc.Field{Key: string(k), Value: raw[at:end]})
		}
		return end, err
	})
	if err == nil && !onlySpace(raw[end:]) {
		err = errors.New("data after the object")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("product %s: %w: %w", name, ErrBadCatalog, err)
	}
	p.Fields = jsonc.Sort(p.Fields)
	var versions []jsonc.Field
	for _, x := range jsonc.SortLast(parsed, func(x parsedVersion) string { return x.raw.Key }) {
		versions = append(versions, x.raw)
		p.Versions = append(p.Versions, x.v)
	}
	return p, versions, nil
}

// parseVersions parses the versions object at raw[at:].
func parseVersions(raw []byte, at int) ([]parsedVersion, int, error) {
	var out []parsedVersion
	end, err := jsonc.Members(raw, at, func(k []byte, vat int) (int, error) {
		v, vend, err := parseVersionAt(string(k), raw, vat)
		if err == nil {
			out = append(out, parsedVersion{raw: jsonc.Field{Key: v.Name, Value: raw[vat:vend]}, v: v})
		}
		return vend, err
	})
	return out, end, err
}

// parseVersionAt parses the version called name at raw[at:], as
// parseVersionLong parses its bytes, and returns where it ends.
func parseVersionAt(name string, raw []byte, at int) (Version, int, error) {
	v := Version{Name: name}
	end, err := jsonc.Members(raw, at, func(k []byte, fat int) (int, error) {
		if string(k) != "items" {
			fend, err := jsonc.Skip(raw, fat)
			if err == nil {
				v.Fields = append(v.Fields, jsonc.Field{Key: string(k), Value: raw[fat:fend]})
			}
			return fend, err
		}
		v.Items = v.Items[:0] // the last "items" counts
		return jsonc.Members(raw, fat, func(ik []byte, iat int) (int, error) {
			it := Item{Name: string(ik), Fields: make([]jsonc.Field, 0, 8)}
			iend, err := jsonc.Members(raw, iat, func(fk []byte, fat int) (int, error) {
				fend, err := jsonc.Skip(raw, fat)
				if err == nil {
					it.Fields = append(it.Fields, jsonc.Field{Key: fieldKey(fk), Value: raw[fat:fend]})
				}
				return fend, err
			})
			if it.Fields = jsonc.Sort(it.Fields); len(it.Fields) == 0 {
				it.Fields = nil // as the long way has it
			}
			v.Items = append(v.Items, it)
			return iend, err
		})
	})
	if err != nil {
		return Version{}, end, err
	}
	v.Fields = jsonc.Sort(v.Fields)
	v.Items = jsonc.SortLast(v.Items, func(it Item) string { return it.Name })
	return v, end, nil
}

// onlySpace reports whether b is JSON white space only.
func onlySpace(b []byte) bool { return len(bytes.TrimLeft(b, " \t\r\n")) == 0 }

// fieldKey is k as a string, without an allocation for the fields every
// item has.
func fieldKey(k []byte) string {
	switch string(k) {
	case "ftype":
		return "ftype"
	case "md5":
		return "md5"
	case "path":
		return "path"
	case "sha256":
		return "sha256"
	case "size":
		return "size"
	case "kpackage":
		return "kpackage"
	}
	return string(k)
}
