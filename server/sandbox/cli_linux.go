//go:build linux && !dais_sandbox_exec

package sandbox

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dais-dev/dais/server/config"
)

const cliUsage = `Usage: dais sandbox <command> [flags]

Commands:
  spec       print the OCI runtime spec a content process would run with
  selftest   build sandboxes as the server does and check every promise (as root)

Run 'dais sandbox <command> --help' for its flags. See docs/sandbox.md.
`

// CLI is `dais sandbox ...`. It returns the exit code.
func CLI(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, cliUsage)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(stdout, cliUsage)
		return 0
	case "spec":
		return cliSpec(args[1:], stdout, stderr)
	case "selftest":
		return cliSelfTest(ctx, args[1:], stdout, stderr)
	case "probe": // hidden: runs inside a sandbox
		if len(args) > 1 && args[1] == "--sleep-child" {
			ProbeSleepChild()
			return 0
		}
		if Probe(args[1:], stdout) > 0 {
			return 1
		}
		return 0
	case "selftest-parent": // hidden: a stand-in server for the parent-death check
		return cliParent(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "dais sandbox: unknown command %q\n\n%s", args[0], cliUsage)
	return 2
}

// contentFlags are the flags shared by spec and selftest-parent.
type contentFlags struct {
	configPath                string
	code, work, runAs, dir    string
	ro, rw, env, path, masks  list
	noUserNS, noPIDNS, noConf bool
	mode                      string
	network                   string
}

// registerCommon registers the flags spec and selftest share.
func (c *contentFlags) registerCommon(fs *flag.FlagSet) {
	fs.StringVar(&c.configPath, "config", config.DefaultPath, "the gcfg `file` that gives the masks (Server.DataDir, SQLite.Dir) and Applications.RunAs")
	fs.BoolVar(&c.noConf, "no-config", false, "do not read a config file: built-in defaults")
	fs.StringVar(&c.runAs, "run-as", "", "`user` content runs as (default Applications.RunAs)")
	fs.Var(&c.masks, "mask", "another `path` to hide (repeatable)")
	fs.BoolVar(&c.noUserNS, "no-userns", false, "leave out the user namespace")
	fs.BoolVar(&c.noPIDNS, "no-pidns", false, "leave out the PID namespace")
	fs.StringVar(&c.mode, "mode", "", "sandbox `mode`: namespaces, landlock or auto (default Sandbox.Mode; auto picks as the server does)")
}

func (c *contentFlags) register(fs *flag.FlagSet) {
	c.registerCommon(fs)
	fs.StringVar(&c.code, "code", "", "the content's code `dir` (read-only)")
	fs.StringVar(&c.work, "work", "", "the content's working `dir` (writable, HOME)")
	fs.StringVar(&c.dir, "cwd", "", "working `dir` inside (default --work)")
	fs.Var(&c.ro, "ro", "another read-only `dir`, e.g. /opt/R/4.2.2 (repeatable)")
	fs.Var(&c.rw, "rw", "another writable `dir` (repeatable)")
	fs.Var(&c.env, "env", "`KEY=VALUE` for the content (repeatable)")
	fs.Var(&c.path, "path", "a `dir` put first in PATH (repeatable)")
	fs.StringVar(&c.network, "network", "", "namespaces mode: `loopback` (its own network namespace, lo only) or outbound (also the outside, through slirp4netns); default Applications.OutboundNetwork")
}

func (c *contentFlags) options(args []string) (Options, *config.Loaded, error) {
	cfg := config.Defaults()
	var loaded *config.Loaded
	if !c.noConf {
		l, err := config.Load(c.configPath, os.Environ())
		if err != nil {
			return Options{}, nil, fmt.Errorf("read %s (or pass --no-config): %w", c.configPath, err)
		}
		loaded, cfg = l, l.Config
	}
	runAs := c.runAs
	if runAs == "" {
		runAs = cfg.Applications.RunAs
	}
	extra := append([]string{}, c.masks...)
	if !c.noConf {
		extra = append(extra, filepath.Dir(c.configPath))
	}
	mode := c.mode
	if mode == "" {
		mode = cfg.Sandbox.Mode
	}
	m, err := ParseMode(mode)
	if err != nil {
		return Options{}, nil, err
	}
	if m == ModeAuto {
		// As the server chooses, with trial sandboxes.
		if m, _, err = Choose(context.Background(), ModeAuto, "", runAs); err != nil {
			return Options{}, nil, err
		}
	}
	network := Network(c.network)
	if network == "" && cfg.Applications.OutboundNetwork {
		network = NetworkOutbound
	}
	return Options{
		Args: args, Env: c.env, PathDirs: c.path, Dir: c.dir, CodeDir: c.code, WorkDir: c.work,
		ReadOnly: c.ro, ReadWrite: c.rw, Masks: DefaultMasks(cfg, extra...), RunAs: runAs,
		NoUserNamespace: c.noUserNS, NoPIDNamespace: c.noPIDNS, Mode: m,
		ConnectPorts: cfg.Sandbox.LandlockConnectPorts, Network: network,
	}, loaded, nil
}

