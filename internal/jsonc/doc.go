// Package jsonc reads JSON objects without decoding their values and writes
// JSON canonically: keys sorted, either compact (how mephstore stores
// snapshots) or indented one space per level with ", " and ": " separators
// (how simplestreams writes its files, so that no line starts with "-").
//
// Values are kept as the raw bytes of the input, so fields mephstore does
// not know survive untouched, and parsing a products file costs one pass
// with no allocation per value: a Field's Value is a slice of the input.
package jsonc
