// Package testtree is a test helper: simplestreams trees from
// internal/streamgen (good, or broken on purpose), signed with throwaway
// keys made once per test binary.
package testtree
