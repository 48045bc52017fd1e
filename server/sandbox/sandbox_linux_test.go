//go:build !dais_sandbox_exec

package sandbox

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/config"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// TestMain lets the test binary stand in for dais: it is re-executed as
// `sandbox-exec` by Command and, copied into the sandbox, as `sandbox probe`.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "sandbox-exec":
			os.Exit(Main(os.Stderr))
		case "sandbox":
			os.Exit(CLI(context.Background(), os.Args[2:], os.Stdout, os.Stderr))
		}
	}
	os.Exit(func() int {
		testExec = os.Args[0]
		if os.Geteuid() == 0 {
			d, err := os.MkdirTemp("/var/lib", "dais-sandbox-testbin-")
			if err != nil {
				panic(err)
			}
			defer os.RemoveAll(d)
			os.Chmod(d, 0o755)
			if err := copyFile(os.Args[0], filepath.Join(d, "sandbox.test"), 0o755); err != nil {
				panic(err)
			}
			testExec = filepath.Join(d, "sandbox.test")
		}
		return m.Run()
	}())
}

// testExec is this test binary where every user may run it (as root: the
// go command's build directory is 0700): a pre-started Landlock
// sandbox-exec starts as the content's user (asContentUser), and one that
// user cannot run starts as root instead (prestartKey).
var testExec string

// needRoot skips when not root, unless CI=true, where it fails.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("sandbox tests need root (CI=true: not skipping)")
	}
	t.Skip("sandbox tests need root")
}

// testUser is DAIS_TEST_RUN_AS, else rstudio-connect when it exists, else nobody.
func testUser(t *testing.T) string {
	t.Helper()
	if u := os.Getenv("DAIS_TEST_RUN_AS"); u != "" {
		return u
	}
	if _, err := user.Lookup(DefaultRunAs); err == nil {
		return DefaultRunAs
	}
	return "nobody"
}

