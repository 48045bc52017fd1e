// Package e2e holds dais's end-to-end tests: they drive the real image
// (env DAIS_IMAGE, default dais:latest, built by `make image`) through the
// Docker Engine API (github.com/moby/moby/client) and talk to it over HTTP on
// ports published to 127.0.0.1. When the engine is unreachable or the image
// is missing the tests skip, unless CI=true, where they fail.
//
// Helpers for every e2e test file (each takes testing.TB, calls t.Helper,
// fails the test on error and cleans up with t.Cleanup):
//
//	Docker(t) *client.Client          the engine client (skips/fails as above)
//	Image(t) string                   the image under test, checked to exist
//	Run(t, Options) *Container        create + start a container; removed at
//	                                  cleanup, its log printed if the test failed
//	                                  (DAIS_E2E_KEEP=1 keeps it for debugging)
//	NewNetwork(t) string              a user-defined bridge network (containers
//	                                  reach each other by Options.Name/Aliases)
//	Compose(t, project, env, args...) runs docker-compose (or `docker compose`)
//	                                  on the repository's docker-compose.yml
//	RepoRoot(t) string                the repository root (for examples/, ...)
//	publisherKey(t, c, user, pw) string  a new publisher in c and an API key for it
//
// Options defaults are the documented `docker run`: --cap-add SYS_ADMIN, a
// fresh host directory bound to /data, port 3939 published on 127.0.0.1, and
// the image's HEALTHCHECK polled every 250 ms instead of every 15 s. Turn parts
// off with NoSysAdmin, NoData, or replace them with DataDir, Binds, Ports,
// Health.
//
// On a *Container:
//
//	URL(path) string                  http://127.0.0.1:<published 3939>/path
//	HostPort(containerPort) string    the 127.0.0.1 port a container port is published on
//	Get(path) (status, body)          one GET with a 10 s timeout
//	WaitHTTP(path, status, timeout)   poll until path answers status; returns the wait
//	WaitHealthy(timeout)              poll until Docker reports healthy; returns the wait
//	WaitExit(timeout) int             wait for the container to exit; its exit code
//	Exec(cmd...) ExecResult           docker exec: Stdout, Stderr, Code
//	Logs() string                     stdout+stderr so far
//	LogsWith(s, timeout) string       Logs once they hold s (Docker copies them a moment late), or at the timeout
//	Kill(signal)                      docker kill -s
//	Stop(timeout) (code, took)        docker stop -t: exit code and how long it took
//	ExitedAfter(t0) time.Duration     when, after t0, the main process exited (State.FinishedAt)
//	Inspect() container.InspectResponse
//	ServerPID() int                   pid (in the container) of the `dais serve` process
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// DefaultImage is the image tested when DAIS_IMAGE is not set.
const DefaultImage = "dais:latest"

// ServerPort is the port dais listens on inside the image.
const ServerPort = "3939"

// labelKey marks every container and network the tests create, so leftovers
// of an interrupted run can be found: docker ps -a --filter label=dais.e2e
const labelKey = "dais.e2e"

// requireOrSkip skips the test, or fails it when CI=true: CI has Docker and
// the image, so their absence there is a failure, not a reason to skip.
func requireOrSkip(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format+" (CI=true: e2e tests may not skip)", args...)
	}
	t.Skipf(format, args...)
}

var (
	dockerOnce sync.Once
	dockerCli  *client.Client
	dockerErr  error
)

// Docker returns a client of the engine (DOCKER_HOST etc. are honoured; the
// API version is negotiated, this engine speaks 1.41). It skips the test when
// the engine is unreachable, or fails it when CI=true.
func Docker(t testing.TB) *client.Client {
	t.Helper()
	dockerOnce.Do(func() {
		dockerCli, dockerErr = client.New(client.FromEnv)
		if dockerErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, dockerErr = dockerCli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	})
	if dockerErr != nil {
		requireOrSkip(t, "docker engine unreachable: %v (start dockerd, or set DOCKER_HOST)", dockerErr)
	}
	return dockerCli
}

