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

	"github.com/dais-dev/dais/internal/shinytest"
)

// rsconnectScript deploys each directory given as an argument with the
// real rsconnect R client, the way a data scientist does.
const rsconnectScript = `
suppressMessages(library(rsconnect))
# No package index is reachable from the tests: point the repositories at
# a closed local port rather than the internet.
options(repos = c(CRAN = "http://127.0.0.1:9"))
url <- Sys.getenv("DAIS_URL") # rsconnect 0.8.x takes the API root: <server>/__api__
if (!("dais" %in% servers()$name)) addServer(url, name = "dais")
connectApiUser(account = "alice", server = "dais", apiKey = Sys.getenv("DAIS_KEY"))
for (d in commandArgs(trailingOnly = TRUE)) {
  ok <- deployApp(appDir = d, appName = basename(d), server = "dais", account = "alice",
                  launch.browser = FALSE, forceUpdate = TRUE, lint = FALSE)
  if (!isTRUE(ok)) stop("deployApp of ", d, " did not succeed")
  cat("DEPLOYED", basename(d), "\n")
}
`

// needRsconnect finds R with the rsconnect package on the host (Debian's
// r-cran-rsconnect); it skips without, or fails when CI=true.
func needRsconnect(t *testing.T) string {
	t.Helper()
	rscript, err := exec.LookPath("Rscript")
	if err == nil {
		err = exec.Command(rscript, "-e", `library(rsconnect); library(shiny); library(plumber)`).Run()
	}
	if err != nil {
		requireOrSkip(t, "R with rsconnect, shiny and plumber is needed on the host (apt-get install r-cran-rsconnect r-cran-shiny r-cran-plumber): %v", err)
	}
	return rscript
}

