package main

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Exit codes when the command cannot start, as tini has them.
const (
	exitNotExecutable = 126
	exitNotFound      = 127
)

// Log attribute keys of the supervisor.
const (
	keyPID     = "pid"
	keySignal  = "signal"
	keyCode    = "code"
	keyTimeout = "stop_timeout"
	keyElapsed = "elapsed"
	keyCommand = "command"
	keyErr     = "err"
)

// exitConfig is EX_CONFIG from sysexits.h: a check or the configuration
// failed (dais init-setup says which).
const exitConfig = 78

// faults are the signals the Go runtime needs to catch itself (a real fault
// becomes a panic); sent with kill, it delivers them through os/signal.
var faults = []os.Signal{syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGILL}

// forwarded lists the other signals dais-init forwards, through package
// rawsig: 1..64 without KILL and STOP (which cannot be caught), CHLD (which
// drives reaping), 32 and 33 (kept by the C library and the Go runtime, as
// dumb-init's sigfillset leaves them out) and the faults. URG is among them
// when the runtime's asynchronous preemption, the only sender of URG inside
// dais-init, is off (urgForwarded); PIPE because dais-init's own writes
// never raise one (stderrWriter).
func forwarded(environ []string) []syscall.Signal {
	var out []syscall.Signal
	for n := 1; n <= 64; n++ {
		switch s := syscall.Signal(n); {
		case s == syscall.SIGKILL || s == syscall.SIGSTOP || s == syscall.SIGCHLD || n == 32 || n == 33,
			s == syscall.SIGSEGV || s == syscall.SIGBUS || s == syscall.SIGFPE || s == syscall.SIGILL,
			s == syscall.SIGURG && !urgForwarded(environ):
		default:
			out = append(out, s)
		}
	}
	return out
}

// urgForwarded reports whether the Go runtime's asynchronous preemption,
// which signals threads with SIGURG, is off: GODEBUG's last asyncpreemptoff
// setting, else the one linked in (godebugDefault).
func urgForwarded(environ []string) bool {
	v := ""
	for _, s := range []string{godebugDefault, getenv(environ, "GODEBUG")} {
		for _, kv := range strings.Split(s, ",") {
			if k, val, ok := strings.Cut(kv, "="); ok && k == "asyncpreemptoff" {
				v = val
			}
		}
	}
	return v == "1"
}

func getenv(environ []string, key string) string {
	v := ""
	for _, kv := range environ {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}

// startError is a command that could not be started, with its exit code.
type startError struct {
	code int
	err  error
}

func (e *startError) Error() string { return e.err.Error() }

// lookPath finds a command as execvp does (every PATH entry, relative ones
// too), with tini's exit codes and os/exec's messages; dais-init does not
// link os/exec.
func lookPath(name string) (string, error) {
	fail := func(err error) error {
		code := exitNotExecutable
		if pe, ok := err.(*fs.PathError); ok && (pe.Err == syscall.ENOENT || pe.Err == syscall.ENOTDIR) {
			code = exitNotFound
		}
		return &startError{code, errors.New("exec " + name + ": exec: " + strconv.Quote(name) + ": " + err.Error())}
	}
	if strings.Contains(name, "/") {
		if err := findExecutable(name); err != nil {
			return "", fail(err)
		}
		return name, nil
	}
	for _, dir := range strings.Split(os.Getenv("PATH"), ":") {
		if dir == "" {
			dir = "."
		}
		if p := dir + "/" + name; findExecutable(p) == nil {
			return p, nil
		}
	}
	return "", &startError{exitNotFound, errors.New("exec " + name + ": exec: " + strconv.Quote(name) + ": executable file not found in $PATH")}
}

// findExecutable is os/exec's test: a file, not a directory, that this
// process may execute.
func findExecutable(file string) error {
	var st syscall.Stat_t
	if err := syscall.Stat(file, &st); err != nil {
		return &fs.PathError{Op: "stat", Path: file, Err: err}
	}
	if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		return syscall.EISDIR
	}
	err := syscall.Faccessat(atFdcwd, file, 1, atEaccess) // X_OK
	if err == nil || (err != syscall.ENOSYS && err != syscall.EPERM) {
		return err
	}
	if st.Mode&0o111 != 0 {
		return nil
	}
	return fs.ErrPermission
}

// startChild starts argv in its own process group (the terminal's
// foreground group when stdin is our controlling terminal). It does not wait:
// the supervisor's reaper collects its status.
func startChild(argv, env []string) (int, error) {
	path, err := lookPath(argv[0])
	if err != nil {
		return 0, err
	}
	sys := &syscall.SysProcAttr{Setpgid: true}
	if _, err := foregroundGroup(0); err == nil {
		sys.Foreground = true
		sys.Ctty = 0
	}
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{Env: env, Files: []uintptr{0, 1, 2}, Sys: sys})
	if err != nil && sys.Foreground {
		// Not our controlling terminal after all: start without it.
		sys.Foreground, sys.Ctty = false, 0
		pid, err = syscall.ForkExec(path, argv, &syscall.ProcAttr{Env: env, Files: []uintptr{0, 1, 2}, Sys: sys})
	}
	if err != nil {
		code := exitNotExecutable
		if err == syscall.ENOENT {
			code = exitNotFound
		}
		return 0, &startError{code, errors.New("exec " + path + ": " + err.Error())}
	}
	return pid, nil
}

