//go:build linux && !dais_sandbox_exec

package sandbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// SelfTestOptions configures SelfTest.
type SelfTestOptions struct {
	// DaisPath is the dais binary: a copy of it runs the probe inside, and
	// it stands in for the server in the parent-death check. Default: this
	// executable.
	DaisPath string
	// ExecPath runs sandbox-exec. Default: ExecPath(), as for the server
	// (dais-sandbox-exec next to this executable, pre-started).
	ExecPath string
	// DataDir is masked; the test content is made under it, in a
	// .dais-selftest-* directory removed afterwards.
	DataDir string
	// Masks are the masked paths (DefaultMasks of the config); DataDir is added.
	Masks []string
	// Secrets are files that content must not read: the gcfg, the database.
	Secrets []string
	// RunAs is the content user. Default DefaultRunAs.
	RunAs string
	// NoUserNamespace and NoPIDNamespace are passed to every sandbox.
	NoUserNamespace, NoPIDNamespace bool
	// Mode is ModeNamespaces (default) or ModeLandlock. In Landlock mode
	// the self-test also runs as a user without root (the content then runs
	// as that user), and content B probes content A while A runs: A's
	// processes, port, files and TMPDIR; the server's abstract socket.
	Mode Mode
}

// selftestSecretEnv is set in the server's environment during SelfTest and
// must not reach the content.
const selftestSecretEnv = "DAIS_SELFTEST_SECRET"

