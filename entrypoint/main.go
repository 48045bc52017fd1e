// Command dais-init is PID 1 of the dais container: it runs the preflight
// checks, renders the configuration, and supervises one child. It also runs
// any other command the way tini does. See docs/init.md.
package main

import (
	"os"
)

// version is stamped by the Makefile.
var version = "dev"

// godebugDefault is the GODEBUG default the Makefile links into the runtime
// (INIT_LDFLAGS): asyncpreemptoff=1, so that every SIGURG dais-init gets
// comes from outside and is forwarded. A build without it does not forward
// URG (see urgForwarded).
var godebugDefault string

func main() {
	os.Exit(run(os.Args, os.Environ(), os.Stdout, ownStderr()))
}
