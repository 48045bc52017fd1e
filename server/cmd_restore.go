package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/dais-dev/dais/server/admin"
	"github.com/dais-dev/dais/server/config"
)

func init() {
	register("restore", &command{
		summary: "restore a backup written by dais backup (the server must be stopped)",
		run:     runRestore,
	})
}

const restoreUsage = `Usage: dais restore --from FILE [--config FILE] [--yes]

Replaces the database and the content of Server.DataDir with the backup in
FILE, written by dais backup. In order:

  1. reads the whole backup and checks every file's sha256 against its
     manifest; a damaged backup is refused before anything is touched
  2. refuses a backup whose schema is newer than this dais (restore it with
     the dais version named in the message), or of another Database.Provider
  3. refuses while a server uses the data: for SQLite the data directory
     lock that dais serve holds; for PostgreSQL any other session connected
     to the database. Stop the server first (systemctl stop dais; in Docker,
     docker stop the server and run: docker run --rm -v VOLUME:/data IMAGE
     dais restore --from /data/FILE)
  4. asks for confirmation when there is data to replace, unless --yes
  5. restores the database (SQLite: the file, integrity-checked; PostgreSQL:
     dais's tables dropped, then the dump loaded with psql in one
     transaction; needs the postgresql-client package), then the files

A backup from an older dais is migrated when the server next starts.

Flags:
`

func runRestore(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dais restore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "the backup `FILE` to restore")
	path := fs.String("config", config.DefaultPath, "the configuration `FILE`")
	yes := fs.Bool("yes", false, "replace existing data without asking")
	fs.Usage = func() { fmt.Fprint(fs.Output(), restoreUsage); fs.PrintDefaults() }
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if *from == "" {
		return &exitError{code: 2, err: errors.New("--from FILE is required (see dais restore --help)")}
	}
	cfg, err := loadConfig(*path, stderr)
	if err != nil {
		return err
	}
	o := admin.RestoreOptions{Config: cfg, From: *from, Logger: slog.New(slog.NewTextHandler(stderr, nil))}
	if !*yes {
		o.Confirm = func(what string) bool {
			return confirm(stdin, stderr, "dais restore replaces "+what+" with the backup "+*from+".")
		}
	}
	m, err := admin.Restore(ctx, o)
	switch {
	case errors.Is(err, admin.ErrNotConfirmed):
		return &exitError{code: 1, err: errors.New("not confirmed, nothing changed (pass --yes to restore without asking)")}
	case errors.Is(err, admin.ErrServerRunning):
		return &exitError{code: 3, err: err}
	case err != nil:
		return err
	}
	fmt.Fprintf(stdout, "restored %s: %s database at schema version %d, written by dais %s on %s\n",
		*from, m.Provider, m.SchemaVersion, m.DaisVersion, m.CreatedAt.Format("2006-01-02 15:04:05 UTC"))
	return nil
}
