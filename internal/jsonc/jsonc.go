package jsonc

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ErrSyntax is wrapped by every parse error (with the byte offset).
var ErrSyntax = errors.New("invalid JSON")

// Field is one member of a JSON object: its decoded key and its raw value.
type Field struct {
	Key   string
	Value []byte
}

func synErr(off int, format string, a ...any) error {
	return fmt.Errorf("%w at byte %d: %s", ErrSyntax, off, fmt.Sprintf(format, a...))
}

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// Object parses the JSON object b (surrounding white space allowed) into its
// fields in document order. Values are slices of b.
func Object(b []byte) ([]Field, error) {
	i := skipWS(b, 0)
	fs, end, err := object(b, i)
	if err != nil {
		return nil, err
	}
	if j := skipWS(b, end); j != len(b) {
		return nil, synErr(j, "data after the object")
	}
	return fs, nil
}

func object(b []byte, i int) ([]Field, int, error) {
	var fs []Field
	end, err := Members(b, i, func(k []byte, v int) (int, error) {
		vend, err := scanValue(b, v, 0)
		if err != nil {
			return v, err
		}
		fs = append(fs, Field{Key: string(k), Value: b[v:vend]})
		return vend, nil
	})
	if err != nil {
		return nil, end, err
	}
	return fs, end, nil
}

const maxDepth = 1000

// scanValue returns the end of the JSON value starting at b[i].
func scanValue(b []byte, i, depth int) (int, error) {
	if depth > maxDepth {
		return i, synErr(i, "nested too deeply")
	}
	if i >= len(b) {
		return i, synErr(i, "unexpected end of input")
	}
	switch c := b[i]; {
	case c == '"':
		return scanString(b, i)
	case c == '{':
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, nil
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return i, synErr(i, "want a string key")
			}
			end, err := scanString(b, i)
			if err != nil {
				return i, err
			}
			i = skipWS(b, end)
			if i >= len(b) || b[i] != ':' {
				return i, synErr(i, "want ':'")
			}
			i, err = scanValue(b, skipWS(b, i+1), depth+1)
			if err != nil {
				return i, err
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return i, synErr(i, "unterminated object")
			}
			if b[i] == '}' {
				return i + 1, nil
			}
			if b[i] != ',' {
				return i, synErr(i, "want ',' or '}'")
			}
			i = skipWS(b, i+1)
		}
	case c == '[':
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, nil
		}
		for {
			var err error
			i, err = scanValue(b, i, depth+1)
			if err != nil {
				return i, err
			}
			i = skipWS(b, i)
			if i >= len(b) {
				return i, synErr(i, "unterminated array")
			}
			if b[i] == ']' {
				return i + 1, nil
			}
			if b[i] != ',' {
				return i, synErr(i, "want ',' or ']'")
			}
			i = skipWS(b, i+1)
		}
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	case c == '-' || (c >= '0' && c <= '9'):
		return scanNumber(b, i)
	default:
		return i, synErr(i, "unexpected %q", c)
	}
}

func literal(b []byte, i int, lit string) (int, error) {
	if !bytes.HasPrefix(b[i:], []byte(lit)) {
		return i, synErr(i, "want %s", lit)
	}
	return i + len(lit), nil
}

