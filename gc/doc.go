// Package gc will mark from every root and sweep the pool and the published
// trees with an age gate, orphan records and leases. Not built yet: see
// issue 5.
package gc
