package e2e

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// rsconnectPythonVersion is the rsconnect-python release the tests drive,
// unmodified, from the shared clients (see clientsDir).
const rsconnectPythonVersion = "1.29.0"

// clientsDir finds the real Posit clients: $DAIS_CLIENTS_DIR, else
// shared/clients beside the repository or beside one of its parents (the
// shared/ folder next to a clone, or next to the worktrees' folder). A
// test that needs them skips without them, or fails when CI=true.
func clientsDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("DAIS_CLIENTS_DIR"); d != "" {
		if _, err := os.Stat(d); err != nil {
			requireOrSkip(t, "DAIS_CLIENTS_DIR=%s: %v", d, err)
		}
		return d
	}
	for dir := RepoRoot(t); ; dir = filepath.Dir(dir) {
		c := filepath.Join(filepath.Dir(dir), "shared", "clients")
		if fi, err := os.Stat(c); err == nil && fi.IsDir() {
			return c
		}
		if dir == filepath.Dir(dir) {
			break
		}
	}
	requireOrSkip(t, "the real Posit clients are not found: set DAIS_CLIENTS_DIR to the folder of rsconnect-python-%s.tar.gz (../shared/clients)", rsconnectPythonVersion)
	return ""
}

// unpackTarGz unpacks the archive into dir (regular files and folders).
func unpackTarGz(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		requireOrSkip(t, "client archive: %v", err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(p, dir+string(filepath.Separator)) {
			t.Fatalf("archive entry %q leaves the directory", h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			os.MkdirAll(filepath.Dir(p), 0o755)
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// rsconnectPy runs the unmodified rsconnect-python CLI with Debian's
// Python 3 and its python3-click, python3-semver and python3-jwt.
type rsconnectPy struct {
	t      *testing.T
	python string
	src    string // the unpacked client
	home   string // its HOME: the server list and deployment records
	url    string
	key    string
}

func newRsconnectPy(t *testing.T, url, key string) *rsconnectPy {
	t.Helper()
	archive := filepath.Join(clientsDir(t), "rsconnect-python-"+rsconnectPythonVersion+".tar.gz")
	// Debian's Python, not one a version manager put first on PATH: the
	// client's dependencies are Debian packages.
	python := "/usr/bin/python3"
	if out, err := exec.Command(python, "-c", "import click, semver, jwt").CombinedOutput(); err != nil {
		requireOrSkip(t, "rsconnect-python needs Debian's Python with its dependencies (apt-get install python3-click python3-semver python3-jwt): %v %s", err, out)
	}
	work := tempDir(t)
	unpackTarGz(t, archive, work)
	r := &rsconnectPy{t: t, python: python, src: filepath.Join(work, "rsconnect-python-"+rsconnectPythonVersion),
		home: filepath.Join(work, "home"), url: url, key: key}
	os.MkdirAll(r.home, 0o755)
	return r
}

// run runs `rsconnect args...` and returns its output and exit error.
func (r *rsconnectPy) run(args ...string) (string, error) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.python, append([]string{"-m", "rsconnect.main"}, args...)...)
	// Its records (content build's store included) go to its own
	// directories, never into the repository.
	cmd.Dir = r.home
	cmd.Env = append(os.Environ(), "PYTHONPATH="+r.src, "HOME="+r.home, "XDG_CONFIG_HOME="+filepath.Join(r.home, ".config"),
		"CONNECT_CONTENT_BUILD_DIR="+filepath.Join(r.home, "rsconnect-build"), "PYTHONDONTWRITEBYTECODE=1", "NO_COLOR=1")
	b, err := cmd.CombinedOutput()
	out := ansi.ReplaceAllString(string(b), "") // its log lines are coloured whatever NO_COLOR says
	r.t.Logf("$ rsconnect %s\n%s", strings.ReplaceAll(strings.Join(args, " "), r.key, "<key>"), tail(out, 40))
	return out, err
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

// must runs a command that must succeed.
func (r *rsconnectPy) must(args ...string) string {
	r.t.Helper()
	out, err := r.run(args...)
	if err != nil {
		r.t.Fatalf("rsconnect %s failed: %v\n%s", strings.ReplaceAll(strings.Join(args, " "), r.key, "<key>"), err, out)
	}
	return out
}

// server is the -s/-k pair of every command.
func (r *rsconnectPy) server() []string { return []string{"-s", r.url, "-k", r.key} }

// deployedGUID is the content guid rsconnect recorded for a deployed path.
func deployedGUID(t *testing.T, out string) string {
	t.Helper()
	// "Deployment completed successfully.\n\t Dashboard content URL: .../connect/#/apps/<guid>"
	i := strings.LastIndex(out, "/apps/")
	if i < 0 {
		t.Fatalf("no content URL in the deploy output:\n%s", out)
	}
	guid := out[i+len("/apps/"):]
	if j := strings.IndexAny(guid, " \n\t/"); j >= 0 {
		guid = guid[:j]
	}
	if len(guid) != 36 {
		t.Fatalf("content guid %q from the deploy output:\n%s", guid, out)
	}
	return guid
}

// TestRsconnectPython drives rsconnect-python 1.29.0, unchanged, against
// the container: details, every deploy kind it has for content dais runs,
// drafts, info, content search/describe/download-bundle, builds and the
// runtime caches.
func TestRsconnectPython(t *testing.T) {
	c, key := deployServer(t)
	admin := adminKey(t, c)
	rs := newRsconnectPy(t, c.URL(""), key)
	work := tempDir(t)

	t.Run("details", func(t *testing.T) {
		out := rs.must(append([]string{"details"}, rs.server()...)...)
		for _, want := range []string{"2024.08.0", "3.11"} {
			if !strings.Contains(out, want) {
				t.Errorf("details output lacks %q (the Connect version and the Python dais found)", want)
			}
		}
	})

	site := filepath.Join(work, "site")
	os.MkdirAll(site, 0o755)
	os.WriteFile(filepath.Join(site, "index.html"), []byte("<html><body>first version</body></html>"), 0o644)
	var siteGUID string
	t.Run("deploy html", func(t *testing.T) {
		out := rs.must(append([]string{"deploy", "html", "--title", "Site"}, append(rs.server(), site)...)...)
		siteGUID = deployedGUID(t, out)
		if code, body := getWithKey(t, c, "/content/"+siteGUID+"/", key); code != 200 || !strings.Contains(body, "first version") {
			t.Fatalf("the site answers %d %q", code, body)
		}
	})

	t.Run("deploy html --draft", func(t *testing.T) {
		if siteGUID == "" {
			t.Skip("deploy html failed")
		}
		os.WriteFile(filepath.Join(site, "index.html"), []byte("<html><body>second version</body></html>"), 0o644)
		out := rs.must(append([]string{"deploy", "html", "--draft", "--app-id", siteGUID}, append(rs.server(), site)...)...)
		if !strings.Contains(out, "/draft/") {
			t.Errorf("the client did not print the draft URL:\n%s", out)
		}
		if _, body := getWithKey(t, c, "/content/"+siteGUID+"/", key); !strings.Contains(body, "first version") {
			t.Fatalf("after the draft deploy the site shows %q, want the first version still live", body)
		}
		rs.must(append([]string{"deploy", "html", "--app-id", siteGUID}, append(rs.server(), site)...)...)
		if _, body := getWithKey(t, c, "/content/"+siteGUID+"/", key); !strings.Contains(body, "second version") {
			t.Fatalf("after the activating deploy the site shows %q", body)
		}
	})

	t.Run("info", func(t *testing.T) {
		out := rs.must("info", site)
		if siteGUID != "" && !strings.Contains(out, siteGUID) {
			t.Errorf("info does not show the deployment's guid %s", siteGUID)
		}
	})

	apis := map[string]string{}
	for _, tt := range []struct{ kind, example string }{{"api", "flask"}, {"fastapi", "fastapi"}} {
		t.Run("deploy "+tt.kind, func(t *testing.T) {
			dir := copyExample(t, work, tt.example)
			out := rs.must(append([]string{"deploy", tt.kind, "--title", tt.example}, append(rs.server(), dir)...)...)
			guid := deployedGUID(t, out)
			apis[tt.example] = guid
			if code, body := getWithKey(t, c, "/content/"+guid+"/hello", key); code != 200 || !strings.Contains(body, "hello") {
				t.Fatalf("%s answers %d %q", tt.example, code, body)
			}
		})
	}

	t.Run("deploy notebook", func(t *testing.T) {
		dir := copyExample(t, work, "jupyter")
		out := rs.must(append([]string{"deploy", "notebook", "--title", "Notebook"}, append(rs.server(), filepath.Join(dir, "notebook.ipynb"))...)...)
		guid := deployedGUID(t, out)
		if code, body := getWithKey(t, c, "/content/"+guid+"/", key); code != 200 || !strings.Contains(body, "<html") {
			t.Fatalf("the notebook answers %d %q", code, tail(body, 5))
		}
	})

	t.Run("deploy shiny", func(t *testing.T) {
		// The client gets through (server_settings.version is a Connect
		// version it can compare), uploads and deploys; the app needs
		// Python's shiny, which Debian does not package, so the server's
		// restore fails naming it.
		dir := filepath.Join(work, "pyshiny")
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "app.py"), []byte("from shiny import App, ui\napp = App(ui.page_fluid(ui.h1(\"hi\")), None)\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "requirements.txt"), []byte("shiny\n"), 0o644)
		out, err := rs.run(append([]string{"deploy", "shiny", "--title", "PyShiny"}, append(rs.server(), dir)...)...)
		if strings.Contains(out, "SemVer") {
			t.Fatalf("the client refused the server's version:\n%s", out)
		}
		if !strings.Contains(out, "shiny not installed") {
			t.Fatalf("deploy shiny: %v; want the server's restore to name the missing package shiny:\n%s", err, out)
		}
	})

	t.Run("content search and describe", func(t *testing.T) {
		out := rs.must(append([]string{"content", "search"}, rs.server()...)...)
		var found []struct {
			GUID    string `json:"guid"`
			AppMode string `json:"app_mode"`
		}
		if err := json.Unmarshal([]byte(out[strings.Index(out, "["):]), &found); err != nil {
			t.Fatalf("content search output is not the JSON list: %v\n%s", err, out)
		}
		modes := map[string]bool{}
		for _, f := range found {
			modes[f.AppMode] = true
		}
		for _, m := range []string{"static", "python-api", "python-fastapi", "jupyter-static"} {
			if !modes[m] {
				t.Errorf("content search lacks %s content: %+v", m, found)
			}
		}
		out = rs.must(append([]string{"content", "search", "--content-type", "python-api"}, rs.server()...)...)
		if !strings.Contains(out, apis["flask"]) || strings.Contains(out, siteGUID) {
			t.Errorf("content search --content-type python-api:\n%s", out)
		}
		out = rs.must(append([]string{"content", "describe", "-g", apis["flask"]}, rs.server()...)...)
		if !strings.Contains(out, `"app_mode": "python-api"`) || !strings.Contains(out, apis["flask"]) {
			t.Errorf("content describe:\n%s", out)
		}
	})

	t.Run("content download-bundle", func(t *testing.T) {
		file := filepath.Join(work, "bundle.tar.gz")
		rs.must(append([]string{"content", "download-bundle", "-g", siteGUID, "-o", file}, rs.server()...)...)
		got := tempDir(t)
		unpackTarGz(t, file, got)
		b, err := os.ReadFile(filepath.Join(got, "index.html"))
		if err != nil || !strings.Contains(string(b), "second version") {
			t.Fatalf("the downloaded bundle's index.html: %v %q", err, b)
		}
		if _, err := os.Stat(filepath.Join(got, "manifest.json")); err != nil {
			t.Errorf("the downloaded bundle has no manifest.json: %v", err)
		}
	})

	t.Run("content build", func(t *testing.T) {
		guid := apis["flask"]
		rs.must(append([]string{"content", "build", "add", "-g", guid}, rs.server()...)...)
		rs.must(append([]string{"content", "build", "run", "--poll-wait", "1"}, rs.server()...)...)
		out := rs.must(append([]string{"content", "build", "ls", "-g", guid}, rs.server()...)...)
		if !strings.Contains(out, "COMPLETE") {
			t.Fatalf("content build ls after the run:\n%s", out)
		}
		if code, body := getWithKey(t, c, "/content/"+guid+"/hello", key); code != 200 || !strings.Contains(body, "hello") {
			t.Fatalf("flask after the build answers %d %q", code, body)
		}
	})

	t.Run("system caches", func(t *testing.T) {
		adm := *rs
		adm.key = admin
		out := adm.must(append([]string{"system", "caches", "list"}, adm.server()...)...)
		var list struct {
			Caches []struct {
				Language  string `json:"language"`
				Version   string `json:"version"`
				ImageName string `json:"image_name"`
			} `json:"caches"`
		}
		if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &list); err != nil || len(list.Caches) == 0 {
			t.Fatalf("system caches list: %v\n%s", err, out)
		}
		py := list.Caches[0]
		out = adm.must(append([]string{"system", "caches", "delete", "-l", py.Language, "-V", py.Version, "-I", py.ImageName, "--dry-run"}, adm.server()...)...)
		if !strings.Contains(out, "Dry run finished") {
			t.Errorf("dry run:\n%s", out)
		}
		adm.must(append([]string{"system", "caches", "delete", "-l", py.Language, "-V", py.Version, "-I", py.ImageName}, adm.server()...)...)
		out = adm.must(append([]string{"system", "caches", "list"}, adm.server()...)...)
		if strings.Contains(out, `"`+py.Version+`"`) && strings.Contains(out, py.Language) {
			t.Errorf("the cache is still listed after delete:\n%s", out)
		}
		if _, err := rs.run(append([]string{"system", "caches", "list"}, rs.server()...)...); err == nil {
			t.Error("a publisher listed the runtime caches")
		}
	})
}

// adminKey adds an administrator in c and returns an API key for it.
func adminKey(t *testing.T, c *Container) string {
	t.Helper()
	if r := c.Exec("sh", "-c", "echo admin-password-e2e | dais users add --role administrator root1"); r.Code != 0 {
		t.Fatalf("dais users add: %d %s%s", r.Code, r.Stdout, r.Stderr)
	}
	r := c.Exec("dais", "keys", "create", "--user", "root1")
	key := strings.TrimSpace(r.Stdout)
	if r.Code != 0 || len(key) < 16 {
		t.Fatalf("dais keys create: %d %q %s", r.Code, r.Stdout, r.Stderr)
	}
	return key
}
