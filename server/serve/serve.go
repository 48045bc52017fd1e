// Package serve is the runtime of `dais serve`: it loads the configuration,
// holds the SQLite data directory lock, opens the store, builds the web
// server and the components, listens, reloads on HUP and stops gracefully on
// TERM (or when its context ends).
package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"syscall"
	"time"

	"github.com/dais-dev/dais/server/admin"
	"github.com/dais-dev/dais/server/cluster"
	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/datalock"
	"github.com/dais-dev/dais/server/sandbox"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

// Log attribute keys.
const (
	logKeyErr       = "err"
	logKeyComponent = "component"
	logKeyAddr      = "addr"
	logKeyConfig    = "config"
	logKeyKeys      = "keys"
	logKeyElapsed   = "elapsed"
)

// ErrConfig marks start-up failures that the admin fixes in the
// configuration or the deployment (exit code 78, EX_CONFIG): errors.Is
// finds it; the message is the underlying error's alone.
var ErrConfig = errors.New("configuration problem")

type configError struct{ err error }

func (e configError) Error() string   { return e.err.Error() }
func (e configError) Unwrap() []error { return []error{ErrConfig, e.err} }

func configErr(format string, args ...any) error {
	return configError{fmt.Errorf(format, args...)}
}

// Options configure Run.
type Options struct {
	// ConfigPath is the gcfg file, read at start and again on each reload.
	ConfigPath string
	// Environ is the environment the configuration overlay reads (CONNECT_*),
	// DAIS_TEST_ENDPOINTS and NOTIFY_SOCKET; os.Environ() when nil.
	Environ []string
	Version string
	// Stdout receives the access log, Stderr the service log.
	Stdout, Stderr io.Writer
	// Reload delivers reload requests; nil: Run listens for SIGHUP itself.
	Reload <-chan os.Signal
	// OnReady, when set, is called with the listener's address once ready.
	OnReady func(addr net.Addr)
}

// server is one run of dais serve.
type server struct {
	o       Options
	log     *slog.Logger
	logCtl  *logControl
	notify  notifier
	cfg     *config.Config // the running configuration
	web     *web.Server
	comps   []Component
	started int // how many comps have started
	// node is this server as a node of a cluster (PostgreSQL); nil with SQLite.
	node *cluster.Node
}

