package serve

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/dais-dev/dais/server/api"
	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/deploy"
	"github.com/dais-dev/dais/server/license"
	"github.com/dais-dev/dais/server/schedule"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/usage"
	"github.com/dais-dev/dais/server/web"
)

// Component is a part of the server with a start-up and a shutdown: content
// processes, the render queue, the license lease. dais serve starts the
// components in order after the store is open and before it reports ready,
// and on TERM stops them in reverse order after the HTTP listener has
// stopped accepting and in-flight requests have finished. All of it is
// bounded by Server.StopTimeout: Stop's ctx carries that deadline, and a
// component must give up (kill what is left) when it passes.
type Component interface {
	Name() string
	// Start returns once the component is ready; work that goes on runs in
	// goroutines the component owns and Stop ends.
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Reloader is a Component that takes reloadable settings on HUP. cfg is the
// new running configuration: restart-required keys keep their old values.
type Reloader interface {
	Reload(ctx context.Context, cfg *config.Config) error
}

// Deps is what components are built from.
type Deps struct {
	// Config is the configuration at start; Web.Config() is the running one.
	Config     *config.Config
	ConfigPath string
	Store      store.Store
	// Web is the HTTP server, not yet listening: register routes on it.
	Web     *web.Server
	Logger  *slog.Logger
	Version string
	// Node names this server among several sharing one PostgreSQL (the hostname).
	Node string
	// Stopping is cancelled when the server starts to stop, before the
	// listener closes: long polls can answer early.
	Stopping context.Context
	// OnHTTPShutdown registers a function called when the HTTP server
	// starts its graceful shutdown: the place to close hijacked (WebSocket)
	// connections, which http.Server.Shutdown neither tracks nor waits for.
	OnHTTPShutdown func(f func())
}

// components lists the server's components in start order; they stop in
// reverse. ADD NEW COMPONENTS HERE, each built from d; a component that
// needs another's service takes it as an argument, so the order is plain.
// Order: the license lease first (so it is released last, after content
// processes have stopped and renders have finished), then content
// processes, then the render queue and the scheduler. Routes go on d.Web
// while building: the listener is not open yet.
func components(d Deps) ([]Component, error) {
	rec := usage.New(d.Store, d.Logger.With(logKeyComponent, "usage"))
	dep, err := deploy.New(deploy.Options{
		Config: d.Web.Config, Store: d.Store, Logger: d.Logger.With(logKeyComponent, "deploy"),
		Node: d.Node, Stopping: d.Stopping, ConfigPath: d.ConfigPath, Disk: d.Web.Disk(), Usage: rec,
	})
	if err != nil {
		return nil, err
	}
	lic, err := license.ForConfig(d.Config.Licensing, d.Node, d.Logger.With(logKeyComponent, "license"))
	if err != nil {
		return nil, configErr("%w", err)
	}
	sch, err := schedule.New(schedule.Options{
		Store: d.Store, Node: d.Node, Logger: d.Logger.With(logKeyComponent, "scheduler"), Render: dep.StartRender,
		Capacity: dep.RenderCapacity,
	})
	if err != nil {
		return nil, err
	}
	dep.OnRenderSlotFree(sch.Wake)
	api.Register(api.Options{Web: d.Web, Store: d.Store, Deploy: dep, Scheduler: sch, Logger: d.Logger.With(logKeyComponent, "api")})
	cs := []Component{
		newSessionJanitor(d.Store, d.Logger, d.Web.Config),
		rec,                // usage events: written in batches off the proxy's requests; stops after the content
		dep,                // the deployment API, deploy tasks, content processes and /content/
		dep.MinProcesses(), // apps with MinProcesses > 0 ready before the server reports ready
		sch,                // scheduled renders: missed ones run once at start; stops first
	}
	if lic != nil { // Licensing.LicenseType = remote
		// The license lease first; the gate answers 402 while none is held.
		d.Web.SetGate(lic.Licensed)
		cs = append([]Component{lic}, cs...)
	}
	return cs, nil
}

// Funcs makes a Component out of functions; nil ones do nothing.
type Funcs struct {
	ComponentName string
	StartFunc     func(ctx context.Context) error
	StopFunc      func(ctx context.Context) error
	ReloadFunc    func(ctx context.Context, cfg *config.Config) error
}

func (f *Funcs) Name() string { return f.ComponentName }

func (f *Funcs) Start(ctx context.Context) error {
	if f.StartFunc == nil {
		return nil
	}
	return f.StartFunc(ctx)
}

func (f *Funcs) Stop(ctx context.Context) error {
	if f.StopFunc == nil {
		return nil
	}
	return f.StopFunc(ctx)
}

func (f *Funcs) Reload(ctx context.Context, cfg *config.Config) error {
	if f.ReloadFunc == nil {
		return nil
	}
	return f.ReloadFunc(ctx, cfg)
}

// sessionJanitor deletes expired login sessions, unclaimed tokens, the
// expired signatures of token authentication, and audit log entries and
// usage older than their retention (Server.AuditLogRetention,
// Server.UsageRetention) every hour, on one node of a cluster at a time.
type sessionJanitor struct {
	store  store.Store
	log    *slog.Logger
	config func() *config.Config
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newSessionJanitor(st store.Store, log *slog.Logger, cfg func() *config.Config) *sessionJanitor {
	return &sessionJanitor{store: st, log: log, config: cfg}
}

func (j *sessionJanitor) Name() string { return "sessions" }

func (j *sessionJanitor) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	j.cancel = cancel
	j.wg.Go(func() {
		t := time.NewTicker(time.Hour)
		defer t.Stop()
		for {
			// One node at a time does a cluster's chores (a PostgreSQL
			// advisory lock; with SQLite this is the only server). A node
			// that finds the lock held skips this round.
			_, err := j.store.WithClusterLock(ctx, "chores", func(ctx context.Context) error {
				j.deleteExpired(ctx)
				return nil
			})
			if err != nil && ctx.Err() == nil {
				j.log.Warn("cluster lock for the chores", logKeyErr, err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return nil
}

func (j *sessionJanitor) deleteExpired(ctx context.Context) {
	now := time.Now()
	srv := j.config().Server
	retain := func(keep config.Duration, del func(ctx context.Context, t time.Time) (int64, error)) func() (int64, error) {
		return func() (int64, error) {
			if keep <= 0 {
				return 0, nil // kept forever
			}
			return del(ctx, now.Add(-keep.Std()))
		}
	}
	for what, del := range map[string]func() (int64, error){
		"old audit log entries": retain(srv.AuditLogRetention, j.store.DeleteAuditLogsBefore),
		"old usage":             retain(srv.UsageRetention, j.store.DeleteUsageBefore),
		"expired sessions":      func() (int64, error) { return j.store.DeleteExpiredSessions(ctx, now) },
		"unclaimed tokens":      func() (int64, error) { return j.store.DeleteUnclaimedTokens(ctx, now.Add(-web.UnclaimedTokenLifetime)) },
		"expired signatures":    func() (int64, error) { return j.store.DeleteExpiredSignatures(ctx, now) },
	} {
		n, err := del()
		switch {
		case err != nil && ctx.Err() == nil:
			j.log.Warn("delete "+what, logKeyErr, err)
		case n > 0:
			j.log.Debug("deleted "+what, "count", n)
		}
	}
}

func (j *sessionJanitor) Stop(context.Context) error {
	j.cancel()
	j.wg.Wait()
	return nil
}