// Image returns the image under test (DAIS_IMAGE, default dais:latest) after
// checking the engine has it; build it with `make image`.
func Image(t testing.TB) string {
	t.Helper()
	img := os.Getenv("DAIS_IMAGE")
	if img == "" {
		img = DefaultImage
	}
	cli := Docker(t)
	if _, err := cli.ImageInspect(context.Background(), img); err != nil {
		requireOrSkip(t, "image %s not found: %v (run `make image`, or set DAIS_IMAGE)", img, err)
	}
	return img
}

// Options describe one container. The zero value runs the image's default
// command the documented way (see the package comment).
type Options struct {
	// Image defaults to Image(t).
	Image string
	// Name defaults to a unique "dais-e2e-<test>-<random>"; it is also the
	// container's host name on a user-defined network.
	Name string
	// Cmd replaces the image's CMD (the ENTRYPOINT dais-init stays).
	Cmd []string
	// Entrypoint replaces dais-init when set.
	Entrypoint []string
	// Env is KEY=VALUE pairs, e.g. CONNECT_SERVER_PUBLICWARNING=hello.
	Env []string
	// NoSysAdmin drops the default --cap-add SYS_ADMIN.
	NoSysAdmin bool
	// Privileged runs with --privileged.
	Privileged bool
	// CapAdd, SecurityOpt are passed as --cap-add and --security-opt.
	CapAdd      []string
	CapDrop     []string
	SecurityOpt []string
	// NoData runs without anything mounted on /data (the image's VOLUME
	// then makes an anonymous volume, as a plain `docker run` would).
	NoData bool
	// DataDir is the host directory bound to /data; default a new temporary
	// directory (see Container.DataDir). Ignored with NoData or DataVolume.
	DataDir string
	// DataVolume mounts this named volume on /data instead of a directory.
	DataVolume string
	// Binds are extra -v host:container[:ro] mounts.
	Binds []string
	// Tmpfs are --tmpfs mounts: path -> options ("" for the defaults).
	Tmpfs map[string]string
	// Ports are container ports published on 127.0.0.1 at a free port;
	// default just 3939. Use []string{} to publish none.
	Ports []string
	// Network attaches the container to a network from NewNetwork, with
	// Aliases as extra DNS names there; "container:<id>" shares that
	// container's network namespace (its loopback) instead.
	Network string
	Aliases []string
	// Health replaces the health check settings. Default: the image's test
	// every 250 ms (timeout 5 s, start period 60 s, 3 retries).
	Health *container.HealthConfig
	// User runs the entrypoint as this user.
	User string
	// StopTimeout is the seconds `docker stop` waits before SIGKILL (default 10).
	StopTimeout *int
	// NoStart creates the container without starting it.
	NoStart bool
}

// Container is a running (or exited) container created by Run.
type Container struct {
	t   testing.TB
	cli *client.Client
	// ID and Name identify the container.
	ID, Name string
	// DataDir is the host directory bound to /data, "" when none.
	DataDir string
	// Started is when the last Start call asked the engine to start it.
	Started time.Time
	ports   map[string]string
}

// ExecResult is the outcome of Container.Exec.
type ExecResult struct {
	Stdout, Stderr string
	Code           int
}

var nameSafe = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

func randomSuffix() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func uniqueName(t testing.TB) string {
	n := strings.ToLower(nameSafe.ReplaceAllString(t.Name(), "-"))
	if len(n) > 40 {
		n = n[len(n)-40:]
	}
	return "dais-e2e-" + strings.Trim(n, "-.") + "-" + randomSuffix()
}

