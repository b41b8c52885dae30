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
// A run is a plan, then its execution. MakePlan changes nothing: it marks
// from the roots, runs the store's blob and orphan records through the pure
// sweeper (plan.go; tested with a small fixture language) and each publish
// root's listing through the pure planRoot, and returns a Plan: what is
// live, what becomes an orphan, what is reaped, which published files go,
// each with its reason (gc --dry-run prints it, --json as JSON). Executing
// it records and deletes only what still holds when each step is taken.
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
// Orphan records are two typed record stores (cas.Table) of kind
// cas.KindOrphan: blobOrphans (sha256 → first found unreachable) and, per
// publish root, rootOrphans (path → the same). Publish roots are read and
// swept through publish.Target alone.
//
// Pending builds (cas.PendingBuilds) hold a reference list.
//
// The meph2-util commands find-orphans and reap-orphans (orphanfile.go) do
// the same for trees that are not in a store, with meph2-util's orphan file.
package gc
