package snapshot

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mephstore/mephstore/internal/digest"
	"github.com/mephstore/mephstore/internal/jsonc"
)

// DocFormat names the snapshot document format.
const DocFormat = "mephstore-snapshot-1"

// ErrBadSnapshot is wrapped when a snapshot blob cannot be read.
var ErrBadSnapshot = errors.New("bad snapshot")

// Doc is a snapshot: the catalogs of a stream at one moment.
type Doc struct {
	Format    string        `json:"format"`
	Stream    string        `json:"stream"`
	Parent    digest.Digest `json:"parent,omitempty"`
	Time      time.Time     `json:"time"`
	Operation string        `json:"operation"`
	Summary   string        `json:"summary"`
	Catalogs  []Catalog     `json:"catalogs"` // sorted by content id
}

// Catalog is one products file of a snapshot.
type Catalog struct {
	ContentID string          `json:"content_id"`
	Header    json.RawMessage `json:"header"` // canonical compact top-level fields, without "products"
	Products  []ProductRef    `json:"products"`
}

// ProductRef names the blob of one product.
type ProductRef struct {
	Name     string        `json:"name"`
	Digest   digest.Digest `json:"digest"`
	Versions int           `json:"versions"`
	Items    int           `json:"items"`
	// Names of the versions, so that planning an insert or a promote needs
	// no product blob.
	VersionNames []string `json:"version_names"`
}

// Has reports whether the product has the version.
func (r *ProductRef) Has(version string) bool {
	_, ok := slices.BinarySearch(r.VersionNames, version)
	return ok
}

// Counts of a snapshot.
type Counts struct {
	Products int `json:"products"`
	Versions int `json:"versions"`
	Items    int `json:"items"`
}

// Counts adds up the catalogs.
func (d *Doc) Counts() Counts {
	var c Counts
	for _, cat := range d.Catalogs {
		for _, p := range cat.Products {
			c.Products++
			c.Versions += p.Versions
			c.Items += p.Items
		}
	}
	return c
}

// Catalog returns the catalog with the content id, or nil.
func (d *Doc) Catalog(contentID string) *Catalog {
	i, ok := slices.BinarySearchFunc(d.Catalogs, contentID, func(c Catalog, id string) int { return strings.Compare(c.ContentID, id) })
	if !ok {
		return nil
	}
	return &d.Catalogs[i]
}

// HeaderFields parses the catalog header.
func (c *Catalog) HeaderFields() ([]jsonc.Field, error) {
	fs, err := jsonc.Object(c.Header)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: header: %w", c.ContentID, err)
	}
	return jsonc.Sort(fs), nil
}

// Ref returns the product called name, or nil.
func (c *Catalog) Ref(name string) *ProductRef {
	i, ok := slices.BinarySearchFunc(c.Products, name, func(p ProductRef, n string) int { return strings.Compare(p.Name, n) })
	if !ok {
		return nil
	}
	return &c.Products[i]
}

func (d *Doc) encode() ([]byte, error) { return json.Marshal(d) }

func decodeDoc(d digest.Digest, b []byte) (*Doc, error) {
	doc, err := parseDoc(b)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w: %v", d, ErrBadSnapshot, err)
	}
	if doc.Format != DocFormat {
		return nil, fmt.Errorf("snapshot %s: %w: format %q", d, ErrBadSnapshot, doc.Format)
	}
	return doc, nil
}

// encodeHeader is the canonical compact header.
func encodeHeader(fs []jsonc.Field) (json.RawMessage, error) {
	w := jsonc.Writer{}
	if err := w.Fields(fs, 0); err != nil {
		return nil, err
	}
	return w.Buf, nil
}