// supervisor forwards signals to one child and reaps every process that
// ends up parented to dais-init. Its loop is the only caller of wait4.
type supervisor struct {
	log         *logger
	group       bool          // forward to the child's process group
	stopTimeout time.Duration // after TERM/INT, until SIGKILL of the group
	reloadArgv  []string      // run on HUP before forwarding it; nil for none
	environ     []string      // dais-init's own, for the reload
	sigs        <-chan os.Signal
	chld        <-chan os.Signal

	reloadPid int              // the running reload, 0 for none
	held      []syscall.Signal // signals that came during the reload, in order
	stopAt    time.Time
	stopTimer *time.Timer // an AfterFunc: a channel timer links time's formatting
}

// reloadTimeout bounds a reload: signals wait for it.
const reloadTimeout = 30 * time.Second

// run supervises pid until it exits and returns dais-init's exit code.
func (s *supervisor) run(pid int) int {
	var (
		stopC   <-chan struct{}
		reloadC <-chan struct{}
	)
	for {
		code, done, reloaded := s.reap(pid)
		if reloaded {
			reloadC = nil
			// HUP first, then what came meanwhile, in order.
			held := s.held
			s.held = nil
			for _, sig := range held {
				if c := s.deliver(pid, sig); c != nil {
					stopC = c
				}
			}
		}
		if done {
			if s.stopTimer != nil {
				s.stopTimer.Stop()
				s.log.Info("child exited after stop signal", keyCode, code, keyElapsed, time.Since(s.stopAt).Round(time.Millisecond).String())
			}
			return code
		}
		select {
		case <-s.chld:
		case sig := <-s.sigs:
			ss := sig.(syscall.Signal)
			switch {
			case s.reloadPid != 0:
				s.held = append(s.held, ss)
			case ss == syscall.SIGHUP && s.reloadArgv != nil:
				// The configuration is rendered again (dais init-setup
				// --reload, which logs how it went) before HUP goes on.
				if rp, err := s.startReload(); err != nil {
					s.log.Error("configuration reload failed: the previous rendered configuration stays in place", keyErr, err.Error())
					if c := s.deliver(pid, ss); c != nil {
						stopC = c
					}
				} else {
					s.reloadPid, s.held = rp, []syscall.Signal{ss}
					reloadC = after(reloadTimeout)
				}
			default:
				if c := s.deliver(pid, ss); c != nil {
					stopC = c
				}
			}
		case <-reloadC:
			reloadC = nil
			s.log.Error("configuration reload still running after "+reloadTimeout.String()+": killed; HUP is forwarded anyway", keyPID, s.reloadPid)
			_ = syscall.Kill(-s.reloadPid, syscall.SIGKILL)
		case <-stopC:
			stopC = nil
			s.log.Warn("stop timeout reached: sending SIGKILL to the child's process group",
				keyTimeout, s.stopTimeout.String(), keyElapsed, time.Since(s.stopAt).Round(time.Millisecond).String(), keyPID, pid)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// deliver forwards sig; on the first TERM or INT it starts the stop timer
// and returns its channel.
func (s *supervisor) deliver(pid int, sig syscall.Signal) <-chan struct{} {
	s.forward(pid, sig)
	if (sig == syscall.SIGTERM || sig == syscall.SIGINT) && s.stopTimer == nil {
		s.stopAt = time.Now()
		c := make(chan struct{})
		s.stopTimer = time.AfterFunc(s.stopTimeout, func() { close(c) })
		s.log.Info("stopping: forwarded "+signalName(sig)+"; SIGKILL to the process group if the child still runs after the stop timeout",
			keySignal, signalName(sig), keyTimeout, s.stopTimeout.String())
		return c
	}
	return nil
}

// startReload starts `dais init-setup --reload` in its own process group,
// with dais-init's environment; the reaper collects it.
func (s *supervisor) startReload() (int, error) {
	null, err := os.Open(os.DevNull)
	if err != nil {
		return 0, err
	}
	defer null.Close()
	return syscall.ForkExec(s.reloadArgv[0], s.reloadArgv, &syscall.ProcAttr{
		Env:   s.environ,
		Files: []uintptr{null.Fd(), null.Fd(), 2},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
}

func (s *supervisor) forward(pid int, sig syscall.Signal) {
	target := pid
	if s.group {
		target = -pid
	}
	if err := syscall.Kill(target, sig); err != nil && err != syscall.ESRCH {
		s.log.Warn("forward signal", keySignal, signalName(sig), keyErr, err.Error())
	}
}

// reap collects every exited child without blocking. It reports the exit
// code once pid itself has exited, and whether the reload ended.
func (s *supervisor) reap(pid int) (code int, done, reloaded bool) {
	for {
		var ws syscall.WaitStatus
		p, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || p <= 0 {
			return code, done, reloaded
		}
		if p == s.reloadPid && s.reloadPid != 0 {
			s.reloadPid, reloaded = 0, true
			// Exit 78 was logged by the reload itself.
			if ws.Signaled() || (ws.Exited() && ws.ExitStatus() != 0 && ws.ExitStatus() != exitConfig) {
				s.log.Error("configuration reload failed: the previous rendered configuration stays in place", keyErr, "dais "+setupCommand+": "+exitDescription(ws))
			}
			continue
		}
		if p != pid {
			continue
		}
		switch {
		case ws.Exited():
			code, done = ws.ExitStatus(), true
		case ws.Signaled():
			code, done = 128+int(ws.Signal()), true
			s.log.Info("child killed by signal", keySignal, signalName(ws.Signal()), keyCode, code)
		}
	}
}

func exitDescription(ws syscall.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + signalName(ws.Signal())
	}
	return "exit status " + strconv.Itoa(ws.ExitStatus())
}

// after is time.After without a channel of time.Time (see stopTimer).
func after(d time.Duration) <-chan struct{} {
	c := make(chan struct{})
	time.AfterFunc(d, func() { close(c) })
	return c
}
