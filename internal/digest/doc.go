// Package digest names content by its SHA-256: the key of every blob in
// the pool and of every record that refers to one.
//
// A Digest is the string "sha256:" followed by 64 lower-case hex digits,
// the form the pool, the records, the lease and snapshot documents and the
// S3 keys have always used. The package is the handful of operations
// mephstore needs on it (make one from bytes or from an encoded sum, parse
// and check one, take it apart) and nothing at start-up: no tables, no
// regular expressions, no registry of algorithms.
package digest
