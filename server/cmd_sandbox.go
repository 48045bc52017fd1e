package main

import (
	"context"
	"io"

	"github.com/dais-dev/dais/server/sandbox"
)

func init() {
	register("sandbox-exec", &command{
		summary: "internal: build a content sandbox from the spec on fd 3 and exec the content",
		hidden:  true,
		run: func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
			if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
				io.WriteString(stdout, sandboxExecHelp)
				return nil
			}
			// Returns only when the sandbox could not be built (or, with a PID
			// namespace, when the content exited): the code says which.
			return &exitError{code: sandbox.Main(stderr)}
		},
	})
	register("sandbox", &command{
		summary: "show the content sandbox (spec) and test it (selftest)",
		run: func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
			if code := sandbox.CLI(ctx, args, stdout, stderr); code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	})
}

const sandboxExecHelp = `Usage: dais sandbox-exec   (internal)

Started by dais itself for every content process, never by hand: it reads an
OCI runtime spec on file descriptor 3, builds the sandbox (mount, user and PID
namespaces, masks, private /tmp, read-only code and runtime directories, the
RunAs user, no capabilities, no_new_privs) and execs the content. When a step
fails it prints "dais sandbox: <step>: <reason>" and exits 125.

To see what a content process would get: dais sandbox spec --help
To check the sandbox on this host or container: dais sandbox selftest
`
