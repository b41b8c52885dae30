// Package recordtest is the conformance suite of cas.Records: every
// implementation of the store's record store (the embedded badger one of
// a writer session today) runs Run in its tests.
package recordtest
