package main

import (
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dais-dev/dais/entrypoint/rawsig"
)

// setupCommand is the dais subcommand that runs the checks and renders the
// configuration (package setup); dais-init links none of that itself.
const setupCommand = "init-setup"

// plan is what the work before the child produces.
type plan struct {
	argv        []string
	env         []string
	stopTimeout time.Duration
	setupArgv   []string // the reload command (HUP); nil for a plain command
}

func run(args, environ []string, stdout, stderr io.Writer) int {
	log := newLogger(stderr)
	o, err := parseOptions(args[1:], environ)
	if err != nil {
		io.WriteString(stderr, "dais-init: "+err.Error()+"\n")
		return 2
	}
	if o.Help {
		usage(stdout)
		return 0
	}
	if o.Version {
		io.WriteString(stdout, "dais-init "+version+"\n")
		return 0
	}

	// Listen before anything else: a signal before the child exists ends
	// dais-init with 128+N, and none may be lost once it does.
	sigs := make(chan os.Signal, 64)
	chld := make(chan os.Signal, 1)
	signal.Notify(sigs, faults...)
	if err := rawsig.Notify(sigs, forwarded(environ)...); err == nil {
		err = rawsig.Notify(chld, syscall.SIGCHLD)
	} else {
		// Unreachable but for a lack of file descriptors: os/signal then.
		log.Warn("signals through os/signal: SIGPROF will not be forwarded", keyErr, err.Error())
		for _, s := range forwarded(environ) {
			signal.Notify(sigs, s)
		}
		signal.Notify(chld, syscall.SIGCHLD)
	}
	if !urgForwarded(environ) {
		log.Warn("SIGURG will not be forwarded: dais-init was built without the Makefile's INIT_LDFLAGS (asyncpreemptoff=1)")
	}

	if os.Getpid() != 1 {
		// Orphans of the child's tree come to us, not to the real PID 1.
		if err := prctl(prSetChildSubreaper, 1); err != nil {
			log.Warn("cannot become a subreaper: orphans go to the real PID 1", keyErr, err.Error())
		}
	}

	s, code := prepare(log, o, environ, stderr, sigs)
	if s == nil {
		return code
	}
	if o.Check {
		log.Info("checks passed")
		return 0
	}

	pid, err := startChild(s.argv, s.env)
	if err != nil {
		if se, ok := err.(*startError); ok {
			io.WriteString(stderr, "dais-init: "+se.err.Error()+"\n")
			return se.code
		}
		io.WriteString(stderr, "dais-init: "+err.Error()+"\n")
		return exitNotExecutable
	}
	// The child keeps the directory dais-init was started in; dais-init
	// itself moves to / so that it holds no mount busy (as dumb-init does).
	// The paths the reload reads were made absolute in prepare.
	if err := syscall.Chdir("/"); err != nil {
		log.Warn("cannot change to /: dais-init keeps its working directory", keyErr, err.Error())
	}
	if s.setupArgv != nil {
		log.Info("server started", keyPID, pid, keyCommand, strings.Join(s.argv, " "))
	}
	sup := &supervisor{
		log:         log,
		group:       o.Forward == forwardGroup,
		stopTimeout: s.stopTimeout,
		environ:     environ,
		sigs:        sigs,
		chld:        chld,
	}
	if s.setupArgv != nil {
		sup.reloadArgv = append(s.setupArgv, "--reload")
	}
	return sup.run(pid)
}

