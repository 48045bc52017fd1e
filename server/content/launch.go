// Package content holds what turns a deployed bundle into something dais
// serves: the command lines of each app mode (LaunchArgs for apps and APIs,
// RenderArgs for documents). The pieces live in sub-packages:
//
//   - content/bundle: safe extraction of the uploaded tar.gz;
//   - content/manifest: manifest.json, app modes, checksums;
//   - content/runtime: R/Python/Quarto installations and version matching;
//   - content/env: restoring the bundle's packages (venv, R library).
//
// A deployment (the deploy engineer's code) goes: bundle.Extract ->
// manifest.Read + VerifyFiles -> runtime.Finder.Find for each of
// m.Languages() -> env.Restore (env.SandboxRunner) -> for apps, a
// process.Pool whose Launcher (process.SandboxLauncher) runs LaunchArgs in
// the sandbox, switched in with process.Proxy.Switch; for documents,
// RenderArgs in the sandbox, then deploy's file site serves Dirs.Output;
// for static content, it serves Dirs.Code (primary_html at "/").
//
// The commands only bind 127.0.0.1 on the port given; the proxy in
// server/process strips the /content/<guid>/ prefix and sets the
// RStudio-Connect-App-Base-URL header. The prefix is also passed to the
// frameworks that build absolute URLs (uvicorn --root-path, WSGI
// SCRIPT_NAME, streamlit's baseUrlPath, bokeh's --prefix).
package content

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dais-dev/dais/server/content/manifest"
	"github.com/dais-dev/dais/server/content/runtime"
)

// ErrNotRunnable is returned by LaunchArgs for modes that do not run a
// process (static, documents) and by RenderArgs for modes that do not render.
var ErrNotRunnable = errors.New("app mode does not run as a process")

// Runtimes are the installations picked for a bundle (zero when unused).
type Runtimes struct {
	R, Python, Quarto runtime.Installation
}

// Dirs are the absolute host paths of one deployment.
type Dirs struct {
	// Code is the unpacked bundle (read-only in the sandbox).
	Code string
	// Work is writable: HOME, intermediates of renders.
	Work string
	// Output receives rendered documents (index.html is served).
	Output string
	// Venv is the Python virtual environment (env.Restore made it), "" if none.
	Venv string
	// RLibrary is the per-content R library (env.Restore), "" if none.
	RLibrary string
	// BasePath is the public URL path of the content, "/content/<guid>/".
	BasePath string
}

// Command is a program to run in the sandbox: Args[0] is absolute.
type Command struct {
	Args     []string
	Env      []string // KEY=VALUE, beyond the sandbox's own
	PathDirs []string // bin directories put first in PATH
	Dir      string   // working directory
}

// Plain returns the command as an *exec.Cmd run directly, outside any
// sandbox, with the server's environment plus c.Env and c.PathDirs first
// in PATH: for tests and for servers running without the sandbox.
func (c Command) Plain(ctx context.Context) *exec.Cmd {
	if ctx == nil {
		ctx = context.Background()
	}
	cmd := exec.CommandContext(ctx, c.Args[0], c.Args[1:]...)
	cmd.Dir = c.Dir
	env := os.Environ()
	if len(c.PathDirs) > 0 {
		env = append(env, "PATH="+strings.Join(c.PathDirs, ":")+":"+os.Getenv("PATH"))
	}
	cmd.Env = append(env, c.Env...)
	return cmd
}

//go:embed launch_python.py
var pythonLauncher string