// dataDir is a directory outside /tmp (which every sandbox replaces), removed after the test.
func dataDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("/var/lib", "dais-sandbox-test-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0o755)
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func TestSpec(t *testing.T) {
	d := t.TempDir()
	data := filepath.Join(d, "data")
	code := filepath.Join(data, "apps/1/code")
	work := filepath.Join(data, "apps/1/work")
	rt := filepath.Join(d, "opt/R/4.2.2")
	for _, p := range []string{code, work, rt, filepath.Join(data, "db")} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfgFile := filepath.Join(d, "rstudio-connect.gcfg")
	os.WriteFile(cfgFile, []byte("[Server]\n"), 0o600)
	t.Setenv("DAIS_SERVER_SECRET", "leak")
	t.Setenv("TZ", "Europe/Paris")
	for _, k := range []string{"LANG", "LC_ALL", "LC_CTYPE"} {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)
	}
	base := Options{Args: []string{"/bin/true"}, CodeDir: code, WorkDir: work, ReadOnly: []string{rt},
		Masks: []string{data, filepath.Join(data, "db"), cfgFile, filepath.Join(d, "absent")}, RunAs: "nobody"}

	dest := func(s *specs.Spec) []string {
		var out []string
		for _, m := range s.Mounts {
			out = append(out, m.Type+" "+m.Destination)
		}
		return out
	}
	tests := []struct {
		name    string
		edit    func(*Options)
		wantErr string
		check   func(t *testing.T, s *specs.Spec)
	}{
		{name: "mounts in order, nested and absent masks skipped", check: func(t *testing.T, s *specs.Spec) {
			want := []string{"tmpfs " + data, "bind " + cfgFile, "tmpfs /tmp", "bind " + rt, "bind " + code, "bind " + work, "proc /proc"}
			if got := dest(s); !slices.Equal(got, want) {
				t.Errorf("mounts\n got %q\nwant %q", got, want)
			}
			if s.Mounts[1].Source != "/dev/null" {
				t.Errorf("file mask source %q, want /dev/null", s.Mounts[1].Source)
			}
			if !slices.Contains(s.Mounts[4].Options, "ro") || !slices.Contains(s.Mounts[4].Options, optMkdir) {
				t.Errorf("code dir options %q, want ro and %s (it lies in a mask)", s.Mounts[4].Options, optMkdir)
			}
			if !slices.Contains(s.Mounts[3].Options, "ro") || !slices.Contains(s.Mounts[3].Options, "rbind") {
				t.Errorf("runtime dir options %q, want ro and rbind (submounts too)", s.Mounts[3].Options)
			}
			if !slices.Contains(s.Mounts[5].Options, "rw") {
				t.Errorf("work dir options %q, want rw", s.Mounts[5].Options)
			}
		}},
		{name: "process", check: func(t *testing.T, s *specs.Spec) {
			p := s.Process
			if p.User.UID != 65534 || p.User.GID != 65534 || !p.NoNewPrivileges || p.Cwd != work {
				t.Errorf("process %+v", p)
			}
			c := p.Capabilities
			if c == nil || len(c.Bounding)+len(c.Effective)+len(c.Permitted)+len(c.Inheritable)+len(c.Ambient) != 0 {
				t.Errorf("capabilities %+v, want all empty", c)
			}
			var ns []specs.LinuxNamespaceType
			for _, n := range s.Linux.Namespaces {
				ns = append(ns, n.Type)
			}
			if !slices.Equal(ns, []specs.LinuxNamespaceType{specs.MountNamespace, specs.UserNamespace, specs.PIDNamespace, specs.NetworkNamespace}) {
				t.Errorf("namespaces %v", ns)
			}
			if len(s.Linux.UIDMappings) == 0 || s.Linux.UIDMappings[0].ContainerID != s.Linux.UIDMappings[0].HostID {
				t.Errorf("uid map %+v, want an identity map", s.Linux.UIDMappings)
			}
			if s.Linux.RootfsPropagation != "rprivate" {
				t.Errorf("propagation %q", s.Linux.RootfsPropagation)
			}
		}},
		{name: "environment: allow-list and the content's own", edit: func(o *Options) {
			o.Env = []string{"CONNECT_CONTENT_GUID=abc", "HOME=/custom"}
			o.PathDirs = []string{"/opt/R/4.2.2/bin"}
		}, check: func(t *testing.T, s *specs.Spec) {
			want := []string{"PATH=/opt/R/4.2.2/bin:" + DefaultPath, "USER=nobody", "LOGNAME=nobody", "TMPDIR=/tmp",
				"TZ=Europe/Paris", "LANG=C.UTF-8", "CONNECT_CONTENT_GUID=abc", "HOME=/custom"}
			got := slices.Clone(s.Process.Env)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("env\n got %q\nwant %q", got, want)
			}
		}},
		{name: "namespaces can be left out", edit: func(o *Options) { o.NoUserNamespace, o.NoPIDNamespace = true, true },
			check: func(t *testing.T, s *specs.Spec) {
				if len(s.Linux.Namespaces) != 1 || s.Linux.UIDMappings != nil || slices.Contains(dest(s), "proc /proc") {
					t.Errorf("namespaces %v, uid map %v, mounts %v", s.Linux.Namespaces, s.Linux.UIDMappings, dest(s))
				}
			}},
		{name: "bind that uncovers a mask", edit: func(o *Options) { o.ReadOnly = []string{d} }, wantErr: "would uncover the mask"},
		{name: "absent code dir", edit: func(o *Options) { o.CodeDir = filepath.Join(d, "nope") }, wantErr: "code directory: stat"},
		{name: "relative mask", edit: func(o *Options) { o.Masks = []string{"data"} }, wantErr: "not an absolute path"},
		{name: "no program", edit: func(o *Options) { o.Args = nil }, wantErr: "Options.Args is empty"},
		{name: "unknown user names the fix", edit: func(o *Options) { o.RunAs = "no-such-user-dais" }, wantErr: "Applications.RunAs"},
		{name: "root refused", edit: func(o *Options) { o.RunAs = "root" }, wantErr: "is root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			o.Masks = slices.Clone(base.Masks)
			if tt.edit != nil {
				tt.edit(&o)
			}
			s, err := Spec(o)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, s)
		})
	}
}

