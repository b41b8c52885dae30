package catalog

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/mephstore/mephstore/internal/jsonc"
)

// ErrBadFilter is wrapped by filter parse errors.
var ErrBadFilter = errors.New("bad filter")

// Filter is one condition of sstream-query / meph2-util: key=value,
// key!=value, key~regex, key!~regex. A regex matches anywhere in the value
// (Python's re.search); a missing key has the value "". mephstore adds
// key<value, key<=value, key>value and key>=value, which compare in the
// serial order of CompareVersions (version_name>=20260101).
type Filter struct {
	Key    string
	Op     string // "=", "!=", "~", "!~", "<", "<=", ">", ">="
	Value  string
	re     *regexp.Regexp
	negate bool
}

// ParseFilter parses one filter expression. Keys are letters, digits, '_',
// '-' and '|', as in simplestreams; spaces around the operator are allowed.
func ParseFilter(s string) (Filter, error) {
	i := 0
	for i < len(s) {
		c := s[i]
		if c == '_' || c == '-' || c == '|' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') {
			i++
			continue
		}
		break
	}
	f := Filter{Key: s[:i]}
	if f.Key == "" {
		return Filter{}, fmt.Errorf("filter %q: %w: want key=value, key!=value, key~regex or key!~regex", s, ErrBadFilter)
	}
	rest := strings.TrimLeft(s[i:], " ")
	switch {
	case strings.HasPrefix(rest, "!="), strings.HasPrefix(rest, "!~"), strings.HasPrefix(rest, "<="), strings.HasPrefix(rest, ">="):
		f.Op, rest = rest[:2], rest[2:]
	case strings.HasPrefix(rest, "="), strings.HasPrefix(rest, "~"), strings.HasPrefix(rest, "<"), strings.HasPrefix(rest, ">"):
		f.Op, rest = rest[:1], rest[1:]
	default:
		return Filter{}, fmt.Errorf("filter %q: %w: no operator after key %q (want =, !=, ~, !~, <, <=, > or >=)", s, ErrBadFilter, f.Key)
	}
	f.Value = strings.TrimLeft(rest, " ")
	f.negate = f.Op[0] == '!'
	if strings.HasSuffix(f.Op, "~") {
		re, err := regexp.Compile(f.Value)
		if err != nil {
			return Filter{}, fmt.Errorf("filter %q: %w: %v", s, ErrBadFilter, err)
		}
		f.re = re
	}
	return f, nil
}

// ParseFilters parses each expression.
func ParseFilters(exprs []string) ([]Filter, error) {
	out := make([]Filter, 0, len(exprs))
	for _, e := range exprs {
		f, err := ParseFilter(e)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// String is the filter as an expression that parses back to it.
func (f Filter) String() string {
	if (f.Op == "<" || f.Op == ">") && strings.HasPrefix(f.Value, "=") {
		// "k>" and "=v" would read back as "k" ">=" "v": keep them apart
		// (the parser drops spaces before a value).
		return f.Key + f.Op + " " + f.Value
	}
	return f.Key + f.Op + f.Value
}

// Match tests the filter against a value.
func (f Filter) Match(value string) bool {
	var m bool
	switch f.Op {
	case "<":
		return CompareVersions(value, f.Value) < 0
	case "<=":
		return CompareVersions(value, f.Value) <= 0
	case ">":
		return CompareVersions(value, f.Value) > 0
	case ">=":
		return CompareVersions(value, f.Value) >= 0
	}
	if f.re != nil {
		m = f.re.MatchString(value)
	} else {
		m = value == f.Value
	}
	return m != f.negate
}

// MatchScope reports whether every filter matches the item in s.
func MatchScope(fs []Filter, s *Scope) bool {
	for _, f := range fs {
		if !f.Match(s.Text(f.Key)) {
			return false
		}
	}
	return true
}

// VersionMatches reports whether a version is selected by the filters: at
// least one of its items matches all of them (every version matches no
// filters). Insert, promote, remove and clean-md select whole versions this
// way; query selects items.
func VersionMatches(fs []Filter, header []jsonc.Field, p *Product, v *Version) bool {
	if len(fs) == 0 {
		return true
	}
	s := Scope{Header: header, Product: p, Version: v}
	for i := range v.Items {
		s.Item = &v.Items[i]
		if MatchScope(fs, &s) {
			return true
		}
	}
	return false
}
