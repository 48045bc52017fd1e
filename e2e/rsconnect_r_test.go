package e2e

import (
	"bufio"
	"context"
	"crypto"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The R rsconnect release driven here, unmodified, with the renv it needs,
// and connectapi (e2e/connectapi_test.go), from the shared clients
// (clientsDir), in one client image.
const (
	rsconnectRVersion = "1.3.0"
	renvVersion       = "1.0.11"
	connectapiVersion = "0.12.1"
)

// rClientImage builds the client image of e2e/testdata/rclient over the
// image under test, once per dais image and archives (its tag is their
// hash), and returns its tag. It skips without the archives or Docker, or
// fails when CI=true.
func rClientImage(t *testing.T) string {
	t.Helper()
	img := Image(t)
	dir := clientsDir(t)
	archives := []string{"renv-" + renvVersion + ".tar.gz", "rsconnect-" + rsconnectRVersion + ".tar.gz", "connectapi-" + connectapiVersion + ".tar.gz"}
	dockerfile := filepath.Join(RepoRoot(t), "e2e", "testdata", "rclient", "Dockerfile")
	h := sha256.New()
	id, err := exec.Command("docker", "image", "inspect", "-f", "{{.Id}}", img).Output()
	if err != nil {
		requireOrSkip(t, "docker CLI cannot inspect %s: %v", img, err)
	}
	h.Write(id)
	ctxDir := tempDir(t)
	for _, p := range append([]string{dockerfile}, prefixAll(dir, archives)...) {
		b, err := os.ReadFile(p)
		if err != nil {
			requireOrSkip(t, "R client archive: %v (../shared/clients or DAIS_CLIENTS_DIR)", err)
		}
		h.Write(b)
		if err := os.WriteFile(filepath.Join(ctxDir, filepath.Base(p)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tag := "dais-e2e-rclient:" + hex.EncodeToString(h.Sum(nil))[:16]
	if exec.Command("docker", "image", "inspect", tag).Run() == nil {
		return tag
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, "docker", "build", "--build-arg", "DAIS_IMAGE="+strings.TrimSpace(string(id)), "-t", tag, ctxDir).CombinedOutput()
	if err != nil {
		t.Fatalf("build the R client image: %v\n%s", err, tail(string(out), 3000))
	}
	t.Logf("built %s in %s", tag, time.Since(start).Round(time.Second))
	return tag
}

func prefixAll(dir string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = filepath.Join(dir, n)
	}
	return out
}

// rClient runs R scripts in the client image against a dais container,
// with its own home (R's account records) in work.
type rClient struct {
	t     *testing.T
	image string
	work  string
	url   string // the API root, as addServer takes it
}

// command is docker run of script in the client image, with the
// server's API root in DAIS_URL.
func (rc *rClient) command(ctx context.Context, script string, args ...string) *exec.Cmd {
	return rc.commandEnv(ctx, nil, script, args...)
}

// commandEnv is command with more environment variables (NAME=value).
func (rc *rClient) commandEnv(ctx context.Context, env []string, script string, args ...string) *exec.Cmd {
	if err := os.WriteFile(filepath.Join(rc.work, "script.R"), []byte(script), 0o644); err != nil {
		rc.t.Fatal(err)
	}
	dargs := []string{"run", "--rm", "--network", "host", "--label", labelKey + "=rclient",
		"-v", rc.work + ":/work", "-e", "HOME=/work/home", "-e", "DAIS_URL=" + rc.url}
	for _, e := range env {
		dargs = append(dargs, "-e", e)
	}
	dargs = append(dargs, rc.image, "Rscript", "/work/script.R")
	return exec.CommandContext(ctx, "docker", append(dargs, args...)...)
}

// run runs script to its end and returns its output; it fails the test
// when R fails.
func (rc *rClient) run(script string, args ...string) string {
	rc.t.Helper()
	return rc.runEnv(nil, script, args...)
}

// runEnv is run with more environment variables (NAME=value).
func (rc *rClient) runEnv(env []string, script string, args ...string) string {
	rc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out, err := rc.commandEnv(ctx, env, script, args...).CombinedOutput()
	if err != nil {
		rc.t.Fatalf("R failed: %v\n%s", err, tail(string(out), 6000))
	}
	return string(out)
}

// rPrelude: no package index is reachable from the tests; the
// repositories point at a closed local port rather than the internet.
const rPrelude = `suppressMessages(library(rsconnect))
options(repos = c(CRAN = "http://127.0.0.1:9"))
`

// rConnectUser registers the server and the account with connectUser():
// the "browser" it launches is this test, which reads the claim URL.
const rConnectUser = rPrelude + `
addServer(Sys.getenv("DAIS_URL"), name = "dais", quiet = TRUE)
connectUser(account = "alice", server = "dais",
            launch.browser = function(url) { cat("CLAIM_URL", url, "\n"); flush(stdout()) })
cat("CONNECTED", accounts()$name, "\n")
`

const rDeployApps = rPrelude + `
for (d in commandArgs(trailingOnly = TRUE)) {
  ok <- deployApp(appDir = d, appName = basename(d), server = "dais", account = "alice",
                  launch.browser = FALSE, forceUpdate = TRUE, lint = FALSE)
  if (!isTRUE(ok)) stop("deployApp of ", d, " did not succeed")
  cat("DEPLOYED", basename(d), "\n")
}
`

// rRenvLock deploys a project with its renv.lock, as a user of renv has
// it: renv::snapshot() of the project, renv itself in the lockfile as
// installed from CRAN (this image installed it from its archive).
// rsconnect then reads the lockfile instead of the library.
const rRenvLock = rPrelude + `
d <- commandArgs(trailingOnly = TRUE)[1]
renv::snapshot(project = d, prompt = FALSE, force = TRUE)
lock <- jsonlite::read_json(file.path(d, "renv.lock"))
lock$Packages$renv$Source <- "Repository"
lock$Packages$renv$Repository <- "CRAN"
jsonlite::write_json(lock, file.path(d, "renv.lock"), auto_unbox = TRUE, pretty = TRUE)
ok <- deployApp(appDir = d, appName = basename(d), server = "dais", account = "alice",
                launch.browser = FALSE, forceUpdate = TRUE, lint = FALSE)
if (!isTRUE(ok)) stop("deployApp of ", d, " did not succeed")
cat("DEPLOYED", basename(d), "with", length(lock$Packages), "packages in renv.lock\n")
`

// rShowLogs: showLogs() of R rsconnect 1.3.0 documents that it works only
// for shinyapps.io: its Connect client has no getLogs, so after looking
// the application up on the server, R itself fails.
const rShowLogs = rPrelude + `
r <- tryCatch({ showLogs(appPath = "/work/apps/shiny", server = "dais", account = "alice"); "OK" },
              error = function(e) paste("ERROR:", conditionMessage(e)))
cat("SHOWLOGS", r, "\n")
`

// claimAsBrowser does what the user does with the claim URL: opens it,
// logs in on the page it leads to, and confirms on the claim page.
func claimAsBrowser(t *testing.T, claimURL, user, password string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	b := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := b.Get(claimURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	login := resp.Request.URL
	if login.Path != "/__login__" {
		t.Fatalf("the claim URL led a logged-out browser to %s, want the login page", login)
	}
	resp, err = b.PostForm(login.Scheme+"://"+login.Host+"/__login__", url.Values{
		"username": {user}, "password": {password}, "next": {login.Query().Get("next")}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if resp.StatusCode != http.StatusOK || resp.Request.URL.String() != claimURL || m == nil {
		t.Fatalf("after login: %d at %s, want the claim page with its form:\n%s", resp.StatusCode, resp.Request.URL, page)
	}
	if !strings.Contains(string(page), "rsconnect/"+rsconnectRVersion) {
		t.Errorf("the claim page does not say which client asks:\n%s", page)
	}
	req, _ := http.NewRequest(http.MethodPost, claimURL, strings.NewReader(url.Values{"csrf": {string(m[1])}, "action": {"claim"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", login.Scheme+"://"+login.Host)
	resp, err = b.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "Connected") {
		t.Fatalf("claim: %d %s", resp.StatusCode, page)
	}
}

// rAccount reads the account R wrote (token and private key).
func rAccount(t *testing.T, home string) (token string, key *rsa.PrivateKey) {
	t.Helper()
	var dcf string
	_ = filepath.WalkDir(home, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "alice.dcf" && strings.Contains(p, "accounts") {
			dcf = p
		}
		return nil
	})
	b, err := os.ReadFile(dcf)
	if err != nil {
		t.Fatalf("R's account record: %v", err)
	}
	fields := map[string]string{}
	var last string
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, " ") && last != "" { // a DCF continuation line
			fields[last] += strings.TrimSpace(line)
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			last = k
			fields[k] = strings.TrimSpace(v)
		}
	}
	if fields["apiKey"] != "" || fields["token"] == "" || fields["private_key"] == "" {
		t.Fatalf("R's account is not a token account: %v", mapKeysOf(fields))
	}
	der, err := base64.StdEncoding.DecodeString(fields["private_key"])
	if err != nil {
		t.Fatal(err)
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return fields["token"], k
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatalf("R's private key: %v", err)
	}
	return fields["token"], k.(*rsa.PrivateKey)
}

func mapKeysOf(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// signedGet sends a GET signed as rsconnect signs it, with date.
func signedGet(t *testing.T, c *Container, path, token string, key *rsa.PrivateKey, date time.Time) (int, string) {
	t.Helper()
	d := date.UTC().Format(http.TimeFormat)
	sum := md5.Sum(nil)
	checksum := base64.StdEncoding.EncodeToString(sum[:])
	digest := sha1.Sum([]byte("GET\n" + path + "\n" + d + "\n" + checksum))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA1, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", c.URL(path), nil)
	req.Header.Set("Date", d)
	req.Header.Set("X-Auth-Token", token)
	req.Header.Set("X-Content-Checksum", checksum)
	req.Header.Set("X-Auth-Signature", base64.StdEncoding.EncodeToString(sig))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRsconnectR130 drives R rsconnect 1.3.0 (with renv 1.0.11) as a data
// scientist would: connectUser() (the test plays the browser: it logs in
// and claims the token), deployApp of Shiny, Plumber and R Markdown signed
// with the token, a redeploy, and showLogs().
func TestRsconnectR130(t *testing.T) {
	img := rClientImage(t)
	c, key := deployServer(t) // alice, publisher, password alice-password-e2e
	work := tempDir(t)
	home := filepath.Join(work, "home")
	apps := filepath.Join(work, "apps")
	for _, d := range []string{home, apps} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	rc := &rClient{t: t, image: img, work: work, url: c.URL("/__api__")}

	// connectUser(): R registers a token, "opens" the claim URL and waits;
	// the test logs in and claims it as a browser would.
	t.Run("connectUser", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := rc.command(ctx, rConnectUser)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		sc := bufio.NewScanner(stdout)
		claimed := false
		for sc.Scan() {
			line := sc.Text()
			out.WriteString(line + "\n")
			if f := strings.Fields(line); len(f) == 2 && f[0] == "CLAIM_URL" && !claimed {
				// Not yet claimed: R waits, its requests refused.
				var u struct{ Username string }
				if status := apiJSONStatus(t, c, "GET", "/__api__/users/current", "", &u); status != http.StatusUnauthorized {
					t.Errorf("anonymous users/current = %d", status)
				}
				claimAsBrowser(t, f[1], "alice", "alice-password-e2e")
				claimed = true
			}
		}
		err = cmd.Wait()
		if err != nil || !claimed || !strings.Contains(out.String(), "CONNECTED alice") {
			t.Fatalf("connectUser: %v (claimed %v)\n%s\n%s", err, claimed, out.String(), tail(stderr.String(), 3000))
		}
		if !strings.Contains(stderr.String(), "Registered account for server: dais / username: alice") {
			t.Errorf("R did not report the account:\n%s", stderr.String())
		}
	})
	token, priv := rAccount(t, home)

	for _, name := range []string{"shiny", "plumber", "rmarkdown"} {
		copyExample(t, apps, name)
	}
	t.Run("deployApp", func(t *testing.T) {
		start := time.Now()
		out := rc.run(rDeployApps, "/work/apps/shiny", "/work/apps/plumber", "/work/apps/rmarkdown")
		t.Logf("rsconnect %s deployed 3 apps in %s", rsconnectRVersion, time.Since(start).Round(time.Millisecond))
		for _, n := range []string{"shiny", "plumber", "rmarkdown"} {
			if !strings.Contains(out, "DEPLOYED "+n) {
				t.Fatalf("deployApp did not report %s:\n%s", n, out)
			}
		}
		guid := appGUID(t, c, key, "shiny")
		status, body := getWithKey(t, c, "/content/"+guid+"/", key)
		if status != http.StatusOK || !strings.Contains(body, "dais shiny example") {
			t.Fatalf("GET shiny page = %d %.300s", status, body)
		}
		shinyRoundTrip(t, "ws"+strings.TrimPrefix(c.URL("/content/"+guid), "http")+"/websocket/", key)
		guid = appGUID(t, c, key, "plumber")
		if status, body := getWithKey(t, c, "/content/"+guid+"/echo?msg=signed", key); status != http.StatusOK || !strings.Contains(body, "signed") {
			t.Fatalf("GET plumber /echo = %d %.300s", status, body)
		}
		guid = appGUID(t, c, key, "rmarkdown")
		if status, body := getWithKey(t, c, "/content/"+guid+"/", key); status != http.StatusOK || !strings.Contains(body, "dais R Markdown example") {
			t.Fatalf("GET rmarkdown = %d %.300s", status, body)
		}
	})

	t.Run("redeploy", func(t *testing.T) {
		guid := appGUID(t, c, key, "shiny")
		appR := filepath.Join(apps, "shiny", "app.R")
		b, err := os.ReadFile(appR)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(appR, []byte(strings.Replace(string(b), "dais shiny example", "dais shiny example, redeployed", 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		out := rc.run(rDeployApps, "/work/apps/shiny")
		if !strings.Contains(out, `Re-deploying "shiny"`) {
			t.Errorf("deployApp did not redeploy:\n%s", out)
		}
		if again := appGUID(t, c, key, "shiny"); again != guid {
			t.Fatalf("redeploy made new content %s (was %s)", again, guid)
		}
		if status, body := getWithKey(t, c, "/content/"+guid+"/", key); status != http.StatusOK || !strings.Contains(body, "redeployed") {
			t.Fatalf("after redeploy GET = %d %.300s", status, body)
		}
	})

	// A restore from renv.lock with Debian's R packages: no CRAN here, the
	// lockfile's packages are installed already, renv itself is not needed.
	t.Run("renv.lock", func(t *testing.T) {
		dir := filepath.Join(apps, "shiny-renv")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(exampleDir("shiny"), "app.R"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "app.R"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		out := rc.run(rRenvLock, "/work/apps/shiny-renv")
		for _, want := range []string{"Bundling 2 files: 'app.R' and 'renv.lock'", "Capturing R dependencies from renv.lock",
			"Not restoring renv 1.0.11", "DEPLOYED shiny-renv"} {
			if !strings.Contains(out, want) {
				t.Fatalf("deployApp with renv.lock does not say %q:\n%s", want, out)
			}
		}
		guid := appGUID(t, c, key, "shiny-renv")
		if status, body := getWithKey(t, c, "/content/"+guid+"/", key); status != http.StatusOK || !strings.Contains(body, "dais shiny example") {
			t.Fatalf("GET shiny-renv = %d %.300s", status, body)
		}
	})

	t.Run("showLogs", func(t *testing.T) {
		out := rc.run(rShowLogs)
		// The lookup reached dais, signed, and was answered; then R's own
		// Connect client has no getLogs (rsconnect 1.3.0: shinyapps.io only).
		if !strings.Contains(out, "SHOWLOGS ERROR: attempt to apply non-function") {
			t.Fatalf("showLogs:\n%s", out)
		}
		logs := c.Logs()
		if !strings.Contains(logs, `"GET /__api__/applications?filter=account_id:`) || !strings.Contains(logs, "filter=name:shiny") {
			t.Fatalf("showLogs did not look the application up on dais:\n%s", tail(logs, 3000))
		}
	})

	// Every request of the client was signed with the token: alice's token
	// is listed, used; and what the key R keeps signs as the server wants,
	// once: a replay, a stale Date are refused.
	t.Run("token", func(t *testing.T) {
		var toks []struct {
			Token        string  `json:"token"`
			UserAgent    string  `json:"user_agent"`
			LastUsedTime *string `json:"last_used_time"`
		}
		apiJSON(t, c, "GET", "/__api__/tokens", key, nil, &toks)
		if len(toks) != 1 || toks[0].Token != token || toks[0].LastUsedTime == nil || !strings.HasPrefix(toks[0].UserAgent, "rsconnect/") {
			t.Fatalf("alice's tokens: %+v", toks)
		}
		// A Date in the future (within the skew): R signed nothing then,
		// so this signature is new, whatever R sent.
		at := time.Now().Add(90 * time.Second)
		if status, body := signedGet(t, c, "/__api__/users/current", token, priv, at); status != 200 || !strings.Contains(body, `"username":"alice"`) {
			t.Fatalf("signed with R's key: %d %s", status, body)
		}
		for _, tc := range []struct {
			name string
			at   time.Time
			want string
		}{
			{"replay", at, "replayed"},
			{"stale Date", time.Now().Add(-time.Hour), "from the server's clock"},
		} {
			status, body := signedGet(t, c, "/__api__/users/current", token, priv, tc.at)
			var e struct {
				Error string `json:"error"`
				Code  int    `json:"code"`
			}
			if err := json.Unmarshal([]byte(body), &e); err != nil || status != 401 || e.Code != 401 || !strings.Contains(e.Error, tc.want) {
				t.Errorf("%s: %d %s, want 401 with %q", tc.name, status, body, tc.want)
			}
		}
		if status, body := c.Get("/__ping__"); status != 200 {
			t.Fatalf("the server stopped serving: %d %s", status, body)
		}
	})
}

// apiJSONStatus sends a request with the key ("" none) and returns the status.
func apiJSONStatus(t *testing.T, c *Container, method, path, key string, v any) int {
	t.Helper()
	status, b := api(t, c, method, path, key, nil)
	_ = json.Unmarshal(b, v)
	return status
}
