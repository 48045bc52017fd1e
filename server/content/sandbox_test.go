package content_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/content"
	"github.com/dais-dev/dais/server/content/env"
	"github.com/dais-dev/dais/server/content/manifest"
	"github.com/dais-dev/dais/server/process"
	"github.com/dais-dev/dais/server/sandbox"
)

// TestMain lets the test binary stand in for dais as `sandbox-exec`.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "sandbox-exec" {
		os.Exit(sandbox.Main(os.Stderr))
	}
	os.Exit(m.Run())
}

// TestFlaskInSandbox is the production path without the HTTP API: the
// environment restored and the app run inside the sandbox, as the RunAs
// user, behind the pool and the proxy, with the data directory masked.
func TestFlaskInSandbox(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("the sandbox needs root (CI=true: not skipping)")
		}
		t.Skip("the sandbox needs root")
	}
	py := need(t, manifest.LangPython, "/usr/bin/python3", "import flask")
	runAs := "nobody"
	if _, err := user.Lookup(sandbox.DefaultRunAs); err == nil {
		runAs = sandbox.DefaultRunAs
	}
	u, err := user.Lookup(runAs)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)

	// A data directory outside /tmp (the sandbox has its own /tmp).
	data, err := os.MkdirTemp("/var/lib", "dais-content-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(data) })
	os.Chmod(data, 0o755)
	secret := filepath.Join(data, "db", "secret")
	os.MkdirAll(filepath.Dir(secret), 0o700)
	os.WriteFile(secret, []byte("not for content"), 0o600)
	apps := filepath.Join(data, "apps")
	code := filepath.Join(apps, "1")
	os.MkdirAll(apps, 0o755)
	if out, err := exec.Command("cp", "-r", "../../examples/flask", code).CombinedOutput(); err != nil {
		t.Fatalf("copy example: %v %s", err, out)
	}
	work := filepath.Join(data, "work")
	envDir := filepath.Join(data, "envs", "1")
	for _, d := range []string{work, envDir} {
		os.MkdirAll(d, 0o755)
		os.Chown(d, uid, gid)
	}
	m, err := manifest.Read(code)
	if err != nil {
		t.Fatal(err)
	}
	rts := content.Runtimes{Python: py}
	masks := []string{filepath.Join(data, "db")}
	base := sandbox.Options{CodeDir: code, WorkDir: work, ReadWrite: []string{envDir}, Masks: masks, RunAs: runAs}
	res, err := env.Restore(context.Background(), env.Options{
		Manifest: m, Runtimes: rts, CodeDir: code, EnvDir: envDir, Run: env.SandboxRunner("", base),
	})
	if err != nil {
		t.Fatal(err)
	}
	d := content.Dirs{Code: code, Work: work, Venv: res.Venv, BasePath: "/content/sb/"}
	logDir := filepath.Join(data, "logs")
	pool, err := process.New(process.Options{
		Name: "sb", LogDir: logDir, Max: 1, InitTimeout: 60 * time.Second, StopTimeout: 5 * time.Second,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Launch: process.SandboxLauncher("", func(port int) (sandbox.Options, error) {
			c, err := content.LaunchArgs(m, rts, port, d)
			if err != nil {
				return sandbox.Options{}, err
			}
			o := base
			o.ReadWrite, o.ReadOnly = nil, []string{envDir}
			o.Args, o.Env, o.PathDirs, o.Dir = c.Args, c.Env, c.PathDirs, c.Dir
			return o, nil
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	px := process.NewProxy(nil, "")
	if err := px.Switch(context.Background(), "sb", pool); err != nil {
		logs, _ := filepath.Glob(filepath.Join(logDir, "*"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			t.Logf("%s:\n%s", l, b)
		}
		t.Fatal(err)
	}
	srv := httptest.NewServer(px)
	defer srv.Close()
	defer pool.Stop(context.Background())
	if got := getJSON(t, srv.URL+"/content/sb/hello")["message"]; got != "hello from flask" {
		t.Errorf("/hello = %v", got)
	}
	if got := getJSON(t, srv.URL+"/content/sb/echo?msg=sandboxed")["msg"]; got != "sandboxed" {
		t.Errorf("/echo = %v", got)
	}
	// The venv was written inside the sandbox, by the RunAs user.
	fi, err := os.Stat(filepath.Join(envDir, "python", "pyvenv.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	if ownerOf(fi) != u.Uid {
		t.Errorf("venv owned by %s; want %s (restored inside the sandbox)", ownerOf(fi), runAs)
	}
}