func TestDefaultMasks(t *testing.T) {
	tests := []struct {
		name string
		cfg  func(*config.Config)
		want []string
	}{
		{"sqlite", func(c *config.Config) { c.Server.DataDir = "/data"; c.SQLite.Dir = "/db" },
			[]string{"/data", "/db", "/etc/rstudio-connect", "/run/dais", "/run/secrets", "/home", "/var/tmp", "/x"}},
		{"postgres", func(c *config.Config) { c.Server.DataDir = "/data"; c.Database.Provider = "postgres" },
			[]string{"/data", "/etc/rstudio-connect", "/run/dais", "/run/secrets", "/home", "/var/tmp", "/x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Defaults()
			tt.cfg(c)
			if got := DefaultMasks(c, "/x"); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestSelfTest runs every check of `dais sandbox selftest` in each
// namespace mode, and requires the checks the issue lists to be among them.
func TestSelfTest(t *testing.T) {
	needRoot(t)
	required := []string{
		"hidden /tmp/dais-selftest-", "hidden /home/dais-selftest-", "hidden /var/tmp/dais-selftest-",
		"/secret", "/b/code/app.R", "/a/work/marker-a",
		"read-only ", "/runtime/lib", "writable /tmp", "/a/work",
		"absent /tmp/marker-a", "umount ", "remount rw ", "mount tmpfs",
		"uid", "gid", "groups", "setuid(0)", "regain a capability",
		"CapEff is 0", "CapPrm is 0", "CapBnd is 0", "CapAmb is 0", "CapInh is 0", "NoNewPrivs is 1",
		"env " + selftestSecretEnv + " absent", "no inherited fds", "signal the server", "ptrace the server",
		"host: the sandbox's mounts are not visible outside", "host: /tmp marker not in the host's /tmp",
		"host: the work dir write is visible outside", "setup error names the step", "a fork bomb stops at the process limit",
	}
	modes := []struct {
		name           string
		noUser, noPID  bool
		wantParentKill bool
	}{
		{"userns+pidns", false, false, true},
		{"pidns", true, false, true},
		{"userns", false, true, false},
		{"mountns only", true, true, false},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			dd := dataDir(t)
			secret := filepath.Join(dd, "rstudio-connect.gcfg")
			os.WriteFile(secret, []byte("[Postgres]\nPassword = s3cret\n"), 0o644)
			var out strings.Builder
			err := SelfTest(context.Background(), SelfTestOptions{
				DaisPath: os.Args[0], DataDir: dd, Masks: []string{"/home", "/var/tmp"}, Secrets: []string{secret},
				RunAs: testUser(t), NoUserNamespace: m.noUser, NoPIDNamespace: m.noPID,
			}, &out)
			lines := strings.Split(out.String(), "\n")
			for _, l := range lines {
				if strings.HasPrefix(l, "FAIL") {
					t.Error(l)
				}
			}
			if err != nil {
				t.Fatalf("SelfTest: %v\n%s", err, out.String())
			}
			want := required
			if m.wantParentKill {
				want = append(want, "server SIGKILLed: content and its children die", "(pre-started sandbox-exec)")
			}
			if !m.noUser {
				// Its own network namespace: nothing of A's, of the
				// server's loopback or abstract sockets is reachable; the
				// server reaches A inside A's namespace.
				want = append(want, "host: dais reaches content A's port inside A's network namespace",
					"host: content A's port is not on the server's loopback", "b: connect to another content's port",
					"b: connect to every listener /proc shows", "b: connect to the server's abstract socket")
				if _, err := FindNetHelper(); err == nil {
					want = append(want, "c (outbound): reach ", "c (outbound): connect to 10.0.2.2:",
						"c (outbound): /etc/resolv.conf names 10.0.2.3", "c (outbound): connect to every listener /proc shows",
						"host: the outbound helper")
					if m.wantParentKill {
						want = append(want, "and its outbound helper")
					}
				} else if os.Getenv("CI") == "true" {
					t.Errorf("slirp4netns is needed to check outbound network (CI=true: not skipping): %v", err)
				}
			}
			want = append(want, "hidden "+secret)
			for _, w := range want {
				if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "ok ") && strings.Contains(l, w) }) {
					t.Errorf("no passing check mentions %q", w)
				}
			}
		})
	}
}

// run runs args in a sandbox and returns stdout and the error.
func runSandbox(t *testing.T, ctx context.Context, o Options) (string, error) {
	t.Helper()
	return runSandboxMode(t, ctx, o, false)
}