// SelfTest builds sandboxes as the server would and checks, from inside
// (with Probe) and from outside, everything the sandbox promises. It must run
// as root, except in Landlock mode. Each check is one line on w; the error counts the failures.
func SelfTest(ctx context.Context, o SelfTestOptions, w io.Writer) error {
	if o.DaisPath == "" {
		p, err := os.Executable()
		if err != nil {
			return err
		}
		o.DaisPath = p
	}
	if o.RunAs == "" {
		o.RunAs = DefaultRunAs
	}
	landlock := o.Mode == ModeLandlock
	root := os.Geteuid() == 0
	var u specs.User
	var err error
	if landlock && !root {
		u = specs.User{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
	} else if u, err = lookupUser(o.RunAs); err != nil {
		return err
	}
	if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
		return fmt.Errorf("selftest: data dir: %w", err)
	}
	base, err := os.MkdirTemp(o.DataDir, ".dais-selftest-")
	if err != nil {
		return fmt.Errorf("selftest: %w", err)
	}
	defer os.RemoveAll(base)
	defer RemoveTmp() // its sandboxes' TMPDIRs' directory (Landlock mode)
	os.Chmod(base, 0o755)
	failures := 0
	report := func(name string, err error) {
		if err != nil {
			failures++
			fmt.Fprintf(w, "FAIL %s: %v\n", name, err)
			return
		}
		fmt.Fprintf(w, "ok %s\n", name)
	}

	// Two contents, each with code (read-only) and work (writable) dirs.
	mk := func(p string, mode os.FileMode) string {
		if err == nil {
			err = os.MkdirAll(p, mode)
		}
		if err == nil {
			err = os.Chmod(p, mode)
		}
		return p
	}
	codeA, workA := mk(filepath.Join(base, "a/code"), 0o755), mk(filepath.Join(base, "a/work"), 0o755)
	codeB, workB := mk(filepath.Join(base, "b/code"), 0o755), mk(filepath.Join(base, "b/work"), 0o755)
	runtimeDir, libDir := mk(filepath.Join(base, "runtime/bin"), 0o755), mk(filepath.Join(base, "runtime/lib"), 0o755)
	runtimeDir = filepath.Dir(runtimeDir)
	if err != nil {
		return fmt.Errorf("selftest: %w", err)
	}
	for _, d := range []string{workA, workB} {
		if !root {
			break
		}
		if err := os.Chown(d, int(u.UID), int(u.GID)); err != nil {
			return fmt.Errorf("selftest: chown %s: %w", d, err)
		}
	}
	for _, d := range []string{codeA, codeB} {
		if err := os.WriteFile(filepath.Join(d, "app.R"), []byte("secret code\n"), 0o644); err != nil {
			return fmt.Errorf("selftest: %w", err)
		}
	}
	probe := filepath.Join(runtimeDir, "bin/dais")
	if err := copyFile(o.DaisPath, probe, 0o755); err != nil {
		return fmt.Errorf("selftest: copy the probe: %w", err)
	}
	// First: can a sandbox be built at all? Its error names the fix.
	trial := Options{Args: []string{"/bin/true"}, CodeDir: codeA, WorkDir: workA, Masks: []string{o.DataDir},
		RunAs: o.RunAs, NoUserNamespace: o.NoUserNamespace, NoPIDNamespace: o.NoPIDNamespace, Mode: o.Mode}
	if spec, err := Spec(trial); err != nil {
		return err
	} else if cmd, err := Command(ctx, o.ExecPath, spec); err != nil {
		return err
	} else if err := cmd.Run(); err != nil {
		report("build a sandbox", err)
		return fmt.Errorf("selftest: no sandbox can be built here: %w", err)
	}
	report("build a sandbox", nil)
	if o.ExecPath == "" {
		p, _ := ExecPath()
		report("sandboxes built by "+p+", as the server builds them", nil)
	}
	if landlock {
		abi, _ := LandlockABI()
		fmt.Fprintf(w, "note landlock mode, kernel ABI %d, uid %d\n", abi, os.Getuid())
	}
	// A submount under the read-only runtime dir: it must be read-only too.
	if err := unix.Mount("tmpfs", libDir, "tmpfs", 0, "mode=0777"); err != nil {
		if !landlock {
			return fmt.Errorf("selftest: mount a tmpfs on %s (needs root with CAP_SYS_ADMIN): %w", libDir, err)
		}
		// Without CAP_SYS_ADMIN there is no submount to check; Landlock's
		// rules cover whatever lies beneath a directory anyway.
		os.Chmod(libDir, 0o777)
		fmt.Fprintf(w, "note no submount test: mounting a tmpfs on %s: %v\n", libDir, err)
	} else {
		defer unix.Unmount(libDir, unix.MNT_DETACH)
	}

	// Files content must not see: planted world-readable, so that only
	// the masks hide them.
	tag := strconv.Itoa(os.Getpid())
	planted := []string{filepath.Join(base, "secret"), "/tmp/dais-selftest-" + tag, "/var/tmp/dais-selftest-" + tag}
	if fi, err := os.Stat("/home"); err == nil && fi.IsDir() {
		planted = append(planted, "/home/dais-selftest-"+tag)
	}
	for i := 0; i < len(planted); i++ {
		p := planted[i]
		if err := os.WriteFile(p, []byte("secret\n"), 0o644); err != nil {
			if i > 0 && !root {
				// A server without root cannot write /home: nothing to hide there.
				fmt.Fprintf(w, "note not planted: %v\n", err)
				planted = slices.Delete(planted, i, i+1)
				i--
				continue
			}
			return fmt.Errorf("selftest: plant %s: %w", p, err)
		}
		defer os.Remove(p)
	}
	// A descriptor the server opened without O_CLOEXEC is inherited by
	// sandbox-exec: it must not reach the content (the probe lists fds).
	leak, err := unix.Open(planted[0], unix.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("selftest: open %s: %w", planted[0], err)
	}
	defer unix.Close(leak)
	os.Setenv(selftestSecretEnv, "do-not-leak")
	defer os.Unsetenv(selftestSecretEnv)

	masks := append([]string{o.DataDir}, o.Masks...)
	opts := func(code, work string, port int) Options {
		return Options{
			CodeDir: code, WorkDir: work, ReadOnly: []string{runtimeDir}, Masks: masks,
			RunAs: o.RunAs, NoUserNamespace: o.NoUserNamespace, NoPIDNamespace: o.NoPIDNamespace,
			PathDirs: []string{filepath.Join(runtimeDir, "bin")}, Mode: o.Mode, Port: port,
		}
	}
	// Namespaces mode gives each sandbox its own network namespace (not
	// without the user namespace: see networkSpec).
	netns := !landlock && !o.NoUserNamespace
	switch {
	case landlock:
		fmt.Fprintln(w, "note network: Landlock mode has no network namespace: content shares the server's; Landlock's TCP rules keep it from other content's ports and dais's (Sandbox.LandlockConnectPorts); UDP and the public port are not restricted")
	case !netns:
		fmt.Fprintln(w, "note network: without the user namespace content shares the server's network namespace: no network isolation")
	default:
		fmt.Fprintln(w, "note network: each content process has its own network namespace (its own loopback; outbound access, when on, through "+NetHelperName+", never to the container's loopback); the server dials into it")
	}
	hidden := append(append([]string{}, planted...), o.Secrets...)
	common := []string{"--uid", fmt.Sprint(u.UID), "--gid", fmt.Sprint(u.GID),
		"--server-pid", strconv.Itoa(os.Getpid()), "--env-absent", selftestSecretEnv,
		"--readonly", runtimeDir, "--readonly", libDir}
	for _, h := range hidden {
		common = append(common, "--hidden", h)
	}
	if !o.NoPIDNamespace && !landlock {
		common = append(common, "--pidns")
	}
	if landlock && !root && capBounding() != 0 {
		common = append(common, "--allow-bounding")
	}
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, syscall.SIGWINCH)
	defer signal.Stop(winch)
	for _, m := range masks {
		if fi, err := os.Stat(m); err == nil && fi.IsDir() {
			common = append(common, "--mask", m)
		}
	}

	tmpW := "/tmp"
	if landlock {
		tmpW = "$TMPDIR"
	}
	portA, portB, portX := freeTCPPort(), freeTCPPort(), freeTCPPort()
	// Content B must not see A's /tmp nor A's work dir; in Landlock mode it
	// runs while A does and must not reach A's processes, port or TMPDIR
	// either, nor the server's abstract socket.
	argsB := append([]string{probe, "sandbox", "probe", "--marker", "marker-b",
		"--readonly", codeB, "--writable", workB, "--writable", tmpW,
		"--hidden", filepath.Join(workA, "marker-a"), "--hidden", filepath.Join(codeA, "app.R")}, common...)
	for _, sec := range o.Secrets {
		argsB = append(argsB, "--link-target", sec)
	}
	var outB string
	var errB error
	runB := func(extra ...string) {
		outB, errB = runProbe(ctx, o.ExecPath, opts(codeB, workB, portB), append(slices.Clone(argsB), extra...), nil)
	}
	abstract := "dais-selftest-" + tag
	if landlock || netns {
		l, err := net.Listen("unix", "@"+abstract)
		if err != nil {
			return fmt.Errorf("selftest: listen on an abstract socket: %w", err)
		}
		defer l.Close()
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}

	// Content A writes its markers and, while it sleeps, the host looks
	// (and, in Landlock mode, content B probes it).
	// An internal listener of the server on the container's loopback (as
	// dais's own would be): content must not reach it.
	var serverPort int
	if netns {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("selftest: listen on 127.0.0.1: %w", err)
		}
		defer l.Close()
		go acceptAll(l)
		serverPort = l.Addr().(*net.TCPAddr).Port
	}
	argsA := append([]string{probe, "sandbox", "probe", "--marker", "marker-a",
		"--readonly", codeA, "--writable", workA, "--writable", tmpW,
		"--hidden", filepath.Join(codeB, "app.R"), "--sleep", "1s"}, common...)
	if landlock || netns {
		argsA = append(argsA, "--listen", strconv.Itoa(portA), "--sleep", "1h")
	}
	var cancelA context.CancelFunc
	ctxA := ctx
	if landlock || netns {
		ctxA, cancelA = context.WithCancel(ctx)
		defer cancelA()
	}
	var outC string
	var errC error
	outA, err := runProbe(ctxA, o.ExecPath, opts(codeA, workA, portA), argsA, func(out string, cmdA *Cmd) {
		if !landlock { // Landlock mode mounts nothing
			report("host: the sandbox's mounts are not visible outside", noMountAt(o.DataDir))
		}
		report("host: /tmp marker not in the host's /tmp", absentOnHost("/tmp/marker-a"))
		if netns {
			defer cancelA()
			outC, errC = networkChecks(ctx, w, report, o, cmdA, portA, serverPort, abstract, runB,
				func(o2 Options, args []string) (string, error) {
					return runProbe(ctx, o.ExecPath, o2, append(slices.Clone(argsB[:1]), args...), nil)
				}, opts(codeB, workB, 0), common)
			return
		}
		if !landlock {
			return
		}
		defer cancelA()
		var pidA, tmpA string
		for _, line := range strings.Split(out, "\n") {
			if v, ok := strings.CutPrefix(line, "pid "); ok {
				pidA = v
			}
			if v, ok := strings.CutPrefix(line, "tmpdir "); ok {
				tmpA = v
			}
		}
		report("host: content A's private TMPDIR is not the host's /tmp", func() error {
			if tmpA == "" || !strings.HasPrefix(tmpA, tmpBase()+"/") {
				return fmt.Errorf("TMPDIR %q", tmpA)
			}
			return nil
		}())
		runB("--other-pid", pidA, "--connect", strconv.Itoa(portA), "--hidden", filepath.Join(tmpA, "marker-a"),
			"--abstract", abstract, "--listen", strconv.Itoa(portB), "--bind-other", strconv.Itoa(portX))
	})
	if err != nil {
		return err
	}
	failures += relay(w, "a", outA)
	_, err = os.Stat(filepath.Join(workA, "marker-a"))
	report("host: the work dir write is visible outside", err)

	if !landlock && !netns {
		runB("--absent", "/tmp/marker-a")
	}
	if errB != nil {
		return errB
	}
	failures += relay(w, "b", outB)
	if errC != nil {
		return errC
	}
	if outC != "" {
		failures += relay(w, "c (outbound)", outC)
	}

	select {
	case <-winch:
		report("host: the server got no signal from content", errors.New("SIGWINCH received"))
	default:
		report("host: the server got no signal from content", nil)
	}

	// The server dies: the content and its children die too, and so does
	// the outbound helper.
	if !o.NoPIDNamespace || landlock {
		pd := opts(codeA, workA, 0)
		what := "server SIGKILLed: content and its children die"
		if netns {
			if helper, err := PrepareOutbound(); err == nil {
				pd.Network, pd.NetHelper = NetworkOutbound, helper
				what = "server SIGKILLed: content and its children die, and its outbound helper"
			}
		}
		report(what, parentDeath(ctx, o.DaisPath, pd, probe, false))
		// Started on a pre-started sandbox-exec (in Landlock mode under
		// root, one that runs as the content's user from its start).
		report(what+" (pre-started sandbox-exec)", parentDeath(ctx, o.DaisPath, pd, probe, true))
	}

	// A fork bomb stops at the process limit.
	fmt.Fprintln(w, "note limits: "+LimitsInForce())
	report("a fork bomb stops at the process limit", processLimitHolds(ctx, o.ExecPath, opts(codeA, workA, 0)))

	// A sandbox that cannot be built says which step failed.
	bad := opts(codeA, workA, 0)
	bad.Args = []string{"/nonexistent/program"}
	report("setup error names the step", setupErrorNamed(ctx, o.ExecPath, bad))

	if failures > 0 {
		return fmt.Errorf("selftest: %d checks failed", failures)
	}
	return nil
}

