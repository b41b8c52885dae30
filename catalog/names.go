package catalog

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/mephstore/mephstore/internal/jsonc"
)

// ErrBadMetadataName is wrapped when a content id, product, version or item
// name, or an item path, is not one mephstore accepts.
var ErrBadMetadataName = errors.New("not a valid name")

// Limits on what upstream metadata may hold. Names become file names and
// JSON keys of signed documents: gpgv refuses clear-signed lines of about
// 20,000 bytes, and every name and value is written on one line.
const (
	MaxNameLen  = 200  // content ids, product, version and item names, path components (a products file is named <content id>.<16 hex>.json.gpg)
	MaxPathLen  = 1024 // an item path
	MaxValueLen = 4096 // any other field's value, as JSON
)

// nameByte says whether c may appear in a name: what simplestreams and MAAS
// trees use (letters, digits, '.', '_', '-', ':', '+', '~', '@', ',', '=').
func nameByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("._-:+~@,=", c) >= 0
}

// checkComponent checks s against the name rules: 1 to MaxNameLen bytes of
// nameByte, starting with a letter or digit (so never ".", ".." or a hidden
// file, and never an option).
func checkComponent(s string) string {
	switch {
	case s == "":
		return "empty"
	case len(s) > MaxNameLen:
		return fmt.Sprintf("%d bytes long, at most %d", len(s), MaxNameLen)
	case !isAlnum(s[0]):
		return "must start with a letter or digit"
	}
	for i := 0; i < len(s); i++ {
		if !nameByte(s[i]) {
			return fmt.Sprintf("holds %q at byte %d (use letters, digits and . _ - : + ~ @ , =)", s[i], i)
		}
	}
	return ""
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// CheckName checks a content id, product, version or item name (kind says
// which, for the error). Such a name is one file-name component: the
// content id names the products file, and no name may hold a '/'.
func CheckName(kind, s string) error {
	if why := checkComponent(s); why != "" {
		return fmt.Errorf("%s %q: %w: %s", kind, Clip(s), ErrBadMetadataName, why)
	}
	return nil
}

// CheckItemPath checks an item path: relative, '/'-separated components
// that each pass the name rules, at most MaxPathLen bytes.
func CheckItemPath(p string) error {
	if len(p) > MaxPathLen {
		return fmt.Errorf("path %q: %w: %d bytes long, at most %d", Clip(p), ErrBadMetadataName, len(p), MaxPathLen)
	}
	if err := CheckRel(p); err != nil {
		return err
	}
	for _, c := range strings.Split(p, "/") {
		if why := checkComponent(c); why != "" {
			return fmt.Errorf("path %q: %w: component %q %s", Clip(p), ErrBadMetadataName, Clip(c), why)
		}
	}
	return nil
}

// clip shortens what an error quotes.
func Clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// checkValues refuses a field whose value is longer than MaxValueLen.
func checkValues(where string, fs []jsonc.Field) error {
	for _, f := range fs {
		if len(f.Key) > MaxNameLen {
			return fmt.Errorf("%s: field %q: %w: the key is %d bytes long, at most %d", where, Clip(f.Key), ErrBadMetadataName, len(f.Key), MaxNameLen)
		}
		if len(f.Value) > MaxValueLen {
			return fmt.Errorf("%s: field %s: %w: the value is %d bytes long, at most %d", where, Clip(f.Key), ErrBadMetadataName, len(f.Value), MaxValueLen)
		}
	}
	return nil
}

// CheckVersion checks the names and values of a version about to enter a
// stream: its content id, catalog header, product name and fields, version
// name and fields, and every item's name, fields and path. Insert and
// AddVersions call it before anything is fetched or written.
func CheckVersion(cid string, header []jsonc.Field, product string, pfields []jsonc.Field, v *Version) error {
	if err := CheckName("content_id", cid); err != nil {
		return err
	}
	if err := checkValues("content "+cid, header); err != nil {
		return err
	}
	if err := CheckName("product name", product); err != nil {
		return err
	}
	if err := checkValues("product "+product, pfields); err != nil {
		return err
	}
	where := "product " + product + " version " + v.Name
	if err := CheckName("version name", v.Name); err != nil {
		return fmt.Errorf("product %s: %w", product, err)
	}
	if err := checkValues(where, v.Fields); err != nil {
		return err
	}
	for i := range v.Items {
		it := &v.Items[i]
		if err := CheckName("item name", it.Name); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if err := checkValues(where+" item "+it.Name, it.Fields); err != nil {
			return err
		}
		if p := StringField(it.Fields, "path"); p != "" {
			if err := CheckItemPath(p); err != nil {
				return fmt.Errorf("%s item %s: %w", where, it.Name, err)
			}
		}
	}
	return nil
}

// ErrBadPath is wrapped when a path from metadata could leave its tree.
var ErrBadPath = errors.New("bad path")

// CheckRel refuses paths that could leave the tree.
func CheckRel(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || strings.Contains(p, "\\") || strings.ContainsAny(p, "?#") ||
		path.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../") || strings.Contains(p, "/../") || strings.Contains(p, "://") {
		return fmt.Errorf("path %q: %w: must be relative and stay inside the tree", p, ErrBadPath)
	}
	return nil
}
