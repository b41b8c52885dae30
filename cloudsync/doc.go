// Package cloudsync is `mephstore sync`: it keeps a stream (daily) up to
// date with a signed cloud-images download stream, building only what is
// out of date.
//
// A sync is a plan, then its execution. The plan (Plan) is a value: for
// every upstream product of a release of the build config and an arch
// asked for, the newest --max versions that match the filters, minus the
// ones the stream (its head, and its pending builds) has already; plus the
// --rebuild versions; each with the reason it is built (new, rebuild,
// forced) or why it cannot be (invalid). Planning reads the source and the
// store and changes nothing: `sync --dry-run` prints it.
//
// Execution builds each planned image at most Jobs at a time: the upstream
// item is put in the pool (checked against its size and sha256 as it
// streams; bytes the pool holds, from an earlier run, are not fetched
// again) and built by build.Build into a pending build of the stream. A
// failed image is listed and does not stop the others. The store's writer
// lock is taken only by the short sessions of ingest, build and commit.
// At the end the stream's pending builds are committed as one snapshot
// (build.CommitPending) and, when asked, the stream is published.
//
// Invariants: a plan entry's target version is a valid serial; a
// version the stream has is never rebuilt unless asked (--rebuild,
// --target force); a run killed at any moment leaves the store
// consistent, and the next run builds only what is still missing (pending
// builds count as built) and reuses the sources it finds in the pool.
package cloudsync
