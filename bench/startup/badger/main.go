// Command badger is a Go program that links badger, mephstore's
// database, and does nothing with it (bench/startup.sh): what its
// package initialisers and its dependencies' cost at start-up.
package main

import (
	"fmt"

	_ "github.com/dgraph-io/badger/v4"
)

func main() { fmt.Println("hello") }
