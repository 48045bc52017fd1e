package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dais-dev/dais/entrypoint/sigprof"
	"github.com/dais-dev/dais/server/config"
)

// Hidden test hooks: fake inputs for the preflight checks.
const (
	envTestMountinfo = "DAIS_INIT_TEST_MOUNTINFO" // a mountinfo file read instead of /proc/self/mountinfo
	envTestCapEff    = "DAIS_INIT_TEST_CAPEFF"    // a CapEff hex mask used instead of the real capabilities
	envTestProbe     = "DAIS_INIT_TEST_PROBE"     // "ok" or "step:ERRNO" instead of the real namespace probe
	envTestSysRoot   = "DAIS_INIT_TEST_SYSROOT"   // a directory prefixed to /proc and /sys files read
)

// setup is what the work before the child produces.
type setup struct {
	argv        []string
	env         []string
	stopTimeout time.Duration
	reload      func() error
}

func run(args, environ []string, stdout, stderr io.Writer) int {
	if len(args) > 2 && args[1] == probeArg {
		return runProbeChild(args[2])
	}
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("component", "dais-init")
	o, err := parseOptions(args[1:], environ, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "dais-init: %v\n", err)
		return 2
	}
	if o.Help {
		usage(stdout)
		return 0
	}
	if o.Version {
		fmt.Fprintf(stdout, "dais-init %s\n", version)
		return 0
	}

	// Listen before anything else: a signal before the child exists ends
	// dais-init with 128+N, and none may be lost once it does.
	sigs := make(chan os.Signal, 1024)
	chld := make(chan os.Signal, 1)
	signal.Notify(sigs, catchable(environ)...)
	if !urgForwarded(environ) {
		log.Warn("SIGURG will not be forwarded: dais-init was built without the Makefile's INIT_LDFLAGS (asyncpreemptoff=1)")
	}
	signal.Notify(chld, unix.SIGCHLD)
	if err := sigprof.Notify(sigs); err != nil {
		log.Warn("SIGPROF will not be forwarded", keyErr, err.Error())
	}

	if os.Getpid() != 1 {
		// Orphans of the child's tree come to us, not to the real PID 1.
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			log.Warn("cannot become a subreaper: orphans go to the real PID 1", keyErr, err.Error())
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		s   *setup
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := prepare(ctx, log, o, environ)
		done <- result{s, err}
	}()
	var res result
wait:
	for {
		select {
		case res = <-done:
			break wait
		case sig := <-sigs:
			ss := sig.(syscall.Signal)
			cancel()
			log.Warn("signal before the child started: exiting", keySignal, unix.SignalName(ss), keyCode, 128+int(ss))
			return 128 + int(ss)
		}
	}
	if res.err != nil {
		var ce *checkError
		if errors.As(res.err, &ce) {
			fmt.Fprintf(stderr, "dais-init: %s\n", ce.msg)
		} else {
			fmt.Fprintf(stderr, "dais-init: %v\n", res.err)
		}
		return exitConfig
	}
	if o.Check {
		log.Info("checks passed")
		return 0
	}

	pid, err := startChild(res.s.argv, res.s.env)
	if err != nil {
		var se *startError
		if errors.As(err, &se) {
			fmt.Fprintf(stderr, "dais-init: %v\n", se.err)
			return se.code
		}
		fmt.Fprintf(stderr, "dais-init: %v\n", err)
		return exitNotExecutable
	}
	// The child keeps the directory dais-init was started in; dais-init
	// itself moves to / so that it holds no mount busy (as dumb-init does).
	// Paths it reads later (the reload) were made absolute in prepare.
	if err := unix.Chdir("/"); err != nil {
		log.Warn("cannot change to /: dais-init keeps its working directory", keyErr, err.Error())
	}
	if res.s.reload != nil {
		log.Info("server started", keyPID, pid, keyCommand, strings.Join(res.s.argv, " "))
	}
	sup := &supervisor{
		log:         log,
		group:       o.Forward == forwardGroup,
		stopTimeout: res.s.stopTimeout,
		reload:      res.s.reload,
		sigs:        sigs,
		chld:        chld,
	}
	return sup.run(pid)
}

// prepare runs everything before the child: for the server, the checks and
// the rendering; for any other command, nothing but the stop timeout.
func prepare(ctx context.Context, log *slog.Logger, o *options, environ []string) (*setup, error) {
	if !serverCommand(o.Args) && !o.Check {
		d, err := o.stopTimeout(config.Defaults().Server.StopTimeout.Std())
		return &setup{argv: o.Args, env: environ, stopTimeout: d}, err
	}
	// Absolute, for the reload: by then dais-init runs in /.
	base := o.Config
	for _, p := range []*string{&o.Config, &o.Rendered} {
		if a, err := filepath.Abs(*p); err == nil {
			*p = a
		}
	}
	l, err := loadConfig(log, o, environ)
	if err != nil {
		return nil, err
	}
	if err := preflight(ctx, log, newHost(environ), o, l.Config); err != nil {
		return nil, err
	}
	if err := render(l, o.Rendered); err != nil {
		return nil, err
	}
	log.Info("configuration rendered", keyPath, o.Rendered)
	d, err := o.stopTimeout(l.Config.Server.StopTimeout.Std())
	if err != nil {
		return nil, err
	}
	reload := func() error {
		l, err := loadConfig(log, o, environ)
		if err != nil {
			return err
		}
		return render(l, o.Rendered)
	}
	return &setup{
		argv:        serverArgs(o.Args, base, o.Rendered),
		env:         childEnv(environ, l.ConsumedEnv),
		stopTimeout: d,
		reload:      reload,
	}, nil
}

// newHost returns the real system, with the test hooks applied.
func newHost(environ []string) *host {
	env := map[string]string{}
	for _, kv := range environ {
		for i := 0; i < len(kv); i++ {
			if kv[i] == '=' {
				env[kv[:i]] = kv[i+1:]
				break
			}
		}
	}
	h := &host{
		capSysAdmin: realCapSysAdmin,
		probe:       realProbe,
		mountinfo:   openMountinfo("/proc/self/mountinfo"),
		readFile:    os.ReadFile,
		runtimes:    findRuntimes,
	}
	if v := env[envTestMountinfo]; v != "" {
		h.mountinfo = openMountinfo(v)
	}
	if v := env[envTestCapEff]; v != "" {
		h.capSysAdmin = fakeCapSysAdmin(v)
	}
	if v := env[envTestProbe]; v != "" {
		h.probe = fakeProbe(v)
	}
	if v := env[envTestSysRoot]; v != "" {
		h.readFile = func(p string) ([]byte, error) { return os.ReadFile(v + p) }
	}
	return h
}
