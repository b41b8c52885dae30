// Package gc is mephstore's garbage collector: mark from every root, sweep
// with an age gate.
//
// Roots are every stream head, the newest KeepHistory entries of every
// stream's history (so rollback works), pending builds, and unexpired
// leases: the references a lease holds, and, for the lease of a snapshot
// operation, every history entry from the position each stream had when
// the lease was taken (the operation may build on any of them). Marking
// reads each root snapshot, its product blobs and their items' sha256.
//
// Sweeping never deletes a blob the first time it is found unreachable: it
// gets an orphan record holding that time, and a later run deletes the blobs
// orphaned for longer than Older. A blob that is reachable again loses its
// record. Every delete happens in a writer session that first collects the
// roots again and marks whatever is new (a head moved, a lease added
// references), so the check and the delete are atomic with respect to every
// other writer. Deletes are crash-safe (cas.Session.Delete).
//
// Published trees are swept the same way, under the publish root's lock:
// products files the live index does not name, staging directories left by
// a killed publish, and pool files that neither a live index nor a retained
// snapshot refers to get orphan records and are reaped with the same age
// gate, so a published tree is always valid and a reader holding an old
// index keeps finding its files for at least Older.
//
// Orphan records live in the store's database:
//
//	'o' 'b' + sha256[32]                    first found unreachable (varint unix ns)
//	'o' 'p' + publish root + 0 + path       the same, for a file of a publish root
//
// Pending builds (cas.PendingBuilds) hold a reference list.
//
// The meph2-util commands find-orphans and reap-orphans (orphanfile.go) do
// the same for trees that are not in a store, with meph2-util's orphan file.
package gc
