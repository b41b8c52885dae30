// Command hello is the floor of bench/startup.sh: a Go program that
// prints one line, what starting any Go binary costs on the machine.
package main

import "fmt"

func main() { fmt.Println("hello") }
