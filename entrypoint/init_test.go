package main

// Black-box tests of the built dais-init, run as PID 1 of a fresh PID
// namespace (unshare --pid --fork --mount-proc). They need root; they skip
// without it unless CI=true, where they fail instead.

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dais-dev/dais/internal/syncbuf"
)

var (
	initBin  string // the built dais-init
	childBin string // the built testchild
	fakeBin  string // a directory holding "dais", a link to testchild
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dais-init-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	initBin = filepath.Join(dir, "dais-init")
	childBin = filepath.Join(dir, "testchild")
	fakeBin = filepath.Join(dir, "fakebin")
	ldflags, err := initLDFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, b := range [][2]string{{initBin, "."}, {childBin, "./testchild"}} {
		// Static, so that the Docker test can run it in an empty image.
		cmd := exec.Command("go", "build", "-ldflags", ldflags, "-o", b[0], b[1])
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", b[1], err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	if err := os.Mkdir(fakeBin, 0o755); err == nil {
		err = os.Symlink(childBin, filepath.Join(fakeBin, "dais"))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// initLDFlags reads INIT_LDFLAGS from the Makefile: dais-init is tested as
// make builds it (asynchronous preemption off, so SIGURG is forwarded).
func initLDFlags() (string, error) {
	b, err := os.ReadFile("../Makefile")
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "INIT_LDFLAGS := "); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("no INIT_LDFLAGS in the Makefile")
}

// needRoot skips without root and unshare, or fails when CI=true.
func needRoot(t *testing.T) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root (a PID namespace)"
	} else if _, err := exec.LookPath("unshare"); err != nil {
		why = "needs unshare (util-linux)"
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(why + " and CI=true")
	}
	t.Skip(why)
}

// initProc is a dais-init running as PID 1 of its own PID namespace.
type initProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Reader
	stderr *syncbuf.Buffer
	pid    int // dais-init's pid as we see it
	lines  chan string
}

// startInit runs `unshare --pid --fork --mount-proc dais-init args...`.
func startInit(t *testing.T, env []string, args ...string) *initProc {
	t.Helper()
	return startInitIn(t, "", env, args...)
}

// startInitIn is startInit in the working directory dir.
func startInitIn(t *testing.T, dir string, env []string, args ...string) *initProc {
	t.Helper()
	cmd := exec.Command("unshare", append([]string{"--pid", "--fork", "--mount-proc", initBin}, args...)...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	p := &initProc{t: t, cmd: cmd, stderr: &syncbuf.Buffer{}, lines: make(chan string, 4096)}
	cmd.Stderr = p.stderr
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			p.lines <- s.Text()
		}
		close(p.lines)
	}()
	// unshare --fork's only child is dais-init. It may have come and gone
	// between two looks (a child that exits at once): then unshare has
	// exited too, and the test reads the exit status without the pid.
	deadline := time.Now().Add(5 * time.Second)
	for p.pid == 0 && time.Now().Before(deadline) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid))
		if f := strings.Fields(string(b)); len(f) > 0 {
			p.pid, _ = strconv.Atoi(f[0])
		} else if exited(cmd.Process.Pid) {
			return p
		} else {
			time.Sleep(2 * time.Millisecond)
		}
	}
	if p.pid == 0 {
		t.Fatalf("dais-init did not start; stderr: %s", p.stderr)
	}
	return p
}

// exited tells whether pid, a child not yet waited for, has exited (a zombie).
func exited(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// pid (comm) S ...: the state follows the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// waitStderr waits up to 5 s for s in dais-init's stderr: what it logged
// before a child's output may reach the test after it (two pipes).
func (p *initProc) waitStderr(s string) bool {
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.stderr.String(), s) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// expect waits for the next output lines, in any order, and compares them.
func (p *initProc) expect(want ...string) {
	p.t.Helper()
	// Generous: other test suites and benchmarks may load the machine.
	p.expectWithin(30*time.Second, want...)
}

func (p *initProc) expectWithin(d time.Duration, want ...string) {
	p.t.Helper()
	left := map[string]bool{}
	for _, w := range want {
		left[w] = true
	}
	timeout := time.After(d)
	for len(left) > 0 {
		select {
		case l, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("output ended, want %q; stderr: %s", want, p.stderr)
			}
			if !left[l] {
				p.t.Fatalf("got line %q, want one of %q", l, want)
			}
			delete(left, l)
		case <-timeout:
			p.t.Fatalf("no lines %q within %v; stderr: %s", want, d, p.stderr)
		}
	}
}

func (p *initProc) signal(sig syscall.Signal) {
	p.t.Helper()
	if p.pid == 0 {
		p.t.Fatalf("signal %v: dais-init had already exited; stderr: %s", sig, p.stderr)
	}
	if err := syscall.Kill(p.pid, sig); err != nil {
		p.t.Fatalf("kill %d %v: %v", p.pid, sig, err)
	}
}

