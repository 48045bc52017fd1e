package serve

// Black-box tests: they build the dais binary and run `dais serve` as a
// separate process, talk HTTP to it and send it signals.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/sandbox"

	"github.com/dais-dev/dais/internal/syncbuf"
)

var daisBin string

func TestMain(m *testing.M) {
	// Run in-process, the server starts its sandboxes (the trial sandbox
	// that picks the mode included) by re-executing this test binary.
	if len(os.Args) > 1 && os.Args[1] == "sandbox-exec" {
		os.Exit(sandbox.Main(os.Stderr))
	}
	dir, err := os.MkdirTemp("", "dais-serve-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	daisBin = filepath.Join(dir, "dais")
	build := exec.Command("go", "build", "-o", daisBin, "github.com/dais-dev/dais/server")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build dais:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// daisProc is one running `dais serve`.
type daisProc struct {
	t       *testing.T
	cmd     *exec.Cmd
	stdout  *syncbuf.Buffer
	stderr  *syncbuf.Buffer
	addr    string // host:port once ready
	done    chan struct{}
	waitErr error
}

// writeConfig writes a gcfg file for a server on a free loopback port
// with its data in dir; extra lines are appended to [Server].
func writeConfig(t *testing.T, path, dataDir string, server ...string) {
	t.Helper()
	text := fmt.Sprintf("[Server]\nDataDir = %s\n%s\n[HTTP]\nListen = 127.0.0.1:0\n", dataDir, strings.Join(server, "\n"))
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

var readyRE = regexp.MustCompile(`msg="dais ready" addr=(\S+)`)

// startDais runs dais serve --config path and waits until it is ready.
func startDais(t *testing.T, path string, env ...string) *daisProc {
	t.Helper()
	p := startDaisNoWait(t, path, env...)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if m := readyRE.FindStringSubmatch(p.stderr.String()); m != nil {
			p.addr = m[1]
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("dais serve exited before ready: %v\nstderr:\n%s", p.waitErr, p.stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("dais serve not ready after 15 s; stderr:\n%s", p.stderr)
	return nil
}

func startDaisNoWait(t *testing.T, path string, env ...string) *daisProc {
	t.Helper()
	p := &daisProc{t: t, stdout: &syncbuf.Buffer{}, stderr: &syncbuf.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(daisBin, "serve", "--config", path)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("dais stderr:\n%s", p.stderr)
		}
	})
	return p
}

func (p *daisProc) url(path string) string { return "http://" + p.addr + path }

// get fetches path on a fresh connection.
func (p *daisProc) get(path string) (int, string) {
	p.t.Helper()
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(p.url(path))
	if err != nil {
		p.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitLog waits until the service log contains s.
func (p *daisProc) waitLog(s string, d time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for !strings.Contains(p.stderr.String(), s) {
		if time.Now().After(deadline) {
			p.t.Fatalf("service log lacks %q after %v", s, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitExit waits for the process to end and returns its exit code.
func (p *daisProc) waitExit(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.t.Fatalf("dais still running %v after the signal", d)
	}
	return p.cmd.ProcessState.ExitCode()
}

func (p *daisProc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// keepAlive is one HTTP/1.1 connection used for several requests.
type keepAlive struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialKeepAlive(t *testing.T, addr string) *keepAlive {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &keepAlive{conn: c, r: bufio.NewReader(c)}
}

func (k *keepAlive) get(t *testing.T, path string) (int, string) {
	t.Helper()
	_ = k.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(k.conn, "GET %s HTTP/1.1\r\nHost: dais\r\n\r\n", path); err != nil {
		t.Fatalf("keep-alive write: %v", err)
	}
	resp, err := http.ReadResponse(k.r, nil)
	if err != nil {
		t.Fatalf("keep-alive read: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.Close {
		t.Fatalf("server asked to close the keep-alive connection")
	}
	return resp.StatusCode, string(b)
}

// slowStream starts GET /__test__/slow with n lines and returns a channel
// that gets the body (or an error text) when the request completes.
func slowStream(addr string, n int, interval time.Duration) <-chan string {
	out := make(chan string, 1)
	started := make(chan struct{})
	go func() {
		c := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get(fmt.Sprintf("http://%s/__test__/slow?lines=%d&interval=%s", addr, n, interval))
		if err != nil {
			close(started)
			out <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		r := bufio.NewReader(resp.Body)
		first, err := r.ReadString('\n')
		close(started) // the request is in flight: the first line arrived
		rest, err2 := io.ReadAll(r)
		if err == nil {
			err = err2
		}
		if err != nil {
			out <- "error: " + err.Error()
			return
		}
		out <- first + string(rest)
	}()
	<-started
	return out
}

func wantLines(t *testing.T, body string, n int) {
	t.Helper()
	if strings.HasPrefix(body, "error:") {
		t.Fatalf("slow request failed: %s", body)
	}
	lines := strings.Split(strings.TrimSpace(body), "\n")
	if len(lines) != n || lines[n-1] != fmt.Sprintf("line %d", n-1) {
		t.Fatalf("slow request got %d lines, want %d: %q", len(lines), n, body)
	}
}

// notifySocket listens where NOTIFY_SOCKET points and collects the states.
type notifySocket struct {
	path string
	mu   sync.Mutex
	msgs []string
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	ns := &notifySocket{path: filepath.Join(t.TempDir(), "notify.sock")}
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: ns.path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			ns.mu.Lock()
			ns.msgs = append(ns.msgs, string(buf[:n]))
			ns.mu.Unlock()
		}
	}()
	return ns
}

func (ns *notifySocket) all() string {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return strings.Join(ns.msgs, "|")
}

func (ns *notifySocket) wait(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(ns.all(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("sd_notify: no %q; got %q", s, ns.all())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestReloadKeepsConnections is the HUP contract: new PublicWarning on the
// welcome page, same process, a keep-alive connection and a streaming
// request both survive; a broken file keeps the old configuration; a
// changed restart-required key is logged; TERM lets a stream finish and
// exits 0.
func TestReloadKeepsConnections(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "rstudio-connect.gcfg")
	writeConfig(t, cfgPath, filepath.Join(dir, "data"), `PublicWarning = "<b>first</b> warning"`)
	ns := listenNotify(t)
	p := startDais(t, cfgPath, "DAIS_TEST_ENDPOINTS=1", "NOTIFY_SOCKET="+ns.path)
	ns.wait(t, "READY=1")
	pid := p.cmd.Process.Pid

	if code, body := p.get("/"); code != 200 || !strings.Contains(body, "<b>first</b> warning") {
		t.Fatalf("welcome before reload: %d %q", code, body)
	}
	ka := dialKeepAlive(t, p.addr)
	if code, body := ka.get(t, "/__ping__"); code != 200 || body != "{}\n" {
		t.Fatalf("ping: %d %q", code, body)
	}
	stream := slowStream(p.addr, 20, 100*time.Millisecond) // ~2 s

	writeConfig(t, cfgPath, filepath.Join(dir, "data"), `PublicWarning = "<i>second</i> warning"`, "[Logging]\nServiceLogFormat = JSON")
	p.signal(syscall.SIGHUP)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, body := p.get("/")
		if strings.Contains(body, "<i>second</i> warning") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("welcome page still without the new PublicWarning 5 s after HUP:\n%s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ns.wait(t, "RELOADING=1")
	// Logged once the components have reloaded too: after the page changed.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(p.stderr.String(), `"msg":"configuration reloaded"`); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Logging.ServiceLogFormat = JSON did not apply on reload:\n%s", p.stderr)
		}
	}
	if code, body := ka.get(t, "/"); code != 200 || !strings.Contains(body, "<i>second</i> warning") {
		t.Fatalf("keep-alive connection after reload: %d %q", code, body)
	}
	wantLines(t, <-stream, 20)
	if p.cmd.Process.Pid != pid {
		t.Fatal("pid changed")
	}
	select {
	case <-p.done:
		t.Fatalf("dais exited on HUP: %v", p.waitErr)
	default:
	}

	// A file that no longer parses: logged, old configuration kept.
	if err := os.WriteFile(cfgPath, []byte("[Server\nPublicWarning = broken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	p.waitLog("the running configuration stays in force", 5*time.Second)
	if code, body := p.get("/"); code != 200 || !strings.Contains(body, "<i>second</i> warning") {
		t.Fatalf("after a broken reload: %d, want the old PublicWarning:\n%s", code, body)
	}
	if code, _ := ka.get(t, "/__ping__"); code != 200 {
		t.Fatalf("ping after broken reload: %d", code)
	}

	// A restart-required key: logged, old value kept (we still listen where we did).
	writeConfig(t, cfgPath, filepath.Join(dir, "data2"), `PublicWarning = "third"`)
	p.signal(syscall.SIGHUP)
	p.waitLog("restart required", 5*time.Second)
	if !strings.Contains(p.stderr.String(), "Server.DataDir") {
		t.Errorf("restart-required log does not name Server.DataDir:\n%s", p.stderr)
	}
	if _, body := p.get("/"); !strings.Contains(body, "third") {
		t.Errorf("reloadable key next to a restart-required one not applied")
	}

	// TERM with a request in flight: it completes, then exit 0.
	stream = slowStream(p.addr, 10, 100*time.Millisecond)
	p.signal(syscall.SIGTERM)
	body := <-stream
	if code := p.waitExit(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d after TERM, want 0", code)
	}
	wantLines(t, body, 10)
	ns.wait(t, "STOPPING=1")
	if _, err := net.DialTimeout("tcp", p.addr, time.Second); err == nil {
		t.Error("still accepting connections after exit")
	}
	if !strings.Contains(p.stdout.String(), `"GET /__test__/slow?lines=20&interval=100ms HTTP/1.1" 200`) {
		t.Errorf("access log on stdout lacks the slow request:\n%s", p.stdout)
	}
}

func TestTermIdleExitsPromptly(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.gcfg")
	writeConfig(t, cfgPath, filepath.Join(dir, "data"))
	p := startDais(t, cfgPath)
	if code, body := p.get("/__ping__"); code != 200 || body != "{}\n" {
		t.Fatalf("ping: %d %q", code, body)
	}
	start := time.Now()
	p.signal(syscall.SIGTERM)
	if code := p.waitExit(5 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("idle stop took %v, want well under 2 s", d)
	}
	if !strings.Contains(p.stderr.String(), "dais stopped") {
		t.Errorf("no 'dais stopped' in the log")
	}
}

// TestStopTimeoutBoundsRequests: a request longer than Server.StopTimeout
// is cut off, and dais still exits 0 in about that time.
func TestStopTimeoutBoundsRequests(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.gcfg")
	writeConfig(t, cfgPath, filepath.Join(dir, "data"), "StopTimeout = 1s")
	p := startDais(t, cfgPath, "DAIS_TEST_ENDPOINTS=1")
	stream := slowStream(p.addr, 100, 100*time.Millisecond) // 10 s
	start := time.Now()
	p.signal(syscall.SIGTERM)
	if code := p.waitExit(5 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
	if d := time.Since(start); d < 900*time.Millisecond || d > 3*time.Second {
		t.Errorf("stop took %v with StopTimeout = 1s", d)
	}
	if body := <-stream; !strings.HasPrefix(body, "error:") {
		t.Errorf("the 10 s request finished within a 1 s stop: %q", body)
	}
	p.waitLog("did not finish within Server.StopTimeout", time.Second)
}

func TestStartRefusals(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.gcfg")
	writeConfig(t, good, filepath.Join(dir, "data"))
	first := startDais(t, good)

	bad := filepath.Join(dir, "bad.gcfg")
	if err := os.WriteFile(bad, []byte("[Server]\nStopTimeout = soon\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	busy := filepath.Join(dir, "busy.gcfg")
	if err := os.WriteFile(busy, []byte(fmt.Sprintf("[Server]\nDataDir = %s\n[HTTP]\nListen = %s\n", filepath.Join(dir, "other"), first.addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, config string
		want         string
	}{
		{"second server on one SQLite directory", good, "in use by another running dais"},
		{"bad value", bad, "StopTimeout"},
		{"missing file", filepath.Join(dir, "nope.gcfg"), "nope.gcfg"},
		{"port in use", busy, "change HTTP.Listen"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := startDaisNoWait(t, tc.config)
			if code := p.waitExit(15 * time.Second); code != 78 {
				t.Fatalf("exit code %d, want 78; stderr:\n%s", code, p.stderr)
			}
			if !strings.Contains(p.stderr.String(), tc.want) {
				t.Fatalf("stderr lacks %q:\n%s", tc.want, p.stderr)
			}
		})
	}
	if code, _ := first.get("/__ping__"); code != 200 {
		t.Fatalf("first server hurt by the refused ones: %d", code)
	}
}

// runDais runs a dais subcommand to completion.
func runDais(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(daisBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatal(err)
		}
	}
	return cmd.ProcessState.ExitCode(), o.String(), e.String()
}

// TestAccountsCLIAndAPI bootstraps accounts with the CLI and uses them
// against a running server.
func TestAccountsCLIAndAPI(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.gcfg")
	writeConfig(t, cfgPath, filepath.Join(dir, "data"))
	cli := []struct {
		name, stdin string
		args        []string
		code        int
		out         string
	}{
		{"add admin", "s3cret-pass\n", []string{"users", "add", "--config", cfgPath, "--admin", "alice"}, 0, "created administrator alice"},
		{"add viewer, flag after name", "viewer-pass\n", []string{"users", "add", "--config", cfgPath, "vic", "--role", "viewer"}, 0, "created viewer vic"},
		{"empty password", "\n", []string{"users", "add", "--config", cfgPath, "bob"}, 2, "empty password"},
		{"no stdin", "", []string{"users", "add", "--config", cfgPath, "bob"}, 2, "empty password"},
		{"duplicate", "x\n", []string{"users", "add", "--config", cfgPath, "alice"}, 1, "already exists"},
		{"bad role", "x\n", []string{"users", "add", "--config", cfgPath, "--role", "king", "bob"}, 2, "viewer, publisher or administrator"},
		{"list", "", []string{"users", "list", "--config", cfgPath}, 0, "alice"},
		{"key for nobody", "", []string{"keys", "create", "--config", cfgPath, "--user", "nobody"}, 1, "dais users add nobody"},
		{"key without user", "", []string{"keys", "create", "--config", cfgPath}, 2, "--user NAME is required"},
	}
	for _, tc := range cli {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runDais(t, tc.stdin, tc.args...)
			if code != tc.code || !strings.Contains(out+errOut, tc.out) {
				t.Fatalf("exit %d (want %d), output lacks %q:\n%s%s", code, tc.code, tc.out, out, errOut)
			}
		})
	}
	key := func(user string) string {
		code, out, errOut := runDais(t, "", "keys", "create", "--config", cfgPath, "--user", user, "--name", "ci")
		if code != 0 || !regexp.MustCompile(`^[0-9a-f]{32}\n$`).MatchString(out) || !strings.Contains(errOut, "shown only this once") {
			t.Fatalf("keys create: %d %q %q", code, out, errOut)
		}
		return strings.TrimSpace(out)
	}
	adminKey, viewerKey := key("alice"), key("vic")
	if _, out, _ := runDais(t, "", "keys", "list", "--config", cfgPath, "--user", "alice"); !strings.Contains(out, adminKey[:6]) || strings.Contains(out, adminKey) {
		t.Errorf("keys list shows %q: want the prefix only", out)
	}

	p := startDais(t, cfgPath)
	api := func(method, path, key, body string) (int, string, string) {
		req, _ := http.NewRequest(method, p.url(path), strings.NewReader(body))
		if key != "" {
			req.Header.Set("Authorization", "Key "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
	}
	for _, tc := range []struct {
		method, path, key, body string
		want                    int
		in                      string
	}{
		{"GET", "/__api__/v1/user", adminKey, "", 200, `"username":"alice"`},
		{"GET", "/__api__/me", "", "", 401, `"code":401`},
		{"POST", "/__api__/v1/users", "", `{"username":"x"}`, 401, `"code":401`},
		{"POST", "/__api__/v1/users", viewerKey, `{"username":"x"}`, 403, `"code":403`},
		{"POST", "/__api__/v1/users", adminKey, `{"username":`, 400, `"code":400`},
		{"GET", "/__api__/nothing", adminKey, "", 404, `"code":404`},
		{"POST", "/__api__/v1/users", adminKey, `{"username":"carol","password":"long-enough","user_role":"publisher"}`, 200, `"user_role":"publisher"`},
	} {
		code, ct, body := api(tc.method, tc.path, tc.key, tc.body)
		if code != tc.want || ct != "application/json" || !strings.Contains(body, tc.in) {
			t.Errorf("%s %s: %d %s %q, want %d application/json with %q", tc.method, tc.path, code, ct, body, tc.want, tc.in)
		}
	}
	// The user created through the API shows in the CLI (same store).
	if _, out, _ := runDais(t, "", "users", "list", "--config", cfgPath); !strings.Contains(out, "carol") {
		t.Errorf("users list lacks carol:\n%s", out)
	}
}

func TestHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"serve", "--help"}, 0, "restart required"},
		{[]string{"serve", "extra"}, 2, "unexpected argument"},
		{[]string{"users", "--help"}, 0, "dais users add [--admin"},
		{[]string{"users"}, 2, "dais users add"},
		{[]string{"users", "frobnicate"}, 2, "unknown subcommand"},
		{[]string{"keys", "--help"}, 0, "print it once"},
		{[]string{"keys", "create", "--help"}, 0, "dais keys create --user NAME"},
	} {
		code, out, errOut := runDais(t, "", tc.args...)
		if code != tc.code || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("dais %v: exit %d (want %d), output lacks %q:\n%s%s", tc.args, code, tc.code, tc.want, out, errOut)
		}
	}
}
