//go:build !linux

package main

import (
	"fmt"
	"io"
	"os"
)

func run(args, environ []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "dais-init: Linux only (it is the PID 1 of the dais container)")
	return 1
}

func ownStderr() io.Writer { return os.Stderr }