// Run creates and starts a container, registers its removal (and the
// printing of its log when the test failed) with t.Cleanup, and returns it.
// It does not wait for anything: use WaitHealthy, WaitHTTP or WaitExit.
func Run(t testing.TB, o Options) *Container {
	t.Helper()
	cli := Docker(t)
	if o.Image == "" {
		o.Image = Image(t)
	}
	if o.Name == "" {
		o.Name = uniqueName(t)
	}
	c := &Container{t: t, cli: cli, Name: o.Name, ports: map[string]string{}}

	var binds []string
	switch {
	case o.NoData:
	case o.DataVolume != "":
		binds = append(binds, o.DataVolume+":/data")
	default:
		if o.DataDir == "" {
			o.DataDir = tempDir(t)
		}
		c.DataDir = o.DataDir
		binds = append(binds, o.DataDir+":/data")
	}
	binds = append(binds, o.Binds...)

	capAdd := append([]string(nil), o.CapAdd...)
	if !o.NoSysAdmin && !o.Privileged {
		capAdd = append(capAdd, "SYS_ADMIN")
	}
	if o.Ports == nil {
		o.Ports = []string{ServerPort}
	}
	exposed := network.PortSet{}
	bindings := network.PortMap{}
	for _, p := range o.Ports {
		port, err := network.ParsePort(p)
		if err != nil {
			t.Fatalf("e2e.Run: port %q: %v", p, err)
		}
		exposed[port] = struct{}{}
		bindings[port] = []network.PortBinding{{HostIP: netip.MustParseAddr("127.0.0.1")}}
	}
	health := o.Health
	if health == nil {
		health = &container.HealthConfig{
			Interval:    250 * time.Millisecond,
			Timeout:     5 * time.Second,
			StartPeriod: 60 * time.Second,
			Retries:     3,
		}
	}
	cfg := &container.Config{
		Image:        o.Image,
		Cmd:          o.Cmd,
		Entrypoint:   o.Entrypoint,
		Env:          o.Env,
		User:         o.User,
		ExposedPorts: exposed,
		Healthcheck:  health,
		StopTimeout:  o.StopTimeout,
		Labels:       map[string]string{labelKey: t.Name()},
	}
	hc := &container.HostConfig{
		Binds:        binds,
		CapAdd:       capAdd,
		CapDrop:      o.CapDrop,
		Privileged:   o.Privileged,
		SecurityOpt:  o.SecurityOpt,
		PortBindings: bindings,
		Tmpfs:        o.Tmpfs,
	}
	var nc *network.NetworkingConfig
	if o.Network != "" {
		hc.NetworkMode = container.NetworkMode(o.Network)
		if !hc.NetworkMode.IsContainer() {
			nc = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
				o.Network: {Aliases: o.Aliases},
			}}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: cfg, HostConfig: hc, NetworkingConfig: nc, Name: o.Name,
	})
	if err != nil {
		t.Fatalf("e2e.Run: create %s from %s: %v", o.Name, o.Image, err)
	}
	c.ID = res.ID
	t.Cleanup(c.cleanup)
	if !o.NoStart {
		c.Start()
	}
	return c
}

// Start starts a container made with Options.NoStart (or stopped), and
// reads its published ports.
func (c *Container) Start() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c.Started = time.Now()
	if _, err := c.cli.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
		c.t.Fatalf("e2e: start %s: %v", c.Name, err)
	}
	c.readPorts()
}

// StartErr is Start returning the engine's error instead of failing the
// test: for tests that accept an engine refusal (e.g. --privileged).
func (c *Container) StartErr() error {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c.Started = time.Now()
	if _, err := c.cli.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
		return err
	}
	c.readPorts()
	return nil
}

func (c *Container) readPorts() {
	c.t.Helper()
	in := c.Inspect()
	if in.NetworkSettings == nil {
		return
	}
	for port, bs := range in.NetworkSettings.Ports {
		for _, b := range bs {
			if b.HostIP.Is4() && b.HostPort != "" {
				c.ports[strconv.Itoa(int(port.Num()))] = b.HostPort
			}
		}
	}
}

