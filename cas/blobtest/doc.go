// Package blobtest is the conformance suite of cas.BlobStore: every
// implementation of the pool's blob store (the local pool today) runs Run
// in its tests.
package blobtest