// runProbe runs args in a sandbox built from o; during, if set, runs once the
// probe says "sleeping". It returns the probe's output.
func runProbe(ctx context.Context, dais string, o Options, args []string, during func(out string, cmd *Cmd)) (string, error) {
	o.Args = args
	spec, err := Spec(o)
	if err != nil {
		return "", err
	}
	cmd, err := Command(ctx, dais, spec)
	if err != nil {
		return "", err
	}
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return "", err
	}
	var out strings.Builder
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			out.WriteString(sc.Text() + "\n")
			if sc.Text() == "sleeping" && during != nil {
				during(out.String(), cmd)
			}
		}
	}()
	err = cmd.Wait()
	pw.Close()
	<-done
	var se *SetupError
	if errors.As(err, &se) {
		return "", fmt.Errorf("selftest: %w", err)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return "", fmt.Errorf("selftest: run probe: %w (stderr: %s)", err, stderr.String())
	}
	if stderr.Len() > 0 {
		// Every line, indented: a Go runtime's dump of the init must reach
		// whoever reads the selftest.
		out.WriteString("FAIL stderr: " + strings.ReplaceAll(strings.TrimSpace(stderr.String()), "\n", "\n  ") + "\n")
	}
	return out.String(), nil
}

// relay copies the probe's lines, prefixed, and counts failures.
func relay(w io.Writer, who, out string) int {
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(line, "FAIL") {
			n++
			fmt.Fprintf(w, "FAIL %s: %s\n", who, strings.TrimPrefix(line, "FAIL "))
		} else if s, ok := strings.CutPrefix(line, "ok "); ok {
			fmt.Fprintf(w, "ok %s: %s\n", who, s)
		} else if strings.HasPrefix(line, "  ") {
			fmt.Fprintln(w, line) // a FAIL's next lines
		}
	}
	if n == 0 && !strings.Contains(out, "ok ") {
		fmt.Fprintf(w, "FAIL %s: the probe printed nothing: %q\n", who, out)
		n++
	}
	return n
}

