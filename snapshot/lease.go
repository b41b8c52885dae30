package snapshot

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	digest "github.com/opencontainers/go-digest"

	"github.com/mephstore/mephstore/cas"
	"github.com/mephstore/mephstore/internal/jsonc"
)

// LeaseData is what the lease of a snapshot operation records: the
// sequence number of every stream's newest history entry when the lease was
// taken. An operation reads heads only after taking its lease, so every
// snapshot it may build on is an entry at or after those positions (or of a
// stream created later); gc keeps all of them while the lease lives.
type LeaseData struct {
	Seqs map[string]uint64 `json:"seqs"`
}

// ParseLeaseData reads the data of a lease taken by Hold; ok is false for
// leases of other operations (an ingest).
func ParseLeaseData(b []byte) (ld LeaseData, ok bool) {
	if len(b) == 0 || json.Unmarshal(b, &ld) != nil || ld.Seqs == nil {
		return LeaseData{}, false
	}
	return ld, true
}

// Hold takes a lease for a snapshot operation (see LeaseData) holding refs,
// in one writer session, unless ctx carries one already (then refs are
// added to it); release it when the operation ends.
func (r *Repo) Hold(ctx context.Context, op string, refs ...cas.Ref) (context.Context, func(), error) {
	if l := cas.LeaseFrom(ctx); l != nil {
		if len(refs) == 0 {
			return ctx, func() {}, nil
		}
		err := r.s.WithWriter(ctx, op+": lease", func(ss *cas.Session) error { return ss.AddRefs(l, refs...) })
		return ctx, func() {}, err
	}
	return r.s.Hold(ctx, op, func(txn cas.Txn) ([]byte, error) {
		sts, err := Streams(txn)
		if err != nil {
			return nil, err
		}
		ld := LeaseData{Seqs: map[string]uint64{}}
		for _, st := range sts {
			ld.Seqs[st.Name] = st.Seq
		}
		return json.Marshal(ld)
	}, refs...)
}

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

// trailing refuses anything but white space after the value ending at end.
func trailing(b []byte, end int) error {
	for _, c := range b[end:] {
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return fmt.Errorf("%w: data after the object at byte %d", ErrBadCatalog, end)
		}
	}
	return nil
}

// ErrIncomplete is wrapped when a snapshot refers to blobs the store lacks
// (gc reaped them: the snapshot was out of every stream's retained history
// for longer than gc's age gate).
var ErrIncomplete = errors.New("snapshot refers to blobs the store no longer has")

// checkComplete makes sure that every blob the snapshot doc refers to has
// its record in txn.
func (r *Repo) checkComplete(txn cas.Txn, d digest.Digest, doc *Doc) error {
	missing := 0
	var first string
	note := func(s string) {
		if missing == 0 {
			first = s
		}
		missing++
	}
	for _, cat := range doc.Catalogs {
		for _, p := range cat.Products {
			if _, err := cas.GetBlob(txn, p.Digest); err != nil {
				if !errors.Is(err, cas.ErrBlobNotFound) {
					return err
				}
				note("product " + p.Name)
				continue
			}
			raw, err := r.s.ReadBlob(p.Digest)
			if err != nil {
				return fmt.Errorf("product %s: %w", p.Name, err)
			}
			var gerr error
			err = ItemDigests(raw, func(sum [32]byte) {
				d := digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(sum[:]))
				if _, err := cas.GetBlob(txn, d); err != nil {
					if !errors.Is(err, cas.ErrBlobNotFound) {
						gerr = err
					}
					note("item data " + d.String())
				}
			})
			if err != nil {
				return fmt.Errorf("product %s: %w", p.Name, err)
			}
			if gerr != nil {
				return gerr
			}
		}
	}
	if missing > 0 {
		return fmt.Errorf("snapshot %s: %w (%d missing, first %s)", d, ErrIncomplete, missing, first)
	}
	return nil
}
