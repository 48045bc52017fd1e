// Package deploy is the deployment side of dais: bundles, the deploy and
// render task runner, content processes, and the content router at
// /content/<guid>/. Its HTTP API is server/api, which calls the
// operations in operations.go.
//
// A deploy goes, as a task whose output lines are written to the store
// as they happen:
//
//	upload  -> DataDir/apps/<content id>/<bundle id>/bundle.tar.gz
//	extract -> .../<bundle id>/code           (content/bundle, nothing outside)
//	manifest.json read, validated, checksums verified (content/manifest)
//	runtimes picked by version (content/runtime)
//	packages restored in the sandbox -> .../<bundle id>/env (content/env)
//	static:   served by dais from code/
//	document: rendered in the sandbox -> .../<bundle id>/output, served from there
//	app/API:  a new process pool; traffic switches once a process is ready,
//	          the old bundle keeps serving until then and when the deploy fails.
//
// Service is a serve.Component: Start brings back what was deployed
// (static and rendered content at once, app pools that start processes on
// the first request or at MinProcesses), Stop fails deploys in progress and
// stops the processes.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/content/bundle"
	"github.com/dais-dev/dais/server/content/runtime"
	"github.com/dais-dev/dais/server/diskspace"
	"github.com/dais-dev/dais/server/process"
	"github.com/dais-dev/dais/server/render"
	"github.com/dais-dev/dais/server/sandbox"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/usage"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Log attribute keys.
const (
	logKeyErr     = "err"
	logKeyContent = "content"
	logKeyBundle  = "bundle"
	logKeyTask    = "task"
)

// Options configure a Service.
type Options struct {
	// Config returns the running configuration (web.Server.Config).
	Config func() *config.Config
	Store  store.Store
	Logger *slog.Logger
	// Node names this server (the hostname), recorded on tasks and jobs.
	Node string
	// Stopping ends when the server starts to stop: long polls answer early.
	Stopping context.Context
	// ConfigPath is the configuration file; its directory is hidden from content.
	ConfigPath string
	// DaisPath is the program that runs `sandbox-exec`; "" means
	// sandbox.ExecPath(): dais-sandbox-exec next to this executable, else
	// this executable.
	DaisPath string
	// Disk watches the data volume (web.Server.Disk): uploads, deploys and
	// renders are refused below its reserve, and writes that fail for lack
	// of space are told in words. nil: never refused.
	Disk *diskspace.Monitor
	// NoSandbox runs content processes as plain children of the server,
	// as the server's user. Only for tests of this package: production
	// content always goes through the sandbox.
	NoSandbox bool
	// Usage records visits and interactive sessions (nil: none).
	Usage *usage.Recorder
}

// Environment variables that override Applications.BundleMaxSize and
// Applications.BundleMaxFiles for the life of the server (tests use them;
// admins set the configuration keys).
const (
	EnvBundleMaxBytes = "DAIS_BUNDLE_MAX_BYTES"
	EnvBundleMaxFiles = "DAIS_BUNDLE_MAX_FILES"
)

// Service serves the deployment API and the content.
type Service struct {
	o      Options
	st     store.Store
	log    *slog.Logger
	proxy  *process.Proxy
	finder *runtime.Finder

	ctx    context.Context // ends on Stop: deploy tasks are cancelled
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	files  map[string]*fileSite // guid -> static or rendered files
	served map[string]*served   // guid -> what this node serves (served.go)
	// refreshing: guid -> closed when the refresh of that content under
	// way ends (served.go); under mu.
	refreshing map[string]chan struct{}
	// refreshMu: one activation at a time of content another node
	// changed; it guards refreshFailed (guid -> last failed activation).
	refreshMu     sync.Mutex
	refreshFailed map[string]time.Time
	locks         map[int64]*sync.Mutex
	stopped       bool

	// cacheMu: deploys read and fill runtime cache entries under RLock;
	// clearing a runtime's cache takes Lock.
	cacheMu sync.RWMutex

	renders *render.Queue  // bounds the renders running at once
	limits  bundle.Options // from the environment; zero fields: the configuration

	// mode is the sandbox mode chosen at start (Sandbox.Mode resolved).
	mode sandbox.Mode

	// repoDeploys: the contents being deployed from git (git.go).
	repoDeploys inFlight

	// peers: the other live nodes, read at most every peersFor (forward.go).
	peers peerCache

	// tasks wakes the long polls of task output (task.go).
	tasks taskWake
}