// waitIdle makes sure a pre-started sandbox-exec for cmd's program and
// namespaces is idle, so that cmd.Start uses it.
func waitIdle(t *testing.T, cmd *Cmd) {
	t.Helper()
	refill(cmd.key, cmd.warmAttr, cmd.extraFiles())
	deadline := time.Now().Add(5 * time.Second)
	for {
		warm.Lock()
		n := len(warm.idle[cmd.key])
		warm.Unlock()
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no pre-started sandbox-exec idle after 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// modeCommand is Command(ctx, testExec, s) set to start cold, or on a
// pre-started sandbox-exec made sure to be idle.
func modeCommand(t *testing.T, ctx context.Context, s *specs.Spec, cold bool) *Cmd {
	t.Helper()
	cmd, err := Command(ctx, testExec, s)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Cold = cold
	if !cold {
		waitIdle(t, cmd)
	}
	return cmd
}

// checkMode fails unless cmd started the way modeCommand set it to.
func checkMode(t *testing.T, cmd *Cmd, cold bool) {
	t.Helper()
	if cmd.warm == cold {
		t.Errorf("started on a pre-started sandbox-exec: %v, want %v", cmd.warm, !cold)
	}
}

// startModes are the two ways Cmd.Start starts a sandbox: handing the spec
// to a pre-started sandbox-exec, or starting one for it.
var startModes = []struct {
	name string
	cold bool
}{{"prestarted", false}, {"cold", true}}

func runSandboxMode(t *testing.T, ctx context.Context, o Options, cold bool) (string, error) {
	t.Helper()
	s, err := Spec(o)
	if err != nil {
		t.Fatal(err)
	}
	cmd := modeCommand(t, ctx, s, cold)
	var out, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err = cmd.Run()
	checkMode(t, cmd, cold)
	if stderr.Len() > 0 {
		t.Logf("stderr: %s", stderr.String())
	}
	return out.String(), err
}

func TestRun(t *testing.T) {
	needRoot(t)
	dd := dataDir(t)
	work := filepath.Join(dd, "work")
	os.Mkdir(work, 0o777)
	os.Chmod(work, 0o777)
	t.Setenv("DAIS_SERVER_SECRET", "leak")
	for _, mode := range []struct {
		name          string
		noUser, noPID bool
	}{{"default", false, false}, {"no namespaces but mount", true, true}} {
		tests := []struct {
			name     string
			args     []string
			edit     func(*Options)
			want     string
			wantCode int
		}{
			{name: "exit code", args: []string{"/bin/sh", "-c", "exit 7"}, wantCode: 7},
			{name: "killed by a signal", args: []string{"/bin/sh", "-c", "kill -9 $$"}, wantCode: 128 + 9},
			{name: "environment is the spec's only", args: []string{"/usr/bin/env"},
				edit: func(o *Options) { o.Env = []string{"CONNECT_CONTENT_GUID=g"} },
				want: wantEnv("CONNECT_CONTENT_GUID=g", "HOME="+work, "LOGNAME=nobody", "PATH="+DefaultPath, "TMPDIR=/tmp", "USER=nobody")},
			{name: "rlimits", args: []string{"/bin/sh", "-c", "ulimit -n; ulimit -Hn"},
				edit: func(o *Options) { o.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 123, Hard: 456}} },
				want: "123\n456\n"},
			{name: "cwd and PATH lookup", args: []string{"pwd"}, want: work + "\n"},
			{name: "stdin is the caller's", args: []string{"/bin/sh", "-c", "test -t 0 || echo ok"}, want: "ok\n"},
		}
		for _, tt := range tests {
			for _, sm := range startModes {
				t.Run(mode.name+"/"+sm.name+"/"+tt.name, func(t *testing.T) {
					o := Options{Args: tt.args, WorkDir: work, Masks: []string{dd}, RunAs: "nobody",
						NoUserNamespace: mode.noUser, NoPIDNamespace: mode.noPID}
					if tt.edit != nil {
						tt.edit(&o)
					}
					out, err := runSandboxMode(t, context.Background(), o, sm.cold)
					var ee *exec.ExitError
					code := 0
					if errors.As(err, &ee) {
						code = ee.ExitCode()
						// Without a PID namespace's init, a signal is not an exit code.
						if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
							code = 128 + int(ws.Signal())
						}
					} else if err != nil {
						t.Fatal(err)
					}
					if code != tt.wantCode {
						t.Errorf("exit code %d, want %d (err %v)", code, tt.wantCode, err)
					}
					if tt.name == "environment is the spec's only" {
						lines := strings.Split(strings.TrimSpace(out), "\n")
						slices.Sort(lines)
						out = strings.Join(lines, "\n") + "\n"
					}
					if tt.want != "" && out != tt.want {
						t.Errorf("output\n%q\nwant\n%q", out, tt.want)
					}
				})
			}
		}
	}
}

