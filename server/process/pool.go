// Package process runs the processes of apps and APIs in pools, one pool
// per deployed bundle, and reverse-proxies requests to them (Proxy).
//
// A Pool starts processes through a Launcher, a function that, given a
// port and a log writer, starts one process that will serve HTTP on
// 127.0.0.1:port, in its own network namespace when sandboxed (the deploy
// code builds it from sandbox.Command and content.LaunchArgs; tests use
// CommandLauncher with plain programs). The Process it returns says how to
// reach that port (Process.Dial): dais never assumes the server's loopback:
//
//	pool, err := process.New(process.Options{
//		Name: guid, Launch: launcher, LogDir: dataDir + "/logs/" + guid,
//		Min: cfg.Scheduler.MinProcesses, Max: cfg.Scheduler.MaxProcesses,
//		IdleTimeout: ..., InitTimeout: ..., Logger: log,
//	})
//	lease, err := pool.Acquire(ctx) // least-loaded ready process
//	lease, err = pool.AcquireWorker(id) // the process a session started on
//	conn, err := lease.Dial(ctx)    // inside the process's network namespace
//	lease.Release()
//	pool.Drain(ctx) // on redeploy: no new requests, wait for in-flight ones, stop
//
// Behaviour:
//   - Min processes are kept running (started at New, replaced after a crash);
//     at most Max run. A process counts as ready once its port accepts a
//     connection through Process.Dial (Options.Ready changes the test),
//     within InitTimeout.
//   - Acquire picks the ready process with the fewest requests in flight;
//     when none is ready it starts one (if below Max) and waits for it; when
//     every process has MaxConnsPerProcess requests in flight it starts
//     another in the background (if below Max) and still answers at once.
//   - A process that exits without being asked to (a crash, a failed start,
//     an init timeout) is counted; the next start waits an exponential
//     backoff (BackoffInitial doubling up to BackoffMax); a process that had
//     been ready for BackoffReset before crashing resets the count.
//   - Each process has a worker id (Lease.Worker), unique in the pool:
//     AcquireWorker hands out that process, whatever its load, so that
//     every request of a session reaches the process that holds it (the
//     proxy carries the id in the URL, as Posit Connect does). A request
//     naming a process that is gone is given one by Acquire, and every
//     later request naming it goes to that same process (Remap).
//   - A process above Min with nothing in flight for IdleTimeout is stopped.
//   - Stopping is SIGTERM, then SIGKILL after StopTimeout.
//   - Each process's stdout and stderr go to its own file in LogDir,
//     "<UTC start time>-<node>-<n>.log" (the node's name keeps nodes
//     sharing one data directory apart); the newest LogKeep files are kept.
package process

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Log attribute keys.
const (
	keyPool = "content"
	keyProc = "process"
	keyPort = "port"
	keyErr  = "err"
	keyLog  = "log"
	keyWait = "backoff"
)

// Errors callers branch on.
var (
	// ErrClosed is returned by Acquire on a pool that is stopping or draining.
	ErrClosed = errors.New("process pool is stopped")
	// ErrNotReady is returned by Acquire when no process became ready in time.
	ErrNotReady = errors.New("no content process became ready")
	// ErrNoWorker is returned by AcquireWorker when the pool has no
	// process of that worker id (any more).
	ErrNoWorker = errors.New("no content process of that worker id")
)

// Process is a started content process.
type Process interface {
	// Wait waits for the process to exit (called once, by the pool).
	Wait() error
	// Signal sends a signal (SIGTERM to stop, SIGKILL after StopTimeout).
	Signal(os.Signal) error
	// Dial opens a connection to the port the process serves on: inside
	// its own network namespace for a sandbox of namespaces mode
	// (sandbox.Cmd.DialContext), a TCP connection to 127.0.0.1:port for a
	// process in the server's (LoopbackDial: Landlock mode, no sandbox).
	Dial(ctx context.Context) (net.Conn, error)
}

// DialFunc opens a connection to one process's port.
type DialFunc func(ctx context.Context) (net.Conn, error)