// LaunchArgs returns the command that serves an app or API of the bundle
// on 127.0.0.1:port.
func LaunchArgs(m *manifest.Manifest, rt Runtimes, port int, d Dirs) (Command, error) {
	mode := m.Metadata.AppMode
	p := strconv.Itoa(port)
	base := strings.TrimSuffix(d.BasePath, "/")
	c := Command{Dir: d.Code, Env: commonEnv(d)}
	switch mode {
	case manifest.Shiny:
		return rCommand(c, rt, d, fmt.Sprintf(
			`shiny::runApp(%s, port = %s, host = "127.0.0.1", launch.browser = FALSE)`, rString(d.Code), p))
	case manifest.RMarkdownShiny:
		// No render_args: rmarkdown renders each session into its own
		// tempfile() (the sandbox's private /tmp) and serves the figures
		// from there; an output_dir would put them where it does not look.
		doc := m.PrimaryDocument(".rmd")
		return rCommand(c, rt, d, fmt.Sprintf(
			`rmarkdown::run(%s, shiny_args = list(port = %s, host = "127.0.0.1", launch.browser = FALSE))`,
			rString(filepath.Join(d.Code, doc)), p))
	case manifest.Plumber:
		return rCommand(c, rt, d, fmt.Sprintf(
			`pr <- plumber::plumb(dir = %s); pr$setDocs(FALSE); pr$run(host = "127.0.0.1", port = %s)`, rString(d.Code), p))
	case manifest.QuartoShiny:
		if rt.Quarto.Path == "" {
			return Command{}, errors.New("app mode quarto-shiny needs Quarto; none was picked")
		}
		doc := m.PrimaryDocument(".qmd")
		if doc == "" {
			doc = m.PrimaryDocument(".rmd")
		}
		c.Dir = d.Work
		c.Args = []string{rt.Quarto.Path, "serve", filepath.Join(d.Code, doc), "--port", p, "--host", "127.0.0.1", "--no-browse"}
		return c, nil
	case manifest.PythonAPI, manifest.PythonFastAPI, manifest.PythonDash, manifest.PythonShiny, manifest.PythonGradio:
		module, object := m.PythonEntrypoint()
		py, err := pythonExe(rt, d, &c)
		if err != nil {
			return Command{}, err
		}
		c.Args = []string{py, "-c", pythonLauncher, string(mode), d.Code, module, object, p, base}
		return c, nil
	case manifest.PythonStreamlit:
		py, err := pythonExe(rt, d, &c)
		if err != nil {
			return Command{}, err
		}
		c.Args = []string{py, "-m", "streamlit", "run", scriptPath(m, d), "--server.port", p,
			"--server.address", "127.0.0.1", "--server.headless", "true", "--server.baseUrlPath", base,
			"--browser.gatherUsageStats", "false"}
		return c, nil
	case manifest.PythonBokeh:
		py, err := pythonExe(rt, d, &c)
		if err != nil {
			return Command{}, err
		}
		c.Args = []string{py, "-m", "bokeh", "serve", scriptPath(m, d), "--port", p, "--address", "127.0.0.1",
			"--allow-websocket-origin", "*", "--prefix", base}
		return c, nil
	case manifest.JupyterVoila:
		py, err := pythonExe(rt, d, &c)
		if err != nil {
			return Command{}, err
		}
		c.Args = []string{py, "-m", "voila", filepath.Join(d.Code, m.PrimaryDocument(".ipynb")), "--port=" + p,
			"--no-browser", "--Voila.ip=127.0.0.1", "--Voila.base_url=" + base + "/"}
		return c, nil
	}
	return Command{}, fmt.Errorf("%w: %s is %s content", ErrNotRunnable, mode, mode.Kind())
}

// scriptPath is the script a Streamlit or Bokeh app runs: the manifest's
// entrypoint, app.py when it names none.
func scriptPath(m *manifest.Manifest, d Dirs) string {
	ep := string(m.Metadata.Entrypoint)
	if ep == "" {
		ep = "app.py"
	}
	return filepath.Join(d.Code, ep)
}

