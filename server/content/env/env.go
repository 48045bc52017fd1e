// Package env restores the package environment of a bundle: a Python
// virtual environment, an R library, each per bundle, with every command
// run through a Runner (in the sandbox in production: SandboxRunner).
//
//	res, err := env.Restore(ctx, env.Options{
//		Manifest: m, Runtimes: rts, CodeDir: code, EnvDir: dataDir + "/envs/<bundle>",
//		Repositories: map[string]string{"CRAN": url}, // [RPackageRepository "NAME"] URL
//		Run: env.SandboxRunner("", base), Log: taskOutput,
//	})
//	// then content.Dirs{Venv: res.Venv, RLibrary: res.RLibrary, ...}
//
// Python: `python -m venv --system-site-packages EnvDir/python`, then the
// manifest's package file (python.package_manager.package_file, default
// requirements.txt) is read; requirements already satisfied by what is
// installed (the runtime's and the system's site packages, e.g. Debian's
// python3-flask) are skipped; the rest go to `pip install`. A package
// that is not installed at all and that pip cannot install (no index
// reachable) fails the restore, naming it; one installed with another
// version than pinned is kept, with a warning in the log.
//
// R: every package of the manifest is looked up in the libraries
// (EnvDir/R first, then R's own); missing ones are installed with
// install.packages into EnvDir/R from the configured repositories (and
// the repository URLs the manifest names). A package still missing after
// that fails the restore, naming it; one installed with another version
// is kept, with a warning.
//
// EnvDir must be writable during Restore (SandboxRunner's base options
// should list it in ReadWrite) and is read-only for the app afterwards.
package env

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/dais-dev/dais/server/content"
	"github.com/dais-dev/dais/server/content/manifest"
	"github.com/dais-dev/dais/server/sandbox"
)

// ErrMissingPackages is returned (wrapped) when packages the bundle needs
// are not installed and cannot be installed.
var ErrMissingPackages = errors.New("packages missing")

// Runner runs one command to completion, its output to out.
type Runner func(ctx context.Context, c content.Command, out io.Writer) error

// PlainRunner runs commands as the server's own user, outside any
// sandbox: for tests and for installations without one.
func PlainRunner(ctx context.Context, c content.Command, out io.Writer) error {
	cmd := c.Plain(ctx)
	cmd.Stdout, cmd.Stderr = out, out
	return cmd.Run()
}

// SandboxRunner runs commands through `dais sandbox-exec`: base gives
// the sandbox (CodeDir, WorkDir, ReadOnly runtimes, ReadWrite with the
// EnvDir, Masks, RunAs); each command's Args, Env, PathDirs and Dir are
// set on a copy. daisPath "" means this executable.
func SandboxRunner(daisPath string, base sandbox.Options) Runner {
	return func(ctx context.Context, c content.Command, out io.Writer) error {
		o := base
		o.Args, o.Env, o.PathDirs, o.Dir = c.Args, append(slices.Clone(base.Env), c.Env...), c.PathDirs, c.Dir
		spec, err := sandbox.Spec(o)
		if err != nil {
			return err
		}
		cmd, err := sandbox.Command(ctx, daisPath, spec)
		if err != nil {
			return err
		}
		cmd.Stdout, cmd.Stderr = out, out
		return cmd.Run()
	}
}

// Options are the inputs of Restore.
type Options struct {
	Manifest *manifest.Manifest
	Runtimes content.Runtimes
	// CodeDir is the unpacked bundle.
	CodeDir string
	// EnvDir receives the environment: EnvDir/python (venv), EnvDir/R (library).
	EnvDir string
	// Repositories are the R package repositories by name ([RPackageRepository "NAME"] URL).
	Repositories map[string]string
	// Run runs the commands. Default PlainRunner.
	Run Runner
	// Log receives progress lines and the commands' output (the task log).
	Log io.Writer
}

// Result says where the environment is.
type Result struct {
	Venv      string   // "" when the bundle has no Python
	RLibrary  string   // "" when the bundle has no R
	Installed []string // packages installed by this restore
	Warnings  []string // version differences accepted
}

