package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
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
var faults = []os.Signal{unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE, unix.SIGILL}

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
		case s == unix.SIGKILL || s == unix.SIGSTOP || s == unix.SIGCHLD || n == 32 || n == 33,
			s == unix.SIGSEGV || s == unix.SIGBUS || s == unix.SIGFPE || s == unix.SIGILL,
			s == unix.SIGURG && !urgForwarded(environ):
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

// lookPath finds a command as the shell would, with tini's exit codes.
func lookPath(name string) (string, error) {
	path, err := exec.LookPath(name)
	if err != nil {
		code := exitNotExecutable
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			code = exitNotFound
		}
		return "", &startError{code, fmt.Errorf("exec %s: %w", name, err)}
	}
	return path, nil
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
	if _, err := unix.IoctlGetInt(0, unix.TIOCGPGRP); err == nil {
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
		if errors.Is(err, syscall.ENOENT) {
			code = exitNotFound
		}
		return 0, &startError{code, fmt.Errorf("exec %s: %w", path, err)}
	}
	return pid, nil
}

// supervisor forwards signals to one child and reaps every process that
// ends up parented to dais-init. Its loop is the only caller of wait4.
type supervisor struct {
	log         *slog.Logger
	group       bool          // forward to the child's process group
	stopTimeout time.Duration // after TERM/INT, until SIGKILL of the group
	reloadArgv  []string      // run on HUP before forwarding it; nil for none
	environ     []string      // dais-init's own, for the reload
	sigs        <-chan os.Signal
	chld        <-chan os.Signal

	reloadPid int              // the running reload, 0 for none
	held      []syscall.Signal // signals that came during the reload, in order
	stopAt    time.Time
	stopTimer *time.Timer
}

// reloadTimeout bounds a reload: signals wait for it.
const reloadTimeout = 30 * time.Second

// run supervises pid until it exits and returns dais-init's exit code.
func (s *supervisor) run(pid int) int {
	var (
		stopC   <-chan time.Time
		reloadC <-chan time.Time
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
			case ss == unix.SIGHUP && s.reloadArgv != nil:
				// The configuration is rendered again (dais init-setup
				// --reload, which logs how it went) before HUP goes on.
				if rp, err := s.startReload(); err != nil {
					s.log.Error("configuration reload failed: the previous rendered configuration stays in place", keyErr, err.Error())
					if c := s.deliver(pid, ss); c != nil {
						stopC = c
					}
				} else {
					s.reloadPid, s.held = rp, []syscall.Signal{ss}
					reloadC = time.After(reloadTimeout)
				}
			default:
				if c := s.deliver(pid, ss); c != nil {
					stopC = c
				}
			}
		case <-reloadC:
			reloadC = nil
			s.log.Error("configuration reload still running after "+reloadTimeout.String()+": killed; HUP is forwarded anyway", keyPID, s.reloadPid)
			_ = unix.Kill(-s.reloadPid, unix.SIGKILL)
		case <-stopC:
			stopC = nil
			s.log.Warn("stop timeout reached: sending SIGKILL to the child's process group",
				keyTimeout, s.stopTimeout.String(), keyElapsed, time.Since(s.stopAt).Round(time.Millisecond).String(), keyPID, pid)
			_ = unix.Kill(-pid, unix.SIGKILL)
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// deliver forwards sig; on the first TERM or INT it starts the stop timer
// and returns its channel.
func (s *supervisor) deliver(pid int, sig syscall.Signal) <-chan time.Time {
	s.forward(pid, sig)
	if (sig == unix.SIGTERM || sig == unix.SIGINT) && s.stopTimer == nil {
		s.stopAt = time.Now()
		s.stopTimer = time.NewTimer(s.stopTimeout)
		s.log.Info("stopping: forwarded "+unix.SignalName(sig)+"; SIGKILL to the process group if the child still runs after the stop timeout",
			keySignal, unix.SignalName(sig), keyTimeout, s.stopTimeout.String())
		return s.stopTimer.C
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
	if err := unix.Kill(target, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		s.log.Warn("forward signal", keySignal, unix.SignalName(sig), keyErr, err.Error())
	}
}

// reap collects every exited child without blocking. It reports the exit
// code once pid itself has exited, and whether the reload ended.
func (s *supervisor) reap(pid int) (code int, done, reloaded bool) {
	for {
		var ws unix.WaitStatus
		p, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
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
			s.log.Info("child killed by signal", keySignal, unix.SignalName(ws.Signal()), keyCode, code)
		}
	}
}

func exitDescription(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + unix.SignalName(ws.Signal())
	}
	return "exit status " + strconv.Itoa(ws.ExitStatus())
}