func (c *Container) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if c.t.Failed() {
		c.t.Logf("--- log of container %s:\n%s", c.Name, tail(c.logs(ctx), 200))
	}
	if os.Getenv("DAIS_E2E_KEEP") == "1" {
		c.t.Logf("DAIS_E2E_KEEP=1: container %s kept", c.Name)
		return
	}
	if _, err := c.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
		c.t.Logf("e2e: remove %s: %v", c.Name, err)
	}
}

// tempDir is t.TempDir, but world-traversable: content runs as uid 999 and
// must reach its own directories under /data.
func tempDir(t testing.TB) string {
	t.Helper()
	d := t.TempDir()
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines before)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// Inspect returns docker inspect's view of the container.
func (c *Container) Inspect() container.InspectResponse {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := c.cli.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
	if err != nil {
		c.t.Fatalf("e2e: inspect %s: %v", c.Name, err)
	}
	return res.Container
}

// HostPort is the 127.0.0.1 port that containerPort ("3939") is published on.
func (c *Container) HostPort(containerPort string) string {
	c.t.Helper()
	p, ok := c.ports[containerPort]
	if !ok {
		c.t.Fatalf("e2e: port %s of %s is not published (Options.Ports)", containerPort, c.Name)
	}
	return p
}

// URL is http://127.0.0.1:<published 3939>/path.
func (c *Container) URL(path string) string {
	c.t.Helper()
	return "http://127.0.0.1:" + c.HostPort(ServerPort) + path
}

