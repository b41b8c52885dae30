package catalog

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/mephstore/mephstore/internal/jsonc"
)

// EachItem calls fn with the fields of every item of a product (its JSON
// object, as in a products file or a product blob), unsorted.
func EachItem(raw []byte, fn func(version, item string, fields []jsonc.Field) error) error {
	fs, err := jsonc.Object(raw)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadCatalog, err)
	}
	vs, ok := jsonc.Get(fs, "versions")
	if !ok {
		return nil
	}
	vfs, err := jsonc.Object(vs)
	if err != nil {
		return fmt.Errorf("%w: versions: %w", ErrBadCatalog, err)
	}
	for _, vf := range vfs {
		fs, err := jsonc.Object(vf.Value)
		if err != nil {
			return fmt.Errorf("%w: version %s: %w", ErrBadCatalog, vf.Key, err)
		}
		items, ok := jsonc.Get(fs, "items")
		if !ok {
			continue
		}
		ifs, err := jsonc.Object(items)
		if err != nil {
			return fmt.Errorf("%w: version %s: items: %w", ErrBadCatalog, vf.Key, err)
		}
		for _, it := range ifs {
			fs, err := jsonc.Object(it.Value)
			if err != nil {
				return fmt.Errorf("%w: version %s: item %s: %w", ErrBadCatalog, vf.Key, it.Key, err)
			}
			if err := fn(vf.Key, it.Key, fs); err != nil {
				return err
			}
		}
	}
	return nil
}

// ItemDigests calls fn with the sha256 of every item of a product blob
// (canonical JSON of one product). Items without a sha256 are skipped.
func ItemDigests(raw []byte, fn func(sum [32]byte)) error {
	end, err := itemValues(raw, 0, "sha256", func(version, item, v []byte) error {
		s, ok := jsonc.String(v)
		var sum [32]byte
		if !ok || len(s) != 64 {
			return fmt.Errorf("%w: version %s: item %s: sha256 %s", ErrBadCatalog, version, item, v)
		}
		if _, err := hex.Decode(sum[:], []byte(s)); err != nil {
			return fmt.Errorf("%w: version %s: item %s: sha256 %s", ErrBadCatalog, version, item, v)
		}
		fn(sum)
		return nil
	})
	if err == nil {
		err = trailing(raw, end)
	}
	return err
}

// EachItemPath calls fn with the path of every item of a products file, in
// one pass over it and without building field lists: find-orphans reads
// products files of a hundred megabytes and more. An item named twice
// (a duplicate key) is visited twice.
func EachItemPath(catalog []byte, fn func(path string) error) error {
	var haveID, haveProducts bool
	end, err := jsonc.Members(catalog, 0, func(k []byte, v int) (int, error) {
		switch string(k) {
		case "content_id":
			haveID = true
			return -1, nil
		case "products":
			haveProducts = true
			return jsonc.Members(catalog, v, func(_ []byte, v int) (int, error) {
				return itemValues(catalog, v, "path", func(version, item, v []byte) error {
					s, ok := jsonc.String(v)
					if !ok {
						return fmt.Errorf("%w: version %s: item %s: path %s is not a string", ErrBadCatalog, version, item, v)
					}
					return fn(s)
				})
			})
		}
		return -1, nil
	})
	switch {
	case err != nil:
		if !errors.Is(err, ErrBadCatalog) {
			err = fmt.Errorf("%w: %w", ErrBadCatalog, err)
		}
	case !haveID:
		err = fmt.Errorf("%w: no content_id", ErrBadCatalog)
	case !haveProducts:
		err = fmt.Errorf("%w: no products", ErrBadCatalog)
	default:
		err = trailing(catalog, end)
	}
	return err
}

// itemValues calls fn with the raw value of field key of every item of the
// product object at raw[i:] and returns the offset just past the product.
func itemValues(raw []byte, i int, key string, fn func(version, item, v []byte) error) (int, error) {
	end, err := jsonc.Members(raw, i, func(k []byte, v int) (int, error) {
		if string(k) != "versions" {
			return -1, nil
		}
		return jsonc.Members(raw, v, func(version []byte, v int) (int, error) {
			return jsonc.Members(raw, v, func(k []byte, v int) (int, error) {
				if string(k) != "items" {
					return -1, nil
				}
				return jsonc.Members(raw, v, func(item []byte, v int) (int, error) {
					return jsonc.Members(raw, v, func(k []byte, v int) (int, error) {
						if string(k) != key {
							return -1, nil
						}
						end, err := jsonc.Skip(raw, v)
						if err != nil {
							return v, err
						}
						return end, fn(version, item, raw[v:end])
					})
				})
			})
		})
	})
	if err != nil && !errors.Is(err, ErrBadCatalog) {
		err = fmt.Errorf("%w: %w", ErrBadCatalog, err)
	}
	return end, err
}

// ParseCatalog splits a products file into its header fields (sorted,
// without "products"), its content id and its products (raw objects, in
// name order). Values are slices of raw.
func ParseCatalog(raw []byte) (header []jsonc.Field, contentID string, products []jsonc.Field, err error) {
	fs, err := jsonc.Object(raw)
	if err != nil {
		return nil, "", nil, fmt.Errorf("%w: %w", ErrBadCatalog, err)
	}
	var prods []byte
	for _, f := range jsonc.Sort(fs) {
		if f.Key == "products" {
			prods = f.Value
			continue
		}
		header = append(header, f)
	}
	contentID = StringField(header, "content_id")
	if contentID == "" {
		return nil, "", nil, fmt.Errorf("%w: no content_id", ErrBadCatalog)
	}
	if prods == nil {
		return nil, "", nil, fmt.Errorf("%w: %s: no products", ErrBadCatalog, contentID)
	}
	products, err = jsonc.Object(prods)
	if err != nil {
		return nil, "", nil, fmt.Errorf("%w: %s: products: %w", ErrBadCatalog, contentID, err)
	}
	return header, contentID, jsonc.Sort(products), nil
}

// Format renders an item with a Python %-format: %(key)s is the item's
// (inherited) value of key, "" when missing; %% is a percent sign.
func Format(format string, s *Scope) (string, error) {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+1 < len(format) && format[i+1] == '%' {
			b.WriteByte('%')
			i++
			continue
		}
		if i+1 >= len(format) || format[i+1] != '(' {
			return "", fmt.Errorf("output format %q: at %d: want %%(key)s or %%%%", format, i)
		}
		end := strings.IndexByte(format[i:], ')')
		if end < 0 || i+end+1 >= len(format) || format[i+end+1] != 's' {
			return "", fmt.Errorf("output format %q: at %d: want %%(key)s", format, i)
		}
		b.WriteString(s.Text(format[i+2 : i+end]))
		i += end + 1
	}
	return b.String(), nil
}

// FlatJSON writes the item's flattened fields as one compact JSON object.
func FlatJSON(s *Scope) ([]byte, error) {
	w := jsonc.Writer{}
	if err := w.Fields(s.Flatten(), 0); err != nil {
		return nil, err
	}
	return w.Buf, nil
}

// trailing refuses anything but white space after the value ending at end.
func trailing(b []byte, end int) error {
	for _, c := range b[end:] {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return fmt.Errorf("%w: data after the object at byte %d", ErrBadCatalog, end)
		}
	}
	return nil
}