func cliSpec(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dais sandbox spec", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: dais sandbox spec [flags] [--] program [args...]\n\n"+
			"Prints, as JSON, the OCI runtime spec that `dais sandbox-exec` applies: process, user,\n"+
			"environment, capabilities (all empty), rlimits, mounts in order, namespaces. In Landlock\n"+
			"mode the mounts are the Landlock rules (type \"landlock\": a path and its access) and the\n"+
			"annotations org.dais.landlock.* say what the content may bind, connect to and signal.\n"+
			"Example: dais sandbox spec --code /data/apps/1/2 --work /data/apps/1/work --ro /opt/R/4.2.2 -- /opt/R/4.2.2/bin/R --version\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var c contentFlags
	c.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	prog := fs.Args()
	if len(prog) == 0 {
		prog = []string{"/bin/true"}
	}
	o, _, err := c.options(prog)
	if err != nil {
		fmt.Fprintf(stderr, "dais sandbox spec: %v\n", err)
		return 1
	}
	s, err := Spec(o)
	if err != nil {
		fmt.Fprintf(stderr, "dais sandbox spec: %v\n", err)
		return 1
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.Encode(s)
	return 0
}

func cliSelfTest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dais sandbox selftest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: dais sandbox selftest [flags]\n\n"+
			"As root (or, in Landlock mode, as any user), builds sandboxes the way the server does, in the\n"+
			"mode it would choose (--mode), under Server.DataDir, and checks from\n"+
			"inside and outside: masks hide the data dir, database, config, /home, /var/tmp and the host's\n"+
			"/tmp; code and runtime dirs (submounts too) are read-only; /tmp and the work dir are writable\n"+
			"and private; no uid 0, no capability, no_new_privs; no server env or fd leaks in; the server\n"+
			"cannot be signalled or traced; the content dies with the server. One line per check;\n"+
			"exit 0 when all pass. In the image: docker exec <c> dais sandbox selftest\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var c contentFlags
	c.registerCommon(fs)
	dataDir := fs.String("data-dir", "", "where test content is made (default Server.DataDir)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	o, loaded, err := c.options([]string{"/bin/true"})
	if err != nil {
		fmt.Fprintf(stderr, "dais sandbox selftest: %v\n", err)
		return 1
	}
	cfg := config.Defaults()
	var secrets []string
	if loaded != nil {
		cfg = loaded.Config
		secrets = append(secrets, loaded.Files...)
	}
	if ents, err := os.ReadDir(cfg.SQLiteDir()); err == nil {
		for _, e := range ents {
			if e.Type().IsRegular() {
				secrets = append(secrets, filepath.Join(cfg.SQLiteDir(), e.Name()))
			}
		}
	}
	dd := *dataDir
	if dd == "" {
		dd = cfg.Server.DataDir
	}
	err = SelfTest(ctx, SelfTestOptions{
		DataDir: dd, Masks: o.Masks, Secrets: secrets, RunAs: o.RunAs,
		NoUserNamespace: o.NoUserNamespace, NoPIDNamespace: o.NoPIDNamespace, Mode: o.Mode,
	}, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "dais sandbox selftest: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "all checks passed")
	return 0
}

// cliParent starts one sandbox, prints "sandbox <pid>", relays its output
// and waits: the process the parent-death check SIGKILLs.
func cliParent(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dais sandbox selftest-parent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c contentFlags
	c.register(fs)
	prestarted := fs.Bool("prestarted", false, "start the sandbox on a pre-started sandbox-exec")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	c.noConf = true
	if c.network == "" {
		c.network = string(NetworkLoopback) // --network outbound when the check includes the helper
	}
	o, _, err := c.options(fs.Args())
	if err == nil {
		err = runParent(ctx, o, *prestarted, stdout, stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "dais sandbox selftest-parent: %v\n", err)
		return 1
	}
	return 0
}

func runParent(ctx context.Context, o Options, prestarted bool, stdout, stderr io.Writer) error {
	s, err := Spec(o)
	if err != nil {
		return err
	}
	cmd, err := Command(ctx, "", s)
	if err != nil {
		return err
	}
	if prestarted {
		// The server's way once it has started one: a pre-started
		// sandbox-exec (in Landlock mode under root, of the content's user).
		refill(cmd.key, cmd.warmAttr, cmd.extraFiles())
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			warm.Lock()
			n := len(warm.idle[cmd.key])
			warm.Unlock()
			if n > 0 {
				break
			}
			if time.Now().After(deadline) {
				return errors.New("no pre-started sandbox-exec idle after 10 s")
			}
		}
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	if prestarted && !cmd.warm {
		cmd.kill(cmd.Process.Pid)
		cmd.Wait()
		return errors.New("the sandbox did not start on the pre-started sandbox-exec")
	}
	if d := s.Annotations[AnnotationTmpDir]; d != "" {
		// The server's Wait would remove it; this stand-in is SIGKILLed.
		fmt.Fprintf(stdout, "tmpdir %s\n", d)
	}
	fmt.Fprintf(stdout, "sandbox %d\n", cmd.Process.Pid)
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "FAIL") || sc.Text() == "sleeping" {
			fmt.Fprintln(stdout, sc.Text())
		}
	}
	return cmd.Wait()
}
