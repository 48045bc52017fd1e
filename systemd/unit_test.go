// Package systemd_test checks systemd/dais.service: systemd-analyze verify
// accepts it, its settings match the server's (stop timeout), and the
// commands it runs behave as systemd expects (readiness, reload, stop).
package systemd_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/config"
)

const installDir = "/opt/dais/bin/"

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found (CI=true: install the systemd package)", name)
		}
		t.Skipf("%s not found", name)
	}
	return p
}

// install builds dais and dais-init into a temporary directory and returns
// the unit text with its binaries' paths pointing there.
func install(t *testing.T) (unit, bin string) {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "dais-unit-test-")
		for name, pkg := range map[string]string{"dais": "../server", "dais-init": "../entrypoint"} {
			if buildErr != nil {
				return
			}
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, name), pkg)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("build %s: %v\n%s", name, err, out)
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	bin = binDir
	b, err := os.ReadFile("dais.service")
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), installDir, bin+"/"), bin
}

// directives returns the unit's Key=value lines (last one wins).
func directives(unit string) map[string]string {
	d := map[string]string{}
	for _, line := range strings.Split(unit, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			d[k] = v
		}
	}
	return d
}

func TestUnitVerifies(t *testing.T) {
	sa := requireTool(t, "systemd-analyze")
	unit, _ := install(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name, text string
		ok         bool
	}{
		{"dais.service", unit, true},
		// The check can fail: a misspelt key and a missing binary.
		{"typo", strings.Replace(unit, "KillMode=", "KilMode=", 1), false},
		{"missing binary", strings.Replace(unit, "ExecStart=", "ExecStart=/nonexistent/dais ", 1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, "dais-"+strings.ReplaceAll(tc.name, " ", "-")+".service")
			if tc.name == "dais.service" {
				p = filepath.Join(dir, "dais.service")
			}
			if err := os.WriteFile(p, []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(sa, "verify", p).CombinedOutput()
			clean := err == nil && len(strings.TrimSpace(string(out))) == 0
			if clean != tc.ok {
				t.Errorf("systemd-analyze verify %s: err %v, output:\n%s", tc.name, err, out)
			}
		})
	}
}

// The unit's choices, tied to the server's defaults.
func TestUnitSettings(t *testing.T) {
	b, err := os.ReadFile("dais.service")
	if err != nil {
		t.Fatal(err)
	}
	d := directives(string(b))
	stop, err := time.ParseDuration(d["TimeoutStopSec"])
	if err != nil {
		t.Fatalf("TimeoutStopSec %q: %v", d["TimeoutStopSec"], err)
	}
	if def := config.Defaults().Server.StopTimeout.Std(); stop <= def {
		t.Errorf("TimeoutStopSec = %v, want above Server.StopTimeout's default %v so the graceful stop finishes", stop, def)
	}
	want := map[string]string{
		"Type":                     "notify",
		"ExecReload":               "/bin/kill -HUP $MAINPID",
		"KillMode":                 "mixed",
		"Restart":                  "on-failure",
		"RestartPreventExitStatus": "78",
		"ExecStart":                installDir + "dais serve --config ${DAIS_CONFIG}",
		"Environment":              "DAIS_CONFIG=" + config.DefaultPath,
	}
	for k, v := range want {
		if d[k] != v {
			t.Errorf("%s=%q, want %q", k, d[k], v)
		}
	}
	if !strings.HasPrefix(d["ExecStartPre"], installDir+"dais-init --check") {
		t.Errorf("ExecStartPre=%q, want dais-init's check-only preflight", d["ExecStartPre"])
	}
}

// command turns an Exec line into argv the way systemd would here:
// ${DAIS_CONFIG} replaced, split on spaces (the unit quotes nothing).
func command(line, conf string) []string {
	line = strings.ReplaceAll(line, "${DAIS_CONFIG}", conf)
	return strings.Fields(line)
}

// Run the unit's commands as systemd would: the preflight passes, then
// dais serve reports READY=1 on NOTIFY_SOCKET, RELOADING=1 then READY=1
// on the ExecReload signal, and STOPPING=1 and exit 0 on TERM.
func TestUnitLifecycle(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root (the preflight proves CAP_SYS_ADMIN)")
		}
		t.Skip("needs root")
	}
	unit, _ := install(t)
	d := directives(unit)
	dir := t.TempDir()
	conf := filepath.Join(dir, "rstudio-connect.gcfg")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("[Server]\nDataDir = %s\n[HTTP]\nListen = 127.0.0.1:0\n", filepath.Join(dir, "data"))), 0o600); err != nil {
		t.Fatal(err)
	}

	pre := command(d["ExecStartPre"], conf)
	for i, a := range pre {
		if a == "/run/dais/preflight.gcfg" {
			pre[i] = filepath.Join(dir, "run", "preflight.gcfg")
		}
	}
	if out, err := exec.Command(pre[0], pre[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("ExecStartPre %v: %v\n%s", pre, err, out)
	}

	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msgs := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	expect := func(re string) {
		t.Helper()
		timeout := time.After(60 * time.Second)
		for {
			select {
			case m, ok := <-msgs:
				if !ok {
					t.Fatalf("notify socket closed waiting for %q", re)
				}
				if regexp.MustCompile(re).MatchString(m) {
					return
				}
			case <-timeout:
				t.Fatalf("no %q on NOTIFY_SOCKET", re)
			}
		}
	}

	argv := command(d["ExecStart"], conf)
	srv := exec.Command(argv[0], argv[1:]...)
	srv.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	var logs strings.Builder
	srv.Stderr = &logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	defer func() {
		if srv.ProcessState == nil {
			srv.Process.Kill()
		}
	}()
	expect(`(?m)^READY=1$`)

	reload := strings.Fields(strings.ReplaceAll(d["ExecReload"], "$MAINPID", fmt.Sprint(srv.Process.Pid)))
	if out, err := exec.Command(reload[0], reload[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("ExecReload: %v %s", err, out)
	}
	expect(`(?m)^RELOADING=1$`)
	expect(`(?m)^READY=1$`)

	if err := srv.Process.Signal(syscall.SIGTERM); err != nil { // KillSignal
		t.Fatal(err)
	}
	expect(`(?m)^STOPPING=1$`)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dais serve after TERM: %v, want exit 0\n%s", err, logs.String())
		}
	case <-time.After(70 * time.Second):
		t.Fatalf("dais serve did not stop within TimeoutStopSec\n%s", logs.String())
	}
}
