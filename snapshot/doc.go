// Package snapshot is the repository of streams: immutable snapshots of
// simplestreams catalogs, kept as blobs in the store, and streams with
// history, kept as records. The catalog model itself (parsing, canonical
// JSON, names, filters, versions) is package catalog, which knows nothing
// of storage.
//
// # Model (package catalog)
//
// A products file (a catalog) is its top-level fields (the header) and its
// products; a product is its fields and its versions; a version its fields
// and its items. Every level keeps its fields as raw JSON sorted by key
// (internal/jsonc), so fields mephstore does not know are kept and written
// back, and a products file is parsed in one pass without decoding values.
// Items inherit the fields of their version, product and catalog
// (simplestreams' flattening): Scope looks a key up through the levels for
// filters and queries without building merged maps.
//
// # Snapshots
//
// Every product is stored in the pool as its own blob: its canonical compact
// JSON. A snapshot is a small JSON document, also a blob, naming for each
// catalog its header and, for each product, the product blob's digest (with
// version and item counts), plus the parent snapshot, time, operation and a
// one-line summary. An operation that changes a few products writes only
// those products; unchanged ones are shared with the parent, and memory is
// bounded by the largest product, not the stream.
//
// # Streams
//
// A stream is a record in the store's database (name, label, head) and an
// append-only history of entries (sequence number, snapshot, time,
// operation, summary). Every change (insert, promote, clean-md, remove,
// rollback) computes its new snapshot first, then, in one short writer
// session, checks that the head is still the one it started from, commits
// the new blobs and appends the history entry that moves the head, in one
// database transaction. A crash leaves the head on the old snapshot or the
// new one; blobs written for a change that never committed are left to gc.
package snapshot
