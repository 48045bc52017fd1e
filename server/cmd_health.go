package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/dais-dev/dais/server/config"
)

// dais health: the image's HEALTHCHECK, so the image needs no curl. It GETs
// /__ready__ of the server the configuration describes and exits 0 on 200;
// a server that answers but is degraded (data volume full, no license)
// exits 1 with the reason.
func init() {
	register("health", &command{
		summary: "check a running server: GET /__ready__, exit 0 when it answers 200 (the image's HEALTHCHECK)",
		run:     runHealth,
	})
}

func runHealth(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dais health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", config.DefaultPath, "configuration `file` whose HTTP.Listen names the port (CONNECT_* variables apply, as for the server)")
	url := fs.String("url", "", "check this `URL` instead of the one derived from --config (e.g. http://127.0.0.1:3939/__ready__)")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this `duration`")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: dais health [--config FILE | --url URL] [--timeout D]\n\n"+
			"GETs /__ready__ and exits 0 when the server answers 200, 1 otherwise, with\n"+
			"the reason (\"degraded: data volume full\", \"degraded: no license\"). /__ping__\n"+
			"is the liveness check: 200 while the server serves. Used by the image's HEALTHCHECK;\n"+
			"by hand: docker exec <container> dais health\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return &exitError{code: 2}
	}
	target := *url
	if target == "" {
		target = readyURL(*cfgPath, os.Environ())
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("bad --url %q: %w", target, err)}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("unhealthy: %w", err)}
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var why struct {
			Status string `json:"status"`
			Error  string `json:"error"`
		}
		if json.Unmarshal(body, &why) == nil && why.Status != "" {
			return &exitError{code: 1, err: fmt.Errorf("unhealthy: %s answered %s: %s: %s", target, resp.Status, why.Status, why.Error)}
		}
		return &exitError{code: 1, err: fmt.Errorf("unhealthy: %s answered %s: %s", target, resp.Status, body)}
	}
	fmt.Fprintf(stdout, "healthy: %s answered %s\n", target, resp.Status)
	return nil
}

// readyURL derives http://HOST:PORT/__ready__ from HTTP.Listen of the config at
// path with environ applied; a wildcard or empty host becomes 127.0.0.1. A
// configuration that cannot be read falls back to the default port.
func readyURL(path string, environ []string) string {
	listen := config.Defaults().HTTP.Listen
	if ld, err := config.Load(path, environ); err == nil && ld.Config.HTTP.Listen != "" {
		listen = ld.Config.HTTP.Listen
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		host, port = "", "3939"
	}
	switch host {
	case "", "0.0.0.0", "::", "[::]":
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/__ready__"
}