// A sandbox that cannot be built reports the step, with ExitSetup.
func TestSetupError(t *testing.T) {
	needRoot(t)
	dd := dataDir(t)
	tests := []struct {
		name     string
		edit     func(*specs.Spec)
		wantStep string
		wantMsg  string
	}{
		{"absent bind source", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: dd, Type: "bind", Source: "/nonexistent-dais", Options: []string{"rbind"}})
		}, "open /nonexistent-dais", "does not exist"},
		{"unknown rlimit", func(s *specs.Spec) {
			s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_BOGUS"}}
		}, "set rlimit RLIMIT_BOGUS", "unknown limit"},
		{"bad mount type", func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: dd, Type: "overlay"})
		}, "mount " + dd, "not supported"},
		{"missing cwd", func(s *specs.Spec) { s.Process.Cwd = "/nonexistent-dais" }, "chdir /nonexistent-dais", "no such file"},
		{"program not found", func(s *specs.Spec) { s.Process.Args = []string{"no-such-program-dais"} }, "find no-such-program-dais", "not found in PATH"},
	}
	for _, tt := range tests {
		for _, sm := range startModes {
			t.Run(sm.name+"/"+tt.name, func(t *testing.T) {
				s, err := Spec(Options{Args: []string{"/bin/true"}, Masks: []string{dd}, RunAs: "nobody"})
				if err != nil {
					t.Fatal(err)
				}
				tt.edit(s)
				cmd := modeCommand(t, context.Background(), s, sm.cold)
				var stderr strings.Builder
				cmd.Stderr = &stderr
				err = cmd.Run()
				checkMode(t, cmd, sm.cold)
				var se *SetupError
				if !errors.As(err, &se) {
					t.Fatalf("err = %v, want a *SetupError; stderr %s", err, stderr.String())
				}
				if se.Step != tt.wantStep || !strings.Contains(se.Err, tt.wantMsg) {
					t.Errorf("step %q err %q, want step %q and %q", se.Step, se.Err, tt.wantStep, tt.wantMsg)
				}
				if c := cmd.ProcessState.ExitCode(); c != ExitSetup {
					t.Errorf("exit code %d, want %d", c, ExitSetup)
				}
				if !strings.Contains(stderr.String(), "dais sandbox: "+tt.wantStep+": ") {
					t.Errorf("stderr %q does not name the step", stderr.String())
				}
			})
		}
	}
}

// Cancelling the context kills the content and everything it started.
func TestCancel(t *testing.T) {
	needRoot(t)
	dd := dataDir(t)
	for _, sm := range startModes {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		_, err := runSandboxMode(t, ctx, Options{Args: []string{"/bin/sh", "-c", "sleep 60 & sleep 60"}, Masks: []string{dd}, RunAs: "nobody"}, sm.cold)
		cancel()
		if err == nil {
			t.Fatalf("%s: want an error from a killed sandbox", sm.name)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: took %v: the content or its child survived the cancel", sm.name, d)
		}
	}
}

// wantEnv is kv plus the allow-listed variables of this process, sorted, one a line.
func wantEnv(kv ...string) string {
	lang := false
	for _, k := range AllowedEnv {
		if v, ok := os.LookupEnv(k); ok {
			kv = append(kv, k+"="+v)
			lang = lang || k == "LANG"
		}
	}
	if !lang {
		kv = append(kv, "LANG=C.UTF-8")
	}
	slices.Sort(kv)
	return strings.Join(kv, "\n") + "\n"
}

