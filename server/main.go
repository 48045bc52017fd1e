// Command dais is the dais content server and its admin subcommands.
// main only wires: each subcommand lives in its own cmd_*.go file and
// registers itself in the commands table.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// version is stamped by the Makefile: -ldflags "-X main.version=...".
var version = "dev"

// command is one `dais <name>` subcommand.
type command struct {
	summary string
	// run gets the arguments after the subcommand name. It returns an
	// exitError to choose the exit code; any other error exits 1.
	run func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error
	// hidden commands (sandbox-exec) are left out of the usage text.
	hidden bool
}

var commands = map[string]*command{}

func register(name string, c *command) {
	if _, dup := commands[name]; dup {
		panic("dais: command registered twice: " + name)
	}
	commands[name] = c
}

// exitError carries an exit code out of a subcommand.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usage(w io.Writer) {
	fmt.Fprintf(w, "dais %s: a self-hosted publishing server for R and Python content\n\n", version)
	fmt.Fprintf(w, "Usage: dais <command> [flags]\n\nCommands:\n")
	names := make([]string, 0, len(commands))
	for n, c := range commands {
		if !c.hidden {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-16s %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, "\nRun 'dais <command> --help' for a command's flags. 'dais --version' prints the version.\n")
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		usage(stdout)
		return 0
	case "-v", "--version", "version":
		fmt.Fprintf(stdout, "dais %s\n", version)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "dais: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	// Subcommands that need finer signal handling (serve: HUP) install their own.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := c.run(ctx, args[1:], stdin, stdout, stderr)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "dais %s: %v\n", args[0], ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "dais %s: %v\n", args[0], err)
	return 1
}
