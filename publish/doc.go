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
//	    └── streams/
//	        ├── .publish.lock           one publish of the stream at a time
//	        └── v1/                     switched as a whole (renameat2 RENAME_EXCHANGE)
//	        ├── index.json              (and index.sjson, index.json.gpg)
//	        ├── com.ubuntu.maas:daily:v3:download.3f9c21ab0e4d5f67.json
//	        ├── com.ubuntu.maas:daily:v3:download.3f9c21ab0e4d5f67.sjson
//	        └── com.ubuntu.maas:daily:v3:download.3f9c21ab0e4d5f67.json.gpg
//
// Readers never see a mixed state: data files are linked before any products
// file names them, and a products file is named by its content and never
// rewritten. The new streams/v1 is built beside the live one, in a staging
// directory holding hard links to the live products files (readers of the
// old index may still fetch them) plus the new products and index files; one
// renameat2 RENAME_EXCHANGE then swaps the two directories, so index.json,
// index.sjson and index.json.gpg change together, and a crash leaves the old
// state or the new one. Old products files stay until gc removes them. Rendering is deterministic (the snapshot's
// time is the "updated" of every file), so publishing an unchanged head
// rewrites nothing.
package publish
