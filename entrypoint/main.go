// Command dais-init is PID 1 of the dais container: it runs the preflight
// checks, renders the configuration, and supervises one child. It also runs
// any other command the way tini does. See docs/init.md.
package main

import (
	"os"
)

// version is stamped by the Makefile.
var version = "dev"

func main() {
	os.Exit(run(os.Args, os.Environ(), os.Stdout, os.Stderr))
}
