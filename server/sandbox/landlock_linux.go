package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	ll "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// fdConnect is, in Landlock mode, the server's TCP connect ruleset
// (ConnectRuleset), which sandbox-exec enforces as the content's last layer.
const fdConnect = 6

// sigCleanup asks a Landlock sandbox's init to kill every process of the
// sandbox and exit: its parent-death signal, and what cancelling a Cmd
// sends. Not one the init forwards.
const sigCleanup = unix.SIGPWR

// LandlockABI is the kernel's Landlock ABI version, 0 when Landlock is
// missing, disabled, or its calls are refused (a seccomp profile).
func LandlockABI() (int, error) {
	v, err := ll.LandlockGetABIVersion()
	if err != nil {
		return 0, fmt.Errorf("%w: landlock_create_ruleset: %v", errNoLandlock, err)
	}
	return v, nil
}

// Landlock access rights, as the mount options of "landlock" rules name them.
const (
	fsRead  = ll.AccessFSReadFile | ll.AccessFSReadDir
	fsWrite = ll.AccessFSWriteFile | ll.AccessFSRemoveDir | ll.AccessFSRemoveFile | ll.AccessFSMakeDir |
		ll.AccessFSMakeReg | ll.AccessFSMakeSock | ll.AccessFSMakeFifo | ll.AccessFSMakeSym |
		ll.AccessFSRefer | ll.AccessFSTruncate
	fsDevice = ll.AccessFSReadFile | ll.AccessFSReadDir | ll.AccessFSWriteFile | ll.AccessFSTruncate | ll.AccessFSIoctlDev
	// fsFile are the rights that apply to a file that is not a directory.
	fsFile = ll.AccessFSExecute | ll.AccessFSWriteFile | ll.AccessFSReadFile | ll.AccessFSTruncate | ll.AccessFSIoctlDev
)

// handledFS is every filesystem right the ABI controls, up to IOCTL_DEV
// (ABI 5). Later rights (connecting to named Unix sockets, ABI 9) are left
// unhandled so that content behaves the same on every kernel; docs/sandbox.md
// says what that leaves open.
func handledFS(abi int) uint64 {
	switch {
	case abi >= 5:
		return 1<<16 - 1
	case abi >= 3:
		return 1<<15 - 1
	case abi == 2:
		return 1<<14 - 1
	case abi == 1:
		return 1<<13 - 1
	}
	return 0
}

func accessOf(opts []string) uint64 {
	var a uint64
	for _, o := range opts {
		switch o {
		case accessRead:
			a |= fsRead
		case accessWrite:
			a |= fsWrite
		case accessExecute:
			a |= ll.AccessFSExecute
		case accessDevice:
			a |= fsDevice
		}
	}
	return a
}

var connectRulesets = struct {
	sync.Mutex
	m map[string]*os.File
}{m: map[string]*os.File{}}

// ConnectRuleset is the Landlock ruleset that lets content connect over TCP
// to the ports listed only. It is built once per list in the server (one
// rule per port: building it costs about 1.7 µs a port) and enforced by
// every Landlock sandbox as its last layer.
func ConnectRuleset(ports string) (*os.File, error) {
	connectRulesets.Lock()
	defer connectRulesets.Unlock()
	if f := connectRulesets.m[ports]; f != nil {
		return f, nil
	}
	rs, err := ParsePorts(ports)
	if err != nil {
		return nil, err
	}
	fd, err := ll.LandlockCreateRuleset(&ll.RulesetAttr{HandledAccessNet: ll.AccessNetConnectTCP}, 0)
	if err != nil {
		return nil, fmt.Errorf("sandbox: landlock connect ruleset: %w", err)
	}
	unix.CloseOnExec(fd)
	seen := map[int]bool{}
	for _, r := range rs {
		for p := int(r.First); p <= int(r.Last); p++ {
			if seen[p] {
				continue
			}
			seen[p] = true
			a := ll.NetPortAttr{AllowedAccess: ll.AccessNetConnectTCP, Port: uint64(p)}
			if err := ll.LandlockAddNetPortRule(fd, &a, 0); err != nil {
				unix.Close(fd)
				return nil, fmt.Errorf("sandbox: landlock connect rule for port %d: %w", p, err)
			}
		}
	}
	f := os.NewFile(uintptr(fd), "landlock-connect")
	connectRulesets.m[ports] = f
	return f, nil
}

