package main

import (
	"context"
	"io"
	"os"

	"github.com/dais-dev/dais/entrypoint/setup"
)

func init() {
	register(setup.Command, &command{
		summary: "internal: dais-init's preflight checks and configuration rendering",
		hidden:  true,
		run: func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
			if code := setup.Main(args, os.Environ(), stdout, stderr, version); code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	})
}
