// Command mephstore builds, stores and publishes MAAS boot images.
//
// This package is the command line only: flags, output formats and
// progress. Every command resolves the store, calls into cas, snapshot,
// build, publish or gc, and prints the result.
package main
