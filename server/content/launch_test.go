package content_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dais-dev/dais/internal/shinytest"
	"github.com/dais-dev/dais/server/content"
	"github.com/dais-dev/dais/server/content/env"
	"github.com/dais-dev/dais/server/content/manifest"
	"github.com/dais-dev/dais/server/content/runtime"
	"github.com/dais-dev/dais/server/process"
)

func TestLaunchArgs(t *testing.T) {
	rts := content.Runtimes{
		R:      runtime.Installation{Path: "/opt/R/4.2.2/bin/R"},
		Python: runtime.Installation{Path: "/opt/python/3.11.2/bin/python3"},
		Quarto: runtime.Installation{Path: "/opt/quarto/1.3.450/bin/quarto"},
	}
	d := content.Dirs{Code: "/data/apps/1/2", Work: "/data/work/1", Output: "/data/out/1", Venv: "/data/env/2/python", RLibrary: "/data/env/2/R", BasePath: "/content/abc/"}
	tests := []struct {
		manifest string
		render   bool
		has      []string // substrings of the joined args
		env      []string
		err      error
	}{
		{`{"metadata":{"appmode":"shiny"}}`, false, []string{"/opt/R/4.2.2/bin/R", `shiny::runApp("/data/apps/1/2", port = 4242, host = "127.0.0.1", launch.browser = FALSE)`}, []string{"R_LIBS=/data/env/2/R", "HOME=/data/work/1"}, nil},
		{`{"metadata":{"appmode":"api"}}`, false, []string{`plumber::plumb(dir = "/data/apps/1/2")`, `pr$run(host = "127.0.0.1", port = 4242)`}, nil, nil},
		{`{"metadata":{"appmode":"rmd-shiny","primary_rmd":"doc.Rmd"}}`, false, []string{`rmarkdown::run("/data/apps/1/2/doc.Rmd"`, "port = 4242"}, nil, nil},
		{`{"metadata":{"appmode":"python-api","entrypoint":"app:server"},"python":{"version":"3.11"}}`, false, []string{"/data/env/2/python/bin/python -c", "python-api /data/apps/1/2 app server 4242 /content/abc"}, []string{"VIRTUAL_ENV=/data/env/2/python"}, nil},
		{`{"metadata":{"appmode":"python-fastapi","entrypoint":"main"},"python":{"version":"3.11"}}`, false, []string{"python-fastapi /data/apps/1/2 main app 4242 /content/abc"}, nil, nil},
		{`{"metadata":{"appmode":"python-streamlit","entrypoint":"app.py"},"python":{"version":"3.11"}}`, false, []string{"-m streamlit run /data/apps/1/2/app.py --server.port 4242 --server.address 127.0.0.1", "--server.baseUrlPath /content/abc"}, nil, nil},
		{`{"metadata":{"appmode":"python-streamlit"},"python":{"version":"3.11"}}`, false, []string{"-m streamlit run /data/apps/1/2/app.py "}, nil, nil},
		{`{"metadata":{"appmode":"python-bokeh","entrypoint":"plots.py"},"python":{"version":"3.11"}}`, false, []string{"-m bokeh serve /data/apps/1/2/plots.py --port 4242 --address 127.0.0.1", "--prefix /content/abc"}, nil, nil},
		{`{"metadata":{"appmode":"static"}}`, false, nil, nil, content.ErrNotRunnable},
		{`{"metadata":{"appmode":"rmd-static","primary_rmd":"doc.Rmd"}}`, false, nil, nil, content.ErrNotRunnable},
		{`{"metadata":{"appmode":"rmd-static","primary_rmd":"doc.Rmd"}}`, true, []string{`rmarkdown::render("/data/apps/1/2/doc.Rmd", output_dir = "/data/out/1", output_file = "index.html"`}, nil, nil},
		{`{"metadata":{"appmode":"jupyter-static","entrypoint":"nb.ipynb"},"python":{"version":"3.11"}}`, true, []string{"-m nbconvert --to html --execute --KernelManager.transport=ipc --KernelManager.ip=@dais-kernel-", "--output-dir /data/out/1 --output index /data/apps/1/2/nb.ipynb"}, nil, nil},
		{`{"metadata":{"appmode":"quarto-static","entrypoint":"doc.qmd"},"quarto":{"engines":["markdown"]},"files":{"doc.qmd":{}}}`, true, []string{"/opt/quarto/1.3.450/bin/quarto render /data/apps/1/2/doc.qmd --output-dir /data/out/1"}, nil, nil},
		{`{"metadata":{"appmode":"shiny"}}`, true, nil, nil, content.ErrNotRunnable},
	}
	for _, tt := range tests {
		m, err := manifest.Parse([]byte(tt.manifest))
		if err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("%s render=%v", m.Metadata.AppMode, tt.render)
		t.Run(name, func(t *testing.T) {
			var c content.Command
			if tt.render {
				c, err = content.RenderArgs(m, rts, d)
			} else {
				c, err = content.LaunchArgs(m, rts, 4242, d)
			}
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v; want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			joined := strings.Join(c.Args, " ")
			for _, h := range tt.has {
				if !strings.Contains(joined, h) {
					t.Errorf("args %q lack %q", joined, h)
				}
			}
			for _, e := range tt.env {
				if !slices.Contains(c.Env, e) {
					t.Errorf("env %q lacks %q", c.Env, e)
				}
			}
			if !filepath.IsAbs(c.Args[0]) {
				t.Errorf("program %q is not absolute", c.Args[0])
			}
		})
	}
}