// wait returns dais-init's exit code (unshare passes it on) and the rest of
// the output.
func (p *initProc) wait() (int, []string) {
	p.t.Helper()
	var rest []string
	for l := range p.lines {
		rest = append(rest, l)
	}
	err := p.cmd.Wait()
	if err == nil {
		return 0, rest
	}
	if ee, ok := err.(*exec.ExitError); ok {
		ws := ee.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			return 128 + int(ws.Signal()), rest
		}
		return ee.ExitCode(), rest
	}
	p.t.Fatal(err)
	return -1, nil
}

func TestExitCodePassesThrough(t *testing.T) {
	needRoot(t)
	for code := 0; code <= 255; code++ {
		p := startInit(t, nil, "--", childBin, "exit", strconv.Itoa(code))
		if got, _ := p.wait(); got != code {
			t.Fatalf("exit %d: dais-init exited %d; stderr: %s", code, got, p.stderr)
		}
	}
}

func TestChildKilledBySignal(t *testing.T) {
	needRoot(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGKILL, syscall.SIGINT, syscall.SIGUSR1} {
		t.Run(sig.String(), func(t *testing.T) {
			p := startInit(t, nil, "--", childBin, "killself", strconv.Itoa(int(sig)))
			if got, _ := p.wait(); got != 128+int(sig) {
				t.Fatalf("dais-init exited %d, want %d; stderr: %s", got, 128+int(sig), p.stderr)
			}
		})
	}
}

func TestCommandCannotStart(t *testing.T) {
	needRoot(t)
	tests := []struct {
		name string
		cmd  string
		code int
		line string
	}{
		{"not found in PATH", "no-such-command-dais", 127, `dais-init: exec no-such-command-dais: exec: "no-such-command-dais": executable file not found in $PATH`},
		{"missing path", "/no/such/file", 127, `dais-init: exec /no/such/file: exec: "/no/such/file": stat /no/such/file: no such file or directory`},
		{"not executable", "NOEXEC", 126, `dais-init: exec NOEXEC: exec: "NOEXEC": permission denied`},
		{"not a program", "BADFORMAT", 126, `dais-init: exec BADFORMAT: exec format error`},
	}
	dir := t.TempDir()
	files := map[string]string{"NOEXEC": filepath.Join(dir, "noexec"), "BADFORMAT": filepath.Join(dir, "badformat")}
	os.WriteFile(files["NOEXEC"], []byte("#!/bin/sh\n"), 0o644)
	os.WriteFile(files["BADFORMAT"], []byte("not a program\n"), 0o755)
	for _, tt := range tests {
		if f, ok := files[tt.cmd]; ok {
			tt.line = strings.ReplaceAll(tt.line, tt.cmd, f)
			tt.cmd = f
		}
		t.Run(tt.name, func(t *testing.T) {
			p := startInit(t, nil, "--", tt.cmd)
			got, _ := p.wait()
			if got != tt.code {
				t.Errorf("exit %d, want %d", got, tt.code)
			}
			if !strings.Contains(p.stderr.String(), tt.line+"\n") {
				t.Errorf("stderr %q lacks line %q", p.stderr, tt.line)
			}
		})
	}
}

// forwardable are the signals 1..31 dais-init passes on: all but KILL and
// STOP (which cannot be caught) and CHLD (which drives reaping), as
// dumb-init does. URG, PIPE and PROF included.
func forwardable() []syscall.Signal {
	var out []syscall.Signal
	for n := 1; n <= 31; n++ {
		switch s := syscall.Signal(n); s {
		case syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCHLD:
		default:
			out = append(out, s)
		}
	}
	return out
}

func TestSignalsForwardedOnceInOrder(t *testing.T) {
	needRoot(t)
	for _, mode := range []string{"group", "child"} {
		t.Run(mode, func(t *testing.T) {
			p := startInit(t, nil, "--forward-to", mode, "--stop-timeout", "1m", "--", childBin, "signals", "group")
			p.expect("ready")
			for _, sig := range forwardable() {
				p.signal(sig)
				if mode == "group" {
					p.expect(fmt.Sprintf("child %d", sig), fmt.Sprintf("grandchild %d", sig))
				} else {
					p.expect(fmt.Sprintf("child %d", sig))
				}
			}
			p.stdin.Close()
			code, rest := p.wait()
			if code != 0 {
				t.Errorf("exit %d; stderr: %s", code, p.stderr)
			}
			if len(rest) > 0 {
				t.Errorf("extra signal lines after the last one (duplicates or a grandchild in child mode): %q", rest)
			}
		})
	}
}

