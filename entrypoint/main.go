// Command dais-init is PID 1 of the dais container: it runs the preflight
// checks, renders the configuration, and supervises one child.
package main

import (
	"fmt"
	"os"
)

// version is stamped by the Makefile.
var version = "dev"

func main() {
	fmt.Fprintln(os.Stderr, "dais-init: not implemented yet")
	os.Exit(1)
}
