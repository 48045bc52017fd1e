package e2e

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
)

// gitPort is where the git server listens, on the loopback of the dais
// container's network namespace (the server shares it).
const gitPort = "18080"

// gitSecret is the git server's password: it must never show outside
// the request that carries it.
const gitSecret = "s3cret-git-token-e2e"

// gitHost is a git repository served over HTTP with basic auth, to dais
// only: e2e/testdata/gitserver (git http-backend behind a small Go
// server) in a container sharing the dais container's network namespace.
type gitHost struct {
	t     *testing.T
	repos string // host folder of the bare repositories
	srv   *Container
}

// startGitHost builds the git server and runs it beside c.
func startGitHost(t *testing.T, c *Container) *gitHost {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		requireOrSkip(t, "git is needed on the host to make the test's repositories (apt-get install git): %v", err)
	}
	bin := tempDir(t)
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "gitserver"), "./testdata/gitserver")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the git server: %v\n%s", err, out)
	}
	g := &gitHost{t: t, repos: tempDir(t)}
	g.srv = Run(t, Options{
		Entrypoint: []string{"/gitserver/gitserver", "-listen", "127.0.0.1:" + gitPort, "-root", "/repos", "-user", "dais", "-password", gitSecret},
		Network:    "container:" + c.ID, Ports: []string{}, NoData: true, NoSysAdmin: true,
		Binds:  []string{bin + ":/gitserver:ro", g.repos + ":/repos:ro"},
		Health: &container.HealthConfig{Test: []string{"NONE"}},
	})
	return g
}

