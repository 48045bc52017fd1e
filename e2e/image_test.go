package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Bounds the container contract is held to. Measured on 2 cores: see
// docs/docker.md for the figures.
const (
	// startBound: docker start to /__ping__ 200 and to Docker's "healthy"
	// (with the 250 ms health interval Run sets).
	startBound = 60 * time.Second
	// idleStopBound: `docker stop` of an idle server to exit 0.
	idleStopBound = 2 * time.Second
)

// TestServe runs the image the two documented ways and waits for /__ping__
// and the health check.
func TestServe(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"cap-add SYS_ADMIN", Options{}},
		// The quick start: no capability added, content confined by Landlock.
		{"no privileges (Landlock)", Options{NoSysAdmin: true}},
		{"privileged", Options{Privileged: true, NoSysAdmin: true, NoStart: true}},
		// A restricted Kubernetes pod: no root, no capability at all.
		{"--user 999 --cap-drop ALL no-new-privileges (Landlock)", Options{User: nonRootUID, NoSysAdmin: true,
			CapDrop: []string{"ALL"}, SecurityOpt: []string{"no-new-privileges"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.opts.User != "" {
				tt.opts.DataDir = tempDir(t)
				if err := os.Chown(tt.opts.DataDir, 999, 0); err != nil {
					t.Fatalf("give the data directory to uid 999: %v", err)
				}
			}
			c := Run(t, tt.opts)
			if tt.opts.NoStart {
				if err := c.StartErr(); err != nil {
					t.Skipf("the engine refuses a privileged container: %v", err)
				}
			}
			c.WaitHTTP("/__ping__", http.StatusOK, startBound)
			ping := time.Since(c.Started)
			c.WaitHealthy(startBound)
			healthy := time.Since(c.Started)
			t.Logf("%s: from docker start, /__ping__ 200 after %s, health check healthy after %s (bound %s)",
				tt.name, ping.Round(time.Millisecond), healthy.Round(time.Millisecond), startBound)
			status, body := c.Get("/__ping__")
			if status != http.StatusOK || strings.TrimSpace(body) != "{}" {
				t.Errorf("GET /__ping__ = %d %q, want 200 {}", status, body)
			}
			// The health check is `dais health` in the container, with no curl.
			if r := c.Exec("dais", "health"); r.Code != 0 {
				t.Errorf("dais health exited %d: %s%s", r.Code, r.Stdout, r.Stderr)
			}
			// The database went to the volume.
			if _, err := os.Stat(filepath.Join(c.DataDir, "db")); err != nil {
				t.Errorf("no db directory on the /data volume: %v", err)
			}
		})
	}
}

// TestPreflightRefusals: what dais-init refuses, with exit code 78 and a log
// line naming the fix.
func TestPreflightRefusals(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want []string
	}{
		// Neither mode: no CAP_SYS_ADMIN, and a seccomp profile that makes
		// the Landlock calls fail as on a kernel without Landlock.
		{"no capability, no Landlock", Options{NoSysAdmin: true, SecurityOpt: []string{"seccomp=" + seccompProfile(t, "seccomp-no-landlock.json")}},
			[]string{"no sandbox mode works here", "--cap-add SYS_ADMIN", "Landlock ABI >= 6", "landlock_create_ruleset, landlock_add_rule and landlock_restrict_self"}},
		// No -v: the image's VOLUME makes an anonymous volume, gone with the
		// container: not persistent, refused like the writable layer.
		{"no volume on /data", Options{NoData: true}, []string{"-v "}},
		{"data on the writable layer", Options{NoData: true, Env: []string{"CONNECT_SERVER_DATADIR=/srv/data"}}, []string{"-v "}},
		// The server as uid 999, /data a directory of root's (0755).
		{"as uid 999, /data not writable", Options{User: nonRootUID, NoSysAdmin: true, CapDrop: []string{"ALL"}},
			[]string{"Server.DataDir /data is not writable by the server, which runs as uid 999", "chown 999", "-v dais-data:/data"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Run(t, tt.opts)
			code := c.WaitExit(time.Minute)
			logs := c.Logs()
			if code != 78 {
				t.Fatalf("exit code %d, want 78; log:\n%s", code, logs)
			}
			for _, w := range tt.want {
				if !strings.Contains(logs, w) {
					t.Errorf("log does not name %q:\n%s", w, logs)
				}
			}
		})
	}
}

