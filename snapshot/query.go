package snapshot

import (
	"context"

	"github.com/mephstore/mephstore/catalog"
	"github.com/mephstore/mephstore/internal/digest"
)

// QueryOptions select items, as sstream-query does.
type QueryOptions struct {
	Filters []catalog.Filter
	Max     int // newest versions per product to read (0: all)
}

// Query calls fn for every item of the snapshot that matches the filters,
// product by product (name order), newest version first, items by name.
// One product is in memory at a time.
func (r *Repo) Query(ctx context.Context, snap digest.Digest, o QueryOptions, fn func(s *catalog.Scope) error) error {
	doc, err := r.Doc(snap)
	if err != nil {
		return err
	}
	for ci := range doc.Catalogs {
		cat := &doc.Catalogs[ci]
		header, err := cat.HeaderFields()
		if err != nil {
			return err
		}
		for pi := range cat.Products {
			if err := ctx.Err(); err != nil {
				return err
			}
			p, err := r.Product(&cat.Products[pi])
			if err != nil {
				return err
			}
			order := catalog.NewestFirst(p)
			if o.Max > 0 && len(order) > o.Max {
				order = order[:o.Max]
			}
			s := catalog.Scope{Header: header, Product: p}
			for _, vi := range order {
				s.Version = &p.Versions[vi]
				for ii := range s.Version.Items {
					s.Item = &s.Version.Items[ii]
					if !catalog.MatchScope(o.Filters, &s) {
						continue
					}
					if err := fn(&s); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// DiffResult lists what differs from snapshot A to snapshot B.
type DiffResult struct {
	A               digest.Digest  `json:"a"`
	B               digest.Digest  `json:"b"`
	ProductsAdded   []string       `json:"products_added"`
	ProductsRemoved []string       `json:"products_removed"`
	Changed         []ProductDelta `json:"products_changed"`
}

// ProductDelta lists the version changes of one product present in both.
type ProductDelta struct {
	Product  string   `json:"product"`
	Added    []string `json:"versions_added"`
	Removed  []string `json:"versions_removed"`
	Modified []string `json:"versions_changed"`
}

// Empty reports whether the two snapshots have the same content.
func (d *DiffResult) Empty() bool {
	return len(d.ProductsAdded) == 0 && len(d.ProductsRemoved) == 0 && len(d.Changed) == 0
}

type keyedRef struct {
	key string // content id + NUL + product name
	ref *ProductRef
}

func refsOf(doc *Doc) []keyedRef {
	var out []keyedRef
	for ci := range doc.Catalogs {
		cat := &doc.Catalogs[ci]
		for pi := range cat.Products {
			out = append(out, keyedRef{cat.ContentID + "\x00" + cat.Products[pi].Name, &cat.Products[pi]})
		}
	}
	return out
}

// Diff compares two snapshots product by product. Products with the same
// blob are equal without being read; the others are read two at a time.
func (r *Repo) Diff(ctx context.Context, a, b digest.Digest) (*DiffResult, error) {
	da, err := r.Doc(a)
	if err != nil {
		return nil, err
	}
	db, err := r.Doc(b)
	if err != nil {
		return nil, err
	}
	res := &DiffResult{A: a, B: b, ProductsAdded: []string{}, ProductsRemoved: []string{}, Changed: []ProductDelta{}}
	ra, rb := refsOf(da), refsOf(db)
	i, j := 0, 0
	for i < len(ra) || j < len(rb) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		switch {
		case j >= len(rb) || (i < len(ra) && ra[i].key < rb[j].key):
			res.ProductsRemoved = append(res.ProductsRemoved, ra[i].ref.Name)
			i++
		case i >= len(ra) || rb[j].key < ra[i].key:
			res.ProductsAdded = append(res.ProductsAdded, rb[j].ref.Name)
			j++
		default:
			if ra[i].ref.Digest != rb[j].ref.Digest {
				pa, err := r.Product(ra[i].ref)
				if err != nil {
					return nil, err
				}
				pb, err := r.Product(rb[j].ref)
				if err != nil {
					return nil, err
				}
				if d := diffProduct(pa, pb); d != nil {
					res.Changed = append(res.Changed, *d)
				}
			}
			i++
			j++
		}
	}
	return res, nil
}

func diffProduct(a, b *catalog.Product) *ProductDelta {
	d := ProductDelta{Product: b.Name, Added: []string{}, Removed: []string{}, Modified: []string{}}
	i, j := 0, 0
	for i < len(a.Versions) || j < len(b.Versions) {
		switch {
		case j >= len(b.Versions) || (i < len(a.Versions) && a.Versions[i].Name < b.Versions[j].Name):
			d.Removed = append(d.Removed, a.Versions[i].Name)
			i++
		case i >= len(a.Versions) || b.Versions[j].Name < a.Versions[i].Name:
			d.Added = append(d.Added, b.Versions[j].Name)
			j++
		default:
			if !catalog.EqualVersions(&a.Versions[i], &b.Versions[j]) {
				d.Modified = append(d.Modified, b.Versions[j].Name)
			}
			i++
			j++
		}
	}
	if len(d.Added) == 0 && len(d.Removed) == 0 && len(d.Modified) == 0 && catalog.EqualFields(a.Fields, b.Fields) {
		return nil
	}
	return &d
}