// contentLayer builds the content's own ruleset from the spec: the
// filesystem rules, the one TCP port it may bind, and the scopes.
func contentLayer(s *specs.Spec, abi int) (int, error) {
	attr := ll.RulesetAttr{HandledAccessFS: handledFS(abi)}
	if abi >= 4 {
		attr.HandledAccessNet = ll.AccessNetBindTCP
	}
	if abi >= 6 {
		attr.Scoped = ll.ScopeSignal | ll.ScopeAbstractUnixSocket
	}
	fd, err := ll.LandlockCreateRuleset(&attr, 0)
	if err != nil {
		return -1, fail("landlock ruleset", err)
	}
	for _, m := range s.Mounts {
		if m.Type != mountLandlock {
			continue
		}
		if err := addPathRule(fd, m.Source, accessOf(m.Options)&attr.HandledAccessFS, slices.Contains(m.Options, optFile)); err != nil {
			unix.Close(fd)
			return -1, fail("landlock rule "+m.Source, err)
		}
	}
	if p := s.Annotations[AnnotationBindTCP]; abi >= 4 && p != "none" && p != "" {
		port, err := strconv.ParseUint(p, 10, 16)
		if err == nil {
			a := ll.NetPortAttr{AllowedAccess: ll.AccessNetBindTCP, Port: port}
			err = ll.LandlockAddNetPortRule(fd, &a, 0)
		}
		if err != nil {
			unix.Close(fd)
			return -1, fail("landlock bind rule "+p, err)
		}
	}
	return fd, nil
}

// addPathRule adds a rule for path; file says it is not a directory (the
// spec's optFile), so that only the rights of a file apply: no stat(2) per
// rule on the start's path. A directory taken for a file gets fewer rights;
// a file taken for a directory fails (EINVAL).
func addPathRule(ruleset int, path string, access uint64, file bool) error {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil // gone since the spec was made (a device, a /proc entry)
		}
		return err
	}
	defer unix.Close(fd)
	if file {
		access &= fsFile
	}
	if access == 0 {
		return nil
	}
	a := ll.PathBeneathAttr{AllowedAccess: access, ParentFd: fd}
	return ll.LandlockAddRule(ruleset, ll.RuleTypePathBeneath, unsafe.Pointer(&a), 0)
}