// TestSelfTestInDocker runs `sandbox selftest` (this test binary standing in
// for dais) in a container of the base image, as the image runs: with
// --cap-add SYS_ADMIN it passes in every namespace mode; without, the error
// names the fix.
func TestSelfTestInDocker(t *testing.T) {
	needRoot(t)
	docker, err := exec.LookPath("docker")
	if err == nil {
		err = exec.Command(docker, "version").Run()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("docker is needed (CI=true: not skipping): %v", err)
		}
		t.Skipf("docker not available: %v", err)
	}
	image := os.Getenv("DAIS_TEST_BASE_IMAGE")
	if image == "" {
		image = "dais-base:bookworm"
	}
	if exec.Command(docker, "image", "inspect", image).Run() != nil {
		t.Skipf("image %s not built (make base-image); the e2e tests cover the real image", image)
	}
	tests := []struct {
		name    string
		docker  []string
		flags   []string
		wantOut string
		wantErr bool
	}{
		{"cap SYS_ADMIN, userns+pidns", []string{"--cap-add", "SYS_ADMIN"}, nil, "all checks passed", false},
		{"cap SYS_ADMIN, pidns", []string{"--cap-add", "SYS_ADMIN"}, []string{"--no-userns"}, "all checks passed", false},
		{"cap SYS_ADMIN, userns", []string{"--cap-add", "SYS_ADMIN"}, []string{"--no-pidns"}, "all checks passed", false},
		{"no SYS_ADMIN, namespaces forced", nil, []string{"--mode", "namespaces"}, "--cap-add SYS_ADMIN", true},
		{"no privileges, landlock (auto)", []string{"--tmpfs", "/data:mode=1777,exec"}, nil, "all checks passed", false},
		{"user 999, no capability, no-new-privileges, landlock",
			[]string{"--user", "999:999", "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--tmpfs", "/data:mode=1777,exec"},
			[]string{"--mode", "landlock"}, "all checks passed", false},
		{"cap SYS_ADMIN, landlock forced", []string{"--cap-add", "SYS_ADMIN"}, []string{"--mode", "landlock"}, "all checks passed", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			args := append([]string{"run", "--rm", "-v", os.Args[0] + ":/usr/local/bin/dais-test:ro"}, tt.docker...)
			args = append(args, image, "sh", "-c",
				"mkdir -p /data /home 2>/dev/null; exec /usr/local/bin/dais-test sandbox selftest --no-config --run-as nobody --data-dir /data "+strings.Join(tt.flags, " "))
			out, err := exec.CommandContext(ctx, docker, args...).CombinedOutput()
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v; output:\n%s", err, tt.wantErr, out)
			}
			if !strings.Contains(string(out), tt.wantOut) {
				t.Errorf("output lacks %q:\n%s", tt.wantOut, out)
			}
			if !tt.wantErr && strings.Contains(string(out), "FAIL") {
				t.Errorf("a check failed:\n%s", out)
			}
		})
	}
}

// A sandbox started from a goroutine whose locked thread then exits must not
// get the parent-death signal (golang/go#27505): Cmd.Start forks from the
// spawner thread, which lives as long as the process.
func TestStartFromExitingThread(t *testing.T) {
	needRoot(t)
	dd := dataDir(t)
	for _, noPID := range []bool{false, true} {
		s, err := Spec(Options{Args: []string{"/bin/sh", "-c", "sleep 0.5; exit 3"}, Masks: []string{dd}, RunAs: "nobody", NoPIDNamespace: noPID})
		if err != nil {
			t.Fatal(err)
		}
		cmd, err := Command(context.Background(), os.Args[0], s)
		if err != nil {
			t.Fatal(err)
		}
		started := make(chan error)
		go func() {
			runtime.LockOSThread() // never unlocked: Go ends this thread when the goroutine returns
			started <- cmd.Start()
		}()
		if err := <-started; err != nil {
			t.Fatal(err)
		}
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 {
			t.Errorf("pidns=%v: Wait = %v, want exit status 3 (a SIGKILL means the parent-death signal fired when the starting thread exited)", !noPID, err)
		}
	}
}

