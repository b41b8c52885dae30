// Package publish renders a stream's snapshot as a signed simplestreams tree
// and switches it atomically for readers.
//
// Everything is written through a Target (target.go: its contract), whose
// local implementation, DirTarget, keeps a publish root on this machine:
//
//	PUBLISH_ROOT/
//	├── .publish.lock                   publishes hold it shared, gc exclusive
//	├── data/sha256/ab/ab12…ef          every item's bytes once, hard-linked from the
//	│                                   store's pool (copied across file systems)
//	└── daily/                          the stream's simplestreams root (a MAAS boot source URL)
//	    ├── .publish.lock               one publish of the stream at a time
//	    ├── data -> ../data             so item paths (data/sha256/…) stay inside the root
//	    └── streams/
//	        ├── .v1.3f9c…/              work and staging directories of a publish
//	        └── v1/                     the index set, switched as a whole (RENAME_EXCHANGE)
//	            ├── index.json          (and index.sjson, index.json.gpg)
//	            ├── com.ubuntu.maas:daily:v3:download.3f9c21ab0e4d5f67.json
//	            ├── com.ubuntu.maas:daily:v3:download.3f9c21ab0e4d5f67.sjson
//	            └── com.ubuntu.maas:daily:v3:download.3f9c21ab0e4d5f67.json.gpg
//
// Layout names these places (relative to the root) for publish and gc
// alike; nothing else spells them out.
//
// Invariants:
//   - Readers never see a mixed state: data files are put before any
//     products file names them; products files are named by their content
//     and never rewritten (a new state is a new name); everything is made
//     durable (Target.Sync) before the index set is switched, in one step
//     where the target can (the directory target: a staging directory
//     holding links to every live products file and the new index files,
//     exchanged with streams/v1). A crash leaves the old index set or the
//     new one; files a killed publish wrote that no index names are swept
//     by gc.
//   - Every file named after metadata goes through within (one plain
//     component) and every target path through the target's own check: a
//     snapshot cannot make a publish write outside its root.
//   - Rendering is deterministic (the snapshot's time is the "updated" of
//     every file), so publishing an unchanged head writes nothing.
//   - A publish holds a lease on its snapshot, taken in the same writer
//     session that creates it, so gc cannot reap what is being linked.
//   - The store records a publish (its snapshot and the sha256 of the
//     index.json written) while the index is switched, once the data is
//     durable. A record whose index the root lacks (a crash between the
//     two, a failed switch) is published again, not taken for unchanged.
package publish