// TestOwnSIGPIPENotForwarded: when dais-init's stderr has no reader, its
// own log line raises a SIGPIPE in dais-init; that one is not forwarded,
// while a SIGPIPE sent to dais-init is.
func TestOwnSIGPIPENotForwarded(t *testing.T) {
	needRoot(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	defer w.Close()
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", initBin, "--forward-to", "child", "--stop-timeout", "1m", "--", childBin, "signals")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.Stderr = w
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 64)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	p := &initProc{t: t, cmd: cmd, stdin: stdin, stderr: &syncbuf.Buffer{}, lines: lines}
	p.expect("ready")
	p.pid = childPid(t, cmd.Process.Pid)
	// TERM makes dais-init log "stopping: ...", to the closed pipe.
	p.signal(syscall.SIGTERM)
	p.expect("child 15")
	p.signal(syscall.SIGUSR1)
	p.expect("child 10") // a forwarded SIGPIPE of its own would come first
	p.signal(syscall.SIGPIPE)
	p.expect("child 13")
	stdin.Close()
	if code, rest := p.wait(); code != 0 || len(rest) > 0 {
		t.Errorf("exit %d, extra lines %q", code, rest)
	}
}

// childPid is the only child of pid.
func childPid(t *testing.T, pid int) int {
	t.Helper()
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	f := strings.Fields(string(b))
	if len(f) == 0 {
		t.Fatalf("process %d has no child", pid)
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

// TestWorkingDirectory: the child starts in the directory dais-init was
// started in, found by a relative path from there; dais-init itself moves to
// / so that it holds no mount busy.
func TestWorkingDirectory(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	if err := os.Symlink(childBin, filepath.Join(dir, "child")); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"group", "child"} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", initBin, "--forward-to", mode, "--", "./child", "cwd")
			cmd.Dir = dir
			cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if want := "self " + dir + "\nparent /\n"; string(out) != want {
				t.Errorf("got %q, want %q", out, want)
			}
		})
	}
}

func TestOrphansReaped(t *testing.T) {
	needRoot(t)
	p := startInit(t, nil, "--", childBin, "orphans", "1000", "sleep1")
	// Starting 1,000 processes takes a while on a loaded machine.
	p.expectWithin(2*time.Minute, "zombies 0")
	if code, _ := p.wait(); code != 0 {
		t.Fatalf("exit %d; stderr: %s", code, p.stderr)
	}
}

func TestStopTimeoutKillsGroup(t *testing.T) {
	needRoot(t)
	const timeout = 2 * time.Second
	p := startInit(t, nil, "--stop-timeout", "2s", "--", childBin, "ignore-term")
	p.expect("ready")
	t0 := time.Now()
	p.signal(syscall.SIGTERM)
	code, _ := p.wait()
	took := time.Since(t0)
	if code != 128+int(syscall.SIGKILL) {
		t.Errorf("exit %d, want 137; stderr: %s", code, p.stderr)
	}
	if took < timeout || took > timeout+3*time.Second {
		t.Errorf("exited %v after TERM, want just after the 2s stop timeout", took)
	}
	for _, want := range []string{`msg="stop timeout reached: sending SIGKILL to the child's process group"`, "stop_timeout=2s elapsed=2"} {
		if !strings.Contains(p.stderr.String(), want) {
			t.Errorf("stderr lacks %q: %s", want, p.stderr)
		}
	}
}

func TestSignalBeforeChildExits128PlusN(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	// A slow "R --version" holds dais-init in its preflight checks, before
	// the child exists; it tells us when it runs.
	marker := filepath.Join(dir, "r-started")
	slowR := filepath.Join(dir, "R")
	if err := os.WriteFile(slowR, []byte("#!/bin/sh\ntouch "+marker+"\nsleep 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	base := writeConfig(t, dir, "[Server]\nDataDir = /data\n[R]\nExecutable = "+slowR+"\n")
	p := startInit(t, []string{"DAIS_INIT_SKIP_CHECKS=cap,datadir,netfs,lock", "PATH=" + fakeBin + ":" + os.Getenv("PATH")},
		"--config", base, "--rendered", filepath.Join(dir, "run", "r.gcfg"))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slow R never ran; stderr: %s", p.stderr)
		}
	}
	p.signal(syscall.SIGTERM)
	t0 := time.Now()
	code, out := p.wait()
	if code != 128+int(syscall.SIGTERM) {
		t.Errorf("exit %d, want 143; stderr: %s", code, p.stderr)
	}
	if len(out) > 0 {
		t.Errorf("the child ran: %q", out)
	}
	if time.Since(t0) > 5*time.Second {
		t.Errorf("took %v to exit", time.Since(t0))
	}
	if !strings.Contains(p.stderr.String(), `msg="signal before the child started: exiting" component=dais-init signal=SIGTERM code=143`) {
		t.Errorf("stderr: %s", p.stderr)
	}
}

func writeConfig(t *testing.T, dir, body string) string {
	t.Helper()
	p := filepath.Join(dir, "rstudio-connect.gcfg")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