// runLandlock is sandbox-exec in Landlock mode. It stays the content's
// parent (a small init, outside the content's Landlock domain, so content
// can neither signal nor trace it): it makes the private TMPDIR, forks the
// content from a thread that alone takes the content's user, drops every
// capability and enforces the two Landlock layers, then forwards signals,
// reaps, and when the content exits or the server dies kills every process
// left (it is their subreaper, so none escapes by double-forking).
//
// sigs and notified are the init's signals when sandbox-exec registered
// them while it waited for the spec (pre-started); notified nil: not yet.
func runLandlock(s *specs.Spec, sigs chan os.Signal, notified chan struct{}) (int, error) {
	ppid := os.Getppid()
	if notified == nil {
		notified = make(chan struct{})
		go func() {
			signal.Notify(sigs, append(slices.Clone(forwarded), sigCleanup)...)
			close(notified)
		}()
	}
	abi, err := LandlockABI()
	if err != nil {
		return 0, fail("landlock", err)
	}
	minABI, _ := strconv.Atoi(s.Annotations[AnnotationMinABI])
	if abi < minABI {
		return 0, fail("landlock", fmt.Errorf("the kernel offers Landlock ABI %d, dais needs %d (Linux 6.12 or later): run the container with --cap-add SYS_ADMIN for namespaces mode", abi, minABI))
	}
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return 0, fail("become subreaper", err)
	}
	if err := setRlimits(s.Process.Rlimits); err != nil {
		return 0, err
	}
	if err := makeTmpDir(s); err != nil {
		return 0, err
	}
	prog, err := lookPath(s.Process.Args[0], s.Process.Env)
	if err != nil {
		return 0, fail("find "+s.Process.Args[0], err)
	}
	layer, err := contentLayer(s, abi)
	if err != nil {
		return 0, err
	}
	pid, err := forkConfined(prog, s.Process, layer)
	unix.Close(layer)
	unix.Close(fdConnect)
	if err != nil {
		return 0, err
	}
	// The init takes the content's user too (all threads; the supplementary
	// groups of the others stay, see syncThreads), then its own
	// parent-death signal, which a change of uid clears.
	if os.Geteuid() == 0 {
		syncThreads(s.Process)
	}
	unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(sigCleanup), 0, 0, 0)
	// Same uid as the content (when the server has no root, or after the
	// change above): no tracing, no /proc/<pid>/mem of the init.
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	// The Go runtime drops a signal nobody has registered for: a server
	// that died before the registration (made beside the start, off its
	// path; the content runs already) sent a parent-death signal that was
	// lost. Registered now, the check below sees such a death.
	<-notified
	// The alive pipe is read before it is closed: polled after close(2),
	// its number answers POLLNVAL (or is another file's), and a server that
	// died before the parent-death signal was set would go unnoticed.
	gone := os.Getppid() != ppid || serverGoneLandlock()
	unix.Close(fdAlive)
	if gone {
		killTree()
		return 128 + int(unix.SIGKILL), nil
	}
	return landlockInit(pid, sigs, notified)
}