// LoopbackDial dials 127.0.0.1:port from the server's network namespace.
func LoopbackDial(port int) DialFunc {
	addr := loopbackAddr(port)
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
}

func loopbackAddr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// Launcher starts one process that will serve HTTP on 127.0.0.1:port (of
// its own network namespace, when it has one), writing its output to log.
// ctx lives as long as the pool.
type Launcher func(ctx context.Context, port int, log io.Writer) (Process, error)

// ExecProcess adapts a started *exec.Cmd serving on 127.0.0.1:port of the
// server's network namespace. When the command runs in its own process
// group (SysProcAttr.Setpgid or Setsid), signals go to the group.
func ExecProcess(cmd *exec.Cmd, port int) Process { return execProcess{cmd, LoopbackDial(port)} }

type execProcess struct {
	cmd  *exec.Cmd
	dial DialFunc
}

func (e execProcess) Wait() error { return e.cmd.Wait() }

func (e execProcess) Dial(ctx context.Context) (net.Conn, error) { return e.dial(ctx) }

func (e execProcess) Signal(sig os.Signal) error {
	if a := e.cmd.SysProcAttr; a != nil && (a.Setpgid || a.Setsid) {
		if s, ok := sig.(syscall.Signal); ok {
			if err := syscall.Kill(-e.cmd.Process.Pid, s); err == nil {
				return nil
			}
		}
	}
	return e.cmd.Process.Signal(sig)
}

// CommandLauncher makes a Launcher of a function building an unstarted
// *exec.Cmd for a port: output goes to the log, the process gets its own
// process group.
func CommandLauncher(build func(port int) (*exec.Cmd, error)) Launcher {
	return func(ctx context.Context, port int, log io.Writer) (Process, error) {
		cmd, err := build(port)
		if err != nil {
			return nil, err
		}
		cmd.Stdout, cmd.Stderr = log, log
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.Setpgid = true
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		return ExecProcess(cmd, port), nil
	}
}

// Options configure a Pool. Zero durations and counts take the defaults.
type Options struct {
	// Name identifies the pool in logs (the content GUID).
	Name string
	// Launch starts one process. Required.
	Launch Launcher
	// Min processes kept running. Default 0.
	Min int
	// Max processes at once. Default 3 (Scheduler.MaxProcesses).
	Max int
	// MaxConnsPerProcess is the load above which another process is started.
	// Default 20.
	MaxConnsPerProcess int
	// IdleTimeout stops a process above Min with nothing in flight for this
	// long. Default 120s; negative: never.
	IdleTimeout time.Duration
	// InitTimeout bounds a start, from launch to ready. Default 60s.
	InitTimeout time.Duration
	// StopTimeout is the wait between SIGTERM and SIGKILL. Default 10s.
	StopTimeout time.Duration
	// BackoffInitial is the wait before restarting after one failure. Default 1s.
	BackoffInitial time.Duration
	// BackoffMax bounds the doubling. Default 60s.
	BackoffMax time.Duration
	// BackoffReset: a process ready this long before it crashed resets the
	// failure count. Default 30s.
	BackoffReset time.Duration
	// Ready tells whether the process reached through dial serves.
	// Default: a connection succeeds.
	Ready func(ctx context.Context, dial DialFunc) error
	// LogDir receives one log file per process; created if missing. "" discards output.
	LogDir string
	// Node names this server in log file names: nodes of a cluster share
	// LogDir on the shared data directory. "" leaves it out.
	Node string
	// LogKeep is how many log files are kept in LogDir. Default 20.
	LogKeep int
	// Logger for the pool's own events. Default slog.Default().
	Logger *slog.Logger
	// Pin keeps each session of the app on the process that started it
	// (Shiny apps): the proxy names the process in the URLs of the app's
	// pages (Proxy). Default false: every request goes to the least busy
	// process.
	Pin bool
}

