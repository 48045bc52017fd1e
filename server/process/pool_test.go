package process

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/config"
)

// int64Counter counts launches and remembers when they happened.
type int64Counter struct {
	n     atomic.Int64
	mu    sync.Mutex
	times []time.Time
}

func (c *int64Counter) add() {
	c.n.Add(1)
	c.mu.Lock()
	c.times = append(c.times, time.Now())
	c.mu.Unlock()
}
func (c *int64Counter) get() int64 { return c.n.Load() }
func (c *int64Counter) at() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.times)
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newPool(t *testing.T, o Options) *Pool {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quietLogger()
	}
	if o.Name == "" {
		o.Name = "test"
	}
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := p.Stop(ctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return p
}

func readyCount(p *Pool) int {
	n := 0
	for _, pr := range p.Stats().Processes {
		if pr.State == "ready" {
			n++
		}
	}
	return n
}

// eventually polls cond for up to d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("not within %s: %s", d, what)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestPoolMinProcessesAndLogs(t *testing.T) {
	logDir := filepath.Join(t.TempDir(), "logs", "guid")
	p := newPool(t, Options{Launch: helperLauncher(t, "serve", nil), Min: 2, Max: 3, LogDir: logDir, Node: "node/a", InitTimeout: 20 * time.Second})
	ctx := context.Background()
	if err := p.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if n := readyCount(p); n != 2 {
		t.Fatalf("%d ready processes; want Min=2", n)
	}
	l, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	code, body := get(t, "http://"+l.Addr()+"/")
	l.Release()
	if code != 200 || !strings.Contains(body, `"pid"`) {
		t.Fatalf("direct request: %d %s", code, body)
	}
	// Nodes sharing the data directory: the node's name is in the file's.
	logs, _ := filepath.Glob(filepath.Join(logDir, "*-node_a-*.log"))
	if len(logs) != 2 {
		t.Fatalf("log files %v; want one per process, named after the node", logs)
	}
	b, _ := os.ReadFile(logs[0])
	if !strings.Contains(string(b), "helper app starting") {
		t.Errorf("process log %s = %q; want the process's output", logs[0], b)
	}
	for _, info := range p.Stats().Processes {
		if info.LogPath == "" || !strings.HasPrefix(info.LogPath, logDir) {
			t.Errorf("process %d log path %q", info.ID, info.LogPath)
		}
	}
}

func TestPoolLeastLoaded(t *testing.T) {
	p := newPool(t, Options{Launch: helperLauncher(t, "serve", nil), Min: 2, Max: 2, InitTimeout: 20 * time.Second})
	ctx := context.Background()
	if err := p.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	a, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if a.Addr() == b.Addr() {
		t.Errorf("two requests in flight went to the same process %s; want the least loaded", a.Addr())
	}
	a.Release()
	c, _ := p.Acquire(ctx)
	if c.Addr() != a.Addr() {
		t.Errorf("third request went to %s (busy); want %s (idle)", c.Addr(), a.Addr())
	}
	b.Release()
	c.Release()
	c.Release() // a second Release is harmless
	for _, info := range p.Stats().Processes {
		if info.Active != 0 {
			t.Errorf("process %d has %d in flight after all releases", info.ID, info.Active)
		}
	}
}

func TestPoolScalesUpUnderLoad(t *testing.T) {
	p := newPool(t, Options{Launch: helperLauncher(t, "serve", nil), Min: 0, Max: 2, MaxConnsPerProcess: 1, InitTimeout: 20 * time.Second})
	ctx := context.Background()
	a, err := p.Acquire(ctx) // starts the first process and waits for it
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Acquire(ctx) // over capacity: answered at once, a second process starts
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	defer b.Release()
	eventually(t, 20*time.Second, "a second process ready", func() bool { return readyCount(p) == 2 })
	c, _ := p.Acquire(ctx)
	d, _ := p.Acquire(ctx)
	defer c.Release()
	defer d.Release()
	if len(p.Stats().Processes) != 2 {
		t.Errorf("%d processes; want Max=2", len(p.Stats().Processes))
	}
}

