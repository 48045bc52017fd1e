package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/dais-dev/dais/server/license"
)

// dais license-server: the floating license server that dais servers with
// Licensing.LicenseType = remote take a lease from.
func init() {
	register("license-server", &command{
		summary: "run a floating license server: N seats, leases with a TTL, kept in SQLite",
		run:     runLicenseServer,
	})
}

func runLicenseServer(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dais license-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", ":"+license.DefaultPort, "listen on this `address`")
	seats := fs.Int("seats", 1, "how many dais servers may hold a lease at once")
	ttl := fs.Duration("ttl", 30*time.Second, "lease lifetime without a renewal (`duration`); a server killed without releasing its lease frees the seat after this")
	db := fs.String("db", "/data/license/leases.db", "SQLite lease database `file`; keep it on a volume so a restart keeps the leases")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: dais license-server [--listen ADDR] [--seats N] [--ttl D] [--db FILE]\n\n"+
			"A floating license server. dais servers with Licensing.LicenseType = remote and\n"+
			"Licensing.LicenseServer (or RSC_LICENSE_SERVER) = host:8989 hold one lease each\n"+
			"while they run: renewed at a third of the TTL, released on a graceful stop\n"+
			"(docker stop); a lease not released frees itself when the TTL runs out.\n\n"+
			"HTTP JSON API:\n"+
			"  POST   /leases            {\"node\": NAME} -> lease, or 409 when all seats are taken\n"+
			"  POST   /leases/ID/renew   -> lease, or 404 when unknown or expired\n"+
			"  DELETE /leases/ID         release\n"+
			"  GET    /status            seats, leases held, recent grants/releases/expiries\n"+
			"  GET    /__ping__          200 {}\n\n"+
			"Example: dais license-server --seats 2 --ttl 30s --db /data/license/leases.db\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return &exitError{code: 2}
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, err: fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))}
	}
	var h slog.Handler
	switch *logFormat {
	case "text":
		h = slog.NewTextHandler(stderr, nil)
	case "json":
		h = slog.NewJSONHandler(stderr, nil)
	default:
		return &exitError{code: 2, err: fmt.Errorf("--log-format %q: use text or json", *logFormat)}
	}
	log := slog.New(h)

	st, err := license.OpenStore(ctx, *db)
	if err != nil {
		return &exitError{code: 78, err: fmt.Errorf("%w (choose another file with --db)", err)}
	}
	defer st.Close()
	srv, err := license.NewServer(license.ServerOptions{Store: st, Seats: *seats, TTL: *ttl, Logger: log})
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return &exitError{code: 78, err: fmt.Errorf("listen on %s: %w (change --listen, or stop what uses the port)", *listen, err)}
	}
	held, err := st.Leases(ctx, time.Now())
	if err != nil {
		return fmt.Errorf("read the lease database: %w", err)
	}
	log.Info("license server ready", "addr", ln.Addr().String(), "seats", *seats, "ttl", ttl.String(), "db", *db, "leases_held", len(held))
	if err := srv.Serve(ctx, ln); err != nil {
		return err
	}
	log.Info("license server stopped")
	return nil
}
