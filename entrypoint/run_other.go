//go:build !linux

package main

import (
	"fmt"
	"io"
)

func run(args, environ []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "dais-init: Linux only (it is the PID 1 of the dais container)")
	return 1
}
