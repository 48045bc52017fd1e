package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/serve"
)

func init() {
	register("serve", &command{
		summary: "run the dais server (HTTP, API, content)",
		run:     runServe,
	})
}

func runServe(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dais serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", config.DefaultPath, "the gcfg configuration `file` (CONNECT_<SECTION>_<KEY> variables override it)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `Usage: dais serve [--config FILE]

Runs the server on HTTP.Listen (default :3939) until TERM or INT, then stops
gracefully within Server.StopTimeout: stops accepting, lets in-flight
requests finish, stops content processes, closes the database, exits 0.

Signals:
  HUP        re-read the configuration: reloadable settings (Server.PublicWarning,
             Server.LoggedInWarning, Logging.*, Scheduler.*, Server.StopTimeout)
             apply at once; other changed settings log "restart required"; a file
             that no longer loads is logged and the running configuration kept.
  TERM, INT  graceful stop.

Logs: the service log goes to stderr (Logging.ServiceLogLevel, ServiceLogFormat),
the access log to stdout (Logging.AccessLog). With NOTIFY_SOCKET set (systemd
Type=notify), READY=1, RELOADING=1 and STOPPING=1 are sent.

Exit codes: 0 after a graceful stop, 78 for a configuration problem (bad file,
port in use, data directory held by another dais, database newer than this
dais), 1 for anything else.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &exitError{code: 2}
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, err: fmt.Errorf("unexpected argument %q (see dais serve --help)", fs.Arg(0))}
	}
	err := serve.Run(ctx, serve.Options{
		ConfigPath: *path,
		Environ:    os.Environ(),
		Version:    version,
		Stdout:     stdout,
		Stderr:     stderr,
	})
	if errors.Is(err, serve.ErrConfig) {
		return &exitError{code: 78, err: err}
	}
	return err
}
