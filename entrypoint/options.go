package main

import (
	"errors"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// defaultConfig is config.DefaultPath (a test keeps them equal): dais-init
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

// parseOptions reads the DAIS_INIT_* variables, then the flags, as the
// flag package would (-x or --x, "--x v" or "--x=v", up to the first
// argument that is not a flag or after "--"); dais-init does not link flag
// and fmt, see docs/benchmarks.md.
func parseOptions(args []string, environ []string) (*options, error) {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	o := &options{Config: defaultConfig, Rendered: DefaultRendered, Stop: "auto", Forward: forwardGroup}
	skip := ""
	vals := map[string]*string{"config": &o.Config, "rendered": &o.Rendered, "stop-timeout": &o.Stop, "skip-checks": &skip, "forward-to": &o.Forward}
	for _, e := range envOptions {
		if v, ok := env[e.env]; ok && v != "" {
			*vals[e.flag] = v
		}
	}
	bools := map[string]*bool{"check": &o.Check, "version": &o.Version, "help": &o.Help, "h": &o.Help}
	for len(args) > 0 {
		a := args[0]
		if len(a) < 2 || a[0] != '-' {
			break
		}
		args = args[1:]
		if a == "--" {
			break
		}
		name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		name, value, hasValue := strings.Cut(name, "=")
		if p, ok := vals[name]; ok {
			if !hasValue {
				if len(args) == 0 {
					return nil, errors.New("flag needs an argument: -" + name + flagsHint)
				}
				value, args = args[0], args[1:]
			}
			*p = value
			continue
		}
		if p, ok := bools[name]; ok {
			v := true
			if hasValue {
				b, err := strconv.ParseBool(value)
				if err != nil {
					return nil, errors.New("invalid boolean value " + strconv.Quote(value) + " for -" + name + flagsHint)
				}
				v = b
			}
			*p = v
			continue
		}
		return nil, errors.New("flag provided but not defined: -" + name + flagsHint)
	}
	o.Args = args
	for _, s := range strings.Split(skip, ",") {
		if s = strings.TrimSpace(strings.ToLower(s)); s != "" {
			o.Skip = append(o.Skip, s)
		}
	}
	for _, s := range o.Skip {
		if s != "all" && !contains(checkNames, s) {
			return nil, errors.New("unknown check " + strconv.Quote(s) + " in --skip-checks / DAIS_INIT_SKIP_CHECKS: want some of " + strings.Join(checkNames, ",") + ", or all")
		}
	}
	if o.Forward != forwardGroup && o.Forward != forwardChild {
		return nil, errors.New("--forward-to / DAIS_INIT_FORWARD_TO is " + strconv.Quote(o.Forward) + ": want group or child")
	}
	if _, err := o.stopTimeout(0); err != nil {
		return nil, err
	}
	return o, nil
}

const flagsHint = " (dais-init --help lists the flags)"

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
		return 0, errors.New("--stop-timeout / DAIS_INIT_STOP_TIMEOUT is " + strconv.Quote(o.Stop) + ": want auto or a positive duration like 90s or 2m")
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
	io.WriteString(w, "dais-init "+version+`: PID 1 of the dais container

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
`)
	pad := func(s string, n int) string { return s + strings.Repeat(" ", max(n-len(s), 0)) }
	for _, e := range envOptions {
		io.WriteString(w, "  --"+pad(e.flag+" V", 14)+" $"+e.env+"\n  "+pad("", 16)+" "+e.usage+"\n")
	}
	io.WriteString(w, `  --check          run the checks and render the configuration, then exit (0 or 78)
  --version        print the version
  --help           this text

Defaults: --config `+defaultConfig+`, --rendered `+DefaultRendered+`,
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
`)
}
