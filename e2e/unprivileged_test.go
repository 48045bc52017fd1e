package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

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
	t.Run("R rsconnect: shiny, plumber, r markdown", func(t *testing.T) {
		guids := deployWithR(t, c, key, "shiny", "plumber", "rmarkdown")
		shinyRoundTrip(t, c.URL("/content/"+guids["shiny"]+"/"), key)
		expect(t, "/content/"+guids["plumber"]+"/hello", "hello from plumber")
		expect(t, "/content/"+guids["rmarkdown"]+"/", "sum is 6")
	})
	t.Run("quarto (stand-in)", func(t *testing.T) {
		t.Log(quartoStandInNote)
		dir := copyDir(t, work, "quarto")
		guid := deploy(t, "manifest", "--title", "Quarto", filepath.Join(dir, "manifest.json"))
		expect(t, "/content/"+guid+"/", "<html")
	})
}

// rDeployAPIKeyApps deploys each directory given with R rsconnect's
// deployApp, signed in with an API key (connectApiUser).
const rDeployAPIKeyApps = rPrelude + `
addServer(Sys.getenv("DAIS_URL"), name = "dais", quiet = TRUE)
connectApiUser(account = "alice", server = "dais", apiKey = Sys.getenv("DAIS_KEY"))
for (d in commandArgs(trailingOnly = TRUE)) {
  ok <- deployApp(appDir = d, appName = basename(d), server = "dais", account = "alice",
                  launch.browser = FALSE, forceUpdate = TRUE, lint = FALSE)
  if (!isTRUE(ok)) stop("deployApp of ", d, " did not succeed")
  cat("DEPLOYED", basename(d), "\n")
}
`

// deployWithR deploys the examples named with the real R rsconnect client
// (its image, rClientImage) as alice, whose API key is key, and returns
// each one's guid by name.
func deployWithR(t *testing.T, c *Container, key string, examples ...string) map[string]string {
	t.Helper()
	img := rClientImage(t)
	work := tempDir(t)
	apps := filepath.Join(work, "apps")
	if err := os.MkdirAll(filepath.Join(work, "home"), 0o755); err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range examples {
		copyExample(t, apps, e)
		dirs = append(dirs, "/work/apps/"+e)
	}
	if err := os.WriteFile(filepath.Join(work, "script.R"), []byte(rDeployAPIKeyApps), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	args := append([]string{"run", "--rm", "--network", "host", "--label", labelKey + "=rclient",
		"-v", work + ":/work", "-e", "HOME=/work/home", "-e", "DAIS_URL=" + c.URL("/__api__"),
		"-e", "DAIS_KEY=" + key, img, "Rscript", "/work/script.R"}, dirs...)
	out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("rsconnect deployApp: %v\n%s", err, tail(string(out), 60))
	}
	t.Logf("R rsconnect %s deployed %v in %s", rsconnectRVersion, examples, time.Since(start).Round(time.Millisecond))
	guids := map[string]string{}
	for _, e := range examples {
		if !strings.Contains(string(out), "DEPLOYED "+e) {
			t.Fatalf("no DEPLOYED %s:\n%s", e, tail(string(out), 60))
		}
		var list []struct {
			GUID string `json:"guid"`
		}
		apiJSON(t, c, "GET", "/__api__/v1/content?name="+e, key, nil, &list)
		if len(list) != 1 {
			t.Fatalf("content named %s: %d found", e, len(list))
		}
		guids[e] = list[0].GUID
	}
	return guids
}