func (o *Options) defaults() error {
	if o.Launch == nil {
		return errors.New("process pool: no Launcher")
	}
	if o.Max <= 0 {
		o.Max = 3
	}
	if o.Min < 0 {
		o.Min = 0
	}
	if o.Min > o.Max {
		return fmt.Errorf("process pool %s: min processes %d above max processes %d; lower MinProcesses or raise MaxProcesses", o.Name, o.Min, o.Max)
	}
	if o.MaxConnsPerProcess <= 0 {
		o.MaxConnsPerProcess = 20
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 120 * time.Second
	}
	if o.InitTimeout <= 0 {
		o.InitTimeout = 60 * time.Second
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = 10 * time.Second
	}
	if o.BackoffInitial <= 0 {
		o.BackoffInitial = time.Second
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 60 * time.Second
	}
	if o.BackoffReset <= 0 {
		o.BackoffReset = 30 * time.Second
	}
	if o.Ready == nil {
		o.Ready = tcpReady
	}
	if o.LogKeep <= 0 {
		o.LogKeep = 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

func tcpReady(ctx context.Context, dial DialFunc) error {
	c, err := dial(ctx)
	if err != nil {
		return err
	}
	return c.Close()
}

// HTTPReady is an Options.Ready that waits for any HTTP answer to GET path.
func HTTPReady(path string) func(ctx context.Context, dial DialFunc) error {
	return func(ctx context.Context, dial DialFunc) error {
		c, err := dial(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		if dl, ok := ctx.Deadline(); ok {
			c.SetDeadline(dl)
		} else {
			c.SetDeadline(time.Now().Add(5 * time.Second))
		}
		fmt.Fprintf(c, "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path)
		buf := make([]byte, 5)
		if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "HTTP/" {
			return fmt.Errorf("no HTTP answer to GET %s: %v", path, err)
		}
		return nil
	}
}

type state int

const (
	starting state = iota
	ready
	stopping
)

type proc struct {
	id       int
	worker   string // Lease.Worker
	addr     string // 127.0.0.1:port, of its own network namespace when it has one
	key      string // unique among all processes: the proxy's connection cache key
	state    state
	active   int
	lastUsed time.Time
	readyAt  time.Time
	logPath  string
	p        Process
	stopReq  bool
	exited   chan struct{}
}

// Pool is the set of processes of one deployed bundle.
type Pool struct {
	opts Options
	log  *slog.Logger

	ctx    context.Context // lives until Stop is done; given to the Launcher
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	procs     []*proc
	nextID    int
	failures  int
	nextStart time.Time
	lastErr   error
	failSeq   int // failures ever, so a waiter sees one that happened while it waited
	closed    bool
	stopped   chan struct{} // closed by Stop
	draining  bool
	changed   chan struct{} // closed and replaced on every change
	served    int64
	// remap sends the worker ids of processes that are gone (a stopped
	// pool's, another node's, one that crashed) to the process that took
	// them over (Remap), so that a page of a gone process keeps one process.
	remap map[string]*proc
}

// maxRemap bounds Pool.remap: the ids come from clients.
const maxRemap = 10000

// New makes a pool and starts its Min processes (without waiting for them;
// see WaitReady) and its idle reaper.
func New(opts Options) (*Pool, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	if opts.LogDir != "" {
		if err := os.MkdirAll(opts.LogDir, 0o750); err != nil {
			return nil, fmt.Errorf("process pool %s: log directory: %w", opts.Name, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pool{opts: opts, log: opts.Logger.With(keyPool, opts.Name), ctx: ctx, cancel: cancel, changed: make(chan struct{}), stopped: make(chan struct{})}
	p.mu.Lock()
	p.ensureMinLocked()
	p.mu.Unlock()
	if opts.IdleTimeout > 0 {
		p.wg.Add(1)
		go p.reaper()
	}
	return p, nil
}

func (p *Pool) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *Pool) ensureMinLocked() {
	for !p.closed && !p.draining && len(p.procs) < p.opts.Min {
		p.startLocked()
	}
}

func (p *Pool) startLocked() {
	p.nextID++
	pr := &proc{id: p.nextID, worker: p.newWorkerLocked(), state: starting, exited: make(chan struct{})}
	p.procs = append(p.procs, pr)
	wait := time.Until(p.nextStart)
	p.wg.Add(1)
	go p.run(pr, wait)
}

// run is one process's life: backoff, launch, readiness, exit.
func (p *Pool) run(pr *proc, wait time.Duration) {
	defer p.wg.Done()
	log := p.log.With(keyProc, pr.id)
	err := p.launch(pr, wait, log)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.procs = slices.DeleteFunc(p.procs, func(x *proc) bool { return x == pr })
	maps.DeleteFunc(p.remap, func(_ string, x *proc) bool { return x == pr })
	if pr.stopReq || p.closed {
		log.Info("content process stopped")
	} else {
		if !pr.readyAt.IsZero() && time.Since(pr.readyAt) >= p.opts.BackoffReset {
			p.failures = 0
		}
		p.failures++
		p.failSeq++
		backoff := p.opts.BackoffInitial << min(p.failures-1, 20)
		if backoff > p.opts.BackoffMax || backoff <= 0 {
			backoff = p.opts.BackoffMax
		}
		p.nextStart = time.Now().Add(backoff)
		if pr.logPath != "" {
			err = fmt.Errorf("%w; see its log %s", err, pr.logPath)
		}
		p.lastErr = err
		log.Warn("content process failed", keyErr, err, keyWait, backoff)
	}
	p.ensureMinLocked()
	p.notifyLocked()
}

// launch returns why the process ended.
func (p *Pool) launch(pr *proc, wait time.Duration, log *slog.Logger) error {
	if wait > 0 {
		select {
		case <-time.After(wait):
		case <-p.stopped:
			return nil
		}
	}
	p.mu.Lock()
	stop := pr.stopReq || p.closed
	p.mu.Unlock()
	if stop {
		return nil
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	out, path, err := p.openLog(pr.id)
	if err != nil {
		return err
	}
	defer out.Close()
	p.mu.Lock()
	pr.logPath = path
	p.mu.Unlock()
	proc, err := p.opts.Launch(p.ctx, port, out)
	if err != nil {
		fmt.Fprintf(out, "dais: start failed: %v\n", err)
		return fmt.Errorf("start content process: %w", err)
	}
	addr := loopbackAddr(port)
	p.mu.Lock()
	pr.p, pr.addr, pr.key = proc, addr, "p"+strconv.FormatInt(procSeq.Add(1), 10)+".dais.invalid"
	dial := proc.Dial
	stop = pr.stopReq || p.closed
	p.mu.Unlock()
	log.Info("content process started", keyPort, port, keyLog, path)

	var waitErr error
	go func() {
		waitErr = proc.Wait()
		close(pr.exited)
	}()
	if stop {
		go p.terminate(pr)
	}

	// Readiness: poll until it answers, exits, or InitTimeout passes.
	initCtx, cancel := context.WithTimeout(p.ctx, p.opts.InitTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		attempt, acancel := context.WithTimeout(initCtx, time.Second)
		err := p.opts.Ready(attempt, dial)
		acancel()
		if err == nil {
			break
		}
		select {
		case <-pr.exited:
			return fmt.Errorf("content process exited before it was ready (%v)", exitText(waitErr))
		case <-initCtx.Done():
			log.Warn("content process not ready in time; stopping it", "init_timeout", p.opts.InitTimeout)
			// Not stopReq: this counts as a failure.
			p.mu.Lock()
			pr.state = stopping
			p.mu.Unlock()
			p.terminate(pr)
			<-pr.exited
			return fmt.Errorf("content process did not accept connections on %s within the init timeout of %s; raise InitTimeout or check the app", addr, p.opts.InitTimeout)
		case <-tick.C:
		}
	}
	p.mu.Lock()
	if pr.state == starting {
		pr.state = ready
	}
	pr.readyAt, pr.lastUsed = time.Now(), time.Now()
	p.notifyLocked()
	p.mu.Unlock()
	log.Info("content process ready", keyPort, port)
	<-pr.exited
	return fmt.Errorf("content process exited (%v)", exitText(waitErr))
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// WorkerPattern is the form of a worker id: lower-case letters and digits
// (what Posit Connect's ids are, and what shinyloadtest reads from
// <base href="_w_...">).
const WorkerPattern = `[0-9a-z]{1,64}`

// newWorkerLocked makes a worker id unique in the pool: 8 hex digits
// naming the node (so that nodes sharing clients never hand out the same
// id) and 8 random ones.
func (p *Pool) newWorkerLocked() string {
	for {
		var b [4]byte
		rand.Read(b[:])
		id := nodeTag(p.opts.Node) + hex.EncodeToString(b[:])
		if !slices.ContainsFunc(p.procs, func(x *proc) bool { return x.worker == id }) {
			return id
		}
	}
}

// WorkerNode is the part of a worker id that names the node running it
// (NodeTag of its name); "" for an id not of dais's form.
func WorkerNode(id string) string {
	if len(id) != 16 {
		return ""
	}
	return id[:8]
}

// NodeTag is what the worker ids of a node start with: 8 hex digits of
// FNV-1a of its name ("" for a server with no name).
func NodeTag(node string) string { return nodeTag(node) }

func nodeTag(node string) string {
	h := uint32(2166136261)
	for i := 0; i < len(node); i++ {
		h ^= uint32(node[i])
		h *= 16777619
	}
	return fmt.Sprintf("%08x", h)
}

// procSeq numbers every process of every pool (Lease.Key).
var procSeq atomic.Int64

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("allocate a port on 127.0.0.1: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (p *Pool) openLog(id int) (io.WriteCloser, string, error) {
	if p.opts.LogDir == "" {
		return nopCloser{io.Discard}, "", nil
	}
	p.pruneLogs()
	node := ""
	if p.opts.Node != "" {
		node = logNameUnsafe.ReplaceAllString(p.opts.Node, "_") + "-"
	}
	path := filepath.Join(p.opts.LogDir, fmt.Sprintf("%s-%s%d.log", time.Now().UTC().Format("20060102T150405.000Z"), node, id))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, "", fmt.Errorf("open process log: %w", err)
	}
	return f, path, nil
}

// logNameUnsafe is what a node name may not bring into a file name.
var logNameUnsafe = regexp.MustCompile(`[^A-Za-z0-9._-]`)

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// pruneLogs keeps the newest LogKeep-1 logs, making room for one more.
func (p *Pool) pruneLogs() {
	ents, err := os.ReadDir(p.opts.LogDir)
	if err != nil {
		return
	}
	var logs []string
	for _, e := range ents {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".log") {
			logs = append(logs, e.Name())
		}
	}
	slices.Sort(logs) // names start with the UTC time
	for len(logs) >= p.opts.LogKeep {
		os.Remove(filepath.Join(p.opts.LogDir, logs[0]))
		logs = logs[1:]
	}
}

// terminateLocked asks a process to stop: SIGTERM now, SIGKILL after StopTimeout.
func (p *Pool) terminateLocked(pr *proc) {
	pr.stopReq = true
	pr.state = stopping
	if pr.p != nil {
		go p.terminate(pr)
	}
}

func (p *Pool) terminate(pr *proc) {
	pr.p.Signal(syscall.SIGTERM)
	select {
	case <-pr.exited:
	case <-time.After(p.opts.StopTimeout):
		p.log.Warn("content process ignored SIGTERM; killing it", keyProc, pr.id, "stop_timeout", p.opts.StopTimeout)
		pr.p.Signal(syscall.SIGKILL)
	}
}

func (p *Pool) reaper() {
	defer p.wg.Done()
	every := max(min(p.opts.IdleTimeout/4, time.Second), 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		live := 0
		for _, pr := range p.procs {
			if pr.state != stopping {
				live++
			}
		}
		for _, pr := range p.procs {
			if live <= p.opts.Min {
				break
			}
			if pr.state == ready && pr.active == 0 && time.Since(pr.lastUsed) >= p.opts.IdleTimeout {
				p.log.Info("content process idle; stopping it", keyProc, pr.id, "idle_timeout", p.opts.IdleTimeout)
				p.terminateLocked(pr)
				live--
			}
		}
		p.mu.Unlock()
	}
}

// Lease is one request's hold on a process.
type Lease struct {
	p        *Pool
	pr       *proc
	released atomic.Bool
}

// Addr is where the process listens: 127.0.0.1:port, in its own network
// namespace when it has one. Reach it with Dial.
func (l *Lease) Addr() string { return l.pr.addr }

// Dial opens a connection to the process (Process.Dial).
func (l *Lease) Dial(ctx context.Context) (net.Conn, error) { return l.pr.p.Dial(ctx) }

// Worker is the process's worker id in its pool (AcquireWorker).
func (l *Lease) Worker() string { return l.pr.worker }

// Key identifies the process among all processes of all pools, as a host
// name: what a cache of connections to it is keyed by.
func (l *Lease) Key() string { return l.pr.key }

// Release ends the hold; call it when the request (or WebSocket) is done.
func (l *Lease) Release() {
	if !l.released.CompareAndSwap(false, true) {
		return
	}
	l.p.mu.Lock()
	l.pr.active--
	l.pr.lastUsed = time.Now()
	l.p.notifyLocked()
	l.p.mu.Unlock()
}

// Acquire returns the least-loaded ready process, starting one when none
// is ready. It waits at most InitTimeout plus any pending backoff.
func (p *Pool) Acquire(ctx context.Context) (*Lease, error) {
	var deadline <-chan time.Time
	failSeq := -1
	for {
		p.mu.Lock()
		if p.closed || p.draining {
			p.mu.Unlock()
			return nil, ErrClosed
		}
		var best *proc
		live, startingN := 0, 0
		for _, pr := range p.procs {
			switch pr.state {
			case ready:
				live++
				if best == nil || pr.active < best.active {
					best = pr
				}
			case starting:
				live++
				startingN++
			}
		}
		if best != nil {
			if best.active >= p.opts.MaxConnsPerProcess && startingN == 0 && live < p.opts.Max {
				p.startLocked()
			}
			best.active++
			p.served++
			p.mu.Unlock()
			return &Lease{p: p, pr: best}, nil
		}
		if failSeq >= 0 && p.failSeq != failSeq {
			// A start failed while this request waited: answer now
			// rather than after the backoff and another attempt.
			err := p.lastErr
			p.mu.Unlock()
			return nil, fmt.Errorf("%w: %v", ErrNotReady, err)
		}
		failSeq = p.failSeq
		if startingN == 0 && live < p.opts.Max {
			p.startLocked()
		}
		if deadline == nil {
			deadline = time.After(p.opts.InitTimeout + p.opts.StopTimeout + max(0, time.Until(p.nextStart)) + time.Second)
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline:
			p.mu.Lock()
			err := p.lastErr
			p.mu.Unlock()
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrNotReady, err)
			}
			return nil, ErrNotReady
		}
	}
}

// AcquireWorker returns the ready process of worker id, or the one Remap
// gave that id, whatever its load: a session's requests must reach the
// process that holds the session. It answers at once, also while the pool
// drains (a redeploy's old pool serves its sessions until they end):
// ErrNoWorker when no such process is ready, ErrClosed once stopped.
func (p *Pool) AcquireWorker(id string) (*Lease, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	var pr *proc
	for _, x := range p.procs {
		if x.worker == id {
			pr = x
			break
		}
	}
	if pr == nil {
		pr = p.remap[id]
	}
	if pr == nil || pr.state != ready {
		return nil, ErrNoWorker
	}
	pr.active++
	p.served++
	return &Lease{p: p, pr: pr}, nil
}

// HasWorker says whether a live process of the pool has worker id.
func (p *Pool) HasWorker(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.closed && slices.ContainsFunc(p.procs, func(x *proc) bool { return x.worker == id && x.state != stopping })
}

// Remap sends later requests for worker id, a process that is gone, to
// the process of l (from Acquire): a page whose process went away then
// keeps one process for its new session.
func (p *Pool) Remap(id string, l *Lease) {
	if id == "" || l.p != p || id == l.pr.worker {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !slices.Contains(p.procs, l.pr) {
		return
	}
	if p.remap == nil || len(p.remap) >= maxRemap {
		p.remap = map[string]*proc{}
	}
	p.remap[id] = l.pr
}

// Closed says whether the pool is stopped (or stopping).
func (p *Pool) Closed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// Pinned says whether the pool keeps sessions on one process (Options.Pin).
func (p *Pool) Pinned() bool { return p.opts.Pin }

// WaitReady waits until max(Min, 1) processes are ready, starting one if
// needed: a new pool is warmed with it before traffic is switched to it.
func (p *Pool) WaitReady(ctx context.Context) error {
	want := max(p.opts.Min, 1)
	deadline := time.After(p.opts.InitTimeout + time.Second)
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return ErrClosed
		}
		n, live := 0, 0
		for _, pr := range p.procs {
			if pr.state == ready {
				n++
			}
			if pr.state != stopping {
				live++
			}
		}
		if n >= want {
			p.mu.Unlock()
			return nil
		}
		if live < want && p.failures == 0 {
			p.startLocked()
		}
		ch, lastErr := p.changed, p.lastErr
		p.mu.Unlock()
		if lastErr != nil {
			return fmt.Errorf("%w: %v", ErrNotReady, lastErr)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return ErrNotReady
		}
	}
}

// Drain stops handing out processes, waits for the requests in flight to
// finish (or ctx to end), then stops the pool.
func (p *Pool) Drain(ctx context.Context) error {
	p.mu.Lock()
	p.draining = true
	p.notifyLocked()
	for {
		busy := 0
		for _, pr := range p.procs {
			busy += pr.active
		}
		if busy == 0 {
			break
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			p.log.Warn("drain cut short; stopping with requests in flight", keyErr, ctx.Err())
			return p.Stop(context.Background())
		}
		p.mu.Lock()
	}
	p.mu.Unlock()
	return p.Stop(ctx)
}

// Stop stops every process (SIGTERM, SIGKILL after StopTimeout) and waits
// for them, or for ctx.
func (p *Pool) Stop(ctx context.Context) error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.stopped)
		for _, pr := range p.procs {
			p.terminateLocked(pr)
		}
		p.notifyLocked()
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() {
		// Processes waiting for their backoff see p.stopped; launched ones
		// were terminated above.
		p.waitProcs()
		p.cancel()
		p.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		p.cancel()
		return ctx.Err()
	}
}

// waitProcs waits until every process is gone.
func (p *Pool) waitProcs() {
	for {
		p.mu.Lock()
		n, ch := len(p.procs), p.changed
		p.mu.Unlock()
		if n == 0 {
			return
		}
		<-ch
	}
}

// ProcessInfo describes one process, for the API and the dashboard.
type ProcessInfo struct {
	ID      int
	Worker  string // Lease.Worker
	Addr    string // 127.0.0.1:port, in its own network namespace when it has one
	Key     string // Lease.Key
	State   string // "starting", "ready", "stopping"
	Active  int    // requests in flight
	LogPath string
}

// Stats is a snapshot of the pool.
type Stats struct {
	Processes []ProcessInfo
	Served    int64 // requests handed out since New
	Failures  int   // consecutive failures counted for the backoff
	LastError string
}

// Stats returns a snapshot.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Stats{Served: p.served, Failures: p.failures}
	if p.lastErr != nil {
		s.LastError = p.lastErr.Error()
	}
	for _, pr := range p.procs {
		s.Processes = append(s.Processes, ProcessInfo{
			ID: pr.id, Worker: pr.worker, Addr: pr.addr, Key: pr.key, State: [...]string{"starting", "ready", "stopping"}[pr.state],
			Active: pr.active, LogPath: pr.logPath,
		})
	}
	return s
}
