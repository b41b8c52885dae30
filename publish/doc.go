// Package publish will render snapshots as signed simplestreams trees,
// switch them atomically for readers, and serve them. Not built yet: see
// issue 4.
package publish
