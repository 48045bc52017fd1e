package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/dais-dev/dais/server/admin"
	"github.com/dais-dev/dais/server/config"
)

// Upgrade step of `dais serve`: before the server reads its configuration,
// settings a newer dais renamed are written under their new names to
// <config>-migration.gcfg (admin.MigrateConfig), which config.Load reads
// after the main file, and what the admin should move is logged at every
// start until it is done.
//
// It wraps the serve command registered in cmd_serve.go (this file's init
// runs after that one's: Go initializes a package's files in file-name
// order), so the step lives with the other server-management code. It
// belongs in serve.Run before config.Load; see docs/admin.md.
func init() {
	serve, ok := commands["serve"]
	if !ok {
		panic("dais: cmd_upgrade.go needs the serve command registered first")
	}
	next := serve.run
	serve.run = func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
		migrateConfigAtStart(configFlag(args), stderr)
		return next(ctx, args, stdin, stdout, stderr)
	}
}

// migrateConfigAtStart never stops the start: on a problem the server goes
// on to report the configuration as it is.
func migrateConfigAtStart(path string, stderr io.Writer) {
	if path == "" {
		return
	}
	if _, err := os.Stat(path); err != nil {
		return // serve reports a missing file itself
	}
	m, err := admin.MigrateConfig(path, version)
	if err != nil {
		// A file gcfg cannot read: serve reports it with file:line next.
		return
	}
	m.Log(slog.New(slog.NewTextHandler(stderr, nil)).With("component", "upgrade"), path)
}

// configFlag finds --config's value in serve's arguments (its default when absent).
func configFlag(args []string) string {
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			return config.DefaultPath
		case (a == "--config" || a == "-config") && i+1 < len(args):
			return args[i+1]
		case strings.HasPrefix(a, "--config=") || strings.HasPrefix(a, "-config="):
			_, v, _ := strings.Cut(a, "=")
			return v
		case a == "-h" || a == "--help" || a == "-help":
			return ""
		}
	}
	return config.DefaultPath
}
