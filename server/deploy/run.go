package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dais-dev/dais/server/content"
	"github.com/dais-dev/dais/server/content/env"
	"github.com/dais-dev/dais/server/content/manifest"
	"github.com/dais-dev/dais/server/process"
	"github.com/dais-dev/dais/server/sandbox"
	"github.com/dais-dev/dais/server/store"
)

// contentEnv is the environment of a content's processes: Connect's
// variables, then the ones set through the API.
func (s *Service) contentEnv(c *store.Content) []string {
	e := []string{"CONNECT_CONTENT_GUID=" + c.GUID}
	if a := s.o.Config().Server.Address; a != "" {
		e = append(e, "CONNECT_SERVER="+a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	vars, err := s.st.Environment(ctx, c.ID)
	if err != nil {
		s.log.Warn("read content environment", logKeyContent, c.GUID, logKeyErr, err)
	}
	var keys []string
	for k := range vars {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if strings.ContainsAny(k, "=\x00") || strings.IndexByte(vars[k], 0) >= 0 {
			// Stored before the API refused such values: no process
			// environment can carry them.
			s.log.Warn("content environment variable left out: its name or value holds '=' or a NUL byte; set it again",
				logKeyContent, c.GUID, "variable", strings.ReplaceAll(k, "\x00", `\0`))
			continue
		}
		e = append(e, k+"="+vars[k])
	}
	return e
}

// sandboxOptions is the sandbox of a content's bundle: its code read-only,
// its work directory writable, the environment read-only unless listed
// in rw, DataDir and the configuration hidden.
func (s *Service) sandboxOptions(c *store.Content, p *prepared, rw []string) sandbox.Options {
	cfg := s.o.Config()
	var extra []string
	if s.o.ConfigPath != "" {
		// Hide the configuration's directory, unless the data lives in it
		// (then DataDir's own mask covers what matters). Absolute: a mask
		// must be (`dais serve --config c.gcfg` gave ".", and every content
		// process failed to start).
		dir, err := filepath.Abs(filepath.Dir(s.o.ConfigPath))
		if err != nil {
			dir = filepath.Dir(s.o.ConfigPath)
		}
		if rel, err := filepath.Rel(dir, cfg.Server.DataDir); err != nil || strings.HasPrefix(rel, "..") {
			extra = append(extra, dir)
		}
	}
	o := sandbox.Options{
		CodeDir: p.dirs.Code, WorkDir: p.dirs.Work, ReadWrite: rw,
		Masks: sandbox.DefaultMasks(cfg, extra...), RunAs: s.runAs(c), Env: s.contentEnv(c),
		Mode: s.mode, ConnectPorts: cfg.Sandbox.LandlockConnectPorts, Network: s.network(c),
	}
	if fi, err := os.Stat(p.env); err == nil && fi.IsDir() && !slices.Contains(rw, p.env) {
		o.ReadOnly = append(o.ReadOnly, p.env)
	}
	s.resourceLimits(c, &o)
	return o
}

// runner runs one-shot commands (restore, render) for the content.
func (s *Service) runner(ctx context.Context, c *store.Content, p *prepared, rw []string, _ []string) (env.Runner, error) {
	if err := os.MkdirAll(p.dirs.Work, 0o755); err != nil {
		return nil, err
	}
	if s.o.NoSandbox {
		ce := s.contentEnv(c)
		return func(ctx context.Context, cmd content.Command, out io.Writer) error {
			cmd.Env = append(slices.Clone(ce), cmd.Env...)
			return env.PlainRunner(ctx, cmd, out)
		}, nil
	}
	return env.SandboxRunner(s.o.DaisPath, s.sandboxOptions(c, p, rw)), nil
}

func deref(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

// newPool makes the process pool of an app bundle, with the content's
// settings over the [Scheduler] defaults.
func (s *Service) newPool(c *store.Content, bundleID int64, p *prepared) (*process.Pool, error) {
	cfg := s.o.Config()
	if err := os.MkdirAll(p.dirs.Work, 0o755); err != nil {
		return nil, err
	}
	if err := s.giveTo(c, p.dirs.Work); err != nil {
		return nil, err
	}
	idle := cfg.Scheduler.IdleTimeout.Std()
	if c.IdleTimeout != nil {
		idle = time.Duration(*c.IdleTimeout) * time.Second
	}
	if idle == 0 {
		idle = -1 // 0 means never, as in Connect
	}
	initT := cfg.Scheduler.InitTimeout.Std()
	if c.InitTimeout != nil {
		initT = time.Duration(*c.InitTimeout) * time.Second
	}
	return process.New(process.Options{
		Name: c.GUID, Launch: s.launcher(c, bundleID, p), LogDir: s.logDir(c), Node: s.o.Node, Logger: s.log,
		Min: deref(c.MinProcesses, cfg.Scheduler.MinProcesses), Max: deref(c.MaxProcesses, cfg.Scheduler.MaxProcesses),
		MaxConnsPerProcess: deref(c.MaxConnsPerProcess, 0), IdleTimeout: idle, InitTimeout: initT,
		// A Shiny session lives in one process: its requests must reach it.
		Pin: interactive[manifest.AppMode(c.AppMode)],
	})
}

// launcher starts one app process in the sandbox and records it as a job.
func (s *Service) launcher(c *store.Content, bundleID int64, p *prepared) process.Launcher {
	return func(ctx context.Context, port int, log io.Writer) (process.Process, error) {
		cmd, err := content.LaunchArgs(p.m, p.rts, port, p.dirs)
		if err != nil {
			return nil, err
		}
		var (
			pid    int
			wait   func() error
			signal func(os.Signal) error
			reason func() string
			dial   process.DialFunc
		)
		if s.o.NoSandbox {
			x := exec.Command(cmd.Args[0], cmd.Args[1:]...)
			x.Dir = cmd.Dir
			envv := os.Environ()
			if len(cmd.PathDirs) > 0 {
				envv = append(envv, "PATH="+strings.Join(cmd.PathDirs, ":")+":"+os.Getenv("PATH"))
			}
			x.Env = append(append(envv, s.contentEnv(c)...), cmd.Env...)
			x.Stdout, x.Stderr = log, log
			x.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := x.Start(); err != nil {
				return nil, err
			}
			pp := process.ExecProcess(x, port)
			pid, wait, signal, dial = x.Process.Pid, pp.Wait, pp.Signal, pp.Dial
		} else {
			o := s.sandboxOptions(c, p, nil)
			o.Args, o.Env, o.PathDirs, o.Dir = cmd.Args, append(o.Env, cmd.Env...), cmd.PathDirs, cmd.Dir
			o.Port = port
			spec, err := sandbox.Spec(o)
			if err != nil {
				return nil, err
			}
			sc, err := sandbox.Command(ctx, s.o.DaisPath, spec)
			if err != nil {
				return nil, err
			}
			sc.Stdout, sc.Stderr = log, log
			// A process of the app killed for its memory limit while the
			// app goes on (gunicorn starts another worker): said in the
			// process log and the server's.
			guid := c.GUID
			sc.OnLimit = func(reason string) {
				fmt.Fprintf(log, "dais: %s\n", reason)
				s.log.Warn("content process "+reason, logKeyContent, guid)
			}
			if err := sc.Start(); err != nil {
				return nil, err
			}
			pid, wait, reason = sc.Process.Pid, sc.Wait, sc.ExitReason
			signal = sc.Signal // to the sandbox's init, which forwards it
			addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			dial = func(ctx context.Context) (net.Conn, error) {
				// Inside the sandbox's network namespace in namespaces
				// mode, on the server's loopback in Landlock mode.
				return sc.DialContext(ctx, "tcp", addr)
			}
		}
		j := &store.Job{ContentID: c.ID, BundleID: bundleID, Tag: "run_app", PID: pid, Node: s.o.Node, StartedAt: time.Now()}
		if f, ok := log.(*os.File); ok {
			j.LogPath = f.Name()
		}
		jctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.st.CreateJob(jctx, j); err != nil {
			s.log.Warn("record job", logKeyContent, c.GUID, logKeyErr, err)
		}
		return &jobProcess{s: s, key: j.Key, wait: wait, reason: reason, log: log, guid: c.GUID, signal: signal, dial: dial}, nil
	}
}

// jobProcess records the end of a process on its job.
type jobProcess struct {
	s      *Service
	key    string
	wait   func() error
	reason func() string // why the sandbox ended, when dais knows
	log    io.Writer
	guid   string
	signal func(os.Signal) error
	dial   process.DialFunc
}

func (j *jobProcess) Signal(sig os.Signal) error { return j.signal(sig) }

func (j *jobProcess) Dial(ctx context.Context) (net.Conn, error) { return j.dial(ctx) }

func (j *jobProcess) Wait() error {
	err := j.wait()
	why := ""
	if j.reason != nil {
		why = j.reason()
	}
	if why != "" {
		fmt.Fprintf(j.log, "dais: %s\n", why)
		j.s.log.Warn("content process "+why, logKeyContent, j.guid)
		err = fmt.Errorf("%s (%w)", why, err)
	}
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		code = -1
	}
	if j.key != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if ferr := j.s.st.FinishJob(ctx, j.key, code, why, time.Now()); ferr != nil {
			j.s.log.Warn("record job end", logKeyErr, ferr)
		}
	}
	return err
}

// activate brings back the serving of a content's active bundle (at
// start, or when another node changed it), replacing what this node served.
func (s *Service) activate(ctx context.Context, c *store.Content) error {
	_, err := s.activateIf(ctx, c, false)
	return err
}

// activateMeanwhile serves c's active bundle only if this node serves
// nothing of c when it is ready: a deploy of c under way on this node
// replaces it when done, and one that got there first keeps its own. It
// tells whether it did.
func (s *Service) activateMeanwhile(ctx context.Context, c *store.Content) (bool, error) {
	return s.activateIf(ctx, c, true)
}

func (s *Service) activateIf(ctx context.Context, c *store.Content, onlyIfNothing bool) (bool, error) {
	b, err := s.st.Bundle(ctx, *c.BundleID)
	if err != nil {
		return false, fmt.Errorf("read bundle %d: %w", *c.BundleID, err)
	}
	code := filepath.Join(s.bundleDir(c.ID, b.ID), "code")
	m, err := manifest.Read(code)
	if err != nil {
		return false, err
	}
	var site *fileSite
	var pool *process.Pool
	output := ""
	switch m.Metadata.AppMode.Kind() {
	case manifest.KindStatic:
		if site, err = openSite(code, m); err != nil {
			return false, err
		}
	case manifest.KindDocument:
		r, err := s.st.LatestRender(ctx, c.ID, store.RenderSucceeded)
		if err != nil {
			return false, fmt.Errorf("no finished render: %w", err)
		}
		if site, err = openSite(r.OutputDir, nil); err != nil {
			return false, err
		}
		output = r.OutputDir
	default:
		p, err := s.prepare(ctx, c, b.ID, m, nil)
		if err != nil {
			return false, err
		}
		if pool, err = s.newPool(c, b.ID, p); err != nil {
			return false, err
		}
	}
	// What serves c and what this node says it serves change together
	// (under mu), so that a deploy's later markServed is not undone.
	s.mu.Lock()
	// Nothing: no files, no processes, and no deploy's markServed yet (a
	// deploy sets its pool, then marks, then closes the files).
	if onlyIfNothing && (s.files[c.GUID] != nil || s.served[c.GUID] != nil || s.proxy.Pool(c.GUID) != nil) {
		s.mu.Unlock()
		discard(site, pool)
		return false, nil
	}
	var oldSite *fileSite
	var oldPool *process.Pool
	if site != nil {
		oldSite = s.files[c.GUID]
		s.files[c.GUID] = site
		if !onlyIfNothing {
			// A content that changed from an app to files on another
			// node: its processes here go.
			oldPool = s.proxy.Remove(c.GUID)
		}
	} else if onlyIfNothing {
		if !s.proxy.SetIfAbsent(c.GUID, pool) {
			s.mu.Unlock()
			discard(nil, pool)
			return false, nil
		}
	} else {
		oldPool = s.proxy.Set(c.GUID, pool)
	}
	if s.served == nil {
		s.served = map[string]*served{}
	}
	s.served[c.GUID] = &served{bundle: b.ID, output: output, checked: time.Now()}
	s.mu.Unlock()
	if oldSite != nil {
		oldSite.close()
	}
	if oldPool != nil && oldPool != pool {
		go oldPool.Stop(context.Background())
	}
	return true, nil
}

// discard closes what an activation made and did not use.
func discard(site *fileSite, pool *process.Pool) {
	if site != nil {
		site.close()
	}
	if pool != nil {
		go pool.Stop(context.Background())
	}
}

// deactivate stops serving a content.
func (s *Service) deactivate(guid string) {
	s.forgetServed(guid)
	s.mu.Lock()
	if f := s.files[guid]; f != nil {
		f.close()
		delete(s.files, guid)
	}
	s.mu.Unlock()
	if p := s.proxy.Remove(guid); p != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		p.Stop(ctx)
	}
}