// New builds the service; server/api puts its routes on the web server.
func New(o Options) (*Service, error) {
	if o.Config == nil || o.Store == nil {
		return nil, errors.New("deploy: Options.Config and Options.Store are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Stopping == nil {
		o.Stopping = context.Background()
	}
	if o.Node == "" {
		o.Node, _ = os.Hostname()
	}
	limits, err := bundleLimitsFromEnv()
	if err != nil {
		return nil, err
	}
	renders, err := render.FromEnv()
	if err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	cfg := o.Config()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		o: o, st: o.Store, log: o.Logger,
		proxy:  process.NewProxy(o.Logger, cfg.Server.Address),
		finder: runtime.NewFinder(cfg),
		ctx:    ctx, cancel: cancel,
		files:   map[string]*fileSite{},
		locks:   map[int64]*sync.Mutex{},
		renders: renders,
		limits:  limits,
	}
	if !o.NoSandbox {
		path := o.DaisPath
		if path == "" {
			if path, err = sandbox.ExecPath(); err != nil {
				return nil, fmt.Errorf("deploy: %w", err)
			}
		}
		want, err := sandbox.ParseMode(cfg.Sandbox.Mode)
		if err != nil {
			return nil, fmt.Errorf("deploy: Sandbox.Mode: %w", err)
		}
		mode, why, err := sandbox.Choose(ctx, want, o.DaisPath, s.runAs(&store.Content{}))
		if err != nil {
			cancel()
			return nil, fmt.Errorf("deploy: %w", err)
		}
		if mode == sandbox.ModeLandlock {
			if err := checkConnectPorts(cfg.Sandbox.LandlockConnectPorts); err != nil {
				cancel()
				return nil, fmt.Errorf("deploy: %w", err)
			}
		}
		s.mode = mode
		s.log.Info("content processes start in "+string(mode)+" sandboxes built by "+path+" ("+why+")",
			"sandbox_exec", path, "sandbox_mode", string(mode), "reason", why)
		if mode == sandbox.ModeLandlock {
			s.checkReach(filepath.Join(cfg.Server.DataDir, "apps"))
		}
		s.logNetwork(cfg.Applications.OutboundNetwork)
		s.log.Info("content process limits: "+sandbox.LimitsInForce(), "process_limit", cfg.Sandbox.ProcessLimit,
			"memory_limit", cfg.Scheduler.MemoryLimit, "cpu_limit", cfg.Scheduler.CPULimit)
		log := s.log
		sandbox.OnCommand = func(spec *specs.Spec) {
			if log.Enabled(context.Background(), slog.LevelDebug) {
				log.Debug("sandbox spec (environment values left out)", "spec", sandbox.Describe(spec))
			}
		}
	}
	return s, nil
}

// bundleLimitsFromEnv reads DAIS_BUNDLE_MAX_BYTES and DAIS_BUNDLE_MAX_FILES.
func bundleLimitsFromEnv() (bundle.Options, error) {
	var o bundle.Options
	if v := os.Getenv(EnvBundleMaxBytes); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return o, fmt.Errorf("deploy: %s=%q must be a positive number of bytes; or unset it and set Applications.BundleMaxSize", EnvBundleMaxBytes, v)
		}
		o.MaxBytes = n
	}
	if v := os.Getenv(EnvBundleMaxFiles); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return o, fmt.Errorf("deploy: %s=%q must be a positive number of files; or unset it and set Applications.BundleMaxFiles", EnvBundleMaxFiles, v)
		}
		o.MaxFiles = n
	}
	return o, nil
}

// bundleLimits bounds the bundle of a deploy starting now: the
// configuration's Applications.BundleMaxSize and BundleMaxFiles as they
// are at this moment (a reload changes them for later deploys), unless
// the environment overrides them.
func (s *Service) bundleLimits() bundle.Options {
	a := s.o.Config().Applications
	o := bundle.Options{MaxBytes: a.BundleMaxSize, MaxFiles: a.BundleMaxFiles}
	if s.limits.MaxBytes > 0 {
		o.MaxBytes = s.limits.MaxBytes
	}
	if s.limits.MaxFiles > 0 {
		o.MaxFiles = s.limits.MaxFiles
	}
	return o
}

// Name is the component's name.
func (s *Service) Name() string { return "deploy" }

// Node is the name of this node: what its jobs and tasks record.
func (s *Service) Node() string { return s.o.Node }