func scanNumber(b []byte, i int) (int, error) {
	start := i
	if b[i] == '-' {
		i++
	}
	digits := func() int {
		s := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i - s
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if digits() == 0 {
		return start, synErr(start, "bad number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return start, synErr(start, "bad number")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return start, synErr(start, "bad number")
		}
	}
	return i, nil
}

// plain[c] says that byte c stands for itself inside a string: printable
// ASCII but the quote and the backslash. (A read-only table.)
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// Words of eight bytes with each byte 0x01 or 0x80.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// special8 reports whether any of the eight bytes packed in w is not plain
// (see plain): a quote, a backslash, a control character or a byte of
// 0x80 and above. v-ones & ^v has a byte's high bit set where v's byte is
// zero (and, after such a byte, maybe beyond it: never where all are
// plain), so each test below finds the bytes equal to, or below, a value.
func special8(w uint64) bool {
	q := w ^ (ones * '"')
	bs := w ^ (ones * '\\')
	return ((q-ones)&^q|(bs-ones)&^bs|(w-ones*0x20)&^w|w)&highs != 0
}

// scanString returns the end (after the closing quote) of the string at b[i].
func scanString(b []byte, i int) (int, error) {
	start := i
	i++
	for i < len(b) {
		// Runs of plain ASCII, eight bytes a word while they last.
		for i+8 <= len(b) && !special8(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			return i + 1, nil
		case c == '\\':
			if i+1 >= len(b) {
				return start, synErr(start, "unterminated string")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return start, synErr(i, "bad \\u escape")
				}
				for _, h := range b[i+2 : i+6] {
					if !isHex(h) {
						return start, synErr(i, "bad \\u escape")
					}
				}
				i += 6
			default:
				return start, synErr(i, "bad escape \\%c", b[i+1])
			}
		case c < 0x20:
			return start, synErr(i, "control character in string")
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				return start, synErr(i, "invalid UTF-8 in string")
			}
			i += size
		default:
			i++
		}
	}
	return start, synErr(start, "unterminated string")
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// unquote decodes a scanned JSON string token.
func unquote(tok []byte, off int) (string, error) {
	inner := tok[1 : len(tok)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner), nil // scanString checked the UTF-8
	}
	var sb strings.Builder
	for i := 0; i < len(inner); {
		c := inner[i]
		if c != '\\' {
			sb.WriteByte(c)
			i++
			continue
		}
		switch inner[i+1] {
		case '"', '\\', '/':
			sb.WriteByte(inner[i+1])
		case 'b':
			sb.WriteByte('\b')
		case 'f':
			sb.WriteByte('\f')
		case 'n':
			sb.WriteByte('\n')
		case 'r':
			sb.WriteByte('\r')
		case 't':
			sb.WriteByte('\t')
		case 'u':
			r, _ := strconv.ParseUint(string(inner[i+2:i+6]), 16, 32)
			i += 6
			if r >= 0xd800 && r < 0xdc00 && i+6 <= len(inner) && inner[i] == '\\' && inner[i+1] == 'u' {
				lo, _ := strconv.ParseUint(string(inner[i+2:i+6]), 16, 32)
				if lo >= 0xdc00 && lo < 0xe000 {
					sb.WriteRune(rune((r-0xd800)<<10 + (lo - 0xdc00) + 0x10000))
					i += 6
					continue
				}
			}
			sb.WriteRune(rune(r))
			continue
		}
		i += 2
	}
	return sb.String(), nil
}

// String returns the value as a Go string if it is a JSON string.
func String(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	s, err := unquote(v, 0)
	return s, err == nil
}

// Text renders a value the way Python's str() renders the decoded value,
// which is what simplestreams filters compare against: strings as
// themselves, numbers as written, true/false/null as True/False/None, and
// anything else as its JSON.
func Text(v []byte) string {
	if s, ok := String(v); ok {
		return s
	}
	switch string(v) {
	case "true":
		return "True"
	case "false":
		return "False"
	case "null":
		return "None"
	}
	return string(v)
}

// Int parses the value as a JSON integer.
func Int(v []byte) (int64, bool) {
	n, err := strconv.ParseInt(string(v), 10, 64)
	return n, err == nil
}

// Quote returns s as a JSON string.
func Quote(s string) []byte { return AppendString(nil, s) }

// AppendString appends s as a JSON string. Non-ASCII is written as UTF-8;
// control characters, quote and backslash are escaped.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, fmt.Sprintf("\\u%04x", c)...)
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// Sort sorts fields by key in place; of duplicate keys the last one wins,
// as in Python's json module. It returns the possibly shorter slice.
func Sort(fs []Field) []Field { return SortLast(fs, func(f Field) string { return f.Key }) }

// SortLast sorts xs by key, stably, and keeps the last of each key: what
// Sort does to the fields of an object, for anything named by a key.
func SortLast[T any](xs []T, key func(T) string) []T {
	slices.SortStableFunc(xs, func(a, b T) int { return strings.Compare(key(a), key(b)) })
	out := xs[:0]
	for i, x := range xs {
		if i+1 < len(xs) && key(xs[i+1]) == key(x) {
			continue
		}
		out = append(out, x)
	}
	return out
}

// Get finds key in fields sorted by Sort.
func Get(fs []Field, key string) ([]byte, bool) {
	i, ok := slices.BinarySearchFunc(fs, key, func(f Field, k string) int { return strings.Compare(f.Key, k) })
	if !ok {
		return nil, false
	}
	return fs[i].Value, true
}

// Set sets key to value in fields sorted by Sort, keeping them sorted.
func Set(fs []Field, key string, value []byte) []Field {
	i, ok := slices.BinarySearchFunc(fs, key, func(f Field, k string) int { return strings.Compare(f.Key, k) })
	if ok {
		fs[i].Value = value
		return fs
	}
	return slices.Insert(fs, i, Field{Key: key, Value: value})
}

