package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
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

// fdShared is, in Landlock mode, the rules every content shares (see
// sharedRules), when the server has them.
const fdShared = 7

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

// sharedRuleFiles are the sealed memfds of sharedRules, by digest.
var sharedRuleFiles = struct {
	sync.Mutex
	m map[string]*os.File
}{m: map[string]*os.File{}}

// sharedRules is the part of a Landlock spec's rules that depends on the
// masks alone (AnnotationSharedRules), in the wire form of a spec that has
// only those rules, as a sealed memfd shared by every sandbox-exec (fd 7),
// and its digest, which tells pre-started sandbox-execs apart. A
// pre-started sandbox-exec builds them into its ruleset while it waits for
// its spec; at the start only the content's own rules are left to add
// (about 200 rules against 4: 0.5 ms of the start, p50). nil when the spec
// has none, or after 64 different sets (the helpers then build them all at
// the start).
func sharedRules(spec *specs.Spec) (*os.File, string, error) {
	n, err := strconv.Atoi(spec.Annotations[AnnotationSharedRules])
	if err != nil || n <= 0 || n > len(spec.Mounts) {
		return nil, "", nil
	}
	b, err := encodeSpec(&specs.Spec{Process: &specs.Process{Args: []string{"shared-rules"}}, Mounts: spec.Mounts[:n]})
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(b)
	key := hex.EncodeToString(sum[:8])
	sharedRuleFiles.Lock()
	defer sharedRuleFiles.Unlock()
	if f := sharedRuleFiles.m[key]; f != nil {
		return f, key, nil
	}
	if len(sharedRuleFiles.m) >= 64 {
		return nil, "", nil
	}
	f, err := memfile("dais-sandbox-shared", b)
	if err != nil {
		return nil, "", err
	}
	sharedRuleFiles.m[key] = f
	return f, key, nil
}

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
//
// pre, when not nil, is a ruleset with the shared rules in already (see
// prebuild): used only if the spec has every one of them, so that the
// layer has exactly the spec's rules either way.
func contentLayer(s *specs.Spec, abi int, pre *prebuilt) (int, error) {
	attr := layerAttr(abi)
	fd, have := -1, map[string]bool(nil)
	if pre != nil && pre.abi == abi && pre.within(s.Mounts) {
		fd, have = pre.fd, pre.rules
	} else {
		if pre != nil {
			unix.Close(pre.fd)
		}
		var err error
		if fd, err = ll.LandlockCreateRuleset(&attr, 0); err != nil {
			return -1, fail("landlock ruleset", err)
		}
	}
	for _, m := range s.Mounts {
		if m.Type != mountLandlock || have[ruleKey(m)] {
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

// layerAttr is what the content's layer handles on a kernel with abi.
func layerAttr(abi int) ll.RulesetAttr {
	attr := ll.RulesetAttr{HandledAccessFS: handledFS(abi)}
	if abi >= 4 {
		attr.HandledAccessNet = ll.AccessNetBindTCP
	}
	if abi >= 6 {
		attr.Scoped = ll.ScopeSignal | ll.ScopeAbstractUnixSocket
	}
	return attr
}

// prebuilt is the content's layer with the shared rules (fdShared) in,
// made while a pre-started sandbox-exec waits for its spec.
type prebuilt struct {
	fd    int
	abi   int
	rules map[string]bool // ruleKey of each rule in
}

// ruleKey tells rules apart: path and access.
func ruleKey(m specs.Mount) string { return m.Source + "\x00" + strings.Join(m.Options, ",") }

// within says whether every rule of p is among ms.
func (p *prebuilt) within(ms []specs.Mount) bool {
	seen := make(map[string]bool, len(p.rules))
	for _, m := range ms {
		if k := ruleKey(m); m.Type == mountLandlock && p.rules[k] {
			seen[k] = true
		}
	}
	return len(seen) == len(p.rules)
}

// prebuild reads the shared rules from fdShared, when sandbox-exec got
// them, and builds them into a new ruleset; nil when there are none or on
// any error (the start then builds every rule).
func prebuild() *prebuilt {
	if l, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fdShared)); err != nil || !strings.HasPrefix(l, "/memfd:dais-sandbox-shared") {
		return nil
	}
	b, err := readMemfdAt(fdShared)
	if err != nil {
		return nil
	}
	shared, err := decodeSpec(b)
	if err != nil {
		return nil
	}
	abi, err := LandlockABI()
	if err != nil {
		return nil
	}
	attr := layerAttr(abi)
	fd, err := ll.LandlockCreateRuleset(&attr, 0)
	if err != nil {
		return nil
	}
	p := &prebuilt{fd: fd, abi: abi, rules: map[string]bool{}}
	for _, m := range shared.Mounts {
		if m.Type != mountLandlock {
			continue
		}
		if addPathRule(fd, m.Source, accessOf(m.Options)&attr.HandledAccessFS, slices.Contains(m.Options, optFile)) != nil {
			unix.Close(fd)
			return nil
		}
		p.rules[ruleKey(m)] = true
	}
	return p
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
		if errors.Is(err, unix.EACCES) && os.Geteuid() != 0 {
			// Out of the content's user's reach (a sandbox-exec started as
			// that user: asContentUser), say an entry of a 0700 directory
			// around a mask: no rule, no access, as the user's own
			// permissions would have it anyway. Leaving a rule out only
			// ever takes access away.
			return nil
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
	var pid int
	err := newContentThread().run(func(pre *prebuilt) (err error) {
		pid, err = startLandlock(s, pre)
		return err
	})
	if err != nil {
		return 0, err
	}
	return superviseLandlock(s, pid, ppid, sigs, notified)
}

// runLandlockPrestarted is runLandlock in a pre-started sandbox-exec made
// for Landlock mode: the content's thread is made, and confined as far as
// it can be without the spec, while sandbox-exec waits for its spec; then
// it reads the spec and starts the content itself, so that no hand-off
// between threads (0.4 ms, p50, on a busy machine) comes before the start.
func runLandlockPrestarted(t *contentThread, sigs chan os.Signal, notified chan struct{}) (int, error) {
	ppid := os.Getppid()
	// Started as the content's user (asContentUser), it is dumpable until
	// now: no core dump, no /proc/<pid>/mem for that user while it waits.
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	var s *specs.Spec
	var pid int
	err := t.run(func(pre *prebuilt) (err error) {
		if s, err = readSpec(); err != nil {
			return fail("read spec", err)
		}
		if specMode(s) != ModeLandlock {
			return fail("read spec", errors.New("a spec for namespaces mode reached a sandbox-exec started for Landlock mode"))
		}
		if err := cloexecFrom(3); err != nil {
			return fail("close inherited file descriptors", err)
		}
		pid, err = startLandlock(s, pre)
		return err
	})
	if err != nil {
		return 0, err
	}
	return superviseLandlock(s, pid, ppid, sigs, notified)
}

// startLandlock runs on the content's thread (see contentThread): it checks
// the kernel, makes the private TMPDIR and the content's ruleset, takes the
// content's user (a sandbox-exec started with root; a pre-started one is
// that user already, see asContentUser), enforces the ruleset and forks the
// content.
func startLandlock(s *specs.Spec, pre *prebuilt) (int, error) {
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
	layer, err := contentLayer(s, abi, pre)
	if err != nil {
		return 0, err
	}
	defer unix.Close(layer)
	defer unix.Close(fdConnect)
	if os.Geteuid() == 0 {
		if err := becomeUser(s.Process); err != nil {
			return 0, err
		}
	}
	if err := ll.LandlockRestrictSelf(layer, 0); err != nil {
		return 0, fail("landlock: enforce the content's ruleset", err)
	}
	pid, err := syscall.ForkExec(prog, s.Process.Args, &syscall.ProcAttr{
		Dir:   s.Process.Cwd,
		Env:   s.Process.Env,
		Files: []uintptr{0, 1, 2},
	})
	if err != nil {
		if errors.Is(err, unix.EACCES) {
			// ForkExec says EACCES for the chdir into the work directory too.
			u := specs.User{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
			if gs, gerr := os.Getgroups(); gerr == nil {
				for _, g := range gs {
					u.AdditionalGids = append(u.AdditionalGids, uint32(g))
				}
			}
			if d, why := Unsearchable(s.Process.Cwd, u); d != "" {
				return 0, fail("landlock: enter the work directory", errors.New(why))
			}
		}
		return 0, fail("exec "+prog, err)
	}
	return pid, nil
}

// superviseLandlock is the init's part once the content runs.
func superviseLandlock(s *specs.Spec, pid, ppid int, sigs chan os.Signal, notified chan struct{}) (int, error) {
	// Started with root (cold), the init takes the content's user too (all
	// threads; the supplementary groups of the others stay, see
	// syncThreads), then its own parent-death signal, which a change of uid
	// clears. A pre-started one under a server with root was started as
	// that user (asContentUser): nothing to change.
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

// makeTmpDir makes the private TMPDIR, owned by the content's user: made
// by that user (a sandbox-exec started as it, in the 1733 tmpBase), or
// given to it.
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

// contentThread is the locked thread the content is forked from: it takes
// the content's credentials and Landlock domain and then ends with its
// goroutine, so that the init's other threads, the thread group leader
// first, stay outside the domain and content can signal none of them. (The
// content gets no parent-death signal: that would fire when this thread
// ends. The init kills it instead, see landlockInit.)
//
// What needs no spec is done as soon as the thread exists (confineEarly),
// which for a pre-started sandbox-exec is while it waits for its spec:
// enforcing the connect ruleset (one rule per port, about a thousand by
// default, all copied into the thread's new domain) was the largest part
// of sandbox-exec's CPU time per start in Landlock mode.
type contentThread struct {
	early chan error  // confineEarly's result
	work  chan func() // then what run is given, run on the thread
	pre   *prebuilt   // the shared rules, built after confineEarly
}

func newContentThread() *contentThread {
	t := &contentThread{early: make(chan error, 1), work: make(chan func())}
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
			err := confineEarly()
			if err == nil {
				t.pre = prebuild()
			}
			t.early <- err
			if err == nil {
				(<-t.work)()
			}
		}()
	}
	start()
	return t
}

// run runs f on the thread once confineEarly succeeded, and returns its
// error (or confineEarly's). The thread ends after f.
func (t *contentThread) run(f func(pre *prebuilt) error) error {
	if err := <-t.early; err != nil {
		return err
	}
	done := make(chan error, 1)
	t.work <- func() { done <- f(t.pre) }
	return <-done
}

// confineEarly is the part of the content's confinement that needs no
// spec: bounding and ambient capabilities (without root, every
// capability), no_new_privs, the MPTCP filter and the connect ruleset.
func confineEarly() error {
	if os.Geteuid() == 0 {
		if err := dropBounding(); err != nil {
			return err
		}
	} else if err := dropCapsUnprivileged(); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fail("set no_new_privs", err)
	}
	if err := seccompNoMPTCP(); err != nil {
		return fail("landlock: refuse Multipath TCP sockets", err)
	}
	if err := ll.LandlockRestrictSelf(fdConnect, 0); err != nil {
		return fail("landlock: enforce the connect ruleset", fmt.Errorf("%w (fd %d: started by dais itself?)", err, fdConnect))
	}
	return nil
}

// isConnectRuleset says whether fdConnect holds a Landlock ruleset: a
// sandbox-exec started for Landlock mode, before its spec says so.
func isConnectRuleset() bool {
	l, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fdConnect))
	return err == nil && l == "anon_inode:[landlock-ruleset]"
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