// need finds a runtime on this machine, skipping when absent outside CI.
func need(t *testing.T, lang manifest.Language, path string, check ...string) runtime.Installation {
	t.Helper()
	fail := t.Skipf
	if os.Getenv("CI") == "true" {
		fail = t.Fatalf
	}
	if _, err := os.Stat(path); err != nil {
		fail("%s not installed", path)
	}
	for _, c := range check {
		flag := []string{"-c", c}
		if lang == manifest.LangR {
			flag = []string{"-s", "-e", c}
		}
		if out, err := exec.Command(path, flag...).CombinedOutput(); err != nil {
			fail("%s %s: %v %s", path, c, err, out)
		}
	}
	f := &runtime.Finder{Executables: map[manifest.Language][]string{lang: {path}}, Roots: map[manifest.Language][]string{lang: {}}}
	in, err := f.Find(context.Background(), lang, "")
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// serveExample runs examples/<dir> through a pool and the proxy, as the
// deploy code will (without the sandbox), and returns the proxy's URL of it.
func serveExample(t *testing.T, dir string, rts content.Runtimes, extraEnv ...string) string {
	t.Helper()
	code, err := filepath.Abs(filepath.Join("..", "..", "examples", dir))
	if err != nil {
		t.Fatal(err)
	}
	return serveCode(t, code, rts, process.Options{Max: 1}, extraEnv...)
}

// serveCode runs the app in directory code through a pool of options o
// (Launch, LogDir and timeouts set here) and the proxy, and returns the
// proxy's URL of it.
func serveCode(t *testing.T, code string, rts content.Runtimes, o process.Options, extraEnv ...string) string {
	t.Helper()
	m, err := manifest.Read(code)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.VerifyFiles(code); err != nil {
		t.Fatal(err)
	}
	guid := "guid-" + filepath.Base(code)
	work := t.TempDir()
	d := content.Dirs{Code: code, Work: work, BasePath: "/content/" + guid + "/"}
	if rts.Python.Path != "" {
		res, err := env.Restore(context.Background(), env.Options{Manifest: m, Runtimes: rts, CodeDir: code, EnvDir: filepath.Join(work, "env")})
		if err != nil {
			t.Fatal(err)
		}
		d.Venv = res.Venv
	}
	logDir := filepath.Join(t.TempDir(), "logs")
	o.Name, o.LogDir, o.InitTimeout, o.StopTimeout = guid, logDir, 60*time.Second, 5*time.Second
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	o.Launch = process.CommandLauncher(func(port int) (*exec.Cmd, error) {
		c, err := content.LaunchArgs(m, rts, port, d)
		if err != nil {
			return nil, err
		}
		c.Env = append(c.Env, extraEnv...)
		return c.Plain(context.Background()), nil
	})
	pool, err := process.New(o)
	if err != nil {
		t.Fatal(err)
	}
	px := process.NewProxy(nil, "")
	if err := px.Switch(context.Background(), guid, pool); err != nil {
		logs, _ := filepath.Glob(filepath.Join(logDir, "*"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			t.Logf("%s:\n%s", l, b)
		}
		t.Fatal(err)
	}
	srv := httptest.NewServer(px)
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		pool.Stop(ctx)
	})
	return srv.URL + "/content/" + guid
}

// get GETs url and returns the response with its body, read and closed.
func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func getJSON(t *testing.T, url string) map[string]any {
	t.Helper()
	resp, b := get(t, url)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("GET %s: %v in %q", url, err, b)
	}
	return v
}