// Get does one GET of path on the published server port.
func (c *Container) Get(path string) (int, string) {
	c.t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(c.URL(path))
	if err != nil {
		c.t.Fatalf("e2e: GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("e2e: GET %s: read body: %v", path, err)
	}
	return resp.StatusCode, string(b)
}

// running reports whether the container still runs, failing the test with
// its exit code and log when it exited while something was awaited of it.
func (c *Container) mustRun(ctx context.Context, waiting string) {
	c.t.Helper()
	in := c.Inspect()
	if in.State != nil && !in.State.Running {
		c.t.Fatalf("e2e: %s exited (code %d) while %s; log:\n%s", c.Name, in.State.ExitCode, waiting, tail(c.logs(ctx), 60))
	}
}

// WaitHTTP polls path until it answers status, and returns how long that took.
func (c *Container) WaitHTTP(path string, status int, timeout time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	client := &http.Client{Timeout: 2 * time.Second}
	last := "no answer yet"
	for time.Since(start) < timeout {
		resp, err := client.Get(c.URL(path))
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == status {
				return time.Since(start)
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		c.mustRun(context.Background(), "waiting for GET "+path)
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("e2e: GET %s did not answer %d within %s (last: %s); log:\n%s", path, status, timeout, last, tail(c.Logs(), 60))
	return 0
}

// WaitHealthy polls docker's health status until healthy, and returns how long that took.
func (c *Container) WaitHealthy(timeout time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	status := "none"
	for time.Since(start) < timeout {
		in := c.Inspect()
		if in.State != nil && in.State.Health != nil {
			status = string(in.State.Health.Status)
			if in.State.Health.Status == container.Healthy {
				return time.Since(start)
			}
		}
		c.mustRun(context.Background(), "waiting for health")
		time.Sleep(50 * time.Millisecond)
	}
	c.t.Fatalf("e2e: %s not healthy within %s (status %s); log:\n%s", c.Name, timeout, status, tail(c.Logs(), 60))
	return 0
}

// WaitExit waits for the container to exit and returns its exit code.
func (c *Container) WaitExit(timeout time.Duration) int {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	res := c.cli.ContainerWait(ctx, c.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case r := <-res.Result:
		if r.Error != nil && r.Error.Message != "" {
			c.t.Fatalf("e2e: wait %s: %s", c.Name, r.Error.Message)
		}
		return int(r.StatusCode)
	case err := <-res.Error:
		c.t.Fatalf("e2e: %s did not exit within %s: %v; log:\n%s", c.Name, timeout, err, tail(c.Logs(), 60))
	}
	return -1
}

// Exec runs cmd in the container (docker exec, as root) and returns its output.
func (c *Container) Exec(cmd ...string) ExecResult {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ex, err := c.cli.ExecCreate(ctx, c.ID, client.ExecCreateOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		c.t.Fatalf("e2e: exec %q in %s: %v", cmd, c.Name, err)
	}
	att, err := c.cli.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		c.t.Fatalf("e2e: exec %q in %s: attach: %v", cmd, c.Name, err)
	}
	defer att.Close()
	var out, errb bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &errb, att.Reader); err != nil {
		c.t.Fatalf("e2e: exec %q in %s: read output: %v", cmd, c.Name, err)
	}
	for {
		in, err := c.cli.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
		if err != nil {
			c.t.Fatalf("e2e: exec %q in %s: inspect: %v", cmd, c.Name, err)
		}
		if !in.Running {
			return ExecResult{Stdout: out.String(), Stderr: errb.String(), Code: in.ExitCode}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Logs returns the container's stdout and stderr so far, interleaved by line
// as far as Docker keeps them apart.
func (c *Container) Logs() string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.logs(ctx)
}

// LogsWith returns the container's logs once they contain s, or as they
// are after timeout: Docker copies a line to its log a moment after the
// server wrote it, so a line the server wrote before it answered may not
// be there yet when the answer has come.
func (c *Container) LogsWith(s string, timeout time.Duration) string {
	c.t.Helper()
	logs := c.Logs()
	for deadline := time.Now().Add(timeout); !strings.Contains(logs, s) && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		logs = c.Logs()
	}
	return logs
}

func (c *Container) logs(ctx context.Context) string {
	rc, err := c.cli.ContainerLogs(ctx, c.ID, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return fmt.Sprintf("(logs unavailable: %v)", err)
	}
	defer rc.Close()
	var buf lockedBuffer
	if _, err := stdcopy.StdCopy(&buf, &buf, rc); err != nil {
		return buf.String() + fmt.Sprintf("\n(logs cut: %v)", err)
	}
	return buf.String()
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Kill sends a signal ("HUP", "TERM", "KILL", ...) to the container's PID 1.
func (c *Container) Kill(signal string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.cli.ContainerKill(ctx, c.ID, client.ContainerKillOptions{Signal: signal}); err != nil {
		c.t.Fatalf("e2e: kill -s %s %s: %v", signal, c.Name, err)
	}
}

// Stop is `docker stop -t timeout`: it returns the exit code and how long
// the stop took.
func (c *Container) Stop(timeout int) (int, time.Duration) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(timeout+60)*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := c.cli.ContainerStop(ctx, c.ID, client.ContainerStopOptions{Timeout: &timeout}); err != nil {
		c.t.Fatalf("e2e: stop %s: %v", c.Name, err)
	}
	took := time.Since(start)
	in := c.Inspect()
	return in.State.ExitCode, took
}

// ExitedAfter is how long after t0 the container's main process exited,
// from docker's State.FinishedAt: unlike Stop's duration it leaves out the
// engine's own teardown (unmounts, network), slow on some hosts.
func (c *Container) ExitedAfter(t0 time.Time) time.Duration {
	c.t.Helper()
	in := c.Inspect()
	fin, err := time.Parse(time.RFC3339Nano, in.State.FinishedAt)
	if err != nil || in.State.Running {
		c.t.Fatalf("e2e: %s has not exited (FinishedAt %q, running %v)", c.Name, in.State.FinishedAt, in.State.Running)
	}
	return fin.Sub(t0)
}

// ServerPID returns the pid, in the container, of the `dais serve` process
// (the child of dais-init), or fails the test when there is none.
func (c *Container) ServerPID() int {
	c.t.Helper()
	// Match argv[0] ending in dais followed by "serve"; the shell running this
	// loop has "sh" as argv[0], so it never matches itself.
	r := c.Exec("sh", "-c", `for p in /proc/[0-9]*; do tr '\0' ' ' <$p/cmdline 2>/dev/null | grep -q '^[^ ]*dais serve' && echo ${p#/proc/}; done; exit 0`)
	fields := strings.Fields(r.Stdout)
	if r.Code != 0 || len(fields) != 1 {
		c.t.Fatalf("e2e: want one `dais serve` process in %s, found %q (exit %d, %s)", c.Name, r.Stdout, r.Code, r.Stderr)
	}
	pid, err := strconv.Atoi(fields[0])
	if err != nil {
		c.t.Fatal(err)
	}
	return pid
}

// NewNetwork creates a user-defined bridge network, removed at cleanup
// (after the containers on it, which Run registered later).
func NewNetwork(t testing.TB) string {
	t.Helper()
	cli := Docker(t)
	name := uniqueName(t) + "-net"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "bridge", Labels: map[string]string{labelKey: t.Name()}}); err != nil {
		t.Fatalf("e2e: create network: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := cli.NetworkRemove(ctx, name, client.NetworkRemoveOptions{}); err != nil {
			t.Logf("e2e: remove network %s: %v", name, err)
		}
	})
	return name
}

