// Package snapshot will hold the simplestreams catalog model, immutable
// content-addressed snapshots, and streams with history (insert, promote,
// clean-md, remove, rollback, diff, query). Not built yet: see issue 3.
package snapshot
