package env

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dais-dev/dais/server/content"
	"github.com/dais-dev/dais/server/content/manifest"
	"github.com/dais-dev/dais/server/content/runtime"
)

// need returns the installation at path, skipping the test when it is
// absent outside CI (CI=true must have it).
func need(t *testing.T, lang manifest.Language, path string, modules ...string) runtime.Installation {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI: %v", path, err)
		}
		t.Skipf("%s not installed", path)
	}
	f := &runtime.Finder{Executables: map[manifest.Language][]string{lang: {path}}, Roots: map[manifest.Language][]string{lang: {}}}
	in, err := f.Find(context.Background(), lang, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range modules {
		if err := exec.Command(path, "-c", "import "+m).Run(); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("Python module %s is required in CI (Debian python3-%s)", m, m)
			}
			t.Skipf("Python module %s not installed", m)
		}
	}
	return in
}

func bundle(t *testing.T, manifestJSON string, files map[string]string) (string, *manifest.Manifest) {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, err := manifest.Parse([]byte(manifestJSON))
	if err != nil {
		t.Fatal(err)
	}
	return dir, m
}

const pyManifest = `{"metadata":{"appmode":"python-api","entrypoint":"app"},"python":{"version":"3.11.2","package_manager":{"name":"pip","package_file":"requirements.txt"}}}`

func TestRestorePython(t *testing.T) {
	py := need(t, manifest.LangPython, "/usr/bin/python3", "flask")
	// No index reachable, as offline: fail fast instead of waiting for the network.
	t.Setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
	t.Setenv("PIP_FIND_LINKS", "")
	tests := []struct {
		name         string
		requirements string
		wantErr      string // "" for success
		warn         string
	}{
		{"all installed from the system", "# pinned by rsconnect-python\nflask\nWerkzeug>=1.0\n\n", "", ""},
		{"marker excludes", "flask\nwindows-only-pkg; sys_platform == 'win32'\n", "", ""},
		{"missing and offline", "flask\ndais-no-such-package==1.0\n", "dais-no-such-package", ""},
		{"other version installed: kept with a warning", "flask==0.0.1\n", "", "flask: installed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, m := bundle(t, pyManifest, map[string]string{"app.py": "app = None\n", "requirements.txt": tt.requirements})
			var log bytes.Buffer
			envDir := filepath.Join(t.TempDir(), "env")
			res, err := Restore(context.Background(), Options{Manifest: m, Runtimes: content.Runtimes{Python: py}, CodeDir: code, EnvDir: envDir, Log: &log})
			if tt.wantErr != "" {
				if !errors.Is(err, ErrMissingPackages) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Restore = %v; want ErrMissingPackages naming %s\nlog:\n%s", err, tt.wantErr, log.String())
				}
				return
			}
			if err != nil {
				t.Fatalf("Restore: %v\nlog:\n%s", err, log.String())
			}
			if res.Venv != filepath.Join(envDir, "python") {
				t.Errorf("Venv = %q", res.Venv)
			}
			// The venv sees the system's flask.
			if out, err := exec.Command(filepath.Join(res.Venv, "bin", "python"), "-c", "import flask, sys; print(sys.prefix)").CombinedOutput(); err != nil || !strings.Contains(string(out), res.Venv) {
				t.Errorf("venv python: %s %v", out, err)
			}
			if tt.warn != "" && !strings.Contains(strings.Join(res.Warnings, "\n"), tt.warn) {
				t.Errorf("warnings %v; want one containing %q", res.Warnings, tt.warn)
			}
			if tt.warn == "" && len(res.Installed) > 0 {
				t.Errorf("installed %v; want nothing (all satisfied)", res.Installed)
			}
		})
	}
}