// rsconnectDeploy runs rsconnectScript for dirs, with its own R user
// configuration directory so nothing of the host's is read or changed.
func rsconnectDeploy(t *testing.T, rscript, home, url, key string, dirs ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, rscript, append([]string{"-e", rsconnectScript}, dirs...)...)
	cmd.Env = append(os.Environ(), "DAIS_URL="+url, "DAIS_KEY="+key, "HOME="+home,
		"R_USER_CONFIG_DIR="+filepath.Join(home, "config"), "R_USER_DATA_DIR="+filepath.Join(home, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(home, "config"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("rsconnect deployApp failed: %v\n%s", err, out)
	}
	return string(out)
}

// copyExample copies an example's files, without its manifest.json, into
// dir/name (deployApp writes its records beside the app, and its own
// manifest).
func copyExample(t *testing.T, dir, name string) string {
	t.Helper()
	return copyExampleFiles(t, dir, name, false)
}

// copyDir copies an example's files, manifest.json included, into dir/name.
func copyDir(t *testing.T, dir, name string) string {
	t.Helper()
	return copyExampleFiles(t, dir, name, true)
}

func copyExampleFiles(t *testing.T, dir, name string, manifest bool) string {
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
		if e.IsDir() || e.Name() == "manifest.json" && !manifest {
			continue
		}
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

// appGUID finds the content rsconnect created, through the legacy API
// with the filter rsconnect itself uses.
func appGUID(t *testing.T, c *Container, key, name string) string {
	t.Helper()
	var l struct {
		Applications []struct {
			GUID string `json:"guid"`
			Name string `json:"name"`
		} `json:"applications"`
		Total int `json:"total"`
	}
	apiJSON(t, c, "GET", "/__api__/applications?filter=name:"+name+"&count=100&offset=0", key, nil, &l)
	if l.Total != 1 || len(l.Applications) != 1 || l.Applications[0].Name != name {
		t.Fatalf("applications named %s: %+v", name, l)
	}
	return l.Applications[0].GUID
}

// getWithKey GETs a content path with the key (content is acl by default).
func getWithKey(t *testing.T, c *Container, path, key string) (int, string) {
	t.Helper()
	status, b := api(t, c, "GET", path, key, nil)
	return status, string(b)
}

// TestRsconnectDeployApp deploys the static, Plumber and Shiny examples
// with the real rsconnect R client (0.8.29, Debian's r-cran-rsconnect),
// checks each at its URL (Shiny over a WebSocket round trip), then
// redeploys the static site and sees the change.
func TestRsconnectDeployApp(t *testing.T) {
	rscript := needRsconnect(t)
	c, key := deployServer(t)
	work := tempDir(t)
	home := filepath.Join(work, "home")
	os.MkdirAll(home, 0o755)
	dirs := []string{copyExample(t, work, "static"), copyExample(t, work, "plumber"), copyExample(t, work, "shiny")}

	start := time.Now()
	out := rsconnectDeploy(t, rscript, home, c.URL("/__api__"), key, dirs...)
	t.Logf("rsconnect deployed 3 apps in %s", time.Since(start).Round(time.Millisecond))
	for _, d := range dirs {
		if !strings.Contains(out, "DEPLOYED "+filepath.Base(d)) {
			t.Fatalf("deployApp did not report %s:\n%s", filepath.Base(d), out)
		}
	}

	t.Run("static", func(t *testing.T) {
		guid := appGUID(t, c, key, "static")
		index, _ := os.ReadFile(filepath.Join(exampleDir("static"), "index.html"))
		status, body := getWithKey(t, c, "/content/"+guid+"/", key)
		if status != http.StatusOK || body != string(index) {
			t.Fatalf("GET static = %d %.300s", status, body)
		}
		// acl by default: anonymous visitors are sent to log in.
		if status, _ := api(t, c, "GET", "/content/"+guid+"/", "", nil); status != http.StatusFound {
			t.Errorf("anonymous GET of acl content = %d, want 302 to the login", status)
		}
	})
	t.Run("plumber", func(t *testing.T) {
		guid := appGUID(t, c, key, "plumber")
		status, body := getWithKey(t, c, "/content/"+guid+"/echo?msg=plumbed", key)
		if status != http.StatusOK || !strings.Contains(body, "plumbed") {
			t.Fatalf("GET plumber /echo = %d %.300s", status, body)
		}
	})
	t.Run("shiny", func(t *testing.T) {
		guid := appGUID(t, c, key, "shiny")
		status, body := getWithKey(t, c, "/content/"+guid+"/", key)
		if status != http.StatusOK || !strings.Contains(body, "dais shiny example") {
			t.Fatalf("GET shiny page = %d %.300s", status, body)
		}
		shinyRoundTrip(t, "ws"+strings.TrimPrefix(c.URL("/content/"+guid), "http")+"/websocket/", key)
	})

	// Redeploy the static site with a change: same content, new answer.
	t.Run("redeploy", func(t *testing.T) {
		guid := appGUID(t, c, key, "static")
		changed := "<html><body><h1>redeployed by rsconnect</h1></body></html>\n"
		if err := os.WriteFile(filepath.Join(dirs[0], "index.html"), []byte(changed), 0o644); err != nil {
			t.Fatal(err)
		}
		rsconnectDeploy(t, rscript, home, c.URL("/__api__"), key, dirs[0])
		if again := appGUID(t, c, key, "static"); again != guid {
			t.Fatalf("redeploy made new content %s (was %s)", again, guid)
		}
		status, body := getWithKey(t, c, "/content/"+guid+"/", key)
		if status != http.StatusOK || body != changed {
			t.Fatalf("after redeploy GET = %d %.300s", status, body)
		}
	})
}

// shinyRoundTrip opens the Shiny WebSocket through the proxy, sends the
// input and waits for the echoed output, twice.
func shinyRoundTrip(t *testing.T, url, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := shinytest.Dial(t, ctx, url, http.Header{"Authorization": {"Key " + key}})
	s.Send(t, "init", shinytest.Init("/", map[string]any{"msg": "hello dais"}, "echo"))
	s.Expect(t, `"echo":"echo: hello dais"`)
	s.Send(t, "update", map[string]any{"msg": "again"})
	s.Expect(t, `"echo":"echo: again"`)
}