// Start fails the deploys a previous run left unfinished on this node,
// brings back every deployed content, and starts polling the branches of
// git-backed content.
func (s *Service) Start(ctx context.Context) error {
	node := s.o.Node
	if s.st.Dialect() == "sqlite" {
		node = "" // one server; its hostname may change between runs (a new container)
	}
	if n, err := s.st.FailUnfinishedTasks(ctx, node, store.TaskDeploy, "the server stopped during the deploy; deploy again", time.Now()); err != nil {
		return fmt.Errorf("fail unfinished deploys: %w", err)
	} else if n > 0 {
		s.log.Warn("deploys left unfinished by the last run marked failed", "count", n)
	}
	const renderStopped = "the server stopped during the render (it outlasted [Server] StopTimeout, or the server was killed); render again"
	if _, err := s.st.FailRunningRenders(ctx, node, renderStopped, time.Now()); err != nil {
		return fmt.Errorf("fail unfinished renders: %w", err)
	}
	if n, err := s.st.FailUnfinishedTasks(ctx, node, store.TaskRender, renderStopped, time.Now()); err != nil {
		return fmt.Errorf("fail unfinished render tasks: %w", err)
	} else if n > 0 {
		s.log.Warn("renders left unfinished by the last run marked failed", "count", n)
	}
	if _, err := s.st.FailUnfinishedTasks(ctx, node, store.TaskGit, "the server stopped during the task; ask again", time.Now()); err != nil {
		return fmt.Errorf("fail unfinished git tasks: %w", err)
	}
	if err := s.cleanLeftovers(ctx, s.st.Dialect() != "sqlite"); err != nil {
		// Not fatal: the next start tries again.
		s.log.Warn("look for what earlier runs left behind", logKeyErr, err)
	}
	s.wg.Go(func() { s.pollRepositories(s.ctx) }) // git.go
	all, _, err := s.st.ListContent(ctx, store.ContentFilter{Deployed: true})
	if err != nil {
		return fmt.Errorf("list content: %w", err)
	}
	for i := range all {
		c := &all[i]
		if c.BundleID == nil || c.Locked {
			continue
		}
		if err := s.activate(ctx, c); err != nil {
			// One broken content must not keep the server down.
			s.log.Error("cannot serve content; deploy it again", logKeyContent, c.GUID, logKeyErr, err)
		}
	}
	return nil
}

// Stop cancels deploys in progress (their tasks fail) and stops every
// content process within ctx.
func (s *Service) Stop(ctx context.Context) error {
	s.mu.Lock()
	s.stopped = true
	for _, f := range s.files {
		f.close()
	}
	s.files = map[string]*fileSite{}
	s.mu.Unlock()
	s.cancel()
	// App and API processes stop now (TERM, then KILL at the deadline),
	// while renders run on to completion within ctx.
	var errs []error
	var emu sync.Mutex
	stopPools := func() {
		var wg sync.WaitGroup
		for _, guid := range s.proxyGUIDs() {
			if p := s.proxy.Remove(guid); p != nil {
				wg.Go(func() {
					if err := p.Stop(ctx); err != nil {
						emu.Lock()
						errs = append(errs, fmt.Errorf("stop processes of %s: %w", guid, err))
						emu.Unlock()
					}
				})
			}
		}
		wg.Wait()
	}
	pools := make(chan struct{})
	go func() { stopPools(); close(pools) }()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("renders did not finish within Server.StopTimeout; they are killed with the server and marked failed at the next start")
	}
	<-pools
	stopPools() // a pool a deploy set meanwhile
	emu.Lock()
	defer emu.Unlock()
	return errors.Join(errs...)
}

// Reload takes the new running configuration: new runtimes are found on
// the next deploy; pools keep their settings until they are rebuilt.
func (s *Service) Reload(ctx context.Context, cfg *config.Config) error {
	s.proxy.SetPublicURL(cfg.Server.Address)
	return nil
}

// contentLock serialises deploys of one content.
func (s *Service) contentLock(id int64) *sync.Mutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.locks[id]
	if l == nil {
		l = &sync.Mutex{}
		s.locks[id] = l
	}
	return l
}

// Paths under DataDir.
func (s *Service) contentDir(id int64) string {
	return filepath.Join(s.o.Config().Server.DataDir, "apps", strconv.FormatInt(id, 10))
}

func (s *Service) bundleDir(contentID, bundleID int64) string {
	return filepath.Join(s.contentDir(contentID), strconv.FormatInt(bundleID, 10))
}

// archivePath is where an uploaded bundle is kept.
func (s *Service) archivePath(contentID, bundleID int64) string {
	return filepath.Join(s.bundleDir(contentID, bundleID), "bundle.tar.gz")
}

func (s *Service) logDir(c *store.Content) string {
	return filepath.Join(s.contentDir(c.ID), "logs")
}

// runAs is the user content runs as.
func (s *Service) runAs(c *store.Content) string {
	if c.RunAs != "" {
		return c.RunAs
	}
	if r := s.o.Config().Applications.RunAs; r != "" {
		return r
	}
	return "rstudio-connect"
}

