// Package targettest is the conformance suite of publish.Target: every
// implementation of a publish target (the directory target today) runs Run
// in its tests. Each test gets a fresh, empty target and a blob store to
// publish data from.
package targettest