func TestRestoreR(t *testing.T) {
	r := need(t, manifest.LangR, "/usr/bin/R")
	shiny, err := os.ReadFile("../../../examples/shiny/manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	withMissing := strings.Replace(string(shiny), `"packages": {`,
		`"packages": {"daisNoSuchPkg": {"Source": "CRAN", "Repository": null, "description": {"Package": "daisNoSuchPkg", "Version": "1.0.0"}},`, 1)
	if withMissing == string(shiny) {
		t.Fatal("could not add a package to the example manifest")
	}
	newer := strings.Replace(string(shiny), `"Version": "1.7.4"`, `"Version": "99.0.0"`, 1)
	// A project's renv.lock lists renv, which no index here provides.
	withRenv := strings.Replace(string(shiny), `"packages": {`,
		`"packages": {"renv": {"Source": "CRAN", "Repository": "https://cran.example", "description": {"Package": "renv", "Version": "1.0.11"}},`, 1)
	tests := []struct {
		name     string
		manifest string
		repos    map[string]string
		wantErr  []string
		warn     string
	}{
		{"offline, all installed", string(shiny), nil, nil, ""},
		{"renv of a lockfile, not installed: not needed", withRenv, nil, nil, ""},
		{"installed older than the bundle's: warning", newer, nil, nil, "shiny 1.7.4 (bundle has 99.0.0)"},
		{"missing, no repository", withMissing, nil, []string{"daisNoSuchPkg", "[RPackageRepository"}, ""},
		{"missing, repository unreachable", withMissing, map[string]string{"CRAN": "http://127.0.0.1:9/cran"}, []string{"daisNoSuchPkg", "http://127.0.0.1:9/cran"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, m := bundle(t, tt.manifest, map[string]string{"app.R": "1\n"})
			var log bytes.Buffer
			res, err := Restore(context.Background(), Options{Manifest: m, Runtimes: content.Runtimes{R: r}, CodeDir: code,
				EnvDir: filepath.Join(t.TempDir(), "env"), Repositories: tt.repos, Log: &log})
			if tt.wantErr != nil {
				if !errors.Is(err, ErrMissingPackages) {
					t.Fatalf("Restore = %v; want ErrMissingPackages\nlog:\n%s", err, log.String())
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				if strings.Contains(err.Error(), "shiny") {
					t.Errorf("error %q names installed packages", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Restore: %v\nlog:\n%s", err, log.String())
			}
			if res.RLibrary == "" {
				t.Error("no R library")
			}
			if tt.warn != "" && !strings.Contains(strings.Join(res.Warnings, "\n"), tt.warn) {
				t.Errorf("warnings %v; want %q", res.Warnings, tt.warn)
			}
			if tt.warn == "" && len(res.Warnings) > 0 {
				t.Errorf("unexpected warnings %v", res.Warnings)
			}
		})
	}
}

// TestVenvHint (issue 23, defect 8): "install python3-venv" is the fix
// only when creating the venv failed for want of the venv module; a NUL
// in the environment or a sandbox that did not start got it too.
func TestVenvHint(t *testing.T) {
	code, m := bundle(t, pyManifest, map[string]string{"app.py": "app = None\n"})
	tests := []struct {
		name   string
		output string
		err    error
		hint   bool
	}{
		{"venv module missing (Debian)", "The virtual environment was not created successfully because ensurepip is not\navailable.  On Debian/Ubuntu systems, you need to install the python3-venv\npackage using the following command.\n", errors.New("exit status 1"), true},
		{"no module named venv", "/usr/bin/python3: No module named venv\n", errors.New("exit status 1"), true},
		{"a NUL in the environment", "", errors.New("fork/exec /usr/local/bin/dais-sandbox-exec: invalid argument"), false},
		{"the sandbox did not start", "dais sandbox: setuid: operation not permitted\n", errors.New("sandbox: setup failed"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := func(ctx context.Context, c content.Command, out io.Writer) error {
				io.WriteString(out, tt.output)
				return tt.err
			}
			var log bytes.Buffer
			_, err := Restore(context.Background(), Options{Manifest: m, Runtimes: content.Runtimes{Python: runtime.Installation{Path: "/usr/bin/python3"}},
				CodeDir: code, EnvDir: filepath.Join(t.TempDir(), "env"), Run: run, Log: &log})
			if err == nil || !strings.Contains(err.Error(), tt.err.Error()) {
				t.Fatalf("Restore = %v, want the runner's error", err)
			}
			if got := strings.Contains(err.Error(), "python3-venv"); got != tt.hint {
				t.Errorf("error %q: hint %v, want %v", err, got, tt.hint)
			}
		})
	}
}
