package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dais-dev/dais/server/config"
)

func init() {
	register("config", &command{
		summary: "check or print the configuration (file + migration file + CONNECT_* environment)",
		run:     runConfig,
	})
}

const configUsage = `Usage: dais config <check|print> [--config FILE]

  check   Read FILE, the migration file beside it (FILE without .gcfg, plus
          -migration.gcfg) and the CONNECT_<SECTION>_<KEY> environment
          variables, and validate. Exit 0 when the configuration is usable
          (warnings, e.g. unknown keys, are printed to stderr), 1 listing
          every problem with its file:line or environment variable.
  print   Print the effective configuration: every key with its value and
          where it came from (default, FILE:LINE, env VAR). Secrets
          (Postgres.Password, the password in Postgres.URL) are redacted.

Flags:
  --config FILE   configuration file (default ` + config.DefaultPath + `)

The configuration reference is docs/configuration.md.
`

func runConfig(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, configUsage)
		return &exitError{code: 2}
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, configUsage)
		return nil
	case "check", "print":
	default:
		fmt.Fprintf(stderr, "dais config: unknown subcommand %q\n\n%s", args[0], configUsage)
		return &exitError{code: 2}
	}
	fs := flag.NewFlagSet("dais config "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), configUsage) }
	path := fs.String("config", config.DefaultPath, "configuration `FILE`")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.Usage()
			return nil
		}
		return &exitError{code: 2}
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, err: fmt.Errorf("unexpected argument %q; use --config FILE", fs.Arg(0))}
	}

	l, err := config.Load(*path, os.Environ())
	var pe *config.ProblemsError
	if errors.As(err, &pe) {
		printWarnings(stderr, pe.Warnings)
		for _, p := range pe.Problems {
			fmt.Fprintf(stderr, "error: %s\n", p)
		}
		return &exitError{code: 1, err: fmt.Errorf("%d problem(s) in the configuration; fix them and run 'dais config check' again", len(pe.Problems))}
	}
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	printWarnings(stderr, l.Warnings)
	if args[0] == "print" {
		return l.Print(stdout)
	}
	files := "no file"
	if len(l.Files) > 0 {
		files = strings.Join(l.Files, " + ")
	}
	env := ""
	if len(l.ConsumedEnv) > 0 {
		env = " + env " + strings.Join(l.ConsumedEnv, ", ")
	}
	fmt.Fprintf(stdout, "configuration OK: %s%s (%d warning(s))\n", files, env, len(l.Warnings))
	return nil
}

func printWarnings(w io.Writer, warnings []string) {
	for _, x := range warnings {
		fmt.Fprintf(w, "warning: %s\n", x)
	}
}
