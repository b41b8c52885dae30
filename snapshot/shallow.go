package snapshot

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/mephstore/mephstore/catalog"
	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/internal/jsonc"
)

// shallow is a product parsed one level deep, for editing: its fields and
// its versions as raw canonical JSON. Adding or removing a version splices
// raw bytes; the items of the versions that stay are never parsed, so an
// edit costs one scan of the product instead of a parse of every item.
type shallow struct {
	Name     string
	Fields   []jsonc.Field // sorted, without "versions"
	Versions []jsonc.Field // sorted by name; values canonical compact JSON
	Items    int           // items of all versions, kept up to date by add and remove
}

// parseShallow reads a product blob (canonical compact JSON) that has
// items items.
func parseShallow(name string, blob []byte, items int) (*shallow, error) {
	fields, versions, err := catalog.SplitProduct(name, blob)
	if err != nil {
		return nil, err
	}
	return &shallow{Name: name, Fields: fields, Versions: versions, Items: items}, nil
}

func (p *shallow) find(name string) (int, bool) {
	return slices.BinarySearchFunc(p.Versions, name, func(f jsonc.Field, n string) int { return strings.Compare(f.Key, n) })
}

// version parses one version.
func (p *shallow) version(name string) (*catalog.Version, error) {
	i, ok := p.find(name)
	if !ok {
		return nil, nil
	}
	v, err := catalog.ParseVersion(name, p.Versions[i].Value)
	if err != nil {
		return nil, fmt.Errorf("product %s: %w", p.Name, err)
	}
	return &v, nil
}

// product is the shallow product with no versions, for Scope lookups.
func (p *shallow) product() *catalog.Product { return &catalog.Product{Name: p.Name, Fields: p.Fields} }

// add inserts a version given as canonical compact JSON; false if present.
func (p *shallow) add(name string, canonical []byte) (bool, error) {
	i, ok := p.find(name)
	if ok {
		return false, nil
	}
	n, err := countItems(canonical)
	if err != nil {
		return false, fmt.Errorf("product %s: version %s: %w", p.Name, name, err)
	}
	p.Versions = slices.Insert(p.Versions, i, jsonc.Field{Key: name, Value: canonical})
	p.Items += n
	return true, nil
}

// remove drops a version; false if absent.
func (p *shallow) remove(name string) (bool, error) {
	i, ok := p.find(name)
	if !ok {
		return false, nil
	}
	n, err := countItems(p.Versions[i].Value)
	if err != nil {
		return false, fmt.Errorf("product %s: version %s: %w", p.Name, name, err)
	}
	p.Versions = slices.Delete(p.Versions, i, i+1)
	p.Items -= n
	return true, nil
}

// names lists the version names.
func (p *shallow) names() []string {
	out := make([]string, len(p.Versions))
	for i, v := range p.Versions {
		out[i] = v.Key
	}
	return out
}

// blob encodes the product canonically: fields re-encoded (they are few),
// versions copied as they are (they are canonical already). It returns the
// item count too.
func (p *shallow) blob() ([]byte, int, error) {
	w := jsonc.Writer{}
	err := w.FieldsWith(p.Fields, "versions", func() error {
		w.Buf = append(w.Buf, '{')
		for i, v := range p.Versions {
			if i > 0 {
				w.Buf = append(w.Buf, ',')
			}
			w.Key(v.Key)
			w.Buf = append(w.Buf, v.Value...)
		}
		w.Buf = append(w.Buf, '}')
		return nil
	}, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("product %s: %w", p.Name, err)
	}
	return w.Buf, p.Items, nil
}

// countItems counts the items of a raw version.
func countItems(raw []byte) (int, error) {
	fs, err := jsonc.Object(raw)
	if err != nil {
		return 0, err
	}
	for _, f := range fs {
		if f.Key == "items" {
			return jsonc.Count(f.Value)
		}
	}
	return 0, nil
}

// canonicalVersion re-encodes a version from a source file canonically.
func canonicalVersion(raw []byte) ([]byte, error) { return jsonc.Canonical(raw, "") }

// sameVersions names the versions of a product (cur: its versions as
// SplitProduct returns them) that its earlier blob prev has too, under the
// same name and with the same canonical bytes: their items are the same,
// item for item. (A version is never edited in place; the bytes are
// compared rather than that trusted.) prev is read one level deep, as an
// edit reads a product.
func (r *Repo) sameVersions(name string, prev digest.Digest, cur []jsonc.Field) (map[string]bool, error) {
	pb, err := r.s.ReadBlob(prev)
	if err != nil {
		return nil, fmt.Errorf("product %s: %w", name, err)
	}
	_, pv, err := catalog.SplitProduct(name, pb)
	if err != nil {
		return nil, err
	}
	same := map[string]bool{}
	j := 0
	for _, v := range cur {
		for j < len(pv) && pv[j].Key < v.Key {
			j++
		}
		if j < len(pv) && pv[j].Key == v.Key && bytes.Equal(pv[j].Value, v.Value) {
			same[v.Key] = true
		}
	}
	return same, nil
}