// Run serves until ctx ends (TERM, INT), then stops gracefully and returns
// nil. It returns an error when start-up fails; ErrConfig-wrapped ones are
// the admin's to fix.
func Run(ctx context.Context, o Options) (err error) {
	if o.Environ == nil {
		o.Environ = os.Environ()
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	// Catch HUP first: its default action would end the process.
	if o.Reload == nil {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		o.Reload = hup
	}
	// TERM or INT while starting up is a stop, not a failure.
	defer func() {
		if err != nil && ctx.Err() != nil && !errors.Is(err, ErrConfig) {
			fmt.Fprintf(o.Stderr, "dais: stopped during start-up (%v)\n", err)
			err = nil
		}
	}()
	start := time.Now()
	s := &server{o: o, notify: notifier{socket: getenv(o.Environ, "NOTIFY_SOCKET")}}

	migrateConfig(o)
	loaded, err := config.Load(o.ConfigPath, o.Environ)
	if err != nil {
		return configErr("%w", err)
	}
	s.cfg = loaded.Config
	if s.log, s.logCtl, err = newLogger(o.Stderr, s.cfg.Logging); err != nil {
		return configErr("%w", err)
	}
	for _, w := range loaded.Warnings {
		s.log.Warn("configuration: " + w)
	}
	// Content runs as Applications.RunAs: a user that cannot be (missing,
	// root) would fail every deploy later with a misleading error.
	if msg := loaded.RunAsProblem(); msg != "" {
		return configErr("%s", msg)
	}
	s.log.Info("dais starting", "version", o.Version, logKeyConfig, strings.Join(loaded.Files, ", "),
		"database", s.cfg.Database.Provider, "pid", os.Getpid())

	// One server per SQLite data directory: the lock lives as long as we run.
	if isSQLite(s.cfg) {
		release, err := datalock.Acquire(s.cfg.SQLiteDir())
		if err != nil {
			if errors.Is(err, datalock.ErrLocked) {
				return configErr("%w: stop the other dais using %s first, or set Database.Provider = postgres to run several servers on one database",
					err, s.cfg.SQLiteDir())
			}
			return fmt.Errorf("lock SQLite directory %s: %w (check SQLite.Dir and Server.DataDir and their permissions)", s.cfg.SQLiteDir(), err)
		}
		defer func() {
			if rerr := release(); rerr != nil {
				s.log.Warn("release data directory lock", logKeyErr, rerr)
			}
		}()
	}

	st, err := store.Open(ctx, s.cfg, s.log.With(logKeyComponent, "store"))
	if err != nil {
		if errors.Is(err, store.ErrSchemaTooNew) {
			return configErr("%w", err)
		}
		return fmt.Errorf("open the %s database: %w", s.cfg.Database.Provider, err)
	}
	defer func() {
		if cerr := st.Close(); cerr != nil {
			s.log.Warn("close the database", logKeyErr, cerr)
		}
	}()

	if err := web.CheckProvider(ctx, st, s.cfg.Authentication.Provider); err != nil {
		return configErr("%w", err)
	}

	s.web, err = web.New(web.Options{
		Config:        s.cfg,
		Store:         st,
		Logger:        s.log.With(logKeyComponent, "web"),
		AccessLog:     o.Stdout, // written while Logging.AccessLog is on
		Version:       o.Version,
		TestEndpoints: getenv(o.Environ, "DAIS_TEST_ENDPOINTS") == "1",
	})
	if err != nil {
		return fmt.Errorf("build the web server: %w", err)
	}

	// Bind before the components start, so a busy port fails fast.
	ln, err := net.Listen("tcp", s.cfg.HTTP.Listen)
	if err != nil {
		return configErr("listen on %s: %w (change HTTP.Listen, or stop what uses the port)", s.cfg.HTTP.Listen, err)
	}
	defer ln.Close()

	srv := &http.Server{
		Handler:           s.web,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.With(logKeyComponent, "http").Handler(), slog.LevelWarn),
	}
	stopping, markStopping := context.WithCancel(context.Background())
	defer markStopping()
	name := cluster.NodeName(o.Environ)
	if !isSQLite(s.cfg) {
		// Several servers may share this PostgreSQL: register as a node
		// before any work starts, so that a name already in use stops
		// this start, and heartbeat from then on.
		s.node = cluster.New(cluster.Options{
			Store: st, Config: s.cfg, Name: name, Address: cluster.Address(o.Environ, name, ln.Addr()),
			Version: o.Version, Logger: s.log.With(logKeyComponent, "cluster"), SetUnavailable: s.web.SetUnavailable,
		})
		if err := s.node.Register(ctx); err != nil {
			if errors.Is(err, cluster.ErrNameTaken) {
				return configErr("%w", err)
			}
			return fmt.Errorf("register this node: %w", err)
		}
		s.node.Start()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := s.node.Stop(sctx); err != nil {
				s.log.Warn("leave the cluster", logKeyErr, err)
			}
		}()
	}
	s.comps, err = components(Deps{
		Config: s.cfg, ConfigPath: o.ConfigPath, Store: st, Web: s.web, Logger: s.log,
		Version: o.Version, Node: name, Stopping: stopping, OnHTTPShutdown: srv.RegisterOnShutdown,
	})
	if err != nil {
		return fmt.Errorf("build components: %w", err)
	}
	if err := s.startComponents(ctx); err != nil {
		s.stopComponents(time.Now().Add(s.cfg.Server.StopTimeout.Std()))
		return err
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	s.log.Info("dais ready", logKeyAddr, ln.Addr().String(), logKeyElapsed, time.Since(start).Round(time.Millisecond).String())
	if err := s.notify.notify("READY=1\nSTATUS=serving on " + ln.Addr().String()); err != nil {
		s.log.Warn("tell systemd we are ready", logKeyErr, err)
	}
	if o.OnReady != nil {
		o.OnReady(ln.Addr())
	}

	var superseded <-chan struct{} // nil: never
	if s.node != nil {
		superseded = s.node.Superseded()
	}
loop:
	for {
		select {
		case <-superseded:
			// A newer dais migrated the database past what this one can
			// serve: drain and stop as on TERM, then exit with the line.
			line := s.node.SupersededBy()
			s.log.Error("stopping: " + line)
			if err := s.shutdown(srv, markStopping); err != nil {
				return err
			}
			return configErr("%s", line)
		case <-o.Reload:
			s.reload(ctx)
		case err := <-serveErr:
			// Serve only returns on its own when the listener breaks.
			s.log.Error("HTTP server failed; stopping", logKeyErr, err)
			markStopping()
			s.stopComponents(time.Now().Add(s.cfg.Server.StopTimeout.Std()))
			return fmt.Errorf("serve HTTP on %s: %w", ln.Addr(), err)
		case <-ctx.Done():
			break loop
		}
	}
	return s.shutdown(srv, markStopping)
}

