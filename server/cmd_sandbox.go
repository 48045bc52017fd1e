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
