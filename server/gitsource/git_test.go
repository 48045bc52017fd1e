package gitsource

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseAndRedact(t *testing.T) {
	for _, tc := range []struct {
		raw, url, user, pass, redacted, err string
	}{
		{raw: "https://github.com/o/r.git", url: "https://github.com/o/r.git", redacted: "https://github.com/o/r.git"},
		{raw: "https://u:tok@h.example/r.git", url: "https://h.example/r.git", user: "u", pass: "tok", redacted: "https://u@h.example/r.git"},
		{raw: "http://x-access-token:t%40k@127.0.0.1:8080/r", url: "http://127.0.0.1:8080/r", user: "x-access-token", pass: "t@k", redacted: "http://x-access-token@127.0.0.1:8080/r"},
		{raw: "file:///etc/passwd", err: "https://", redacted: "file:///etc/passwd"},
		{raw: "ssh://git@h/r.git", err: "https://", redacted: "ssh://git@h/r.git"},
		{raw: "ext::sh -c id", err: "https://", redacted: "ext::sh -c id"},
		{raw: "https:///nohost", err: "like https://host", redacted: "https:///nohost"},
		{raw: "https://h/r?x=1", err: "like https://host", redacted: "https://h/r?x=1"},
		{raw: "https://u:p%zz@h/r", err: "does not parse", redacted: "https://h/r"},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			if got := Redact(tc.raw); got != tc.redacted {
				t.Errorf("Redact = %q, want %q", got, tc.redacted)
			}
			r, err := Parse(tc.raw)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Parse error %v, want one containing %q", err, tc.err)
				}
				if tc.pass != "" && strings.Contains(err.Error(), tc.pass) {
					t.Fatalf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil || r.URL.String() != tc.url || r.Username != tc.user || r.Password != tc.pass {
				t.Fatalf("Parse = %v %q %q, %v", r.URL, r.Username, r.Password, err)
			}
		})
	}
}