func TestExampleAPIsThroughProxy(t *testing.T) {
	tests := []struct {
		dir    string
		lang   manifest.Language
		exe    string
		check  string // a probe the runtime must pass
		hello  string
		prefix bool     // the app sees the base path
		env    []string // more environment for the app
	}{
		{"flask", manifest.LangPython, "/usr/bin/python3", "import flask", "hello from flask", true, nil},
		{"flask", manifest.LangPython, "/usr/bin/python3", "import flask", "hello from flask", true, []string{"DAIS_WSGI_SERVER=wsgiref"}},
		{"fastapi", manifest.LangPython, "/usr/bin/python3", "import fastapi, uvicorn", "hello from fastapi", false, nil},
		{"plumber", manifest.LangR, "/usr/bin/R", "library(plumber)", "hello from plumber", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.dir+strings.Join(tt.env, ","), func(t *testing.T) {
			t.Parallel()
			var rts content.Runtimes
			if tt.lang == manifest.LangPython {
				rts.Python = need(t, tt.lang, tt.exe, tt.check)
			} else {
				rts.R = need(t, tt.lang, tt.exe, tt.check)
			}
			base := serveExample(t, tt.dir, rts, tt.env...)
			if got := getJSON(t, base+"/hello")["message"]; got != tt.hello {
				t.Errorf("/hello message = %v; want %q", got, tt.hello)
			}
			echo := getJSON(t, base+"/echo?msg=hi%20there")
			if echo["msg"] != "hi there" {
				t.Errorf("/echo = %v", echo)
			}
			if tt.prefix && echo["script_name"] != strings.TrimPrefix(base, base[:strings.Index(base, "/content/")]) {
				t.Errorf("the WSGI app saw SCRIPT_NAME %v; want the content's base path", echo["script_name"])
			}
		})
	}
}

func TestShinyWebSocketThroughProxy(t *testing.T) {
	t.Parallel()
	r := need(t, manifest.LangR, "/usr/bin/R", "library(shiny)")
	base := serveExample(t, "shiny", content.Runtimes{R: r})
	resp, page := get(t, base+"/")
	if !strings.Contains(string(page), "dais shiny example") {
		t.Fatalf("Shiny page: %s %.300s", resp.Status, page)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := shinytest.Dial(t, ctx, "ws"+strings.TrimPrefix(base, "http")+"/websocket/", nil)
	s.Send(t, "init", shinytest.Init("/", map[string]any{"msg": "hello dais"}, "echo"))
	s.Expect(t, `"echo":"echo: hello dais"`)
	// A second round trip: change the input, get the new output.
	s.Send(t, "update", map[string]any{"msg": "again"})
	s.Expect(t, `"echo":"echo: again"`)
}

func TestRenderRMarkdown(t *testing.T) {
	t.Parallel()
	r := need(t, manifest.LangR, "/usr/bin/R", "library(rmarkdown); stopifnot(rmarkdown::pandoc_available())")
	code, _ := filepath.Abs("../../examples/rmarkdown")
	m, err := manifest.Read(code)
	if err != nil {
		t.Fatal(err)
	}
	d := content.Dirs{Code: code, Work: t.TempDir(), Output: t.TempDir()}
	c, err := content.RenderArgs(m, content.Runtimes{R: r}, d)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := c.Plain(context.Background()).CombinedOutput(); err != nil {
		t.Fatalf("render: %v\n%s", err, out)
	}
	html, err := os.ReadFile(filepath.Join(d.Output, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(html), "sum is 6") || !strings.Contains(string(html), "dais R Markdown example") {
		t.Errorf("rendered HTML lacks the output: %.500s", html)
	}
	if ents, _ := os.ReadDir(code); len(ents) != 2 {
		t.Errorf("render wrote into the bundle directory: %v", ents)
	}
}

func TestRenderJupyter(t *testing.T) {
	t.Parallel()
	py := need(t, manifest.LangPython, "/usr/bin/python3", "import nbconvert, ipykernel")
	code, _ := filepath.Abs("../../examples/jupyter")
	m, err := manifest.Read(code)
	if err != nil {
		t.Fatal(err)
	}
	d := content.Dirs{Code: code, Work: t.TempDir(), Output: t.TempDir()}
	rts := content.Runtimes{Python: py}
	res, err := env.Restore(context.Background(), env.Options{Manifest: m, Runtimes: rts, CodeDir: code, EnvDir: filepath.Join(d.Work, "env")})
	if err != nil {
		t.Fatal(err)
	}
	d.Venv = res.Venv
	c, err := content.RenderArgs(m, rts, d)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := c.Plain(context.Background()).CombinedOutput(); err != nil {
		t.Fatalf("render: %v\n%s", err, out)
	}
	html, err := os.ReadFile(filepath.Join(d.Output, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(html), "sum is 6") {
		t.Errorf("rendered notebook lacks the executed output")
	}
}
