package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// defaultConfig is defaultConfig (a test keeps them equal): dais-init
// links nothing of the server, see package setup.
const defaultConfig = "/etc/rstudio-connect/rstudio-connect.gcfg"

// defaultServerStop is config.Defaults().Server.StopTimeout (a test keeps
// them equal): the auto stop timeout of a command that is not the server.
const defaultServerStop = 60 * time.Second

// checkNames are setup.CheckNames (a test keeps them equal).
var checkNames = []string{"cap", "datadir", "netfs", "lock", "runtimes"}

// DefaultRendered is where the rendered configuration goes by default: under
// /run, so a read-only /etc/rstudio-connect mount still works and the file
// (it may hold secrets) is not on a volume.
const DefaultRendered = "/run/dais/rstudio-connect.gcfg"

// stopGrace is what dais-init adds to Server.StopTimeout when the stop
// timeout is "auto": the server's own graceful stop finishes first.
const stopGrace = 10 * time.Second

// Forwarding targets.
const (
	forwardGroup = "group"
	forwardChild = "child"
)

// options are dais-init's settings: defaults, then DAIS_INIT_* environment
// variables, then flags.
type options struct {
	Config   string   // base gcfg file
	Rendered string   // where the rendered gcfg is written, mode 0600
	Stop     string   // "auto" or a duration
	Skip     []string // preflight checks to skip
	Forward  string   // "group" or "child"
	Check    bool     // run the checks and render, then exit
	Version  bool
	Help     bool
	Args     []string // the command; empty means `dais serve`
}

// envOption ties a flag to its environment variable for --help and parsing.
type envOption struct {
	flag, env, usage string
}

var envOptions = []envOption{
	{"config", "DAIS_INIT_CONFIG", "base configuration file (the image's, or one you mount)"},
	{"rendered", "DAIS_INIT_RENDERED", "where the rendered configuration (file + CONNECT_* variables) is written, mode 0600"},
	{"stop-timeout", "DAIS_INIT_STOP_TIMEOUT", "after TERM/INT, how long to wait before SIGKILL of the whole group: a duration (90s, 2m; a bare number is seconds) or auto = Server.StopTimeout + 10s"},
	{"skip-checks", "DAIS_INIT_SKIP_CHECKS", "comma-separated preflight checks to skip (" + strings.Join(checkNames, ",") + ", or all); for development only"},
	{"forward-to", "DAIS_INIT_FORWARD_TO", "where signals go: group (the child's whole process group) or child (the child only)"},
}

func parseOptions(args []string, environ []string, stderr io.Writer) (*options, error) {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	o := &options{Config: defaultConfig, Rendered: DefaultRendered, Stop: "auto", Forward: forwardGroup}
	skip := ""
	vals := map[string]*string{"config": &o.Config, "rendered": &o.Rendered, "stop-timeout": &o.Stop, "skip-checks": &skip, "forward-to": &o.Forward}
	fs := flag.NewFlagSet("dais-init", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, e := range envOptions {
		p := vals[e.flag]
		if v, ok := env[e.env]; ok && v != "" {
			*p = v
		}
		fs.StringVar(p, e.flag, *p, e.usage)
	}
	fs.BoolVar(&o.Check, "check", false, "")
	fs.BoolVar(&o.Version, "version", false, "")
	fs.BoolVar(&o.Help, "help", false, "")
	fs.BoolVar(&o.Help, "h", false, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			o.Help = true
			return o, nil
		}
		return nil, fmt.Errorf("%w (dais-init --help lists the flags)", err)
	}
	o.Args = fs.Args()
	for _, s := range strings.Split(skip, ",") {
		if s = strings.TrimSpace(strings.ToLower(s)); s != "" {
			o.Skip = append(o.Skip, s)
		}
	}
	for _, s := range o.Skip {
		if s != "all" && !contains(checkNames, s) {
			return nil, fmt.Errorf("unknown check %q in --skip-checks / DAIS_INIT_SKIP_CHECKS: want some of %s, or all", s, strings.Join(checkNames, ","))
		}
	}
	if o.Forward != forwardGroup && o.Forward != forwardChild {
		return nil, fmt.Errorf("--forward-to / DAIS_INIT_FORWARD_TO is %q: want group or child", o.Forward)
	}
	if _, err := o.stopTimeout(0); err != nil {
		return nil, err
	}
	return o, nil
}

