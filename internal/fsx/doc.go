// Package fsx holds the small file-system primitives that make mephstore
// crash safe: fsync of directories, atomic whole-file replacement
// (temp file, fsync, rename, fsync the directory) and helpers to create
// directories durably.
//
// Nothing in mephstore overwrites a file in place; every durable write goes
// through this package or through cas's ingest, which follows the same
// order.
package fsx
