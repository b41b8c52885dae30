// Package publish renders a stream's snapshot as a signed simplestreams tree
// and switches it atomically for readers.
//
// A publish root holds one shared data pool and one tree per stream:
//
//	PUBLISH_ROOT/
//	├── data/sha256/ab/ab12…ef          every item's bytes once, hard-linked from the
//	│                                   store's pool (copied across file systems)
//	└── daily/                          the stream's simplestreams root (a MAAS boot source URL)
//	    ├── data -> ../data             so item paths (data/sha256/…) stay inside the root
//	    └── streams/v1/
//	        ├── index.json              replaced last, by rename (and .sjson, .json.gpg)
//	        ├── com.ubuntu.maas:daily:v3:download.3f9c21ab0e4d5f67.json
//	        ├── com.ubuntu.maas:daily:v3:download.3f9c21ab0e4d5f67.sjson
//	        └── com.ubuntu.maas:daily:v3:download.3f9c21ab0e4d5f67.json.gpg
//
// Readers never see a mixed state: data files are linked before any products
// file names them, a products file is named by its content and never
// rewritten, and the index, the only file whose name stays, is replaced last
// by an atomic rename. Old products files stay for readers that read the old
// index until gc removes them. Rendering is deterministic (the snapshot's
// time is the "updated" of every file), so publishing an unchanged head
// rewrites nothing.
package publish
