package sandbox

import "io"

// Main is `dais sandbox-exec`: it reads the spec from fd 3, builds the
// sandbox and execs the content. It returns only on failure, with ExitSetup.
func Main(stderr io.Writer) int {
	io.WriteString(stderr, "sandbox: not implemented yet\n")
	return ExitSetup
}
