// Package catalog is the simplestreams catalog model, with no storage at
// all: products, versions and items parsed from products:1.0 documents
// with their fields kept in order and unknown fields kept (round-trips
// are byte-exact after canonical encoding), the name and path rules every
// name from metadata must pass, version order, filters and query formats.
//
// Invariants:
//   - Parsing never trusts its input: every name from metadata passes
//     CheckName or CheckItemPath before anything is named after it, and
//     every value is bounded (MaxNameLen, MaxPathLen, MaxValueLen).
//   - Encoding is canonical: the same model always encodes to the same
//     bytes (keys sorted, fixed indentation), so content addresses of
//     products and published files are stable.
//   - CompareVersions is a total order on version names (serials sort by
//     number, then text).
//
// The repository of streams and snapshots that stores these documents is
// package snapshot.
package catalog