// TestPublicWarningFromEnvironment: a CONNECT_* variable at docker run
// reaches the page, the rendered file is 0600, and the variable does not
// reach the server's (hence content's) environment.
func TestPublicWarningFromEnvironment(t *testing.T) {
	msg := "e2e-warning-" + randomSuffix()
	c := Run(t, Options{Env: []string{"CONNECT_SERVER_PUBLICWARNING=<b>" + msg + "</b>"}})
	c.WaitHTTP("/__ping__", http.StatusOK, startBound)

	status, body := c.Get("/")
	if status != http.StatusOK || !strings.Contains(body, msg) {
		t.Errorf("GET / = %d, want 200 showing %q; body:\n%s", status, msg, tail(body, 30))
	}
	r := c.Exec("stat", "-c", "%a %U", renderedConfig)
	if r.Code != 0 || strings.TrimSpace(r.Stdout) != "600 root" {
		t.Errorf("stat %s = %q (exit %d, %s), want \"600 root\"", renderedConfig, r.Stdout, r.Code, r.Stderr)
	}
	// The image gives /run/dais to uid 999 (for --user 999); dais-init as
	// root takes it back.
	if r := c.Exec("stat", "-c", "%a %U", filepath.Dir(renderedConfig)); strings.TrimSpace(r.Stdout) != "700 root" {
		t.Errorf("stat %s = %q (exit %d, %s), want \"700 root\"", filepath.Dir(renderedConfig), r.Stdout, r.Code, r.Stderr)
	}
	if r := c.Exec("cat", renderedConfig); !strings.Contains(r.Stdout, msg) {
		t.Errorf("rendered config lacks the warning:\n%s", r.Stdout)
	}
	pid := c.ServerPID()
	r = c.Exec("cat", fmt.Sprintf("/proc/%d/environ", pid))
	if r.Code != 0 {
		t.Fatalf("read the server's environment: exit %d %s", r.Code, r.Stderr)
	}
	if strings.Contains(r.Stdout, "CONNECT_SERVER_PUBLICWARNING") {
		t.Errorf("CONNECT_SERVER_PUBLICWARNING reached the server's environment: %q", r.Stdout)
	}
}

// renderedConfig is where dais-init writes the effective configuration.
const renderedConfig = "/run/dais/rstudio-connect.gcfg"

// TestReloadOnHUP: the mounted (read-only) base config is edited, then
// docker kill -s HUP: the new message shows, the server was not restarted,
// and a keep-alive connection opened before the reload still works.
func TestReloadOnHUP(t *testing.T) {
	etc := tempDir(t)
	gcfg := filepath.Join(etc, "rstudio-connect.gcfg")
	write := func(msg string) {
		t.Helper()
		body := "[Server]\nDataDir = /data\nPublicWarning = \"" + msg + "\"\n\n[HTTP]\nListen = :3939\n"
		tmp := gcfg + ".tmp"
		if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, gcfg); err != nil {
			t.Fatal(err)
		}
	}
	first, second := "before-hup-"+randomSuffix(), "after-hup-"+randomSuffix()
	write(first)
	c := Run(t, Options{Binds: []string{etc + ":/etc/rstudio-connect:ro"}})
	c.WaitHTTP("/__ping__", http.StatusOK, startBound)
	if _, body := c.Get("/"); !strings.Contains(body, first) {
		t.Fatalf("GET / does not show the first message %q:\n%s", first, tail(body, 30))
	}

	conn, err := net.Dial("tcp", "127.0.0.1:"+c.HostPort(ServerPort))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	keepAliveGet(t, conn, br, "before HUP")

	before := c.Inspect()
	pidBefore := c.ServerPID()

	write(second)
	c.Kill("HUP")
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, body := c.Get("/")
		if strings.Contains(body, second) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET / still does not show %q 15 s after HUP:\n%s\nlog:\n%s", second, tail(body, 30), tail(c.Logs(), 40))
		}
		time.Sleep(100 * time.Millisecond)
	}

	keepAliveGet(t, conn, br, "after HUP")
	after := c.Inspect()
	if !after.State.Running || after.State.StartedAt != before.State.StartedAt || after.RestartCount != before.RestartCount || after.State.Pid != before.State.Pid {
		t.Errorf("container restarted: started %s -> %s, restarts %d -> %d, pid %d -> %d",
			before.State.StartedAt, after.State.StartedAt, before.RestartCount, after.RestartCount, before.State.Pid, after.State.Pid)
	}
	if pidAfter := c.ServerPID(); pidAfter != pidBefore {
		t.Errorf("dais serve restarted: pid %d -> %d", pidBefore, pidAfter)
	}
}