func serverGoneLandlock() bool {
	fds := []unix.PollFd{{Fd: fdAlive, Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0 && fds[0].Revents&(unix.POLLHUP|unix.POLLIN) != 0
}

// makeTmpDir makes the private TMPDIR, owned by the content's user.
func makeTmpDir(s *specs.Spec) error {
	tmp := s.Annotations[AnnotationTmpDir]
	if tmp == "" {
		return nil
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return fail("private TMPDIR", err)
	}
	if os.Geteuid() == 0 {
		if err := os.Chown(tmp, int(s.Process.User.UID), int(s.Process.User.GID)); err != nil {
			return fail("private TMPDIR", err)
		}
	}
	return nil
}

// forkConfined starts the content from a locked thread of its own that
// takes the content's credentials and Landlock domain and then ends with
// its goroutine: the init's other threads, the thread group leader first,
// stay outside the domain, so content can signal none of them. (The
// content gets no parent-death signal: that would fire when this thread
// ends. The init kills it instead, see landlockInit.)
func forkConfined(prog string, p *specs.Process, layer int) (int, error) {
	type result struct {
		pid int
		err error
	}
	ch := make(chan result, 1)
	var start func()
	start = func() {
		go func() {
			runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
			if unix.Gettid() == unix.Getpid() {
				// The leader is what kill(2) and ptrace(2) of the init's pid
				// check: keep it unconfined, parked here.
				start()
				select {}
			}
			pid, err := confineAndFork(prog, p, layer)
			ch <- result{pid, err}
		}()
	}
	start()
	r := <-ch
	return r.pid, r.err
}

func confineAndFork(prog string, p *specs.Process, layer int) (int, error) {
	if os.Geteuid() == 0 {
		if err := dropPrivileges(p); err != nil {
			return 0, err
		}
	} else if err := dropCapsUnprivileged(); err != nil {
		return 0, err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return 0, fail("set no_new_privs", err)
	}
	if err := seccompNoMPTCP(); err != nil {
		return 0, fail("landlock: refuse Multipath TCP sockets", err)
	}
	if err := ll.LandlockRestrictSelf(layer, 0); err != nil {
		return 0, fail("landlock: enforce the content's ruleset", err)
	}
	if err := ll.LandlockRestrictSelf(fdConnect, 0); err != nil {
		return 0, fail("landlock: enforce the connect ruleset", fmt.Errorf("%w (fd %d: started by dais itself?)", err, fdConnect))
	}
	pid, err := syscall.ForkExec(prog, p.Args, &syscall.ProcAttr{
		Dir:   p.Cwd,
		Env:   p.Env,
		Files: []uintptr{0, 1, 2},
	})
	if err != nil {
		return 0, fail("exec "+prog, err)
	}
	return pid, nil
}

// dropCapsUnprivileged empties the capability sets a process without root
// may hold (the bounding set needs CAP_SETPCAP to shrink; no_new_privs
// keeps exec from filling the others from it).
func dropCapsUnprivileged() error {
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fail("drop capabilities", fmt.Errorf("ambient: %w", err))
	}
	c, err := capability.NewPid2(0)
	if err != nil {
		return fail("drop capabilities", err)
	}
	c.Clear(capability.CAPS)
	if err := c.Apply(capability.CAPS); err != nil {
		return fail("drop capabilities", err)
	}
	b, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		return fail("drop capabilities", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && (k == "CapInh" || k == "CapPrm" || k == "CapEff" || k == "CapAmb") && strings.Trim(strings.TrimSpace(v), "0") != "" {
			return fail("drop capabilities", fmt.Errorf("%s is %s after the drop", k, strings.TrimSpace(v)))
		}
	}
	return nil
}

// landlockInit forwards signals to the content, reaps every child, and
// when the content exits (or sigCleanup comes) kills what is left.
func landlockInit(pid int, sigs chan os.Signal, notified chan struct{}) (int, error) {
	cleanup := make(chan struct{})
	go func() {
		<-notified
		errPipe.close()
		for sig := range sigs {
			if sig == sigCleanup {
				close(cleanup)
				killTree()
				return
			}
			unix.Kill(pid, sig.(syscall.Signal))
		}
	}()
	for {
		var ws unix.WaitStatus
		w, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			select {
			case <-cleanup:
				return 128 + int(unix.SIGKILL), nil
			default:
			}
			return 0, fail("wait for the content", err)
		}
		if w != pid {
			continue
		}
		killTree()
		if ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ws.ExitStatus(), nil
	}
}

// killTree SIGKILLs this process's children until none is left: orphans of
// the content are re-parented here (subreaper), so every descendant is a
// child sooner or later.
func killTree() {
	// Usually the content left nothing behind: no child at all (ECHILD),
	// nothing to read. With the reads of /proc/self/task/*/children below,
	// the server's reap of this process took 5-8 ms longer under load
	// (measured: p50 of Process.Wait 5.5-8.9 ms against 0.1 ms without),
	// a third of a Landlock start. ECHILD means no descendant is left: each
	// would have a living or zombie ancestor among our children (we are
	// their subreaper).
	if _, err := unix.Wait4(-1, nil, unix.WNOHANG, nil); err == unix.ECHILD {
		return
	}
	for range 1000 {
		kids := children()
		for _, k := range kids {
			unix.Kill(k, unix.SIGKILL)
		}
		for {
			w, err := unix.Wait4(-1, nil, unix.WNOHANG, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil || w <= 0 {
				break
			}
		}
		if len(kids) == 0 {
			if _, err := unix.Wait4(-1, nil, unix.WNOHANG, nil); err == unix.ECHILD {
				return
			}
		}
	}
}

// children lists this process's children from /proc/self/task/*/children.
func children() []int {
	tasks, _ := os.ReadDir("/proc/self/task")
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}
