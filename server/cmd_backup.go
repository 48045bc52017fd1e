package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/dais-dev/dais/server/admin"
	"github.com/dais-dev/dais/server/config"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

func init() {
	register("backup", &command{
		summary: "write a consistent backup (database + data directory) while the server runs",
		run:     runBackup,
	})
}

const backupUsage = `Usage: dais backup --out FILE [--config FILE]

Writes a consistent backup of the database and the data directory to FILE
(a tar.gz, mode 0600: it holds password hashes and content secrets), while
the server keeps running:

  SQLite      an online snapshot of the database (VACUUM INTO)
  PostgreSQL  pg_dump of dais's tables (needs the postgresql-client package,
              the server's major version or newer)
  files       Server.DataDir: bundles, render output, environment manifests
              (the SQLite directory and lock files are left out)
  manifest    manifest.json: dais version, schema version, provider, and the
              sha256 of every file, checked by dais restore

A progress bar is drawn when stderr is a terminal. Write backups outside
Server.DataDir (later backups would include them). In the container:
  docker exec <container> dais backup --out /tmp/dais.tar.gz
  docker cp <container>:/tmp/dais.tar.gz dais-$(date +%%F).tar.gz

Flags:
`

func runBackup(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dais backup", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "the backup `FILE` to write (must not exist)")
	path := fs.String("config", config.DefaultPath, "the configuration `FILE`")
	fs.Usage = func() { fmt.Fprintf(fs.Output(), backupUsage); fs.PrintDefaults() }
	if err := parseFlags(fs, args, stdout); err != nil {
		return err
	}
	if *out == "" {
		return &exitError{code: 2, err: errors.New("--out FILE is required (see dais backup --help)")}
	}
	cfg, err := loadConfig(*path, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	var prog admin.Progress
	if isTerminal(stderr) {
		prog = &bar{w: stderr}
	}
	m, err := admin.Backup(ctx, admin.BackupOptions{Config: cfg, Out: *out, Version: version, Logger: log, Progress: prog})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backup written: %s (%s database, schema version %d, %d entries)\n", *out, m.Provider, m.SchemaVersion, len(m.Files))
	return nil
}

// parseFlags parses args; --help prints the usage to stdout and ends the
// command with status 0; a stray argument is a usage error.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fs.SetOutput(stdout)
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &exitError{code: 0}
		}
		return &exitError{code: 2}
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, err: fmt.Errorf("unexpected argument %q (see %s --help)", fs.Arg(0), fs.Name())}
	}
	return nil
}

// loadConfig loads the configuration, printing its warnings.
func loadConfig(path string, stderr io.Writer) (*config.Config, error) {
	l, err := config.Load(path, os.Environ())
	if err != nil {
		return nil, &exitError{code: 78, err: fmt.Errorf("%w (check it with: dais config check --config %s)", err, path)}
	}
	for _, w := range l.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	return l.Config, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// confirm asks question on stderr and reads y/yes from stdin.
func confirm(stdin io.Reader, stderr io.Writer, question string) bool {
	fmt.Fprintf(stderr, "%s\nType yes to go on: ", question)
	line, _ := bufio.NewReader(stdin).ReadString('\n')
	ans := strings.ToLower(strings.TrimSpace(line))
	return ans == "y" || ans == "yes"
}

// bar is a progress bar on a terminal.
type bar struct {
	w io.Writer
	p *progressbar.ProgressBar
}

func (b *bar) Start(total int64) {
	b.p = progressbar.NewOptions64(total, progressbar.OptionSetWriter(b.w), progressbar.OptionShowBytes(true),
		progressbar.OptionSetDescription("backup"), progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish())
}

func (b *bar) Write(p []byte) (int, error) { return b.p.Write(p) }
func (b *bar) Finish()                     { _ = b.p.Finish() }