func noMountAt(dir string) error {
	ms, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(dir))
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.FSType == "tmpfs" {
			return fmt.Errorf("a tmpfs is mounted at %s in the host's namespace", dir)
		}
	}
	return nil
}

func absentOnHost(p string) error {
	if _, err := os.Lstat(p); err == nil {
		return fmt.Errorf("%s exists on the host", p)
	}
	return nil
}

// parentDeath starts `dais sandbox selftest-parent` (a stand-in for the
// server) which starts a sandbox whose content starts a child (prestarted:
// on a pre-started sandbox-exec, else on a new one); then SIGKILLs the
// stand-in and checks that every process of the sandbox is gone.
func parentDeath(ctx context.Context, dais string, o Options, probe string, prestarted bool) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	args := []string{"sandbox", "selftest-parent", "--code", o.CodeDir, "--work", o.WorkDir, "--run-as", o.RunAs,
		"--", probe, "sandbox", "probe", "--child", "--sleep", "1h"}
	for _, r := range o.ReadOnly {
		args = append([]string{args[0], args[1], "--ro", r}, args[2:]...)
	}
	if o.NoUserNamespace {
		args = append([]string{args[0], args[1], "--no-userns"}, args[2:]...)
	}
	var helpers []int
	if o.Network == NetworkOutbound {
		args = append([]string{args[0], args[1], "--network", string(o.Network)}, args[2:]...)
		helpers = helperPids(o.NetHelper)
	}
	mode := ModeNamespaces
	if o.Mode == ModeLandlock {
		mode = ModeLandlock
	}
	args = append([]string{args[0], args[1], "--mode", string(mode)}, args[2:]...)
	if prestarted {
		args = append([]string{args[0], args[1], "--prestarted"}, args[2:]...)
	}
	parent := exec.CommandContext(ctx, dais, args...)
	parent.WaitDelay = 5 * time.Second // the sandbox holds stderr too
	stdout, err := parent.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	parent.Stderr = &stderr
	if err := parent.Start(); err != nil {
		return err
	}
	defer parent.Wait()
	defer parent.Process.Kill()
	// The sandbox's processes hold the pipe too: when the deadline passes
	// before "sleeping", closing it ends the scan (killing the stand-in
	// alone would not).
	stop := context.AfterFunc(ctx, func() { stdout.Close() })
	defer stop()
	sc := bufio.NewScanner(stdout)
	initPid := 0
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "sandbox "); ok {
			initPid, _ = strconv.Atoi(v)
		}
		if v, ok := strings.CutPrefix(sc.Text(), "tmpdir "); ok && filepath.Dir(filepath.Dir(v)) == tmpBase() && filepath.Dir(v) != tmpRoot() {
			// Landlock mode: the SIGKILLed stand-in leaves its
			// directory of TMPDIRs behind (the next server to start
			// would remove it).
			defer os.RemoveAll(filepath.Dir(v))
		}
		if sc.Text() == "sleeping" {
			break
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("the stand-in server's sandbox did not start within its deadline: %w", ctx.Err())
	}
	if initPid == 0 {
		return fmt.Errorf("the stand-in server did not start a sandbox: %s", stderr.String())
	}
	// The child starts right before "sleeping"; give it a moment to exist.
	var pids []int
	for i := 0; i < 100 && len(pids) < 3; i++ {
		pids = descendants(initPid)
		time.Sleep(10 * time.Millisecond)
	}
	if len(pids) < 3 {
		return fmt.Errorf("want init, content and its child in the sandbox, found pids %v", pids)
	}
	if o.Network == NetworkOutbound {
		var mine []int
		for _, p := range helperPids(o.NetHelper) {
			if !slices.Contains(helpers, p) {
				mine = append(mine, p)
			}
		}
		if len(mine) == 0 {
			return errors.New("no outbound helper runs beside the sandbox")
		}
		pids = append(pids, mine...)
	}
	parent.Process.Signal(syscall.SIGKILL)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		alive := 0
		for _, p := range pids {
			if running(p) {
				alive++
			}
		}
		if alive == 0 {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("processes %v still alive 5s after the server was killed:%s", pids, survivors(pids))
}