func TestPoolCrashRestartsWithBackoff(t *testing.T) {
	var launches int64Counter
	p := newPool(t, Options{
		Launch: helperLauncher(t, "crash", &launches), Min: 1, Max: 1, LogDir: t.TempDir(),
		BackoffInitial: 100 * time.Millisecond, BackoffMax: 400 * time.Millisecond, InitTimeout: 5 * time.Second,
	})
	eventually(t, 60*time.Second, "4 failed starts", func() bool { return p.Stats().Failures >= 4 })
	// The gaps between starts grow: 100ms, 200ms, 400ms, 400ms (plus
	// start-up time, which only adds). Without backoff they would be
	// the start-up time alone.
	times := launches.at()
	for i, want := range []time.Duration{100, 200, 400} {
		want *= time.Millisecond
		if gap := times[i+1].Sub(times[i]); gap < want {
			t.Errorf("start %d came %s after start %d; want at least the backoff %s", i+2, gap, i+1, want)
		}
	}
	st := p.Stats()
	if !strings.Contains(st.LastError, "exited before it was ready") || !strings.Contains(st.LastError, ".log") {
		t.Errorf("stats %+v; want the error naming the log", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := p.Acquire(ctx)
	if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("Acquire on a crashing app = %v; want ErrNotReady with the exit status", err)
	}
}

func TestPoolReplacesCrashedProcess(t *testing.T) {
	p := newPool(t, Options{Launch: helperLauncher(t, "serve", nil), Min: 1, Max: 1, BackoffInitial: 50 * time.Millisecond, InitTimeout: 20 * time.Second})
	ctx := context.Background()
	l, err := p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first := l.Addr()
	http.Get("http://" + first + "/crash")
	l.Release()
	eventually(t, 20*time.Second, "a new process after the crash", func() bool {
		st := p.Stats()
		return len(st.Processes) == 1 && st.Processes[0].State == "ready" && st.Processes[0].Addr != first
	})
	l, err = p.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if code, _ := get(t, "http://"+l.Addr()+"/"); code != 200 {
		t.Errorf("replacement answers %d", code)
	}
}

func TestPoolIdleTimeout(t *testing.T) {
	tests := []struct {
		name string
		min  int
		want int // processes left after the idle timeout
	}{
		{"above min: stopped", 0, 0},
		{"min kept", 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, Options{Launch: helperLauncher(t, "serve", nil), Min: tt.min, Max: 2, IdleTimeout: 300 * time.Millisecond, InitTimeout: 20 * time.Second})
			l, err := p.Acquire(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			id := p.Stats().Processes[0].ID
			time.Sleep(600 * time.Millisecond)
			if len(p.Stats().Processes) != 1 {
				t.Fatal("a process with a request in flight was stopped as idle")
			}
			l.Release()
			if tt.want == 0 {
				eventually(t, 10*time.Second, "the idle process stopped", func() bool { return len(p.Stats().Processes) == 0 })
			} else {
				time.Sleep(1500 * time.Millisecond)
			}
			st := p.Stats()
			if len(st.Processes) != tt.want {
				t.Fatalf("%d processes after idling; want %d", len(st.Processes), tt.want)
			}
			if tt.want == 1 && st.Processes[0].ID != id {
				t.Errorf("the Min process was replaced (%d -> %d)", id, st.Processes[0].ID)
			}
		})
	}
}

func TestPoolInitTimeout(t *testing.T) {
	p := newPool(t, Options{Launch: helperLauncher(t, "hang", nil), Max: 1, InitTimeout: 700 * time.Millisecond, StopTimeout: 500 * time.Millisecond, BackoffInitial: 10 * time.Second})
	start := time.Now()
	_, err := p.Acquire(context.Background())
	if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "init timeout") {
		t.Fatalf("Acquire = %v; want ErrNotReady naming the init timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Acquire took %s with InitTimeout 700ms", d)
	}
}

func TestPoolStopKillsAfterTimeout(t *testing.T) {
	tests := []struct {
		mode    string
		maxStop time.Duration
	}{
		{"serve", 5 * time.Second},       // exits on SIGTERM
		{"ignore-term", 8 * time.Second}, // needs SIGKILL after StopTimeout
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			p, err := New(Options{Launch: helperLauncher(t, tt.mode, nil), Min: 1, Max: 1, StopTimeout: time.Second, InitTimeout: 20 * time.Second, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.WaitReady(context.Background()); err != nil {
				t.Fatal(err)
			}
			l, _ := p.Acquire(context.Background())
			addr := l.Addr()
			l.Release()
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := p.Stop(ctx); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > tt.maxStop {
				t.Errorf("Stop took %s; want under %s", d, tt.maxStop)
			}
			if tt.mode == "ignore-term" && time.Since(start) < 900*time.Millisecond {
				t.Errorf("Stop returned before StopTimeout: the process ignoring SIGTERM was not given its time")
			}
			if _, err := http.Get("http://" + addr + "/"); err == nil {
				t.Errorf("process still answers after Stop")
			}
			if _, err := p.Acquire(context.Background()); !errors.Is(err, ErrClosed) {
				t.Errorf("Acquire after Stop = %v; want ErrClosed", err)
			}
		})
	}
}

func TestPoolDrainWaitsForInFlight(t *testing.T) {
	p := newPool(t, Options{Launch: helperLauncher(t, "serve", nil), Min: 1, Max: 1, InitTimeout: 20 * time.Second})
	l, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var code int
	var body string
	wg.Add(1)
	// From before the request: on a loaded machine the sleep below may
	// last longer than the request takes to start.
	start := time.Now()
	go func() {
		defer wg.Done()
		code, body = get(t, "http://"+l.Addr()+"/slow?ms=800")
		l.Release()
	}()
	time.Sleep(100 * time.Millisecond)
	if err := p.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if code != 200 || !strings.Contains(body, "slept 800") {
		t.Errorf("request in flight during drain: %d %q", code, body)
	}
	if d := time.Since(start); d < 600*time.Millisecond {
		t.Errorf("Drain returned after %s, before the request in flight finished", d)
	}
}

func TestOptionsValidation(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("New without a Launcher succeeded")
	}
	_, err := New(Options{Launch: helperLauncher(t, "serve", nil), Min: 4, Max: 2})
	if err == nil || !strings.Contains(err.Error(), "MinProcesses") {
		t.Errorf("Min > Max: %v; want an error naming the setting", err)
	}
}

func TestSchedulerOptions(t *testing.T) {
	o := SchedulerOptions(config.Defaults().Scheduler)
	if o.Min != 0 || o.Max != 3 || o.IdleTimeout != 120*time.Second || o.InitTimeout != 60*time.Second {
		t.Errorf("SchedulerOptions(defaults) = %+v", o)
	}
}
