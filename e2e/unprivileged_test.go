package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// copyDir copies an example's files, manifest.json included, into dir/name.
func copyDir(t *testing.T, dir, name string) string {
	t.Helper()
	dst := filepath.Join(dir, name)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(exampleDir(name))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(exampleDir(name), e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestContentTypesUnprivileged deploys every content type with the real
// rsconnect-python 1.29.0 into containers started with no privilege: the
// quick start (root, no capability added: content as uid 999) and a
// restricted pod's (uid 999, every capability dropped, no-new-privileges:
// content as the server's own uid), content in Landlock sandboxes in both;
// and checks each answers: static HTML, Flask, FastAPI, a Jupyter notebook
// (executed: its kernel runs in the sandbox), and, from their manifests
// (`rsconnect deploy manifest`), Shiny (a WebSocket round trip), Plumber,
// R Markdown (executed) and Quarto (the STAND-IN, see quartoStandInNote).
func TestContentTypesUnprivileged(t *testing.T) {
	standin, err := filepath.Abs(filepath.Join("testdata", "quarto-standin"))
	if err != nil {
		t.Fatal(err)
	}
	quarto := []string{standin + ":/opt/quarto/1.4.550:ro"}
	for _, tt := range []struct {
		name  string
		start func(t *testing.T) (*Container, string)
	}{
		{"docker run, no capability", func(t *testing.T) (*Container, string) {
			c := Run(t, Options{NoSysAdmin: true, Binds: quarto})
			c.WaitHTTP("/__ping__", http.StatusOK, startBound)
			waitLandlock(t, c)
			return c, publisherKey(t, c, "alice", "alice-password-e2e")
		}},
		{"--user 999 --cap-drop ALL no-new-privileges", func(t *testing.T) (*Container, string) {
			return unprivilegedServer(t, Options{Binds: quarto})
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, key := tt.start(t)
			contentTypes(t, c, key)
		})
	}
}

func contentTypes(t *testing.T, c *Container, key string) {
	rs := newRsconnectPy(t, c.URL(""), key)
	work := tempDir(t)
	deploy := func(t *testing.T, args ...string) string {
		t.Helper()
		start := time.Now()
		rs := *rs // its failures end this subtest only
		rs.t = t
		out := rs.must(append(append([]string{"deploy"}, args[:len(args)-1]...), append(rs.server(), args[len(args)-1])...)...)
		t.Logf("%s: deployed in %s", t.Name(), time.Since(start).Round(time.Millisecond))
		return deployedGUID(t, out)
	}
	expect := func(t *testing.T, path, want string) {
		t.Helper()
		if code, body := getWithKey(t, c, path, key); code != 200 || !strings.Contains(body, want) {
			t.Fatalf("GET %s = %d %q, want 200 with %q", path, code, tail(body, 5), want)
		}
	}
	t.Run("static", func(t *testing.T) {
		guid := deploy(t, "html", "--title", "Static", copyExample(t, work, "static"))
		expect(t, "/content/"+guid+"/", "<html")
	})
	t.Run("flask", func(t *testing.T) {
		guid := deploy(t, "api", "--title", "Flask", copyExample(t, work, "flask"))
		expect(t, "/content/"+guid+"/hello", "hello")
	})
	t.Run("fastapi", func(t *testing.T) {
		guid := deploy(t, "fastapi", "--title", "FastAPI", copyExample(t, work, "fastapi"))
		expect(t, "/content/"+guid+"/hello", "hello")
	})
	t.Run("jupyter notebook", func(t *testing.T) {
		dir := copyExample(t, work, "jupyter")
		guid := deploy(t, "notebook", "--title", "Notebook", filepath.Join(dir, "notebook.ipynb"))
		expect(t, "/content/"+guid+"/", "sum is 6") // the cell's output: the kernel ran
	})
	t.Run("shiny", func(t *testing.T) {
		dir := copyDir(t, work, "shiny")
		guid := deploy(t, "manifest", "--title", "Shiny", filepath.Join(dir, "manifest.json"))
		shinyRoundTrip(t, c.URL("/content/"+guid+"/"), key)
	})
	t.Run("plumber", func(t *testing.T) {
		dir := copyDir(t, work, "plumber")
		guid := deploy(t, "manifest", "--title", "Plumber", filepath.Join(dir, "manifest.json"))
		expect(t, "/content/"+guid+"/hello", "hello from plumber")
	})
	t.Run("r markdown", func(t *testing.T) {
		dir := copyDir(t, work, "rmarkdown")
		guid := deploy(t, "manifest", "--title", "RMarkdown", filepath.Join(dir, "manifest.json"))
		expect(t, "/content/"+guid+"/", "sum is 6")
	})
	t.Run("quarto (stand-in)", func(t *testing.T) {
		t.Log(quartoStandInNote)
		dir := copyDir(t, work, "quarto")
		guid := deploy(t, "manifest", "--title", "Quarto", filepath.Join(dir, "manifest.json"))
		expect(t, "/content/"+guid+"/", "<html")
	})
}