// survivors describes the processes of pids still running: their state,
// parent and pending, blocked and caught signals, for a failure message.
func survivors(pids []int) string {
	var b strings.Builder
	for _, p := range pids {
		if !running(p) {
			continue
		}
		st, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/status")
		fmt.Fprintf(&b, " [%d", p)
		for _, l := range strings.Split(string(st), "\n") {
			for _, k := range []string{"Name:", "State:", "PPid:", "Uid:", "SigPnd:", "ShdPnd:", "SigBlk:", "SigCgt:"} {
				if strings.HasPrefix(l, k) {
					fmt.Fprintf(&b, " %s", strings.Join(strings.Fields(l), " "))
				}
			}
		}
		b.WriteString("]")
	}
	return b.String()
}

// descendants is pid and its live descendants, from /proc/*/status (readable
// without CAP_SYS_PTRACE, unlike /proc/*/ns).
func descendants(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	parent := map[int]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil || !running(p) {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PPid:"); ok {
				parent[p], _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
	}
	out := []int{}
	if running(pid) {
		out = append(out, pid)
	}
	for changed := true; changed; {
		changed = false
		for p, pp := range parent {
			if slices.Contains(out, pp) && !slices.Contains(out, p) {
				out = append(out, p)
				changed = true
			}
		}
	}
	return out
}