// checkReach logs an error when the content's default user could not
// reach dir (DataDir/apps), under which every content's directories lie:
// in Landlock mode, under a server with root, content runs as that user
// and needs search permission on each directory above its own (a --tmpfs
// /data or a host directory of mode 0700, say). Every start would fail.
func (s *Service) checkReach(dir string) {
	if os.Geteuid() != 0 {
		return // content runs as the server's user, which made dir
	}
	name := s.runAs(&store.Content{})
	if d, why := sandbox.UnsearchableBy(dir, name); d != "" {
		s.log.Error("content cannot start: "+why, "run_as", name, "directory", d)
	}
}

// giveTo makes dir owned by the content's user, so a sandboxed process
// may write it. Without root (tests) there is nothing to do.
func (s *Service) giveTo(c *store.Content, dirs ...string) error {
	if s.o.NoSandbox || os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup(s.runAs(c))
	if err != nil {
		return fmt.Errorf("run-as user %q: %w (create it, or set Applications.RunAs)", s.runAs(c), err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, d := range dirs {
		if err := filepath.Walk(d, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, uid, gid)
		}); err != nil {
			return fmt.Errorf("give %s to %s: %w", d, u.Username, err)
		}
	}
	return nil
}

func (s *Service) proxyGUIDs() []string {
	all, _, err := s.st.ListContent(context.Background(), store.ContentFilter{Deployed: true})
	if err != nil {
		return nil
	}
	var out []string
	for _, c := range all {
		if s.proxy.Pool(c.GUID) != nil {
			out = append(out, c.GUID)
		}
	}
	return out
}

// checkConnectPorts refuses a Sandbox.LandlockConnectPorts that lets content
// connect into the kernel's ephemeral port range, where the ports of content
// processes are allocated.
func checkConnectPorts(ports string) error {
	rs, err := sandbox.ParsePorts(ports)
	if err != nil {
		return fmt.Errorf("Sandbox.LandlockConnectPorts: %w", err)
	}
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return nil // not Linux's procfs: nothing to compare with
	}
	var first, last int
	if _, err := fmt.Sscan(string(b), &first, &last); err != nil {
		return nil
	}
	if sandbox.Overlaps(rs, first, last) {
		return fmt.Errorf("Sandbox.LandlockConnectPorts = %s reaches into the ephemeral port range %d-%d (net.ipv4.ip_local_port_range), where content processes get their ports: content could connect to other content; leave that range out", ports, first, last)
	}
	return nil
}

// logNetwork says at start what network content gets in this sandbox mode
// (docs/sandbox.md, "Network").
func (s *Service) logNetwork(outbound bool) {
	if s.mode == sandbox.ModeLandlock {
		s.log.Info("content network: Landlock mode shares the server's network namespace; Landlock's TCP rules allow connections to Sandbox.LandlockConnectPorts only (UDP is not restricted)")
		return
	}
	helper, err := sandbox.PrepareOutbound()
	switch {
	case err != nil && outbound:
		s.log.Warn("content network: each content process has its own network namespace, but outbound access (Applications.OutboundNetwork = true) cannot work here: content processes will fail to start until this is fixed", logKeyErr, err)
	case err != nil:
		s.log.Info("content network: each content process has its own network namespace with its loopback only (Applications.OutboundNetwork = false)")
	case outbound:
		s.log.Info("content network: each content process has its own network namespace; outbound access through "+helper+", never to the container's loopback (a content's outbound_network may turn it off)", "net_helper", helper)
	default:
		s.log.Info("content network: each content process has its own network namespace with its loopback only (Applications.OutboundNetwork = false; a content's outbound_network may turn it on)", "net_helper", helper)
	}
}

// network is what a content's processes may reach: its outbound_network,
// else Applications.OutboundNetwork.
// resourceLimits sets o's resource limits: the content's memory_limit and
// cpu_limit over the [Scheduler] defaults, [Sandbox] ProcessLimit,
// TmpSize and WorkDirLimit.
func (s *Service) resourceLimits(c *store.Content, o *sandbox.Options) {
	cfg := s.o.Config()
	o.MemoryLimit, o.CPULimit = cfg.Scheduler.MemoryLimit, cfg.Scheduler.CPULimit
	if c.MemoryLimit != nil {
		o.MemoryLimit = *c.MemoryLimit
	}
	if c.CPULimit != nil {
		o.CPULimit = *c.CPULimit
	}
	o.ProcessLimit, o.TmpSize, o.DiskLimit = cfg.Sandbox.ProcessLimit, cfg.Sandbox.TmpSize, cfg.Sandbox.WorkDirLimit
}

func (s *Service) network(c *store.Content) sandbox.Network {
	on := s.o.Config().Applications.OutboundNetwork
	if c.OutboundNetwork != nil {
		on = *c.OutboundNetwork
	}
	if on {
		return sandbox.NetworkOutbound
	}
	return sandbox.NetworkLoopback
}
