// Package gitsource runs git for git-backed content: it checks where a
// branch points (ls-remote) and clones it, with Debian's git, under a
// deadline, with nothing of the machine's git configuration, over http
// and https only, and without a prompt. Credentials, from the repository
// URL (https://user:token@host/...) or from a credential-store file, reach
// git through its environment, never its arguments, and are scrubbed from
// everything git prints: they never reach a log, a task's output or an
// error a user reads.
package gitsource

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path"
	"regexp"
	"strings"
	"time"
)

// ErrNoBranch: the repository has no such branch.
var ErrNoBranch = errors.New("no such branch")

// Git runs git commands. The zero value runs "git" with a 5 minute deadline.
type Git struct {
	// Executable is the git program; "" is "git" on PATH.
	Executable string
	// Timeout bounds each command; 0 is 5 minutes.
	Timeout time.Duration
	// CredentialsFile is a git credential-store file (https://user:token@host
	// lines), used for repositories whose URL has no credentials; "" none.
	CredentialsFile string
}

// Repo is a repository URL taken apart: the URL git is given (without
// credentials) and the credentials, if any.
type Repo struct {
	URL      *url.URL // no user information
	Username string
	Password string
}

// Parse checks a repository URL: http or https, a host, no query or
// fragment. Credentials in it are taken out of the URL.
func Parse(raw string) (Repo, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return Repo{}, fmt.Errorf("repository must be an https:// (or http://) URL; %q does not parse", Redact(raw))
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return Repo{}, fmt.Errorf("repository must be an https:// (or http://) URL, not %q", Redact(raw))
	}
	if u.Host == "" || u.Opaque != "" || u.RawQuery != "" || u.Fragment != "" {
		return Repo{}, fmt.Errorf("repository must be a URL like https://host/owner/repo.git, not %q", Redact(raw))
	}
	r := Repo{}
	if u.User != nil {
		r.Username = u.User.Username()
		r.Password, _ = u.User.Password()
		u.User = nil
	}
	r.URL = u
	return r, nil
}

// Redact returns a repository URL without its password (the user name
// stays), for showing: in the API's answers, logs and messages. A string
// that does not parse is cut at its last '@'.
func Redact(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		if i := strings.LastIndex(raw, "@"); i >= 0 {
			if j := strings.Index(raw, "://"); j >= 0 && j < i {
				return raw[:j+3] + raw[i+1:]
			}
			return raw[i+1:]
		}
		return raw
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.User(u.User.Username())
		}
	}
	return u.String()
}

var branchPattern = regexp.MustCompile(`^[A-Za-z0-9._/-]{1,200}$`)

// CheckBranch refuses branch names git would take as options or refuse.
func CheckBranch(b string) error {
	if !branchPattern.MatchString(b) || strings.HasPrefix(b, "-") || strings.HasPrefix(b, "/") ||
		strings.HasSuffix(b, "/") || strings.Contains(b, "..") || strings.Contains(b, "//") || strings.HasSuffix(b, ".lock") {
		return fmt.Errorf("branch %q is not a branch name: letters, digits, '.', '_', '-' and '/' (not first), like main or release/2.1", b)
	}
	return nil
}

// CleanDirectory checks a directory of the repository: relative, inside
// it. "" and "." are the top. It returns the cleaned form.
func CleanDirectory(d string) (string, error) {
	if d == "" {
		return ".", nil
	}
	c := path.Clean(strings.TrimPrefix(d, "./"))
	if path.IsAbs(d) || c == ".." || strings.HasPrefix(c, "../") || strings.ContainsAny(d, "\x00\\") {
		return "", fmt.Errorf("directory %q must be a path inside the repository, like . or apps/dashboard", d)
	}
	return c, nil
}

