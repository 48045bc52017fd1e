// Command dais-sandbox-exec does what `dais sandbox-exec` does, in a
// program built from the sandbox package alone: dais runs it for every
// content process when it sits next to the dais executable, because it
// starts in about a quarter of the time dais takes to initialise (see
// sandbox.ExecPath). Like `dais sandbox-exec`, it is started by dais, never
// by hand.
package main

import (
	"fmt"
	"os"

	"github.com/dais-dev/dais/server/sandbox"
)

const help = `Usage: dais-sandbox-exec   (internal)

Started by dais for every content process, never by hand: it reads the
sandbox spec on file descriptor 3, builds the sandbox (mount, user and PID
namespaces, masks, private /tmp, read-only code and runtime directories,
the RunAs user, no capabilities, no_new_privs) and runs the content. It
does what ` + "`dais sandbox-exec`" + ` does and must come from the same build as
dais, in the same directory. ` + "`dais sandbox spec`" + ` prints what a sandbox
holds; ` + "`dais sandbox selftest`" + ` checks it.
`

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-h" || os.Args[1] == "--help") {
		fmt.Print(help)
		return
	}
	os.Exit(sandbox.Main(os.Stderr))
}
