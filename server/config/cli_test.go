package config_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	daisBin   string
	buildErr  error
)

// dais builds the dais binary once for the black-box tests.
func dais(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dais-config-cli")
		if err != nil {
			buildErr = err
			return
		}
		daisBin = filepath.Join(dir, "dais")
		gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(gobin); err != nil {
			gobin = "go"
		}
		out, err := exec.Command(gobin, "build", "-o", daisBin, "github.com/dais-dev/dais/server").CombinedOutput()
		if err != nil {
			buildErr = errors.New("go build: " + err.Error() + "\n" + string(out))
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return daisBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if daisBin != "" {
		os.RemoveAll(filepath.Dir(daisBin))
	}
	os.Exit(code)
}

// TestCLI runs `dais config check` and `dais config print` as a user would
// and checks exit codes and output.
func TestCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the dais binary")
	}
	bin := dais(t)
	for _, tc := range []struct {
		name       string
		args       []string
		env        []string
		code       int
		stdout     []string // substrings that must appear
		stderr     []string
		notStdout  []string
		errorLines int // lines starting "error: " on stderr
	}{
		{name: "admin file checks clean", args: []string{"config", "check", "--config", "testdata/admin.gcfg"},
			code: 0, stdout: []string{"configuration OK: testdata/admin.gcfg (1 warning(s))"},
			stderr: []string{"warning: testdata/admin.gcfg:7: Licensing.LicenseType = remote but no license server"}},
		{name: "admin file with license server", args: []string{"config", "check", "--config", "testdata/admin.gcfg"},
			env: []string{"RSC_LICENSE_SERVER=lic:8999"}, code: 0,
			stdout: []string{"configuration OK: testdata/admin.gcfg + env RSC_LICENSE_SERVER (0 warning(s))"}},
		{name: "every problem listed", args: []string{"config", "check", "--config", "testdata/bad-values.gcfg"},
			code: 1, errorLines: 19, stderr: []string{
				"error: testdata/bad-values.gcfg:11: Database.Provider = \"mysql\": must be one of sqlite, postgres",
				"dais config: 19 problem(s) in the configuration",
			}},
		{name: "bad environment names the variable", args: []string{"config", "check", "--config", "testdata/admin.gcfg"},
			env: []string{"CONNECT_SCHEDULER_MAXPROCESSES=lots", "RSC_LICENSE_SERVER=l:1"}, code: 1, errorLines: 1,
			stderr: []string{"error: env CONNECT_SCHEDULER_MAXPROCESSES: Scheduler.MaxProcesses:"}},
		{name: "missing file", args: []string{"config", "check", "--config", "testdata/nope.gcfg"},
			code: 1, stderr: []string{"testdata/nope.gcfg", "--config"}},
		{name: "print redacts and explains", args: []string{"config", "print", "--config", "testdata/migration.gcfg"},
			env: []string{"CONNECT_POSTGRES_PASSWORD=topsecret"}, code: 0,
			stdout: []string{
				`PublicWarning = "from the migration file"`, "; testdata/migration-migration.gcfg:3",
				"Password = (redacted)", "; env CONNECT_POSTGRES_PASSWORD",
				"postgres://connect:xxxxx@db.example.com", "; default",
			},
			notStdout: []string{"topsecret", "hunter2"}},
		{name: "print of a bad file fails", args: []string{"config", "print", "--config", "testdata/syntax.gcfg"},
			code: 1, errorLines: 7},
		{name: "help", args: []string{"config", "check", "--help"}, code: 0,
			stdout: []string{"Usage: dais config <check|print> [--config FILE]", "CONNECT_<SECTION>_<KEY>"}},
		{name: "no subcommand", args: []string{"config"}, code: 2, stderr: []string{"Usage: dais config"}},
		{name: "unknown subcommand", args: []string{"config", "lint"}, code: 2, stderr: []string{`unknown subcommand "lint"`}},
		{name: "stray argument", args: []string{"config", "check", "x.gcfg"}, code: 2, stderr: []string{"use --config FILE"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, tc.args...)
			cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, tc.env...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout lacks %q", s)
				}
			}
			for _, s := range tc.notStdout {
				if strings.Contains(stdout.String(), s) {
					t.Errorf("stdout shows %q", s)
				}
			}
			for _, s := range tc.stderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q", s)
				}
			}
			if tc.errorLines > 0 {
				if n := strings.Count("\n"+stderr.String(), "\nerror: "); n != tc.errorLines {
					t.Errorf("%d error lines, want %d", n, tc.errorLines)
				}
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			}
		})
	}
}
