package snapshot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/mephstore/mephstore/internal/jsonc"
)

// A snapshot document is read by every operation on its stream, and at 77k
// items it holds 20k version names: encoding/json spent 5 ms and 24k
// allocations on one. parseDoc reads the same JSON in one pass, every
// string without an escape a substring of one copy of the document.

// parseDoc decodes a snapshot document as encoding/json would decode it
// into a Doc (exact keys; unknown keys are skipped).
func parseDoc(b []byte) (*Doc, error) {
	p := docParser{b: b, s: string(b)}
	var doc Doc
	end, err := jsonc.Members(b, 0, func(k []byte, v int) (int, error) {
		switch string(k) {
		case "format":
			return p.str(v, &doc.Format)
		case "stream":
			return p.str(v, &doc.Stream)
		case "parent":
			return p.str(v, (*string)(&doc.Parent))
		case "time":
			return p.time(v, &doc.Time)
		case "operation":
			return p.str(v, &doc.Operation)
		case "summary":
			return p.str(v, &doc.Summary)
		case "catalogs":
			return p.catalogs(v, &doc.Catalogs)
		}
		return -1, nil
	})
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimLeft(b[end:], " \t\r\n")) != 0 {
		return nil, fmt.Errorf("at byte %d: data after the document", end)
	}
	return &doc, nil
}

type docParser struct {
	b []byte
	s string // b as a string: the strings decoded are its substrings
}

func (p *docParser) null(v int) bool {
	return len(p.b)-v >= 4 && p.s[v:v+4] == "null"
}

func (p *docParser) str(v int, dst *string) (int, error) {
	if p.null(v) {
		return v + 4, nil
	}
	s, end, err := jsonc.StringAt(p.b, p.s, v)
	*dst = s
	return end, err
}

func (p *docParser) int(v int, dst *int) (int, error) {
	end, err := jsonc.Skip(p.b, v)
	if err != nil || p.null(v) {
		return end, err
	}
	n, ok := jsonc.Int(p.b[v:end])
	if !ok || int64(int(n)) != n {
		return v, fmt.Errorf("at byte %d: want an integer", v)
	}
	*dst = int(n)
	return end, nil
}

func (p *docParser) time(v int, dst *time.Time) (int, error) {
	end, err := jsonc.Skip(p.b, v)
	if err != nil {
		return end, err
	}
	return end, dst.UnmarshalJSON(p.b[v:end])
}

func (p *docParser) catalogs(v int, dst *[]Catalog) (int, error) {
	if p.null(v) {
		*dst = nil
		return v + 4, nil
	}
	out := []Catalog{}
	end, err := jsonc.Elements(p.b, v, func(e int) (int, error) {
		var c Catalog
		end, err := jsonc.Members(p.b, e, func(k []byte, v int) (int, error) {
			switch string(k) {
			case "content_id":
				return p.str(v, &c.ContentID)
			case "header":
				end, err := jsonc.Skip(p.b, v)
				c.Header = json.RawMessage(append([]byte(nil), p.b[v:end]...))
				return end, err
			case "products":
				return p.products(v, &c.Products)
			}
			return -1, nil
		})
		out = append(out, c)
		return end, err
	})
	*dst = out
	return end, err
}

func (p *docParser) products(v int, dst *[]ProductRef) (int, error) {
	if p.null(v) {
		*dst = nil
		return v + 4, nil
	}
	out := []ProductRef{}
	end, err := jsonc.Elements(p.b, v, func(e int) (int, error) {
		var r ProductRef
		end, err := jsonc.Members(p.b, e, func(k []byte, v int) (int, error) {
			switch string(k) {
			case "name":
				return p.str(v, &r.Name)
			case "digest":
				return p.str(v, (*string)(&r.Digest))
			case "versions":
				return p.int(v, &r.Versions)
			case "items":
				return p.int(v, &r.Items)
			case "version_names":
				return p.strings(v, &r.VersionNames, r.Versions)
			}
			return -1, nil
		})
		out = append(out, r)
		return end, err
	})
	*dst = out
	return end, err
}

// strings reads an array of strings; n is how many are likely (the
// product's version count, written before its names).
func (p *docParser) strings(v int, dst *[]string, n int) (int, error) {
	if p.null(v) {
		*dst = nil
		return v + 4, nil
	}
	out := make([]string, 0, max(0, min(n, 1<<16)))
	end, err := jsonc.Elements(p.b, v, func(e int) (int, error) {
		var s string
		end, err := p.str(e, &s)
		out = append(out, s)
		return end, err
	})
	*dst = out
	return end, err
}