func poolSettingsChanged(a, b *store.Content) bool {
	eq := func(x, y *int) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return !eq(a.MinProcesses, b.MinProcesses) || !eq(a.MaxProcesses, b.MaxProcesses) ||
		!eq(a.MaxConnsPerProcess, b.MaxConnsPerProcess) || !eq(a.IdleTimeout, b.IdleTimeout) ||
		!eq(a.InitTimeout, b.InitTimeout) || a.RunAs != b.RunAs || !eqPtr(a.OutboundNetwork, b.OutboundNetwork) ||
		!eqPtr(a.MemoryLimit, b.MemoryLimit) || !eqPtr(a.CPULimit, b.CPULimit)
}

func eqPtr[T comparable](x, y *T) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }

// restartApp replaces a running app's pool with a fresh one of the same
// bundle (new settings or environment), without dropping requests.
func (s *Service) restartApp(c *store.Content) {
	if s.proxy.Pool(c.GUID) == nil || c.BundleID == nil {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		lock := s.contentLock(c.ID)
		lock.Lock()
		defer lock.Unlock()
		ctx := s.ctx
		fresh, err := s.st.Content(ctx, c.ID)
		if err != nil || fresh.BundleID == nil || s.proxy.Pool(c.GUID) == nil {
			return
		}
		m, err := manifest.Read(filepath.Join(s.bundleDir(c.ID, *fresh.BundleID), "code"))
		if err == nil {
			var p *prepared
			if p, err = s.prepare(ctx, fresh, *fresh.BundleID, m, nil); err == nil {
				var pool *process.Pool
				if pool, err = s.newPool(fresh, *fresh.BundleID, p); err == nil {
					err = s.switchPool(ctx, c.GUID, pool)
				}
			}
		}
		if err != nil {
			s.log.Warn("restart content processes with new settings; the old ones keep serving", logKeyContent, c.GUID, logKeyErr, err)
		}
	}()
}

// switchPool moves guid's traffic to pool once it has a ready process.
// The old pool drains in the background (WebSocket sessions of a Shiny
// app may last long), so the deploy does not wait for it; it is stopped
// at the latest when the server stops. A pool that does not get ready is
// stopped and the old one keeps serving.
func (s *Service) switchPool(ctx context.Context, guid string, pool *process.Pool) error {
	if err := pool.WaitReady(ctx); err != nil {
		pool.Stop(context.Background())
		return err
	}
	old := s.proxy.Set(guid, pool)
	if old != nil && old != pool {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := old.Drain(s.ctx); err != nil && s.ctx.Err() == nil {
				s.log.Warn("stop the previous processes", logKeyContent, guid, logKeyErr, err)
			}
		}()
	}
	return nil
}
