// Package testtree builds simplestreams trees for tests with the shared
// make-test-stream tool (good, or broken on purpose), signed with a
// throwaway key made once per test binary.
package testtree