// Writer appends canonical JSON to a buffer.
type Writer struct {
	Buf    []byte
	Indent string // "" for compact output
}

// Newline starts a new line at depth (nothing when compact).
func (w *Writer) Newline(depth int) {
	if w.Indent == "" {
		return
	}
	w.Buf = append(w.Buf, '\n')
	for range depth {
		w.Buf = append(w.Buf, w.Indent...)
	}
}

// Key writes `"key":` (with a space after the colon when indenting).
func (w *Writer) Key(k string) {
	w.Buf = AppendString(w.Buf, k)
	if w.Indent == "" {
		w.Buf = append(w.Buf, ':')
	} else {
		w.Buf = append(w.Buf, ':', ' ')
	}
}

// Value writes the raw JSON value v canonically at depth: objects with
// sorted keys, arrays element by element, scalars as they are.
func (w *Writer) Value(v []byte, depth int) error {
	i := skipWS(v, 0)
	if i >= len(v) {
		return synErr(i, "empty value")
	}
	switch v[i] {
	case '{':
		fs, err := Object(v)
		if err != nil {
			return err
		}
		return w.Fields(Sort(fs), depth)
	case '[':
		return w.array(v[i:], depth)
	default:
		end, err := scanValue(v, i, 0)
		if err != nil {
			return err
		}
		if j := skipWS(v, end); j != len(v) {
			return synErr(j, "data after the value")
		}
		w.Buf = append(w.Buf, v[i:end]...)
		return nil
	}
}

// Fields writes an object of sorted fields at depth.
func (w *Writer) Fields(fs []Field, depth int) error {
	if len(fs) == 0 {
		w.Buf = append(w.Buf, '{', '}')
		return nil
	}
	w.Buf = append(w.Buf, '{')
	for i, f := range fs {
		if i > 0 {
			w.Buf = append(w.Buf, ',')
		}
		w.Newline(depth + 1)
		w.Key(f.Key)
		if err := w.Value(f.Value, depth+1); err != nil {
			return fmt.Errorf("%q: %w", f.Key, err)
		}
	}
	w.Newline(depth)
	w.Buf = append(w.Buf, '}')
	return nil
}

func (w *Writer) array(v []byte, depth int) error {
	i := skipWS(v, 1)
	if i < len(v) && v[i] == ']' {
		w.Buf = append(w.Buf, '[', ']')
		return nil
	}
	w.Buf = append(w.Buf, '[')
	for n := 0; ; n++ {
		end, err := scanValue(v, i, 0)
		if err != nil {
			return err
		}
		if n > 0 {
			w.Buf = append(w.Buf, ',')
		}
		w.Newline(depth + 1)
		if err := w.Value(v[i:end], depth+1); err != nil {
			return err
		}
		i = skipWS(v, end)
		if i < len(v) && v[i] == ']' {
			break
		}
		i = skipWS(v, i+1)
	}
	w.Newline(depth)
	w.Buf = append(w.Buf, ']')
	return nil
}

// Canonical returns v re-written canonically with the given indent.
func Canonical(v []byte, indent string) ([]byte, error) {
	w := Writer{Indent: indent}
	if err := w.Value(v, 0); err != nil {
		return nil, err
	}
	return w.Buf, nil
}

// Count returns the number of members of the JSON object v, scanning
// without allocating.
func Count(v []byte) (int, error) {
	i := skipWS(v, 0)
	if i >= len(v) || v[i] != '{' {
		return 0, synErr(i, "want an object")
	}
	i = skipWS(v, i+1)
	if i < len(v) && v[i] == '}' {
		return 0, nil
	}
	n := 0
	for {
		end, err := scanString(v, i)
		if err != nil {
			return 0, err
		}
		i = skipWS(v, end)
		if i >= len(v) || v[i] != ':' {
			return 0, synErr(i, "want ':'")
		}
		if i, err = scanValue(v, skipWS(v, i+1), 0); err != nil {
			return 0, err
		}
		n++
		i = skipWS(v, i)
		if i >= len(v) {
			return 0, synErr(i, "unterminated object")
		}
		if v[i] == '}' {
			return n, nil
		}
		if v[i] != ',' {
			return 0, synErr(i, "want ',' or '}'")
		}
		i = skipWS(v, i+1)
	}
}

