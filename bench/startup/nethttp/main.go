// Command nethttp is a Go program that links net/http and does nothing
// with it (bench/startup.sh): what mephstore's HTTP client and server
// cost at start-up before any of its own code runs.
package main

import (
	"fmt"
	_ "net/http"
)

func main() { fmt.Println("hello") }