// stopTimeout resolves Stop: auto is serverStop + stopGrace.
func (o *options) stopTimeout(serverStop time.Duration) (time.Duration, error) {
	if o.Stop == "" || o.Stop == "auto" {
		return serverStop + stopGrace, nil
	}
	// A bare number is seconds, as docker stop -t takes it.
	d, err := time.ParseDuration(o.Stop)
	if n, aerr := strconv.Atoi(o.Stop); aerr == nil {
		d, err = time.Duration(n)*time.Second, nil
	}
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--stop-timeout / DAIS_INIT_STOP_TIMEOUT is %q: want auto or a positive duration like 90s or 2m", o.Stop)
	}
	return d, nil
}

// skipped reports whether the check name is skipped.
func (o *options) skipped(name string) bool {
	return contains(o.Skip, "all") || contains(o.Skip, name)
}

// serverCommand reports whether args run the dais server: no command at
// all, or `dais serve ...`. Only then does dais-init run the preflight checks
// and render the configuration.
func serverCommand(args []string) bool {
	return len(args) == 0 || (len(args) >= 2 && filepath.Base(args[0]) == "dais" && args[1] == "serve")
}

// serverArgs returns the server's command line with --config pointing at the
// rendered file: appended when absent, replaced when it names the base file.
func serverArgs(args []string, base, rendered string) []string {
	if len(args) == 0 {
		return []string{"dais", "serve", "--config", rendered}
	}
	out := append([]string(nil), args...)
	for i := 2; i < len(out); i++ {
		switch a := out[i]; {
		case a == "--":
			return out
		case (a == "--config" || a == "-config") && i+1 < len(out):
			if out[i+1] == base {
				out[i+1] = rendered
			}
			return out
		case strings.HasPrefix(a, "--config=") || strings.HasPrefix(a, "-config="):
			if _, v, _ := strings.Cut(a, "="); v == base {
				out[i] = "--config=" + rendered
			}
			return out
		}
	}
	return append(out, "--config", rendered)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `dais-init %s: PID 1 of the dais container

Usage: dais-init [flags] [--] [COMMAND [ARGS...]]

With no COMMAND it runs "dais serve --config <rendered file>". Before that it
runs the preflight checks (exit 78 with one line naming the fix when one
fails) and renders the configuration: the base file plus CONNECT_<SECTION>_<KEY>
and RSC_LICENSE_SERVER variables, validated, written with mode 0600. Those
variables are removed from the server's environment. "dais serve ..." as
COMMAND is treated the same way (its --config is pointed at the rendered file).

Any other COMMAND runs under dais-init the way tini runs one: no checks, no
rendering, environment untouched; signals are forwarded and orphans reaped.

Flags (each also read from its environment variable; the flag wins):
`, version)
	for _, e := range envOptions {
		fmt.Fprintf(w, "  --%-14s %s\n  %-16s %s\n", e.flag+" V", "$"+e.env, "", e.usage)
	}
	fmt.Fprintf(w, `  --check          run the checks and render the configuration, then exit (0 or 78)
  --version        print the version
  --help           this text

Defaults: --config %s, --rendered %s,
--stop-timeout auto, --forward-to group.

Signals: every signal but CHLD is forwarded, once each, in order (URG,
PIPE and PROF included); HUP re-renders the configuration first. The child
starts in dais-init's working directory; dais-init then moves to /. On TERM or INT the child gets the signal, then after
the stop timeout its whole process group gets SIGKILL. Docker kills the
container 10 s after "docker stop" unless told otherwise: use
"docker stop -t 90" or compose "stop_grace_period: 90s" (longer than the stop
timeout) so the server can finish renders and release its license lease.

Exit codes: the child's code; 128+N when a signal N killed it (or arrived
before it started); 78 a preflight check or the configuration failed; 126 the
command is not executable; 127 the command was not found; 2 bad flags.

Checks (--skip-checks, logged as a WARNING when skipped):
  cap       CAP_SYS_ADMIN, proven by a mount + user namespace with a tmpfs
  datadir   Server.DataDir on a persistent mount (-v $PWD/data:/data), not the default
  netfs     SQLite not on a network filesystem (use PostgreSQL)
  lock      SQLite data directory not held by another running dais
  runtimes  R >= 3.1.0, Python >= 3.5, Quarto (warnings only)
`, defaultConfig, DefaultRendered)
}