// shutdown stops gracefully: stop accepting, let in-flight requests end,
// stop the components in reverse; all within Server.StopTimeout.
func (s *server) shutdown(srv *http.Server, markStopping context.CancelFunc) error {
	begin := time.Now()
	timeout := s.cfg.Server.StopTimeout.Std()
	deadline := begin.Add(timeout)
	s.log.Info("dais stopping", "stop_timeout", timeout.String())
	if err := s.notify.notify("STOPPING=1"); err != nil {
		s.log.Warn("tell systemd we are stopping", logKeyErr, err)
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if s.node != nil {
		// Answer /__ping__ with 503 while still serving, so that load
		// balancers stop sending requests before the listener closes;
		// at most half the stop timeout.
		s.node.Drain(ctx, min(s.cfg.Cluster.DrainDelay.Std(), timeout/2))
	}
	markStopping()
	if err := srv.Shutdown(ctx); err != nil {
		s.log.Warn("in-flight requests did not finish within Server.StopTimeout; closing their connections", "stop_timeout", timeout.String(), logKeyErr, err)
		_ = srv.Close()
	}
	s.log.Info("HTTP server stopped", logKeyElapsed, time.Since(begin).Round(time.Millisecond).String())
	s.stopComponents(deadline)
	if err := sandbox.RemoveTmp(); err != nil {
		s.log.Warn("remove the content's temporary directories", logKeyErr, err)
	}
	s.log.Info("dais stopped", logKeyElapsed, time.Since(begin).Round(time.Millisecond).String())
	return nil
}

func (s *server) startComponents(ctx context.Context) error {
	for _, c := range s.comps {
		t := time.Now()
		if err := c.Start(ctx); err != nil {
			return fmt.Errorf("start %s: %w", c.Name(), err)
		}
		s.started++
		s.log.Debug("component started", logKeyComponent, c.Name(), logKeyElapsed, time.Since(t).Round(time.Millisecond).String())
	}
	return nil
}

// stopComponents stops the started components in reverse order. Each gets
// what is left of the deadline; one failing does not keep the others running.
func (s *server) stopComponents(deadline time.Time) {
	for i := s.started - 1; i >= 0; i-- {
		c := s.comps[i]
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		t := time.Now()
		if err := c.Stop(ctx); err != nil {
			s.log.Error("stop component", logKeyComponent, c.Name(), logKeyErr, err)
		} else {
			s.log.Debug("component stopped", logKeyComponent, c.Name(), logKeyElapsed, time.Since(t).Round(time.Millisecond).String())
		}
		cancel()
	}
	s.started = 0
}

// reload re-reads the configuration file: reloadable keys apply at once,
// changed restart-required keys keep their running values (and are logged),
// and a file that no longer loads leaves the running configuration as is.
func (s *server) reload(ctx context.Context) {
	if err := s.notify.notify("RELOADING=1\nMONOTONIC_USEC=" + monotonicUsec()); err != nil {
		s.log.Warn("tell systemd we are reloading", logKeyErr, err)
	}
	defer func() {
		if err := s.notify.notify("READY=1"); err != nil {
			s.log.Warn("tell systemd we are ready", logKeyErr, err)
		}
	}()
	loaded, err := config.Load(s.o.ConfigPath, s.o.Environ)
	if err != nil {
		s.log.Error("reload: the configuration does not load; the running configuration stays in force",
			logKeyConfig, s.o.ConfigPath, logKeyErr, err)
		return
	}
	for _, w := range loaded.Warnings {
		s.log.Warn("configuration: " + w)
	}
	changed, restart := config.Diff(s.cfg, loaded.Config)
	next, err := applyReloadable(s.cfg, loaded.Config, changed)
	if err != nil {
		s.log.Error("reload: the running configuration stays in force", logKeyErr, err)
		return
	}
	if err := s.logCtl.apply(next.Logging); err != nil {
		s.log.Error("reload: logging settings not applied", logKeyErr, err)
		next.Logging = s.cfg.Logging
	}
	s.cfg = next
	s.web.SetConfig(next)
	for _, c := range s.comps[:s.started] {
		if r, ok := c.(Reloader); ok {
			if err := r.Reload(ctx, next); err != nil {
				s.log.Error("reload component", logKeyComponent, c.Name(), logKeyErr, err)
			}
		}
	}
	// Logged once the reloadable keys apply: whoever reads this line
	// finds them in force.
	if len(restart) > 0 {
		s.log.Warn("reload: restart required for these changed settings; they keep their running values until then",
			logKeyKeys, strings.Join(restart, ", "))
	}
	s.log.Info("configuration reloaded", logKeyKeys, strings.Join(changed, ", "))
}

// applyReloadable returns a copy of cur with the reloadable keys in
// changed ("Section.Key", as config.Diff names them) taken from next.
func applyReloadable(cur, next *config.Config, changed []string) (*config.Config, error) {
	out := *cur
	dst, src := reflect.ValueOf(&out).Elem(), reflect.ValueOf(next).Elem()
	for _, k := range changed {
		section, name, ok := strings.Cut(k, ".")
		if !ok || !config.Reloadable(k) {
			continue
		}
		d := dst.FieldByName(section)
		if !d.IsValid() || d.Kind() != reflect.Struct {
			return nil, fmt.Errorf("apply %s: no such section in the configuration", k)
		}
		f := d.FieldByName(name)
		if !f.IsValid() || !f.CanSet() {
			return nil, fmt.Errorf("apply %s: no such key in the configuration", k)
		}
		f.Set(src.FieldByName(section).FieldByName(name))
	}
	return &out, nil
}

func isSQLite(c *config.Config) bool {
	return c.Database.Provider == "" || c.Database.Provider == "sqlite"
}

// getenv is os.Getenv over an environ list; the last value wins.
func getenv(environ []string, key string) string {
	v := ""
	for _, kv := range environ {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}

// migrateConfig is the upgrade step before the configuration is read:
// settings a newer dais renamed are written under their new names to
// <config>-migration.gcfg (admin.MigrateConfig), which config.Load reads
// after the main file, and what the admin should move is logged at every
// start until it is done. It never stops the start: a missing or unreadable
// file is reported by config.Load right after, with file:line.
func migrateConfig(o Options) {
	if o.ConfigPath == "" {
		return
	}
	if _, err := os.Stat(o.ConfigPath); err != nil {
		return
	}
	m, err := admin.MigrateConfig(o.ConfigPath, o.Version)
	if err != nil {
		return
	}
	m.Log(slog.New(slog.NewTextHandler(o.Stderr, nil)).With("component", "upgrade"), o.ConfigPath)
}