func TestBranchAndDirectory(t *testing.T) {
	for _, b := range []string{"main", "release/2.1", "feature_x-1"} {
		if err := CheckBranch(b); err != nil {
			t.Errorf("CheckBranch(%q) = %v", b, err)
		}
	}
	for _, b := range []string{"", "-x", "--upload-pack=id", "a b", "../x", "a..b", "x/", "/x", "x.lock", "a//b", "é"} {
		if err := CheckBranch(b); err == nil {
			t.Errorf("CheckBranch(%q) accepted", b)
		}
	}
	for in, want := range map[string]string{"": ".", ".": ".", "./site": "site", "apps/a/": "apps/a", "a/../b": "b"} {
		if got, err := CleanDirectory(in); err != nil || got != want {
			t.Errorf("CleanDirectory(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, d := range []string{"/etc", "..", "../x", "a/../../x", "a\\b"} {
		if _, err := CleanDirectory(d); err == nil {
			t.Errorf("CleanDirectory(%q) accepted", d)
		}
	}
}

// gitServer serves a real repository through git http-backend behind
// basic auth (user "u", password secret).
func gitServer(t *testing.T, secret string) (base string, push func(msg string) string) {
	t.Helper()
	gitBin, err := exec.LookPath("git")
	backend := "/usr/lib/git-core/git-http-backend"
	if _, serr := os.Stat(backend); err != nil || serr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("git and %s are needed (apt-get install git)", backend)
		}
		t.Skipf("git and %s are needed (apt-get install git)", backend)
	}
	root := t.TempDir()
	work := filepath.Join(t.TempDir(), "w")
	run := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command(gitBin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
			"GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_NOSYSTEM=1", "HOME="+root)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run(root, "init", "--quiet", "--bare", "--initial-branch=main", "r.git")
	run(root, "init", "--quiet", "--initial-branch=main", work)
	push = func(msg string) string {
		os.WriteFile(filepath.Join(work, "manifest.json"), []byte(`{"msg": "`+msg+`"}`), 0o644)
		run(work, "add", "-A")
		run(work, "commit", "--quiet", "-m", msg)
		run(work, "push", "--quiet", filepath.Join(root, "r.git"), "HEAD:main")
		return run(work, "rev-parse", "HEAD")
	}
	h := &cgi.Handler{Path: backend, Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/stall/") {
			<-r.Context().Done() // a server that never answers
			return
		}
		if u, p, ok := r.BasicAuth(); !ok || u != "u" || p != secret {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, push
}

func TestHeadAndClone(t *testing.T) {
	const secret = "pa55-w0rd-for-git"
	base, push := gitServer(t, secret)
	first := push("first")
	ctx := context.Background()
	g := &Git{Timeout: 30 * time.Second}
	withPass, _ := Parse(strings.Replace(base, "http://", "http://u:"+secret+"@", 1) + "/r.git")

	head, err := g.Head(ctx, withPass, "main")
	if err != nil || head != first {
		t.Fatalf("Head = %q, %v; want %s", head, err, first)
	}
	var out bytes.Buffer
	dir := filepath.Join(t.TempDir(), "clone")
	got, err := g.Clone(ctx, withPass, "main", dir, &out)
	if err != nil || got != first {
		t.Fatalf("Clone = %q, %v; want %s\n%s", got, err, first, out.String())
	}
	if b, err := os.ReadFile(filepath.Join(dir, "manifest.json")); err != nil || !strings.Contains(string(b), "first") {
		t.Fatalf("cloned manifest: %q %v", b, err)
	}
	if cfg, _ := os.ReadFile(filepath.Join(dir, ".git", "config")); bytes.Contains(cfg, []byte(secret)) {
		t.Fatalf("the clone's .git/config keeps the password:\n%s", cfg)
	}

	// The branch moves.
	second := push("second")
	if head, err := g.Head(ctx, withPass, "main"); err != nil || head != second {
		t.Fatalf("Head after a push = %q, %v; want %s", head, err, second)
	}

	// Credentials from the credential file, for a URL without them.
	noPass, _ := Parse(base + "/r.git")
	credFile := filepath.Join(t.TempDir(), "credentials")
	os.WriteFile(credFile, []byte("# comment\nhttps://other:x@elsewhere.example\n"+strings.Replace(base, "http://", "http://u:"+secret+"@", 1)+"\n"), 0o600)
	gf := &Git{Timeout: 30 * time.Second, CredentialsFile: credFile}
	if head, err := gf.Head(ctx, noPass, "main"); err != nil || head != second {
		t.Fatalf("Head with the credential file = %q, %v", head, err)
	}

	// Failures say why, without the password.
	wrong, _ := Parse(strings.Replace(base, "http://", "http://u:wrong-"+secret+"@", 1) + "/r.git")
	for name, f := range map[string]func() error{
		"no credentials": func() error { _, err := g.Head(ctx, noPass, "main"); return err },
		"wrong password": func() error { _, err := g.Head(ctx, wrong, "main"); return err },
		"wrong password, clone": func() error {
			var o bytes.Buffer
			_, err := g.Clone(ctx, wrong, "main", filepath.Join(t.TempDir(), "c"), &o)
			if strings.Contains(o.String(), secret) {
				t.Errorf("clone output shows the password: %s", o.String())
			}
			return err
		},
	} {
		err := f()
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("%s: err %v", name, err)
		}
	}
	if _, err := g.Head(ctx, withPass, "nope"); !errors.Is(err, ErrNoBranch) {
		t.Errorf("Head of a missing branch: %v, want ErrNoBranch", err)
	}
	if _, err := g.Head(ctx, withPass, "--upload-pack=id"); err == nil {
		t.Errorf("an option as a branch was run")
	}

	// A server that never answers: the deadline ends the command.
	stalled, _ := Parse(base + "/stall/r.git")
	start := time.Now()
	_, err = (&Git{Timeout: 2 * time.Second}).Head(ctx, stalled, "main")
	if err == nil || !strings.Contains(err.Error(), "Git.CommandTimeout") {
		t.Fatalf("stalled server: %v", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("the deadline of 2s took %s", d)
	}
}

func TestScrubWriter(t *testing.T) {
	var out bytes.Buffer
	w := &scrubWriter{w: &out, secrets: []string{"hunter2"}}
	w.Write([]byte("fatal: could not read from http://u:hun"))
	w.Write([]byte("ter2@h/r\npartial hunter2"))
	w.flush()
	if strings.Contains(out.String(), "hunter2") || strings.Count(out.String(), "<redacted>") != 2 {
		t.Fatalf("scrubbed output %q", out.String())
	}
}
