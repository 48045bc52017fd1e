package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/dais-dev/dais/server/admin"
	"github.com/dais-dev/dais/server/config"
)

func init() {
	register("purge", &command{
		summary: "remove all of dais's data (the server must be stopped)",
		run:     runPurge,
	})
}

const purgeUsage = `Usage: dais purge [--config FILE] [--yes] [--include-config]

Removes everything dais stored, as an uninstall does:
  - Server.DataDir: bundles, render output, environments, logs
    (a directory that is a mount point, such as the container's /data, is
    emptied, not removed)
  - SQLite: SQLite.Dir, the database with its automatic backups;
    PostgreSQL: dais's tables, dropped (the database itself stays)
  - with --include-config: the configuration file and its migration file

Refuses while a server uses the data (see dais restore --help for how that
is checked). Lists what it will remove and asks unless --yes. There is no
undo: take a backup first (dais backup --out FILE).

Flags:
`

func runPurge(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dais purge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", config.DefaultPath, "the configuration `FILE`")
	yes := fs.Bool("yes", false, "remove without asking")
	incl := fs.Bool("include-config", false, "remove the configuration file (and its migration file) too")
	fs.Usage = func() { fmt.Fprint(fs.Output(), purgeUsage); fs.PrintDefaults() }
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	cfg, err := loadConfig(*path, stderr)
	if err != nil {
		return err
	}
	o := admin.PurgeOptions{Config: cfg, ConfigPath: *path, IncludeConfig: *incl, Logger: slog.New(slog.NewTextHandler(stderr, nil))}
	if !*yes {
		o.Confirm = func(what string) bool {
			return confirm(stdin, stderr, "dais purge removes, with no undo:\n  "+strings.ReplaceAll(what, "\n", "\n  "))
		}
	}
	err = admin.Purge(ctx, o)
	switch {
	case errors.Is(err, admin.ErrNotConfirmed):
		return &exitError{code: 1, err: errors.New("not confirmed, nothing removed (pass --yes to purge without asking)")}
	case errors.Is(err, admin.ErrServerRunning):
		return &exitError{code: 3, err: err}
	case err != nil:
		return err
	}
	fmt.Fprintf(stdout, "purged: %s\n", strings.Join(admin.PurgePlan(o), "; "))
	return nil
}