// FieldsWith writes an object of sorted fields at depth with one more member,
// key, in its sorted place; value writes that member's value. Structured
// documents use it to put a nested collection ("versions", "items") among
// fields they keep raw.
func (w *Writer) FieldsWith(fs []Field, key string, value func() error, depth int) error {
	w.Buf = append(w.Buf, '{')
	n := 0
	member := func(k string) {
		if n > 0 {
			w.Buf = append(w.Buf, ',')
		}
		n++
		w.Newline(depth + 1)
		w.Key(k)
	}
	done := false
	special := func() error {
		member(key)
		done = true
		return value()
	}
	for _, f := range fs {
		if !done && f.Key > key {
			if err := special(); err != nil {
				return err
			}
		}
		member(f.Key)
		if err := w.Value(f.Value, depth+1); err != nil {
			return fmt.Errorf("%q: %w", f.Key, err)
		}
	}
	if !done {
		if err := special(); err != nil {
			return err
		}
	}
	w.Newline(depth)
	w.Buf = append(w.Buf, '}')
	return nil
}

// Members reads the object that begins at b[i] (after optional white
// space) in one pass without building a field list. It calls fn for each
// member in document order with the key (decoded) and the offset of its
// value; fn returns the offset just past the value when it read the value
// itself (with Members or Skip), or -1 to have Members skip it. Members
// returns the offset just past the object.
func Members(b []byte, i int, fn func(key []byte, v int) (int, error)) (int, error) {
	i = skipWS(b, i)
	if i >= len(b) || b[i] != '{' {
		return i, synErr(i, "want an object")
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, synErr(i, "want a string key")
		}
		kend, err := scanString(b, i)
		if err != nil {
			return i, err
		}
		key := b[i+1 : kend-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			k, err := unquote(b[i:kend], i)
			if err != nil {
				return i, err
			}
			key = []byte(k)
		}
		i = skipWS(b, kend)
		if i >= len(b) || b[i] != ':' {
			return i, synErr(i, "want ':' after key %q", key)
		}
		i = skipWS(b, i+1)
		end, err := fn(key, i)
		if err != nil {
			return i, err
		}
		var done bool
		if i, done, err = nextMember(b, i, end, '}'); err != nil || done {
			return i, err
		}
	}
}

// nextMember moves past the member or element that begins at b[i] (and
// ends at end, or is skipped when end is negative) and the ',' after it:
// it returns the offset of the next one, or, with done, the offset just
// past the closing byte.
func nextMember(b []byte, i, end int, closing byte) (next int, done bool, err error) {
	if end < 0 {
		if end, err = scanValue(b, i, 0); err != nil {
			return i, false, err
		}
	}
	i = skipWS(b, end)
	switch {
	case i >= len(b) && closing == ']':
		return i, false, synErr(i, "unterminated array")
	case i >= len(b):
		return i, false, synErr(i, "unterminated object")
	case b[i] == closing:
		return i + 1, true, nil
	case b[i] != ',':
		return i, false, synErr(i, "want ',' or '%c'", closing)
	}
	return skipWS(b, i+1), false, nil
}

// Skip returns the offset just past the JSON value that begins at b[i].
func Skip(b []byte, i int) (int, error) { return scanValue(b, i, 0) }

// Elements reads the array that begins at b[i] (after optional white
// space) in one pass, as Members reads an object: fn gets the offset of
// each element and returns the offset just past it, or -1 to have
// Elements skip it. Elements returns the offset just past the array.
func Elements(b []byte, i int, fn func(v int) (int, error)) (int, error) {
	i = skipWS(b, i)
	if i >= len(b) || b[i] != '[' {
		return i, synErr(i, "want an array")
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		end, err := fn(i)
		if err != nil {
			return i, err
		}
		var done bool
		if i, done, err = nextMember(b, i, end, ']'); err != nil || done {
			return i, err
		}
	}
}

// StringAt reads the JSON string that begins at b[i] and returns the
// offset just past it. When it has no escapes, the string is s[i+1:end-1],
// s being b as a string (the caller's one copy of b): no allocation.
func StringAt(b []byte, s string, i int) (string, int, error) {
	if i >= len(b) || b[i] != '"' {
		return "", i, synErr(i, "want a string")
	}
	end, err := scanString(b, i)
	if err != nil {
		return "", i, err
	}
	if bytes.IndexByte(b[i+1:end-1], '\\') < 0 {
		return s[i+1 : end-1], end, nil
	}
	v, err := unquote(b[i:end], i)
	return v, end, err
}