// running: the process exists and is not a zombie.
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	st := s[i+2]
	return st != 'Z' && st != 'X'
}

func setupErrorNamed(ctx context.Context, dais string, o Options) error {
	spec, err := Spec(o)
	if err != nil {
		return err
	}
	cmd, err := Command(ctx, dais, spec)
	if err != nil {
		return err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err = cmd.Run()
	var se *SetupError
	if !errors.As(err, &se) {
		return fmt.Errorf("want a SetupError, got %v", err)
	}
	if se.Step != "find /nonexistent/program" && !strings.HasPrefix(se.Step, "exec ") {
		return fmt.Errorf("step %q does not name the program", se.Step)
	}
	if cmd.ProcessState.ExitCode() != ExitSetup {
		return fmt.Errorf("exit code %d, want %d", cmd.ProcessState.ExitCode(), ExitSetup)
	}
	if !strings.Contains(stderr.String(), se.Step) {
		return fmt.Errorf("stderr %q does not name the step", stderr.String())
	}
	return nil
}

func copyFile(from, to string, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// freeTCPPort is a port of the kernel's ephemeral range, free right now.
func freeTCPPort() int {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// capBounding is this process's bounding set.
func capBounding() uint64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return n
		}
	}
	return 0
}

func acceptAll(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// networkChecks runs while content A (namespaces mode, its own network
// namespace) serves portA: the server reaches A by dialing inside A's
// namespace and not on its own loopback; content B, in its own namespace,
// reads every listener /proc shows (its own, the server's, A's) and reaches
// none, nor the server's loopback listener and abstract socket; content C,
// with outbound network through slirp4netns, reaches a listener on the
// container's own address (as it would reach a database on the Docker
// network) but not the container's loopback, sees the helper's DNS in
// resolv.conf, and its helper ends with it.
func networkChecks(ctx context.Context, w io.Writer, report func(string, error), o SelfTestOptions, cmdA *Cmd,
	portA, serverPort int, abstract string, runB func(...string), runC func(Options, []string) (string, error),
	optsC Options, common []string) (string, error) {
	addrA := "127.0.0.1:" + strconv.Itoa(portA)
	report("host: dais reaches content A's port inside A's network namespace", func() error {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		c, err := cmdA.DialContext(dctx, "tcp", addrA)
		if err != nil {
			return err
		}
		return c.Close()
	}())
	report("host: content A's port is not on the server's loopback", func() error {
		c, err := net.DialTimeout("tcp", addrA, 2*time.Second)
		if err == nil {
			c.Close()
			return errors.New("connected to " + addrA + " from the server's network namespace")
		}
		return nil
	}())
	self, a := strconv.Itoa(os.Getpid()), strconv.Itoa(cmdA.Process.Pid)
	runB("--connect", strconv.Itoa(portA), "--connect", strconv.Itoa(serverPort), "--abstract", abstract,
		"--scan-pid", self, "--scan-pid", a, "--absent", "/tmp/marker-a")

	helper, err := PrepareOutbound()
	if err != nil {
		fmt.Fprintf(w, "note outbound network not checked: %v\n", err)
		return "", nil
	}
	hostIP := externalIPv4()
	if hostIP == "" {
		fmt.Fprintln(w, "note outbound network not checked: this host has no non-loopback IPv4 address to reach")
		return "", nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(hostIP, "0"))
	if err != nil {
		return "", fmt.Errorf("selftest: listen on %s: %w", hostIP, err)
	}
	defer l.Close()
	go acceptAll(l)
	optsC.Network, optsC.NetHelper = NetworkOutbound, helper
	before := helperPids(helper)
	argsC := append([]string{"sandbox", "probe", "--marker", "marker-c",
		"--reach", l.Addr().String(), "--nameserver", netDNS,
		"--connect", strconv.Itoa(portA), "--connect", strconv.Itoa(serverPort), "--abstract", abstract,
		"--connect-addr", "10.0.2.2:" + strconv.Itoa(serverPort), "--connect-addr", "10.0.2.2:" + strconv.Itoa(portA),
		"--scan-pid", self, "--scan-pid", a}, common...)
	out, err := runC(optsC, argsC)
	report("host: the outbound helper ("+helper+") ended with its content", func() error {
		deadline := time.Now().Add(5 * time.Second)
		for {
			var left []int
			for _, p := range helperPids(helper) {
				if !slices.Contains(before, p) {
					left = append(left, p)
				}
			}
			if len(left) == 0 {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("helper processes %v still running", left)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}())
	return out, err
}

// externalIPv4 is a non-loopback IPv4 address of an interface that is up.
func externalIPv4() string {
	ifs, err := net.Interfaces()
	if err != nil {
		return ""
	}
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
				return n.IP.String()
			}
		}
	}
	return ""
}