// keepAliveGet sends GET /__ping__ on an open HTTP/1.1 connection and checks 200.
func keepAliveGet(t *testing.T, conn net.Conn, br *bufio.Reader, when string) {
	t.Helper()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET /__ping__ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"); err != nil {
		t.Fatalf("%s: write on the kept-alive connection: %v", when, err)
	}
	req, _ := http.NewRequest(http.MethodGet, "/__ping__", nil)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatalf("%s: read on the kept-alive connection: %v", when, err)
	}
	defer resp.Body.Close()
	if _, err := bufio.NewReader(resp.Body).WriteTo(nopWriter{}); err != nil {
		t.Fatalf("%s: body: %v", when, err)
	}
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("%s: kept-alive GET /__ping__ = %s (close %v), want 200 keeping the connection", when, resp.Status, resp.Close)
	}
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }

// TestStopIdle: docker stop of an idle server exits 0, quickly. The bound
// is on the process's exit (State.FinishedAt); the API call also includes the
// engine's teardown, logged for comparison.
func TestStopIdle(t *testing.T) {
	c := Run(t, Options{})
	c.WaitHTTP("/__ping__", http.StatusOK, startBound)
	t0 := time.Now()
	code, took := c.Stop(30)
	exited := c.ExitedAfter(t0)
	t.Logf("docker stop: dais exited %s after the request; the API call returned after %s",
		exited.Round(time.Millisecond), took.Round(time.Millisecond))
	if code != 0 {
		t.Errorf("exit code %d after docker stop, want 0; log:\n%s", code, tail(c.Logs(), 30))
	}
	if exited > idleStopBound {
		t.Errorf("dais exited %s after docker stop, want < %s", exited, idleStopBound)
	}
}

// TestCommandUnderInit: any command runs under dais-init, without the
// server's preflight (no capability, no volume needed).
func TestCommandUnderInit(t *testing.T) {
	img := Image(t)
	cli := Docker(t)
	ii, err := cli.ImageInspect(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	version := ii.Config.Labels["org.opencontainers.image.version"]
	tests := []struct {
		name string
		cmd  []string
		want string
	}{
		{"dais --version", []string{"dais", "--version"}, "dais " + version},
		{"runtimes in /opt", []string{"sh", "-c", "/opt/R/*/bin/R --version | head -1; /opt/python/*/bin/python3 --version"}, "Python 3."},
		{"content user", []string{"id", "rstudio-connect"}, "uid=999(rstudio-connect) gid=999(rstudio-connect)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Run(t, Options{Cmd: tt.cmd, NoSysAdmin: true, NoData: true, Ports: []string{}})
			if code := c.WaitExit(time.Minute); code != 0 {
				t.Fatalf("%q exited %d; log:\n%s", tt.cmd, code, c.Logs())
			}
			if logs := c.Logs(); !strings.Contains(logs, tt.want) {
				t.Errorf("%q printed %q, want it to contain %q", tt.cmd, logs, tt.want)
			}
		})
	}
}

// TestImageMetadata: the container contract as docker inspect shows it.
func TestImageMetadata(t *testing.T) {
	img := Image(t)
	ii, err := Docker(t).ImageInspect(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	cfg := ii.Config
	t.Logf("image %s: %.0f MB", img, float64(ii.Size)/1e6)
	checks := []struct {
		what      string
		got, want string
	}{
		{"entrypoint", strings.Join(cfg.Entrypoint, " "), "dais-init"},
		{"cmd", strings.Join(cfg.Cmd, " "), "dais serve --config /etc/rstudio-connect/rstudio-connect.gcfg"},
		{"stop signal", cfg.StopSignal, "SIGTERM"},
		{"health check", fmt.Sprint(cfg.Healthcheck != nil && strings.Join(cfg.Healthcheck.Test, " ") == "CMD dais health"), "true"},
		{"exposed 3939", fmt.Sprint(len(cfg.ExposedPorts) == 1 && strings.Contains(fmt.Sprint(cfg.ExposedPorts), "3939")), "true"},
		{"volume /data", fmt.Sprint(hasKey(cfg.Volumes, "/data") && len(cfg.Volumes) == 1), "true"},
		{"title label", cfg.Labels["org.opencontainers.image.title"], "dais"},
		{"version label set", fmt.Sprint(cfg.Labels["org.opencontainers.image.version"] != ""), "true"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
}

func hasKey[V any](m map[string]V, k string) bool {
	_, ok := m[k]
	return ok
}

// seccompProfile is the JSON of testdata/name, as --security-opt seccomp=
// passes it to the engine (the CLI reads the file; the API takes the text).
func seccompProfile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