// RenderArgs returns the command that renders a document of the bundle
// into d.Output, with d.Work for intermediates. The main output is
// d.Output/index.html. Quarto writes beside its sources: run it on a
// writable copy of the bundle (d.Code pointing at the copy).
func RenderArgs(m *manifest.Manifest, rt Runtimes, d Dirs) (Command, error) {
	mode := m.Metadata.AppMode
	c := Command{Dir: d.Work, Env: commonEnv(d)}
	switch mode {
	case manifest.RMarkdownStatic:
		doc := m.PrimaryDocument(".rmd")
		return rCommand(c, rt, d, fmt.Sprintf(
			`rmarkdown::render(%s, output_dir = %s, output_file = "index.html", intermediates_dir = %s, knit_root_dir = %s, envir = new.env())`,
			rString(filepath.Join(d.Code, doc)), rString(d.Output), rString(d.Work), rString(d.Code)))
	case manifest.JupyterStatic:
		py, err := pythonExe(rt, d, &c)
		if err != nil {
			return Command{}, err
		}
		nb := m.PrimaryDocument(".ipynb")
		kernel, err := kernelAddress()
		if err != nil {
			return Command{}, err
		}
		c.Args = []string{py, "-m", "nbconvert", "--to", "html", "--execute",
			"--KernelManager.transport=ipc", "--KernelManager.ip=" + kernel,
			"--output-dir", d.Output, "--output", "index", filepath.Join(d.Code, nb)}
		if m.Jupyter != nil && m.Jupyter.HideAllInput {
			c.Args = append(c.Args, "--no-input")
		}
		return c, nil
	case manifest.QuartoStatic:
		if rt.Quarto.Path == "" {
			return Command{}, errors.New("app mode quarto-static needs Quarto; none was picked")
		}
		target := d.Code
		if doc := m.PrimaryDocument(".qmd"); doc != "" && !hasProject(m) {
			target = filepath.Join(d.Code, doc)
		}
		c.Dir = d.Code
		c.Args = []string{rt.Quarto.Path, "render", target, "--output-dir", d.Output}
		if rt.R.Path != "" {
			c.Env = append(c.Env, "QUARTO_R="+rt.R.Path)
		}
		if py := pythonPath(rt, d); py != "" {
			c.Env = append(c.Env, "QUARTO_PYTHON="+py)
		}
		return c, nil
	}
	return Command{}, fmt.Errorf("%w: %s is %s content, it does not render", ErrNotRunnable, mode, mode.Kind())
}

func hasProject(m *manifest.Manifest) bool {
	_, ok := m.Files["_quarto.yml"]
	return ok
}

func commonEnv(d Dirs) []string {
	e := []string{"RSTUDIO_PRODUCT=CONNECT", "DAIS_BASE_PATH=" + d.BasePath}
	if d.Work != "" {
		e = append(e, "HOME="+d.Work)
	}
	return e
}

func rCommand(c Command, rt Runtimes, d Dirs, expr string) (Command, error) {
	if rt.R.Path == "" {
		return Command{}, errors.New("this app mode needs R; none was picked")
	}
	c.Args = []string{rt.R.Path, "--no-save", "--no-restore", "--no-echo", "-e", expr}
	if d.RLibrary != "" {
		c.Env = append(c.Env, "R_LIBS="+d.RLibrary)
	}
	c.PathDirs = []string{filepath.Dir(rt.R.Path)}
	return c, nil
}

func pythonPath(rt Runtimes, d Dirs) string {
	if d.Venv != "" {
		return path.Join(d.Venv, "bin", "python")
	}
	return rt.Python.Path
}

func pythonExe(rt Runtimes, d Dirs, c *Command) (string, error) {
	py := pythonPath(rt, d)
	if py == "" {
		return "", errors.New("this app mode needs Python; none was picked")
	}
	if d.Venv != "" {
		c.Env = append(c.Env, "VIRTUAL_ENV="+d.Venv)
	}
	c.Env = append(c.Env, "PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1")
	c.PathDirs = []string{filepath.Dir(py)}
	return py, nil
}

// rString quotes s as an R string literal.
func rString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// kernelAddress is where the notebook's kernel and nbconvert talk: ZeroMQ
// over abstract Unix sockets named @dais-kernel-<random>-<n>, instead of
// Jupyter's five TCP ports on the loopback. In Landlock mode content may
// bind only its own port and connect only to the connect list (which
// leaves out the ephemeral range, where the kernel's ports would be), and
// abstract sockets are scoped to the sandbox (Landlock ABI 6): the render's
// own processes reach the kernel, other content and the server cannot
// (even with the same uid). In namespaces mode abstract sockets belong to
// the sandbox's network namespace. The name is random because the abstract
// namespace is shared by the whole network namespace.
func kernelAddress() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("name the notebook kernel's sockets: %w", err)
	}
	return "@dais-kernel-" + hex.EncodeToString(b[:]), nil
}