// git runs git on the host in dir.
func (g *gitHost) git(dir string, args ...string) string {
	g.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@example.com",
		"GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		g.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// newRepo makes the bare repository name.git and a working copy beside it.
func (g *gitHost) newRepo(name string) (work string) {
	g.t.Helper()
	g.git(g.repos, "init", "--quiet", "--bare", "--initial-branch=main", name+".git")
	work = filepath.Join(tempDir(g.t), name)
	g.git(filepath.Dir(work), "init", "--quiet", "--initial-branch=main", name)
	return work
}

// commitAndPush commits everything in work and pushes it to the bare
// repository: the branch moves. It returns the commit.
func (g *gitHost) commitAndPush(work, name, msg string) string {
	g.t.Helper()
	g.git(work, "add", "-A")
	g.git(work, "commit", "--quiet", "-m", msg)
	g.git(work, "push", "--quiet", filepath.Join(g.repos, name+".git"), "HEAD:main")
	return g.git(work, "rev-parse", "HEAD")
}

// writeStatic writes a static site (index.html and its manifest) in dir.
func writeStatic(t *testing.T, dir, html string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum([]byte(html))
	manifest := fmt.Sprintf(`{"version": 1, "metadata": {"appmode": "static", "primary_html": "index.html"},
  "files": {"index.html": {"checksum": %q}}}`, hex.EncodeToString(sum[:]))
	for name, body := range map[string]string{"index.html": html, "manifest.json": manifest} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// writeEnvApp writes a Flask app that answers its whole environment, and
// its manifest, in dir.
func writeEnvApp(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	app := "import json, os\nfrom flask import Flask\napp = Flask(__name__)\n\n" +
		"@app.route('/')\ndef env():\n    return json.dumps(dict(os.environ))\n"
	req := "flask\n"
	sum := func(s string) string { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) }
	manifest := fmt.Sprintf(`{"version": 1, "metadata": {"appmode": "python-api", "entrypoint": "app"},
  "python": {"version": "3.11.2", "package_manager": {"name": "pip", "package_file": "requirements.txt"}},
  "files": {"app.py": {"checksum": %q}, "requirements.txt": {"checksum": %q}}}`, sum(app), sum(req))
	for name, body := range map[string]string{"app.py": app, "requirements.txt": req, "manifest.json": manifest} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

type repoAnswer struct {
	Repository      string  `json:"repository"`
	Branch          string  `json:"branch"`
	Directory       string  `json:"directory"`
	Polling         bool    `json:"polling"`
	LastError       *string `json:"last_error"`
	LastKnownCommit *string `json:"last_known_commit"`
}

// TestGitBackedContent: content deployed from a git repository served
// over loopback with basic auth, as connectapi's deploy_repo does it (PUT
// .../repository, POST .../deploy), then redeployed by the poller when a
// push moves the branch; credentials, in the URL or in the configured
// credential file, show nowhere: not in the API's answers, the task
// output, the server log, the content's process or files.
func TestGitBackedContent(t *testing.T) {
	data := tempDir(t)
	// The credential file, for repositories given without credentials.
	if err := os.WriteFile(filepath.Join(data, "git-credentials"), []byte("http://dais:"+gitSecret+"@127.0.0.1:"+gitPort+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := Run(t, Options{DataDir: data, Env: []string{
		"CONNECT_GIT_POLLINGFREQUENCY=2s", "CONNECT_GIT_CREDENTIALSFILE=/data/git-credentials",
	}})
	c.WaitHTTP("/__ping__", http.StatusOK, startBound)
	key := publisherKey(t, c, "alice", "alice-password-e2e")
	viewerKey := func() string {
		if r := c.Exec("sh", "-c", "echo viewer-password-e2e | dais users add --role viewer vera"); r.Code != 0 {
			t.Fatalf("dais users add: %s%s", r.Stdout, r.Stderr)
		}
		r := c.Exec("dais", "keys", "create", "--user", "vera")
		return strings.TrimSpace(r.Stdout)
	}()
	g := startGitHost(t, c)

	// The repository: a README at the top, the site in site/, an app in api/.
	work := g.newRepo("app")
	os.WriteFile(filepath.Join(work, "README.md"), []byte("# a repository with content in site/\n"), 0o644)
	writeStatic(t, filepath.Join(work, "site"), "<html><body><h1>from git, first commit</h1></body></html>\n")
	writeEnvApp(t, filepath.Join(work, "api"))
	first := g.commitAndPush(work, "app", "first")

	create := func(name string) string {
		var ct struct{ GUID string }
		apiJSON(t, c, "POST", "/__api__/v1/content", key, strings.NewReader(`{"name": "`+name+`"}`), &ct)
		return ct.GUID
	}
	secretURL := "http://dais:" + gitSecret + "@127.0.0.1:" + gitPort + "/app.git"
	var answers bytes.Buffer // every API answer of the test, searched for the secret at the end
	call := func(method, path, k, body string, want int, v any) {
		t.Helper()
		var rd *strings.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		var status int
		var b []byte
		if rd != nil {
			status, b = api(t, c, method, path, k, rd)
		} else {
			status, b = api(t, c, method, path, k, nil)
		}
		answers.Write(b)
		if status != want {
			t.Fatalf("%s %s = %d %s, want %d", method, path, status, b, want)
		}
		if v != nil {
			if err := json.Unmarshal(b, v); err != nil {
				t.Fatalf("%s %s: %v: %s", method, path, err, b)
			}
		}
	}
	deploy := func(guid string) v1Task {
		t.Helper()
		var d struct {
			TaskID string `json:"task_id"`
		}
		call("POST", "/__api__/v1/content/"+guid+"/deploy", key, "{}", 200, &d)
		tk := waitTask(t, c, key, d.TaskID)
		answers.WriteString(strings.Join(tk.Output, "\n") + tk.Error)
		return tk
	}
	waitServed := func(guid, want string) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for {
			status, body := getWithKey(t, c, "/content/"+guid+"/", key)
			if status == 200 && strings.Contains(body, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("content %s does not serve %q: %d %.300s", guid, want, status, body)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}

	site := create("site-from-git")
	t.Run("deploy_repo", func(t *testing.T) {
		var r repoAnswer
		call("GET", "/__api__/v1/content/"+site+"/repository", key, "", 404, nil)
		call("PUT", "/__api__/v1/content/"+site+"/repository", key,
			`{"repository": "`+secretURL+`", "branch": "main", "directory": "site", "polling": false}`, 200, &r)
		if r.Repository != "http://dais@127.0.0.1:"+gitPort+"/app.git" || r.Branch != "main" || r.Directory != "site" || r.Polling || r.LastKnownCommit != nil {
			t.Fatalf("PUT repository answered %+v", r)
		}
		tk := deploy(site)
		out := strings.Join(tk.Output, "\n")
		if tk.Code != 0 || !strings.Contains(out, "Commit "+first) {
			t.Fatalf("deploy from git: code %d %s\n%s", tk.Code, tk.Error, out)
		}
		waitServed(site, "from git, first commit")
		call("GET", "/__api__/v1/content/"+site+"/repository", key, "", 200, &r)
		if r.LastKnownCommit == nil || *r.LastKnownCommit != first || r.LastError != nil {
			t.Fatalf("after the deploy: %+v", r)
		}
	})

	t.Run("poller redeploys a moved branch", func(t *testing.T) {
		var r repoAnswer
		call("PATCH", "/__api__/v1/content/"+site+"/repository", key, `{"polling": true}`, 200, &r)
		if !r.Polling || r.Directory != "site" {
			t.Fatalf("PATCH polling answered %+v", r)
		}
		writeStatic(t, filepath.Join(work, "site"), "<html><body><h1>from git, second commit</h1></body></html>\n")
		second := g.commitAndPush(work, "app", "second")
		waitServed(site, "from git, second commit")
		deadline := time.Now().Add(time.Minute)
		for {
			call("GET", "/__api__/v1/content/"+site+"/repository", key, "", 200, &r)
			if r.LastKnownCommit != nil && *r.LastKnownCommit == second {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("last_known_commit after the push: %+v, want %s", r, second)
			}
			time.Sleep(500 * time.Millisecond)
		}
		if !strings.Contains(c.Logs(), "branch moved: deploying") {
			t.Errorf("the server log does not tell the poller's deploy")
		}
		// Unchanged, the branch is not deployed again.
		var bundles []struct{ ID string }
		call("GET", "/__api__/v1/content/"+site+"/bundles", key, "", 200, &bundles)
		n := len(bundles)
		time.Sleep(5 * time.Second) // two polls and more
		call("GET", "/__api__/v1/content/"+site+"/bundles", key, "", 200, &bundles)
		if len(bundles) != n {
			t.Errorf("bundles went from %d to %d with the branch unchanged", n, len(bundles))
		}
		call("PATCH", "/__api__/v1/content/"+site+"/repository", key, `{"polling": false}`, 200, &r)
	})

	// What connectapi's repo_check_account, repo_check_branches_ref (which
	// deploy_repo_update compares with last_known_commit) and
	// repo_check_manifest_dirs ask.
	t.Run("repo checks", func(t *testing.T) {
		var r repoAnswer
		call("GET", "/__api__/v1/content/"+site+"/repository", key, "", 200, &r)
		var d struct {
			TaskID string `json:"task_id"`
		}
		call("GET", "/__api__/repo/branches?url="+url.QueryEscape(secretURL), key, "", 200, &d)
		tk := waitTask(t, c, key, d.TaskID)
		answers.WriteString(strings.Join(tk.Output, "\n") + tk.Error + string(tk.Result))
		var branches struct {
			Type string `json:"type"`
			Data []struct{ Branch, Ref string }
		}
		if err := json.Unmarshal(tk.Result, &branches); err != nil || tk.Code != 0 || branches.Type != "git-repo-ref-branch-array" ||
			len(branches.Data) != 1 || branches.Data[0].Branch != "main" || r.LastKnownCommit == nil || branches.Data[0].Ref != *r.LastKnownCommit {
			t.Fatalf("repo/branches: code %d %s, result %s; last_known_commit %v", tk.Code, tk.Error, tk.Result, r.LastKnownCommit)
		}
		call("GET", "/__api__/repo/manifest-dirs?url="+url.QueryEscape("http://127.0.0.1:"+gitPort+"/app.git")+"&branch=main", key, "", 200, &d)
		tk = waitTask(t, c, key, d.TaskID)
		var dirs struct {
			Type string   `json:"type"`
			Data []string `json:"data"`
		}
		if err := json.Unmarshal(tk.Result, &dirs); err != nil || tk.Code != 0 || dirs.Type != "git-repo-branch-manifest-dirs-array" ||
			strings.Join(dirs.Data, ",") != "api,site" {
			t.Fatalf("repo/manifest-dirs: code %d %s, result %s", tk.Code, tk.Error, tk.Result)
		}
		var acct struct{ Username string }
		call("GET", "/__api__/repo/account?url="+url.QueryEscape("http://127.0.0.1:"+gitPort), key, "", 200, &acct)
		if acct.Username != "dais" {
			t.Fatalf("repo/account: %+v, want the credential file's user", acct)
		}
		call("GET", "/__api__/repo/branches?url=file:///data", key, "", 400, nil)
		call("GET", "/__api__/repo/branches?url="+url.QueryEscape(secretURL), viewerKey, "", 403, nil)
	})

	// An app from the same repository, its URL without credentials: the
	// configured credential file lets dais in. The app shows its whole
	// environment: nothing of git's credentials is there.
	app := create("api-from-git")
	t.Run("credential file and the content's process", func(t *testing.T) {
		call("PUT", "/__api__/v1/content/"+app+"/repository", key,
			`{"repository": "http://127.0.0.1:`+gitPort+`/app.git", "directory": "api"}`, 200, nil)
		tk := deploy(app)
		if tk.Code != 0 {
			t.Fatalf("deploy with the credential file: %s\n%s", tk.Error, strings.Join(tk.Output, "\n"))
		}
		status, body := getWithKey(t, c, "/content/"+app+"/", key)
		answers.WriteString(body)
		if status != 200 || !strings.Contains(body, "PATH") {
			t.Fatalf("the app's environment: %d %.300s", status, body)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		before := answers.Len()
		for _, tc := range []struct {
			name, method, path, k, body string
			want                        int
			in                          string
		}{
			{"file URL", "PUT", "/__api__/v1/content/" + app + "/repository", key, `{"repository": "file:///data/db", "branch": "main"}`, 400, "https://"},
			{"ext URL", "PUT", "/__api__/v1/content/" + app + "/repository", key, `{"repository": "ext::sh -c touch% /tmp/pwned", "branch": "main"}`, 400, "https://"},
			{"option as branch", "PUT", "/__api__/v1/content/" + app + "/repository", key, `{"repository": "http://127.0.0.1:1/x.git", "branch": "--upload-pack=touch /tmp/x"}`, 400, "branch"},
			{"directory outside", "PUT", "/__api__/v1/content/" + app + "/repository", key, `{"repository": "http://127.0.0.1:1/x.git", "directory": "../../etc"}`, 400, "directory"},
			{"no repository", "PUT", "/__api__/v1/content/" + app + "/repository", key, `{"branch": "main"}`, 400, "repository is required"},
			{"wrong type", "PATCH", "/__api__/v1/content/" + app + "/repository", key, `{"polling": "yes"}`, 400, "polling"},
			{"unknown content", "GET", "/__api__/v1/content/00000000-0000-4000-8000-000000000000/repository", key, "", 404, "no content"},
			{"a viewer cannot see another's content", "GET", "/__api__/v1/content/" + app + "/repository", viewerKey, "", 404, "no content"},
			{"anonymous", "PUT", "/__api__/v1/content/" + app + "/repository", "", `{"repository": "http://127.0.0.1:1/x.git"}`, 401, "authentication"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				status, b := api(t, c, tc.method, tc.path, tc.k, strings.NewReader(tc.body))
				var e struct {
					Error string `json:"error"`
					Code  int    `json:"code"`
				}
				if err := json.Unmarshal(b, &e); err != nil || status != tc.want || e.Code != tc.want || !strings.Contains(e.Error, tc.in) {
					t.Fatalf("%d %s, want %d with %q", status, b, tc.want, tc.in)
				}
			})
		}
		var r repoAnswer
		call("GET", "/__api__/v1/content/"+app+"/repository", key, "", 200, &r)
		if r.Directory != "api" || r.Repository != "http://127.0.0.1:"+gitPort+"/app.git" {
			t.Fatalf("a refused change changed the repository: %+v", r)
		}
		_ = before
		// A wrong password, a missing branch: the deploy fails saying why,
		// the content keeps serving.
		bad := create("bad-from-git")
		call("PUT", "/__api__/v1/content/"+bad+"/repository", key,
			`{"repository": "http://dais:wrong-password@127.0.0.1:`+gitPort+`/app.git", "directory": "site"}`, 200, nil)
		tk := deploy(bad)
		if tk.Code == 0 || !strings.Contains(tk.Error, "git clone failed") || strings.Contains(tk.Error, "wrong-password") {
			t.Fatalf("deploy with a wrong password: code %d %q", tk.Code, tk.Error)
		}
		call("PUT", "/__api__/v1/content/"+site+"/repository", key,
			`{"repository": "`+secretURL+`", "branch": "no-such-branch", "directory": "site"}`, 200, nil)
		tk = deploy(site)
		if tk.Code == 0 || !strings.Contains(tk.Error, "no-such-branch") {
			t.Fatalf("deploy of a missing branch: code %d %q", tk.Code, tk.Error)
		}
		call("GET", "/__api__/v1/content/"+site+"/repository", key, "", 200, &r)
		if r.LastError == nil || !strings.Contains(*r.LastError, "no-such-branch") {
			t.Fatalf("last_error after a failed deploy: %+v", r)
		}
		waitServed(site, "from git, second commit")
		call("DELETE", "/__api__/v1/content/"+site+"/repository", key, "", 200, nil)
		call("GET", "/__api__/v1/content/"+site+"/repository", key, "", 404, nil)
		waitServed(site, "from git, second commit")
	})

	// The secret shows nowhere: API answers, task output, server log,
	// the app's environment (in answers), the content's files.
	t.Run("the secret shows nowhere", func(t *testing.T) {
		if strings.Contains(answers.String(), gitSecret) {
			t.Errorf("an API answer, task output or the app showed the git password")
		}
		if strings.Contains(c.Logs(), gitSecret) {
			t.Errorf("the server log shows the git password")
		}
		_ = filepath.WalkDir(filepath.Join(data, "apps"), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(gitSecret)) {
				t.Errorf("%s holds the git password", p)
			}
			return nil
		})
		if strings.Contains(g.srv.Logs(), gitSecret) {
			t.Errorf("the git server logged the password")
		}
		if !strings.Contains(g.srv.Logs(), "GET /app.git/info/refs 200 user=dais") {
			t.Errorf("dais did not fetch over HTTP with the credentials:\n%s", tail(g.srv.Logs(), 2000))
		}
	})
}