// credentials returns the user and password for r: its own, else the
// credential file's line for its scheme and host.
func (g *Git) credentials(r Repo) (user, pass string, err error) {
	if r.Username != "" || r.Password != "" {
		return r.Username, r.Password, nil
	}
	if g.CredentialsFile == "" {
		return "", "", nil
	}
	f, err := os.Open(g.CredentialsFile)
	if err != nil {
		return "", "", fmt.Errorf("read Git.CredentialsFile: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		u, err := url.Parse(line)
		if err != nil || u.User == nil {
			continue // never echo a line: it holds a secret
		}
		if u.Scheme == r.URL.Scheme && strings.EqualFold(u.Host, r.URL.Host) {
			p, _ := u.User.Password()
			return u.User.Username(), p, nil
		}
	}
	return "", "", sc.Err()
}

// run runs git with args for r, writing what it prints (scrubbed) to out
// as well as returning it.
func (g *Git) run(ctx context.Context, r Repo, dir string, out io.Writer, args ...string) ([]byte, error) {
	timeout := g.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	exe := g.Executable
	if exe == "" {
		exe = "git"
	}
	user, pass, err := g.credentials(r)
	if err != nil {
		return nil, err
	}
	home, err := os.MkdirTemp("", "dais-git-home-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(home)
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	killGroup(cmd)
	// Nothing of the machine's or the server's environment: a clean home,
	// no system or global configuration, no prompt, http(s) only, and a
	// stalled transfer cut.
	cmd.Env = []string{
		"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + home, "LANG=C", "LC_ALL=C",
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0",
		"GIT_ASKPASS=/bin/false", "SSH_ASKPASS=/bin/false", "GIT_ALLOW_PROTOCOL=http:https",
		"GIT_HTTP_LOW_SPEED_LIMIT=1000", "GIT_HTTP_LOW_SPEED_TIME=60", "GIT_LFS_SKIP_SMUDGE=1",
	}
	var secrets []string
	if user != "" || pass != "" {
		basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
		// Sent only to this repository's scheme, host and port.
		cmd.Env = append(cmd.Env, "GIT_CONFIG_COUNT=1",
			"GIT_CONFIG_KEY_0=http."+r.URL.Scheme+"://"+r.URL.Host+"/.extraHeader",
			"GIT_CONFIG_VALUE_0=Authorization: Basic "+basic)
		secrets = append(secrets, basic, pass, url.QueryEscape(pass), url.PathEscape(pass))
	}
	var buf bytes.Buffer
	w := io.Writer(&buf)
	sw := &scrubWriter{w: io.Discard, secrets: secrets}
	if out != nil {
		sw.w = out
		w = io.MultiWriter(&buf, sw)
	}
	cmd.Stdout, cmd.Stderr = w, w
	err = cmd.Run()
	sw.flush()
	printed := []byte(scrub(buf.String(), secrets))
	if ctx.Err() == context.DeadlineExceeded {
		return printed, fmt.Errorf("git %s did not finish within %s (Git.CommandTimeout)", args[0], timeout)
	}
	if err != nil {
		return printed, fmt.Errorf("git %s failed: %w: %s", args[0], err, lastLines(string(printed), 4))
	}
	return printed, nil
}

// Head returns the commit the branch points to, from the server (no clone).
func (g *Git) Head(ctx context.Context, r Repo, branch string) (string, error) {
	if err := CheckBranch(branch); err != nil {
		return "", err
	}
	out, err := g.run(ctx, r, "", nil, "ls-remote", "--heads", "--", r.URL.String(), "refs/heads/"+branch)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[1] == "refs/heads/"+branch {
			return f[0], nil
		}
	}
	return "", fmt.Errorf("%w %q in %s", ErrNoBranch, branch, r.URL)
}

// Branch is a branch of a repository and the commit it points to.
type Branch struct {
	Name   string
	Commit string
}

// Branches lists the repository's branches, from the server (no clone).
func (g *Git) Branches(ctx context.Context, r Repo) ([]Branch, error) {
	out, err := g.run(ctx, r, "", nil, "ls-remote", "--heads", "--", r.URL.String())
	if err != nil {
		return nil, err
	}
	var bs []Branch
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && strings.HasPrefix(f[1], "refs/heads/") {
			bs = append(bs, Branch{Name: strings.TrimPrefix(f[1], "refs/heads/"), Commit: f[0]})
		}
	}
	return bs, nil
}

// Username is the user name dais would use for the repository (its URL's,
// else the credential file's for its host); "" for anonymous access.
func (g *Git) Username(r Repo) (string, error) {
	u, _, err := g.credentials(r)
	return u, err
}

// Clone clones the branch's newest commit into dir (which must not exist)
// and returns that commit. What git prints goes to out, scrubbed.
func (g *Git) Clone(ctx context.Context, r Repo, branch, dir string, out io.Writer) (string, error) {
	if err := CheckBranch(branch); err != nil {
		return "", err
	}
	if _, err := g.run(ctx, r, "", out, "clone", "--quiet", "--depth", "1", "--single-branch", "--no-tags",
		"--branch", branch, "--", r.URL.String(), dir); err != nil {
		return "", err
	}
	head, err := g.run(ctx, r, dir, nil, "rev-parse", "HEAD")
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(head)), nil
}

// scrub replaces each secret in s.
func scrub(s string, secrets []string) string {
	for _, x := range secrets {
		if len(x) >= 3 {
			s = strings.ReplaceAll(s, x, "<redacted>")
		}
	}
	return s
}

// scrubWriter scrubs whole lines before passing them on.
type scrubWriter struct {
	w       io.Writer
	secrets []string
	buf     []byte
}

func (s *scrubWriter) Write(p []byte) (int, error) {
	s.buf = append(s.buf, p...)
	for {
		i := bytes.IndexAny(s.buf, "\r\n")
		if i < 0 {
			break
		}
		if _, err := io.WriteString(s.w, scrub(string(s.buf[:i]), s.secrets)+"\n"); err != nil {
			return len(p), err
		}
		s.buf = s.buf[i+1:]
	}
	return len(p), nil
}

func (s *scrubWriter) flush() {
	if len(s.buf) > 0 {
		_, _ = io.WriteString(s.w, scrub(string(s.buf), s.secrets)+"\n")
		s.buf = nil
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
