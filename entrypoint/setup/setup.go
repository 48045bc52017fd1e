// Package setup is what dais-init has done before it starts the server:
// the preflight checks and the rendering of the configuration, run as
// `dais init-setup` (Main). dais-init itself links none of it, so that a
// plain command under dais-init starts as fast as a minimal Go program can
// start one. See docs/init.md.
package setup

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/sandbox"
)

// Hidden test hooks: fake inputs for the preflight checks.
const (
	envTestMountinfo = "DAIS_INIT_TEST_MOUNTINFO" // a mountinfo file read instead of /proc/self/mountinfo
	envTestCapEff    = "DAIS_INIT_TEST_CAPEFF"    // a CapEff hex mask used instead of the real capabilities
	envTestProbe     = "DAIS_INIT_TEST_PROBE"     // "ok" or "step:ERRNO" instead of the real namespace probe
	envTestLandlock  = "DAIS_INIT_TEST_LANDLOCK"  // a Landlock ABI version instead of the kernel's ("0": none)
	envTestSysRoot   = "DAIS_INIT_TEST_SYSROOT"   // a directory prefixed to /proc and /sys files read
)

// Command is the dais subcommand that runs Main; the namespace probe
// re-executes it.
const Command = "init-setup"

// CheckNames are the preflight checks, as --skip-checks takes them.
var CheckNames = checkNames

// options are what dais-init hands over, already validated.
type options struct {
	Config   string   // base gcfg file, absolute
	Rendered string   // where the rendered gcfg is written, absolute
	Skip     []string // checks to skip
	Reload   bool     // render again only (HUP): no checks
}

// skipped reports whether the check name is skipped.
func (o *options) skipped(name string) bool {
	return contains(o.Skip, "all") || contains(o.Skip, name)
}

// Main runs the checks and renders the configuration, logging as dais-init
// on stderr; a failure prints one line "dais-init: <problem>: <fix>" and
// returns 78. On success it prints "server-stop-timeout D"
// (Server.StopTimeout) on stdout for dais-init and returns 0. With --reload
// it renders only, and logs the outcome. version is written into the
// migration file's comment.
func Main(args, environ []string, stdout, stderr io.Writer, version string) int {
	if len(args) == 2 && args[0] == probeArg {
		return runProbeChild(args[1])
	}
	o := &options{}
	skip := ""
	fs := flag.NewFlagSet("dais "+Command, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Config, "config", config.DefaultPath, "base configuration file")
	fs.StringVar(&o.Rendered, "rendered", "", "where the rendered configuration is written, mode 0600")
	fs.StringVar(&skip, "skip-checks", "", "comma-separated preflight checks to skip, or all")
	fs.BoolVar(&o.Reload, "reload", false, "render again, without the checks (dais-init does on HUP)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: dais %s [flags]   (internal)\n\nRun by dais-init before it starts the server: the preflight checks and the\nrendering of the configuration. See dais-init --help.\n\n", Command)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if o.Rendered == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	for _, s := range strings.Split(skip, ",") {
		if s = strings.TrimSpace(strings.ToLower(s)); s != "" {
			o.Skip = append(o.Skip, s)
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("component", "dais-init")
	if o.Reload {
		if err := reload(log, o, environ, version); err != nil {
			log.Error("configuration reload failed: the previous rendered configuration stays in place", keyErr, err.Error())
			return exitConfig
		}
		log.Info("configuration re-rendered for reload")
		return 0
	}
	d, err := prepare(context.Background(), log, o, environ, version)
	if err != nil {
		var ce *checkError
		if errors.As(err, &ce) {
			fmt.Fprintf(stderr, "dais-init: %s\n", ce.msg)
		} else {
			fmt.Fprintf(stderr, "dais-init: %v\n", err)
		}
		return exitConfig
	}
	fmt.Fprintf(stdout, "server-stop-timeout %s\n", d)
	return 0
}

// prepare runs the checks and renders; it returns Server.StopTimeout.
func prepare(ctx context.Context, log *slog.Logger, o *options, environ []string, version string) (time.Duration, error) {
	l, err := loadConfig(log, o, environ, version)
	if err != nil {
		return 0, err
	}
	if err := preflight(ctx, log, newHost(environ), o, l.Config); err != nil {
		return 0, err
	}
	if err := render(l, o.Rendered); err != nil {
		return 0, err
	}
	log.Info("configuration rendered", keyPath, o.Rendered)
	return l.Config.Server.StopTimeout.Std(), nil
}

func reload(log *slog.Logger, o *options, environ []string, version string) error {
	l, err := loadConfig(log, o, environ, version)
	if err != nil {
		return err
	}
	return render(l, o.Rendered)
}

// newHost returns the real system, with the test hooks applied.
func newHost(environ []string) *host {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	h := &host{
		capSysAdmin: realCapSysAdmin,
		probe:       realProbe,
		landlockABI: sandbox.LandlockABI,
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
	if v := env[envTestLandlock]; v != "" {
		h.landlockABI = func() (int, error) {
			n, err := strconv.Atoi(v)
			if err != nil || n == 0 {
				return 0, errors.New("landlock_create_ruleset: ENOSYS (" + envTestLandlock + ")")
			}
			return n, nil
		}
	}
	if v := env[envTestSysRoot]; v != "" {
		h.readFile = func(p string) ([]byte, error) { return os.ReadFile(v + p) }
	}
	return h
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