// RepoRoot is the repository's root directory (where docker-compose.yml is).
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("e2e: cannot locate the repository")
	}
	return filepath.Dir(filepath.Dir(file))
}

// composeCommand is docker-compose (v1) when installed, else `docker compose`
// (v2); COMPOSE overrides it ("docker compose" or a path).
func composeCommand(t testing.TB) []string {
	t.Helper()
	if c := os.Getenv("COMPOSE"); c != "" {
		return strings.Fields(c)
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}
	}
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	requireOrSkip(t, "neither docker-compose nor `docker compose` is installed (apt-get install docker-compose)")
	return nil
}

// Compose runs the compose command on the repository's docker-compose.yml
// with project name project and extra environment env (KEY=VALUE), and
// returns its combined output and error. Callers register their own
// `down -v` with t.Cleanup (ComposeDown does that).
func Compose(t testing.TB, project string, env []string, args ...string) (string, error) {
	t.Helper()
	Docker(t)
	cmdline := append(composeCommand(t), "-f", filepath.Join(RepoRoot(t), "docker-compose.yml"), "-p", project)
	cmdline = append(cmdline, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cmdline[0], cmdline[1:]...)
	cmd.Dir = RepoRoot(t)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// ComposeDown registers `down -v --remove-orphans` of project (with all
// profiles given) at cleanup, logging the services' logs if the test failed.
func ComposeDown(t testing.TB, project string, env []string, profiles ...string) {
	t.Helper()
	var pargs []string
	for _, p := range profiles {
		pargs = append(pargs, "--profile", p)
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := Compose(t, project, env, append(pargs, "logs", "--no-color", "--tail", "100")...)
			t.Logf("--- compose logs of %s:\n%s", project, out)
		}
		if out, err := Compose(t, project, env, append(pargs, "down", "-v", "--remove-orphans", "-t", "20")...); err != nil {
			t.Logf("e2e: compose down %s: %v\n%s", project, err, out)
		}
	})
}

// ProjectName is a unique compose project name for the test.
func ProjectName(t testing.TB) string {
	return strings.ReplaceAll(uniqueName(t), ".", "-")
}

// publisherKey adds a publisher with the given password in c (dais users
// add) and returns an API key made for it (dais keys create).
func publisherKey(t testing.TB, c *Container, user, password string) string {
	t.Helper()
	if r := c.Exec("sh", "-c", "echo "+password+" | dais users add --role publisher "+user); r.Code != 0 {
		t.Fatalf("dais users add: %d %s%s", r.Code, r.Stdout, r.Stderr)
	}
	r := c.Exec("dais", "keys", "create", "--user", user)
	key := strings.TrimSpace(r.Stdout)
	if r.Code != 0 || len(key) < 16 {
		t.Fatalf("dais keys create: %d %q %s", r.Code, r.Stdout, r.Stderr)
	}
	return key
}
