package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
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
)

// catchable lists the signals dais-init forwards through os/signal: 1..64
// without KILL and STOP (which cannot be caught), CHLD (which drives
// reaping) and PROF (which os/signal never delivers: package sigprof), as
// dumb-init forwards all but CHLD. URG is among them when the runtime's
// asynchronous preemption, the only sender of URG inside dais-init, is off
// (urgForwarded); PIPE because dais-init's own writes never raise one
// (stderrWriter).
func catchable(environ []string) []os.Signal {
	var out []os.Signal
	for n := 1; n <= 64; n++ {
		s := syscall.Signal(n)
		if s == unix.SIGKILL || s == unix.SIGSTOP || s == unix.SIGCHLD || s == unix.SIGPROF ||
			(s == unix.SIGURG && !urgForwarded(environ)) {
			continue
		}
		out = append(out, s)
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

// startChild starts argv in its own process group (the terminal's
// foreground group when stdin is our controlling terminal). It does not wait:
// the supervisor's reaper collects its status.
func startChild(argv, env []string) (int, error) {
	path, err := exec.LookPath(argv[0])
	if err != nil {
		code := exitNotExecutable
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			code = exitNotFound
		}
		return 0, &startError{code, fmt.Errorf("exec %s: %w", argv[0], err)}
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
	reload      func() error  // run on HUP before forwarding; nil for none
	sigs        <-chan os.Signal
	chld        <-chan os.Signal
}

// run supervises pid until it exits and returns dais-init's exit code.
func (s *supervisor) run(pid int) int {
	var (
		stopC     <-chan time.Time
		stopAt    time.Time
		stopTimer *time.Timer
	)
	for {
		if code, done := s.reap(pid); done {
			if stopTimer != nil {
				stopTimer.Stop()
				s.log.Info("child exited after stop signal", keyCode, code, keyElapsed, time.Since(stopAt).Round(time.Millisecond).String())
			}
			return code
		}
		select {
		case <-s.chld:
		case sig := <-s.sigs:
			ss := sig.(syscall.Signal)
			if ss == unix.SIGHUP && s.reload != nil {
				if err := s.reload(); err != nil {
					s.log.Error("configuration reload failed: the previous rendered configuration stays in place", keyErr, err.Error())
				} else {
					s.log.Info("configuration re-rendered for reload")
				}
			}
			s.forward(pid, ss)
			if (ss == unix.SIGTERM || ss == unix.SIGINT) && stopTimer == nil {
				stopAt = time.Now()
				stopTimer = time.NewTimer(s.stopTimeout)
				stopC = stopTimer.C
				s.log.Info("stopping: forwarded "+unix.SignalName(ss)+"; SIGKILL to the process group if the child still runs after the stop timeout",
					keySignal, unix.SignalName(ss), keyTimeout, s.stopTimeout.String())
			}
		case <-stopC:
			stopC = nil
			s.log.Warn("stop timeout reached: sending SIGKILL to the child's process group",
				keyTimeout, s.stopTimeout.String(), keyElapsed, time.Since(stopAt).Round(time.Millisecond).String(), keyPID, pid)
			_ = unix.Kill(-pid, unix.SIGKILL)
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
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
// code once pid itself has exited.
func (s *supervisor) reap(pid int) (code int, done bool) {
	for {
		var ws unix.WaitStatus
		p, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || p <= 0 {
			return code, done
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
