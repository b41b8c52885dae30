// Package progress draws one-line progress meters for long operations
// (ingest, fsck --deep, downloads, builds) on a terminal. A meter that is not
// enabled does nothing, so callers never branch on whether output is a
// terminal: the CLI decides once and passes a Meter factory down.
package progress