// A read-only directory named through a symlink (/opt/R/current) is
// read-only with its submounts: sandbox-exec matches mountinfo's resolved paths.
func TestReadOnlyThroughSymlink(t *testing.T) {
	needRoot(t)
	dd := dataDir(t)
	real, sub, link := filepath.Join(dd, "real"), filepath.Join(dd, "real/sub"), filepath.Join(dd, "link")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", sub, "tmpfs", 0, "mode=0777"); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(sub, syscall.MNT_DETACH)
	os.Chmod(real, 0o777)
	for _, dir := range []string{link, link + "/sub"} {
		out, err := runSandbox(t, context.Background(), Options{
			Args:     []string{"/bin/sh", "-c", "touch " + dir + "/x 2>&1 && echo WROTE"},
			ReadOnly: []string{link}, RunAs: "nobody", Masks: []string{"/home"},
		})
		if strings.Contains(out, "WROTE") || err == nil {
			t.Errorf("writing %s: err %v, output %q; want a read-only file system", dir, err, out)
		}
		if !strings.Contains(out, "Read-only file system") {
			t.Errorf("writing %s: output %q, want 'Read-only file system'", dir, out)
		}
	}
}

// A read-only directory inside the writable work directory stays read-only.
func TestNestedBinds(t *testing.T) {
	needRoot(t)
	dd := dataDir(t)
	work, lib := filepath.Join(dd, "work"), filepath.Join(dd, "work/lib")
	if err := os.MkdirAll(lib, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(work, 0o777)
	os.Chmod(lib, 0o777)
	out, err := runSandbox(t, context.Background(), Options{
		Args:    []string{"/bin/sh", "-c", "touch " + work + "/ok && touch " + lib + "/x 2>&1; echo done"},
		WorkDir: work, ReadOnly: []string{lib}, RunAs: "nobody", Masks: []string{dd},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Read-only file system") {
		t.Errorf("output %q: want the write to %s refused", out, lib)
	}
	if _, err := os.Stat(filepath.Join(work, "ok")); err != nil {
		t.Errorf("work dir write: %v", err)
	}
}

func TestOutput(t *testing.T) {
	needRoot(t)
	dd := dataDir(t)
	s, err := Spec(Options{Args: []string{"/bin/sh", "-c", "echo out; echo err >&2"}, Masks: []string{dd}, RunAs: "nobody"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		run  func(*Cmd) ([]byte, error)
		want string
	}{
		{"Output", (*Cmd).Output, "out\n"},
		{"CombinedOutput", (*Cmd).CombinedOutput, "out\nerr\n"},
	} {
		for _, sm := range startModes {
			t.Run(sm.name+"/"+tt.name, func(t *testing.T) {
				cmd := modeCommand(t, context.Background(), s, sm.cold)
				out, err := tt.run(cmd)
				checkMode(t, cmd, sm.cold)
				if err != nil || string(out) != tt.want {
					t.Errorf("got %q, %v; want %q", out, err, tt.want)
				}
			})
		}
	}
}

// A signal sent right after Start reaches the content through the
// sandbox's init: Cmd.Signal waits until the init forwards signals (it
// registers them beside the content's start). A signal before that would
// end the init itself (killed by the signal, not exiting with 128+n).
func TestSignalRightAfterStart(t *testing.T) {
	needRoot(t)
	dd := dataDir(t)
	s, err := Spec(Options{Args: []string{"/bin/sleep", "30"}, Masks: []string{dd}, RunAs: "nobody"})
	if err != nil {
		t.Fatal(err)
	}
	for _, sm := range startModes {
		for i := range 10 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			cmd := modeCommand(t, ctx, s, sm.cold)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			checkMode(t, cmd, sm.cold)
			if err := cmd.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			cmd.Wait()
			ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if !ws.Exited() || ws.ExitStatus() != 128+int(syscall.SIGTERM) {
				t.Fatalf("%s, try %d: the init ended with %v, want exit status 143 (the content killed by the forwarded SIGTERM)", sm.name, i, cmd.ProcessState)
			}
		}
	}
}

// The pre-started sandbox-exec: used when idle, replaced after use, skipped
// when it died, released by SetPrestart(0).
func TestPrestart(t *testing.T) {
	needRoot(t)
	dd := dataDir(t)
	s, err := Spec(Options{Args: []string{"/bin/sh", "-c", "echo $$"}, Masks: []string{dd}, RunAs: "nobody"})
	if err != nil {
		t.Fatal(err)
	}
	run := func() *Cmd {
		t.Helper()
		cmd, err := Command(context.Background(), os.Args[0], s)
		if err != nil {
			t.Fatal(err)
		}
		out, err := cmd.Output()
		// Not 1: the content runs under the sandbox's init, in its PID namespace.
		if pid, _ := strconv.Atoi(strings.TrimSpace(string(out))); err != nil || pid < 2 || pid > 100 {
			t.Fatalf("output %q, %v (sandbox-exec %d, pre-started %v); want the content's pid in its own PID namespace", out, err, cmd.Process.Pid, cmd.warm)
		}
		return cmd
	}
	idle := func() []*warmProc {
		cmd, _ := Command(context.Background(), os.Args[0], s)
		if !WaitPrestarts(5 * time.Second) {
			t.Fatal("pre-started sandbox-exec still starting after 5 s")
		}
		warm.Lock()
		defer warm.Unlock()
		if n := warm.starting[cmd.key]; n != 0 {
			t.Fatalf("WaitPrestarts returned with %d pre-starts under way", n)
		}
		return slices.Clone(warm.idle[cmd.key])
	}
	SetPrestart(1)
	run()
	if l := idle(); len(l) != 1 {
		t.Fatalf("%d idle after a start, want 1", len(l))
	}
	if cmd := run(); !cmd.warm {
		t.Error("an idle pre-started sandbox-exec was not used")
	}
	// One that died while idle is skipped: the start falls back to a new one.
	l := idle()
	if len(l) != 1 {
		t.Fatalf("%d idle, want 1", len(l))
	}
	l[0].proc.Kill()
	// Until its end of the socket is closed (the last of its threads
	// gone): a SIGKILLed process dies when it next runs, which on a loaded
	// host took more than the 50 ms this waited before, and its leader
	// shows as a zombie before its other threads are gone. Until then the
	// socket still takes the spec.
	var pfd []unix.PollFd
	var n int
	if sc, err := l[0].sock.SyscallConn(); err == nil {
		sc.Control(func(fd uintptr) {
			pfd = []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
			n, err = unix.Poll(pfd, 5000)
		})
	}
	if n == 0 || pfd[0].Revents&(unix.POLLHUP|unix.POLLRDHUP) == 0 {
		t.Fatalf("SIGKILLed sandbox-exec %d: its socket still open after 5 s", l[0].proc.Pid)
	}
	if cmd := run(); cmd.warm {
		t.Error("a dead pre-started sandbox-exec was used")
	}
	// Released: it exits on its own and is reaped.
	l = idle()
	if len(l) != 1 {
		t.Fatalf("%d idle, want 1", len(l))
	}
	pid := l[0].proc.Pid
	SetPrestart(0)
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) != syscall.ESRCH {
		if time.Now().After(deadline) {
			t.Fatalf("released sandbox-exec %d still there after 5 s", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if cmd := run(); cmd.warm {
		t.Error("SetPrestart(0), yet a pre-started sandbox-exec was used")
	}
	if l := idle(); len(l) != 0 {
		t.Errorf("SetPrestart(0), yet %d idle", len(l))
	}
	SetPrestart(1)
}

// Standard descriptors, started either way: a reader as stdin (piped in), a
// file as stdout (given as is), a writer as stderr (piped out).
func TestStdio(t *testing.T) {
	needRoot(t)
	dd := dataDir(t)
	s, err := Spec(Options{Args: []string{"/bin/sh", "-c", "cat; echo to-stderr >&2"}, Masks: []string{dd}, RunAs: "nobody"})
	if err != nil {
		t.Fatal(err)
	}
	for _, sm := range startModes {
		t.Run(sm.name, func(t *testing.T) {
			out, err := os.CreateTemp(t.TempDir(), "stdout")
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			cmd := modeCommand(t, context.Background(), s, sm.cold)
			var stderr strings.Builder
			cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader("from-stdin\n"), out, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatal(err)
			}
			checkMode(t, cmd, sm.cold)
			b, _ := os.ReadFile(out.Name())
			if string(b) != "from-stdin\n" || stderr.String() != "to-stderr\n" {
				t.Errorf("stdout file %q, stderr %q; want %q and %q", b, stderr.String(), "from-stdin\n", "to-stderr\n")
			}
		})
	}
}