// helperPids are the running processes of the program path.
func helperPids(path string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil || !running(p) {
			continue
		}
		if exe, err := os.Readlink("/proc/" + e.Name() + "/exe"); err == nil && exe == path {
			out = append(out, p)
		}
	}
	return out
}

// processLimitHolds runs a shell that starts 200 sleeping children under a
// process limit of 60 and checks that the shell was refused a fork.
func processLimitHolds(ctx context.Context, dais string, o Options) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	o.ProcessLimit = 60
	o.Args = []string{"/bin/sh", "-c", `i=0; while [ $i -lt 200 ]; do sleep 3 & i=$((i+1)); done; echo started; kill $(jobs -p) 2>/dev/null; wait`}
	spec, err := Spec(o)
	if err != nil {
		return err
	}
	cmd, err := Command(ctx, dais, spec)
	if err != nil {
		return err
	}
	out, _ := cmd.CombinedOutput()
	// The shell says "Cannot fork"; in rlimit mode, where RLIMIT_NPROC
	// counts every process and thread of the user, the refusal may come
	// first to the sandbox's own init ("pthread_create failed: Resource
	// temporarily unavailable") or to its start of the content ("exec
	// /bin/sh: resource temporarily unavailable": the user's other
	// processes, the server's own without root, reached the limit).
	if !strings.Contains(string(out), "fork") && !strings.Contains(strings.ToLower(string(out)), "resource temporarily unavailable") {
		return fmt.Errorf("200 children started under a process limit of 60: %.300s", out)
	}
	return nil
}