// prepare runs everything before the child: for the server (and --check),
// `dais init-setup`, which runs the checks and renders the configuration;
// for any other command, nothing. A signal meanwhile ends dais-init with
// 128+N. A nil plan comes with dais-init's exit code.
func prepare(log *logger, o *options, environ []string, stderr io.Writer, sigs <-chan os.Signal) (*plan, int) {
	if !serverCommand(o.Args) && !o.Check {
		d, _ := o.stopTimeout(defaultServerStop)
		return &plan{argv: o.Args, env: environ, stopTimeout: d}, 0
	}
	// Absolute, for the reload: by then dais-init runs in /.
	config, rendered := o.Config, o.Rendered
	if wd, err := syscall.Getwd(); err == nil {
		for _, p := range []*string{&config, &rendered} {
			if !filepath.IsAbs(*p) {
				*p = filepath.Join(wd, *p)
			}
		}
	}
	// The dais that is about to serve renders its own configuration.
	dais := "dais"
	if len(o.Args) > 0 {
		dais = o.Args[0]
	} else if self, err := os.Executable(); err == nil {
		// `dais-init --check` with no command (systemd's ExecStartPre):
		// the dais installed beside dais-init (/opt/dais/bin from the
		// package), which need not be on PATH; else PATH's.
		if p := filepath.Join(filepath.Dir(self), "dais"); isExecutable(p) {
			dais = p
		}
	}
	path, err := lookPath(dais)
	if err != nil {
		io.WriteString(stderr, "dais-init: the checks and the configuration are done by "+dais+" "+setupCommand+": "+err.Error()+"\n")
		return nil, err.(*startError).code
	}
	argv := []string{path, setupCommand, "--config", config, "--rendered", rendered}
	if len(o.Skip) > 0 {
		argv = append(argv, "--skip-checks", strings.Join(o.Skip, ","))
	}
	out, code, sig := runSetup(argv, environ, sigs)
	if sig != 0 {
		log.Warn("signal before the child started: exiting", keySignal, signalName(sig), keyCode, 128+int(sig))
		return nil, 128 + int(sig)
	}
	if code != 0 {
		if code != exitConfig && code != 2 {
			io.WriteString(stderr, "dais-init: "+dais+" "+setupCommand+" failed (exit "+strconv.Itoa(code)+"): see above\n")
		}
		return nil, exitConfig
	}
	serverStop := defaultServerStop
	if v, ok := strings.CutPrefix(strings.TrimSpace(out), "server-stop-timeout "); ok {
		if d, err := time.ParseDuration(v); err == nil {
			serverStop = d
		}
	}
	d, _ := o.stopTimeout(serverStop)
	return &plan{
		argv:        serverArgs(o.Args, o.Config, rendered),
		env:         childEnv(environ),
		stopTimeout: d,
		setupArgv:   argv,
	}, 0
}

// runSetup runs `dais init-setup` in its own process group and returns its
// stdout and exit code; or, when a signal comes first, kills its group and
// returns the signal.
func runSetup(argv, environ []string, sigs <-chan os.Signal) (string, int, syscall.Signal) {
	r, w, err := os.Pipe()
	if err != nil {
		return err.Error(), exitConfig, 0
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		return err.Error(), exitConfig, 0
	}
	pid, err := syscall.ForkExec(argv[0], argv, &syscall.ProcAttr{
		Env:   environ,
		Files: []uintptr{null.Fd(), w.Fd(), 2},
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	null.Close()
	w.Close()
	if err != nil {
		r.Close()
		return "", exitNotExecutable, 0
	}
	type result struct {
		out  string
		code int
	}
	done := make(chan result, 1)
	go func() {
		defer r.Close()
		var b strings.Builder
		io.Copy(&b, r)
		var ws syscall.WaitStatus
		for {
			_, err := syscall.Wait4(pid, &ws, 0, nil)
			if err != syscall.EINTR {
				break
			}
		}
		code := ws.ExitStatus()
		if ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
		done <- result{b.String(), code}
	}()
	select {
	case res := <-done:
		return res.out, res.code, 0
	case sig := <-sigs:
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		return "", 0, sig.(syscall.Signal)
	}
}

// childEnv is environ without, to be safe with secrets, any CONNECT_* or
// RSC_LICENSE_SERVER: every variable the configuration consumes is one.
func childEnv(environ []string) []string {
	out := make([]string, 0, len(environ))
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "CONNECT_") || k == "RSC_LICENSE_SERVER" {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// isExecutable tells whether path is a regular file someone may execute.
func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}