// Restore builds the environment for the bundle's languages.
func Restore(ctx context.Context, o Options) (Result, error) {
	if o.Run == nil {
		o.Run = PlainRunner
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	var res Result
	langs := o.Manifest.Languages()
	if slices.Contains(langs, manifest.LangPython) {
		if err := restorePython(ctx, o, &res); err != nil {
			return res, err
		}
	}
	if slices.Contains(langs, manifest.LangR) && len(o.Manifest.Packages) > 0 {
		if err := restoreR(ctx, o, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// venvHint is the fix for a failed `python -m venv` when its output says
// that the venv module is what is missing (Debian splits it into
// python3-venv); "" when something else failed (the sandbox could not
// start, the environment was refused, ...), which the error says itself.
func venvHint(out string) string {
	for _, s := range []string{"No module named venv", "ensurepip is not available", "python3-venv"} {
		if strings.Contains(out, s) {
			return "; install python3-venv with that Python"
		}
	}
	return ""
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (o Options) logf(format string, args ...any) {
	fmt.Fprintf(o.Log, format+"\n", args...)
}

//go:embed check_python.py
var checkPython string

type pyCheck struct {
	Missing    []string `json:"missing"`    // requirement lines not installed at all
	Mismatched []string `json:"mismatched"` // "name: installed X, wanted SPEC"
	Invalid    []string `json:"invalid"`    // lines pip's parser refused
}

func restorePython(ctx context.Context, o Options, res *Result) error {
	if o.Runtimes.Python.Path == "" {
		return errors.New("restore Python environment: no Python runtime picked")
	}
	venv := filepath.Join(o.EnvDir, "python")
	if err := os.MkdirAll(o.EnvDir, 0o755); err != nil {
		return fmt.Errorf("restore Python environment: %w", err)
	}
	o.logf("Creating the Python environment with %s %s", o.Runtimes.Python.Path, o.Runtimes.Python.Version)
	var venvOut bytes.Buffer
	if err := o.Run(ctx, content.Command{
		// Without pip: ensurepip takes seconds and most bundles need no
		// install; the system's pip serves when one is needed.
		Args: []string{o.Runtimes.Python.Path, "-m", "venv", "--system-site-packages", "--without-pip", venv}, Dir: o.EnvDir,
	}, io.MultiWriter(o.Log, &limitedBuffer{b: &venvOut, max: 64 << 10})); err != nil {
		return fmt.Errorf("create Python virtual environment: %w%s", err, venvHint(venvOut.String()))
	}
	res.Venv = venv
	py := filepath.Join(venv, "bin", "python")
	reqFile := filepath.Join(o.CodeDir, o.Manifest.PackageFile())
	if _, err := os.Stat(reqFile); errors.Is(err, os.ErrNotExist) {
		o.logf("No %s in the bundle: nothing to install", o.Manifest.PackageFile())
		return nil
	}
	var out bytes.Buffer
	if err := o.Run(ctx, content.Command{Args: []string{py, "-c", checkPython, reqFile}, Dir: o.EnvDir, Env: pyEnv(venv)},
		&out); err != nil {
		return fmt.Errorf("check Python packages: %w: %s", err, lastLines(out.String(), 5))
	}
	var chk pyCheck
	if err := json.Unmarshal(lastLine(out.Bytes()), &chk); err != nil {
		return fmt.Errorf("check Python packages: %w: %s", err, lastLines(out.String(), 5))
	}
	for _, m := range chk.Invalid {
		o.logf("Warning: %s: cannot parse %q, skipped", o.Manifest.PackageFile(), m)
	}
	toInstall := slices.Concat(chk.Missing, chk.Mismatched)
	if len(toInstall) == 0 {
		o.logf("All Python packages of %s are installed", o.Manifest.PackageFile())
		return nil
	}
	o.logf("Installing Python packages: %s", strings.Join(toInstall, ", "))
	if err := o.Run(ctx, content.Command{Args: []string{py, "-c", "import pip"}, Dir: o.EnvDir, Env: pyEnv(venv)}, io.Discard); err != nil {
		o.logf("No pip visible in the environment; adding one with ensurepip")
		if err := o.Run(ctx, content.Command{Args: []string{py, "-m", "ensurepip", "--default-pip"}, Dir: o.EnvDir, Env: pyEnv(venv)}, o.Log); err != nil {
			return fmt.Errorf("%w: Python package(s) %s not installed, and the Python at %s has no pip to install them (install python3-pip)",
				ErrMissingPackages, strings.Join(names(chk.Missing), ", "), o.Runtimes.Python.Path)
		}
	}
	list := filepath.Join(o.EnvDir, "requirements.dais.txt")
	if err := os.WriteFile(list, []byte(strings.Join(reqLines(chk), "\n")+"\n"), 0o644); err != nil {
		return err
	}
	var pipOut bytes.Buffer
	err := o.Run(ctx, content.Command{
		Args: []string{py, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--retries", "1", "--timeout", "15", "-r", list},
		Dir:  o.EnvDir, Env: pyEnv(venv),
	}, io.MultiWriter(o.Log, &pipOut))
	if err == nil {
		res.Installed = append(res.Installed, toInstall...)
		return nil
	}
	// Offline: what is installed in another version is kept; what is
	// missing fails.
	if len(chk.Missing) > 0 {
		return fmt.Errorf("%w: Python package(s) %s not installed and pip could not install them (%s); install them with the Python runtime (e.g. Debian's python3-<name>) or make the package index reachable",
			ErrMissingPackages, strings.Join(names(chk.Missing), ", "), lastLines(pipOut.String(), 2))
	}
	for _, m := range chk.Mismatched {
		w := "Python package " + m + " (pip could not install the wanted version; using the installed one)"
		res.Warnings = append(res.Warnings, w)
		o.logf("Warning: %s", w)
	}
	return nil
}

func reqLines(c pyCheck) []string {
	var out []string
	out = append(out, c.Missing...)
	for _, m := range c.Mismatched {
		// "name: installed X, wanted SPEC" -> the requirement "nameSPEC"
		name, rest, _ := strings.Cut(m, ": installed ")
		_, spec, _ := strings.Cut(rest, ", wanted ")
		out = append(out, name+spec)
	}
	return out
}

// names turns requirement lines into package names.
func names(reqs []string) []string {
	var out []string
	for _, r := range reqs {
		n := strings.TrimSpace(r)
		if i := strings.IndexAny(n, "<>=!~;[ @"); i > 0 {
			n = n[:i]
		}
		out = append(out, n)
	}
	return out
}

func pyEnv(venv string) []string {
	return []string{"VIRTUAL_ENV=" + venv, "PIP_NO_CACHE_DIR=1", "PYTHONDONTWRITEBYTECODE=1"}
}

func lastLine(b []byte) []byte {
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		return b[i+1:]
	}
	return b
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

//go:embed check_r.R
var checkR string

func restoreR(ctx context.Context, o Options, res *Result) error {
	if o.Runtimes.R.Path == "" {
		return errors.New("restore R packages: no R runtime picked")
	}
	lib := filepath.Join(o.EnvDir, "R")
	if err := os.MkdirAll(lib, 0o755); err != nil {
		return fmt.Errorf("restore R packages: %w", err)
	}
	res.RLibrary = lib
	// The wanted packages, one "name<TAB>version<TAB>repository" a line.
	var want strings.Builder
	repos := map[string]string{}
	for name, url := range o.Repositories {
		repos[name] = url
	}
	for _, name := range o.Manifest.Packages.Names() {
		p := o.Manifest.Packages[name]
		if name == "renv" {
			// A project's renv.lock lists renv itself, which the content
			// does not run (rsconnect turns its activation off in the
			// bundle) and which no package index here may provide.
			o.logf("Not restoring renv %s: the project's package manager, not used to run the content", p.Version())
			continue
		}
		fmt.Fprintf(&want, "%s\t%s\t%s\n", name, p.Version(), p.Repository)
		if p.Repository != "" && !slices.Contains(mapValues(repos), string(p.Repository)) {
			key := string(p.Source)
			if _, taken := repos[key]; taken || key == "" {
				key = fmt.Sprintf("%s%d", p.Source, len(repos))
			}
			repos[key] = string(p.Repository)
		}
	}
	wantFile := filepath.Join(o.EnvDir, "R-packages.tsv")
	if err := os.WriteFile(wantFile, []byte(want.String()), 0o644); err != nil {
		return err
	}
	check := func() (missing, older []string, err error) {
		var out bytes.Buffer
		err = o.Run(ctx, content.Command{
			Args: []string{o.Runtimes.R.Path, "--no-save", "--no-restore", "--no-echo", "-e", checkR, "--args", wantFile},
			Dir:  o.EnvDir, Env: []string{"R_LIBS=" + lib}, PathDirs: []string{filepath.Dir(o.Runtimes.R.Path)},
		}, &out)
		if err != nil {
			return nil, nil, fmt.Errorf("check R packages: %w: %s", err, lastLines(out.String(), 5))
		}
		sc := bufio.NewScanner(&out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) >= 2 && f[0] == "MISSING":
				missing = append(missing, f[1])
			case len(f) >= 4 && f[0] == "VERSION":
				older = append(older, fmt.Sprintf("%s %s (bundle has %s)", f[1], f[2], f[3]))
			}
		}
		return missing, older, nil
	}
	o.logf("Checking %d R packages with %s %s", len(o.Manifest.Packages), o.Runtimes.R.Path, o.Runtimes.R.Version)
	missing, older, err := check()
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		if len(repos) == 0 {
			return fmt.Errorf("%w: R package(s) %s not installed, and no repository to install them from; add an [RPackageRepository \"CRAN\"] URL to the configuration or install them with R",
				ErrMissingPackages, strings.Join(missing, ", "))
		}
		o.logf("Installing R packages: %s", strings.Join(missing, ", "))
		var rs []string
		keys := mapKeys(repos)
		for _, k := range keys {
			rs = append(rs, fmt.Sprintf("%s = %q", rIdent(k), repos[k]))
		}
		expr := fmt.Sprintf(`options(repos = c(%s)); install.packages(c(%s), lib = %q, dependencies = c("Depends", "Imports", "LinkingTo"))`,
			strings.Join(rs, ", "), quoteAll(missing), lib)
		if err := o.Run(ctx, content.Command{
			Args: []string{o.Runtimes.R.Path, "--no-save", "--no-restore", "--no-echo", "-e", expr},
			Dir:  o.EnvDir, Env: []string{"R_LIBS=" + lib}, PathDirs: []string{filepath.Dir(o.Runtimes.R.Path)},
		}, o.Log); err != nil {
			o.logf("install.packages failed: %v", err)
		}
		stillMissing, older2, err := check()
		if err != nil {
			return err
		}
		if len(stillMissing) > 0 {
			return fmt.Errorf("%w: R package(s) %s not installed and could not be installed from %s; check that the repository is reachable, or install them with R",
				ErrMissingPackages, strings.Join(stillMissing, ", "), strings.Join(mapValues(repos), ", "))
		}
		res.Installed = append(res.Installed, missing...)
		older = older2
	}
	for _, w := range older {
		res.Warnings = append(res.Warnings, "R package "+w)
		o.logf("Warning: R package %s: using the installed version", w)
	}
	return nil
}

func mapKeys(m map[string]string) []string {
	k := make([]string, 0, len(m))
	for x := range m {
		k = append(k, x)
	}
	sort.Strings(k)
	return k
}

func mapValues(m map[string]string) []string {
	var v []string
	for _, k := range mapKeys(m) {
		v = append(v, m[k])
	}
	return v
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// rIdent makes a repository name usable as an R argument name.
func rIdent(s string) string {
	return "`" + strings.ReplaceAll(s, "`", "") + "`"
}
