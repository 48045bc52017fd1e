package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/moby/sys/capability"
	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// stepError is a failed step of sandbox-exec.
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return e.step + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

func fail(step string, err error) error { return &stepError{step, err} }

// Main is `dais sandbox-exec`: it reads the spec from fd 3, builds the
// sandbox and execs the content (or, with a PID namespace, runs it under a
// small init and exits with its status). On failure it writes the step and
// the reason to stderr and to the error pipe, and returns ExitSetup.
//
// It must run in a process started by Command: the namespaces exist already
// (clone flags), so the Go runtime's threads are all inside them.
func Main(stderr io.Writer) int {
	// Capabilities, no_new_privs and the parent-death signal are per thread:
	// everything below happens on this one, which then execs or forks.
	runtime.LockOSThread()
	code, err := run()
	if err == nil {
		return code
	}
	if errors.Is(err, errNoWork) {
		return 0
	}
	step, msg := "sandbox-exec", err.Error()
	var se *stepError
	if errors.As(err, &se) {
		step, msg = se.step, se.err.Error()
		if !strings.HasPrefix(step, "landlock") {
			msg += hint(se.err)
		}
	}
	errPipe.write([]byte(step + "\x00" + msg))
	fmt.Fprintf(stderr, "dais sandbox: %s: %s\n", step, msg)
	return ExitSetup
}

func hint(err error) string {
	switch {
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return " (needs CAP_SYS_ADMIN: run the container with --cap-add SYS_ADMIN or --privileged; under AppArmor or a custom seccomp profile also --security-opt apparmor=unconfined / seccomp=...)"
	case errors.Is(err, syscall.ENOENT):
		return " (the path does not exist: check the content's directories and the runtime installation)"
	}
	return ""
}

// errNoWork ends a pre-started sandbox-exec whose server let it go unused.
var errNoWork = errors.New("no spec: released unused")

// readSpec reads the spec from fd 3: a sealed memfd (Command starting
// sandbox-exec for one spec), or a socket on which a pre-started
// sandbox-exec waits for its spec and its standard input, output and error
// (prestart.go).
func readSpec() (*specs.Spec, error) {
	l, err := os.Readlink("/proc/self/fd/3")
	var b []byte
	switch {
	case err == nil && strings.HasPrefix(l, "/memfd:dais-sandbox-spec"):
		b, err = readMemfd()
	case err == nil && strings.HasPrefix(l, "socket:"):
		b, err = receiveSpec()
	default:
		return nil, errors.New("no spec on fd 3: sandbox-exec is started by dais itself, not by hand (see `dais sandbox spec --help`)")
	}
	if err != nil {
		return nil, err
	}
	s, err := decodeSpec(b)
	if err != nil {
		return nil, err
	}
	if len(s.Process.Args) == 0 {
		return nil, errors.New("spec without a process")
	}
	return s, nil
}

func readMemfd() ([]byte, error) { return readMemfdAt(fdSpec) }

// readMemfdAt reads the whole memfd fd (a spec in its wire form, at most
// maxSpec bytes) and closes it.
func readMemfdAt(fd int) ([]byte, error) {
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("stat: %w", err)
	}
	if st.Size > maxSpec {
		return nil, fmt.Errorf("spec of %d bytes is too large", st.Size)
	}
	b := make([]byte, st.Size)
	if n, err := unix.Pread(fd, b, 0); err != nil || n != len(b) {
		return nil, fmt.Errorf("read: %d of %d bytes: %v", n, len(b), err)
	}
	return b, nil
}

// receiveSpec waits for the one message of a pre-started sandbox-exec: the
// spec, with the descriptors of its standard input, output and error, which
// replace 0, 1 and 2.
func receiveSpec() ([]byte, error) {
	b := make([]byte, maxWarmSpec)
	oob := make([]byte, unix.CmsgSpace(3*4))
	var n, oobn int
	var err error
	for {
		n, oobn, _, _, err = unix.Recvmsg(fdSpec, b, oob, unix.MSG_CMSG_CLOEXEC)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("receive: %w", err)
	}
	if n == 0 && oobn == 0 {
		return nil, errNoWork
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("receive: no descriptors (%v)", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 3 {
		return nil, fmt.Errorf("receive: want 3 descriptors, got %d (%v)", len(fds), err)
	}
	for i, fd := range fds {
		if err := unix.Dup3(fd, i, 0); err != nil {
			return nil, fmt.Errorf("receive: standard descriptor %d: %w", i, err)
		}
		unix.Close(fd)
	}
	unix.Close(fdSpec)
	return b[:n], nil
}

func run() (int, error) {
	if err := joinCgroups(); err != nil {
		return 0, err
	}
	ppid := os.Getppid()
	var notified chan struct{}
	sigs := make(chan os.Signal, 32)
	// A pre-started sandbox-exec without a PID namespace is a Landlock
	// sandbox's (or one of Options.NoPIDNamespace): its init's signals are
	// registered while it waits for the spec, off the start's path.
	prestarted := false
	if l, err := os.Readlink("/proc/self/fd/3"); err == nil && strings.HasPrefix(l, "socket:") {
		prestarted = true
	}
	var early []os.Signal
	if os.Getpid() == 1 {
		early = forwarded
	} else if prestarted {
		early = append(slices.Clone(forwarded), sigCleanup)
	}
	if early != nil {
		// Registering the signals the init forwards costs a round trip to
		// the runtime's signal thread per signal, about 1.5 ms in all: done
		// beside the sandbox's construction and the content's start (or
		// while waiting), and announced to the server by closing the error
		// pipe (Cmd.Signal waits for that).
		notified = make(chan struct{})
		go func() {
			signal.Notify(sigs, early...)
			close(notified)
		}()
	}
	if prestarted && isConnectRuleset() {
		return runLandlockPrestarted(newContentThread(), sigs, notified)
	}
	s, err := readSpec()
	if err != nil {
		return 0, fail("read spec", err)
	}
	if os.Getpid() != 1 && early != nil && specMode(s) != ModeLandlock {
		// Without a PID namespace the content is exec'd: signals until then
		// keep their default action.
		<-notified
		signal.Reset(early...)
		notified = nil
	}
	// No descriptor of the server reaches the content: every one from 3 up
	// is closed on exec (the error pipe and the alive pipe included).
	if err := cloexecFrom(3); err != nil {
		return 0, fail("close inherited file descriptors", err)
	}
	if specMode(s) == ModeLandlock {
		return runLandlock(s, sigs, notified)
	}
	network := Network(s.Annotations[AnnotationNetwork])
	if network != "" {
		if err := loopbackUp(); err != nil {
			return 0, fail("network: bring lo up", err)
		}
	}
	passFDs, err := passedFDs(s)
	if err != nil {
		return 0, err
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return 0, fail("make / rprivate", fmt.Errorf("mount: %w", err))
	}
	if err := mountAll(s.Mounts); err != nil {
		return 0, err
	}
	if s.Annotations[annotationReadOnlyRoot] == "true" {
		if err := readOnlyAll(); err != nil {
			return 0, fail("make every mount read-only", err)
		}
	}
	if err := setRlimits(s.Process.Rlimits); err != nil {
		return 0, err
	}
	if network == NetworkOutbound {
		if err := waitForRoute(routeWait); err != nil {
			return 0, fail("network: outbound", err)
		}
	}
	if err := dropPrivileges(s.Process); err != nil {
		return 0, err
	}
	// After the change of uid, which clears it.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return 0, fail("set parent-death signal", err)
	}
	if serverGone(ppid) {
		return 0, fail("check server", errors.New("the server exited while the sandbox was being built"))
	}
	if err := unix.Chdir(s.Process.Cwd); err != nil {
		return 0, fail("chdir "+s.Process.Cwd, err)
	}
	prog, err := lookPath(s.Process.Args[0], s.Process.Env)
	if err != nil {
		return 0, fail("find "+s.Process.Args[0], err)
	}
	if os.Getpid() != 1 {
		if len(passFDs) > 0 {
			return 0, fail("pass descriptors", errors.New("needs a PID namespace"))
		}
		err := unix.Exec(prog, s.Process.Args, s.Process.Env)
		return 0, fail("exec "+prog, err)
	}
	return initLoop(prog, s.Process, passFDs, sigs, notified)
}

// firstPassedFD is where the descriptors to pass to the program start
// (after the spec, the error pipe and the alive pipe).
const firstPassedFD = 6

// passedFDs are the descriptors the spec asks to give the program as 3, 4, ...
func passedFDs(s *specs.Spec) ([]uintptr, error) {
	v := s.Annotations[annotationPassFDs]
	if v == "" {
		return nil, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > 16 {
		return nil, fail("pass descriptors", fmt.Errorf("bad count %q", v))
	}
	var fds []uintptr
	for fd := firstPassedFD; fd < firstPassedFD+n; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return nil, fail("pass descriptors", fmt.Errorf("descriptor %d: %w", fd, err))
		}
		fds = append(fds, uintptr(fd))
	}
	return fds, nil
}

// serverGone tells whether the server died before the parent-death signal
// was set: the alive pipe is at EOF (hung up) once it has.
func serverGone(ppid int) bool {
	if os.Getpid() != 1 && os.Getppid() != ppid {
		return true
	}
	fds := []unix.PollFd{{Fd: fdAlive, Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0 && fds[0].Revents&(unix.POLLHUP|unix.POLLIN) != 0
}

func cloexecFrom(low int) error {
	err := unix.CloseRange(uint(low), ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	// Kernels before 5.11.
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd < low {
			continue
		}
		unix.CloseOnExec(fd)
	}
	return nil
}

// mountOpts splits OCI mount options into flags, tmpfs data and ours.
type mountOpts struct {
	flags    uintptr
	data     []string
	ro       bool
	mkdir    bool
	optional bool
}

func parseOpts(opts []string) mountOpts {
	var m mountOpts
	for _, o := range opts {
		switch o {
		case "ro":
			m.ro = true
		case "rw":
			m.ro = false
		case "nosuid":
			m.flags |= unix.MS_NOSUID
		case "nodev":
			m.flags |= unix.MS_NODEV
		case "noexec":
			m.flags |= unix.MS_NOEXEC
		case "bind":
			m.flags |= unix.MS_BIND
		case "rbind":
			m.flags |= unix.MS_BIND | unix.MS_REC
		case optMkdir:
			m.mkdir = true
		case optOptional:
			m.optional = true
		default:
			m.data = append(m.data, o)
		}
	}
	return m
}

func mountAll(ms []specs.Mount) error {
	// Bind sources are opened first: a mask may hide them (the code
	// directory lies under the masked DataDir). Binding /proc/self/fd/N
	// binds what the descriptor refers to.
	src := make([]*os.File, len(ms))
	defer func() {
		for _, f := range src {
			if f != nil {
				f.Close()
			}
		}
	}()
	for i, m := range ms {
		if m.Type != "bind" {
			continue
		}
		f, err := os.OpenFile(m.Source, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return fail("open "+m.Source, err)
		}
		src[i] = f
	}
	var readOnlyLater []string // masks are made read-only after mountpoints were made in them
	var binds []bindFlags      // flags are applied once all binds are in place: one mountinfo read
	for i, m := range ms {
		o := parseOpts(m.Options)
		dst := m.Destination
		if o.mkdir {
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return fail("mount "+dst, fmt.Errorf("make mountpoint: %w", err))
			}
		}
		switch m.Type {
		case "tmpfs":
			step := "mask " + dst
			if dst == "/tmp" {
				step = "private /tmp"
			}
			if err := unix.Mount("tmpfs", dst, "tmpfs", o.flags, strings.Join(o.data, ",")); err != nil {
				return fail(step, fmt.Errorf("mount tmpfs: %w", err))
			}
			if o.ro {
				readOnlyLater = append(readOnlyLater, dst)
			}
		case "proc":
			if err := unix.Mount("proc", dst, "proc", o.flags, ""); err != nil {
				if o.optional {
					continue // keep the inherited /proc (documented)
				}
				return fail("mount proc", err)
			}
		case "bind":
			step := "bind " + dst
			if m.Source == "/dev/null" {
				step = "mask " + dst
			}
			if o.flags&unix.MS_BIND == 0 {
				o.flags |= unix.MS_BIND
			}
			from := "/proc/self/fd/" + strconv.Itoa(int(src[i].Fd()))
			if err := unix.Mount(from, dst, "", o.flags&(unix.MS_BIND|unix.MS_REC), ""); err != nil {
				return fail(step, fmt.Errorf("mount bind: %w", err))
			}
			extra := o.flags &^ (unix.MS_BIND | unix.MS_REC)
			if o.ro {
				extra |= unix.MS_RDONLY
			}
			binds = append(binds, bindFlags{step, dst, extra, o.flags&unix.MS_REC != 0})
		default:
			return fail("mount "+dst, fmt.Errorf("mount type %q is not supported", m.Type))
		}
	}
	if err := remountBinds(binds); err != nil {
		return err
	}
	for _, dst := range readOnlyLater {
		if err := remount(dst, unix.MS_RDONLY); err != nil {
			return fail("mask "+dst, err)
		}
	}
	return nil
}

type bindFlags struct {
	step, dst string
	flags     uintptr
	recursive bool
}

// remountBinds applies each bind's flags to its mount and, when recursive,
// to every mount under it: a bind remount changes one mount only, and
// MS_REC|MS_BIND copies submounts with their own flags.
func remountBinds(binds []bindFlags) error {
	var all []*mountinfo.Info
	for _, b := range binds {
		if b.recursive {
			var err error
			if all, err = mountinfo.GetMounts(nil); err != nil {
				return fail(b.step, fmt.Errorf("read mountinfo: %w", err))
			}
			break
		}
	}
	for _, b := range binds {
		points := []string{b.dst}
		if b.recursive {
			for _, m := range all {
				if strings.HasPrefix(m.Mountpoint, b.dst+"/") {
					points = append(points, m.Mountpoint)
				}
			}
		}
		slices.Sort(points) // parents before children
		points = slices.Compact(points)
		for _, p := range points {
			if err := remount(p, b.flags); err != nil {
				return fail(b.step, err)
			}
		}
	}
	return nil
}

// remount adds flags to the mount at p, keeping the flags it has: in a user
// namespace the flags of inherited mounts are locked, and a remount that
// would clear one fails with EPERM.
func remount(p string, flags uintptr) error {
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", p, err)
	}
	keep := uintptr(0)
	for _, f := range []struct{ st, ms uintptr }{
		{unix.ST_RDONLY, unix.MS_RDONLY},
		{unix.ST_NOSUID, unix.MS_NOSUID},
		{unix.ST_NODEV, unix.MS_NODEV},
		{unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME},
		{unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if uintptr(st.Flags)&f.st != 0 {
			keep |= f.ms
		}
	}
	if err := unix.Mount("", p, "", unix.MS_BIND|unix.MS_REMOUNT|keep|flags, ""); err != nil {
		return fmt.Errorf("remount %s: %w", p, err)
	}
	return nil
}

var rlimitNames = map[string]int{
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU,
	"RLIMIT_DATA": unix.RLIMIT_DATA, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE,
	"RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO, "RLIMIT_RTTIME": unix.RLIMIT_RTTIME, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK": unix.RLIMIT_STACK,
}

// setRlimits sets the spec's limits. A sandbox-exec without root (a
// server without it, or one pre-started as the content's user) cannot
// raise a hard limit: a limit above the server's is held to the server's.
func setRlimits(rl []specs.POSIXRlimit) error {
	for _, r := range rl {
		res, ok := rlimitNames[r.Type]
		if !ok {
			return fail("set rlimit "+r.Type, errors.New("unknown limit"))
		}
		lim := unix.Rlimit{Cur: r.Soft, Max: r.Hard}
		err := unix.Prlimit(0, res, &lim, nil)
		if err == unix.EPERM {
			var cur unix.Rlimit
			if unix.Prlimit(0, res, nil, &cur) == nil {
				lim.Cur, lim.Max = min(lim.Cur, cur.Max), min(lim.Max, cur.Max)
				err = unix.Prlimit(0, res, &lim, nil)
			}
		}
		if err != nil {
			return fail("set rlimit "+r.Type, err)
		}
	}
	return nil
}

// dropPrivileges works on this thread only (the one that execs or forks the
// content; the init's other threads follow in syncThreads, off the critical
// path): bounding and ambient sets first (dropping the bounding set needs
// CAP_SETPCAP, gone after the uid change), then groups, gid, uid (which
// clears the effective and permitted sets), then the inheritable set, a
// check that every set is empty, and no_new_privs.
func dropPrivileges(p *specs.Process) error {
	if err := dropBounding(); err != nil {
		return err
	}
	return becomeUser(p)
}

// dropBounding empties this thread's bounding and ambient capability sets
// (which needs CAP_SETPCAP: before the change of uid).
func dropBounding() error {
	c, err := capability.NewPid2(0)
	if err != nil {
		return fail("drop capabilities", err)
	}
	c.Clear(capability.BOUNDS | capability.AMBS)
	if err := c.Apply(capability.BOUNDS | capability.AMBS); err != nil {
		return fail("drop capabilities", fmt.Errorf("bounding/ambient: %w", err))
	}
	return nil
}

// becomeUser is the rest of dropPrivileges: groups, gid, uid, the empty
// capability sets checked, and no_new_privs.
func becomeUser(p *specs.Process) error {
	c, err := capability.NewPid2(0)
	if err != nil {
		return fail("drop capabilities", err)
	}
	gids := make([]int, len(p.User.AdditionalGids))
	for i, g := range p.User.AdditionalGids {
		gids[i] = int(g)
	}
	// Raw calls: syscall.Setuid and friends stop every thread of the
	// process, which costs milliseconds on a busy machine.
	if err := unix.Setgroups(gids); err != nil {
		return fail("set groups", err)
	}
	uid, gid := uintptr(p.User.UID), uintptr(p.User.GID)
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, gid, gid, gid); e != 0 {
		return fail("set gid "+strconv.Itoa(int(gid)), e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uid, uid, uid); e != 0 {
		return fail("set uid "+strconv.Itoa(int(uid)), e)
	}
	c.Clear(capability.CAPS | capability.BOUNDS | capability.AMBS)
	if err := c.Apply(capability.CAPS); err != nil {
		return fail("drop capabilities", err)
	}
	if err := checkNoCaps(); err != nil {
		return fail("drop capabilities", err)
	}
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fail("set no_new_privs", err)
		}
	}
	return nil
}

// checkNoCaps reads this thread's capability sets (/proc/thread-self: the
// main thread's may differ, and inside a new PID namespace under an old
// /proc a tid would not match) and fails unless every set is empty.
func checkNoCaps() error {
	b, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	seen := 0
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(k, "Cap") {
			continue
		}
		seen++
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err != nil || n != 0 {
			return fmt.Errorf("%s is %s after the drop", k, strings.TrimSpace(v))
		}
	}
	if seen < 5 {
		return errors.New("check: capability sets not found in /proc/thread-self/status")
	}
	return nil
}

// syncThreads gives the init's other threads the content's uid and gid, so
// that pid 1 of the namespace is unprivileged as a whole. setgroups is left
// out: this thread may no longer call it, and with cgo, glibc aborts a set*id
// call that fails on some threads only (the supplementary groups of the
// other threads, which run only Go runtime code, stay the server's).
func syncThreads(p *specs.Process) {
	syscall.Setgid(int(p.User.GID))
	syscall.Setuid(int(p.User.UID))
}

// lookPath finds prog in the sandbox's PATH (not the server's).
func lookPath(prog string, env []string) (string, error) {
	if strings.Contains(prog, "/") {
		return prog, nil
	}
	path := DefaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, prog)
		if unix.Access(p, unix.X_OK) == nil {
			if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("not found in PATH %s", path)
}

// initLoop is PID 1 of the sandbox's PID namespace: it starts the content
// in its own process group, forwards signals to it, reaps orphans, and
// exits with the content's status (128+n when killed by signal n). When it
// exits, or the server dies (parent-death signal), the kernel kills every
// process left in the namespace.
func initLoop(prog string, p *specs.Process, passFDs []uintptr, sigs chan os.Signal, notified chan struct{}) (int, error) {
	// Not dumpable: the content (same uid) can neither trace the init nor
	// read its memory through /proc; exec makes the content dumpable again.
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	pid, err := syscall.ForkExec(prog, p.Args, &syscall.ProcAttr{
		Env:   p.Env,
		Files: append([]uintptr{0, 1, 2}, passFDs...),
		Sys:   &syscall.SysProcAttr{Setpgid: true},
	})
	if err != nil {
		return 0, fail("exec "+prog, err)
	}
	// The init holds nothing the content could use. The error pipe stays
	// open until the signals are registered: its end tells the server that
	// a signal now reaches the content (before, one would end the init and
	// with it the whole sandbox).
	unix.Close(fdAlive)
	go func() {
		<-notified
		errPipe.close()
		for sig := range sigs {
			unix.Kill(pid, sig.(syscall.Signal))
		}
	}()
	// Off the critical path: the content runs already, and a short-lived
	// one need not wait for the other threads to change uid.
	go syncThreads(p)
	// Reap every child (orphans are re-parented to us) until the content's
	// own process exits. A blocking wait: no SIGCHLD round trip.
	for {
		var ws unix.WaitStatus
		w, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fail("wait for "+prog, err)
		}
		if w != pid {
			continue
		}
		if ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ws.ExitStatus(), nil
	}
}

// errPipe is sandbox-exec's end of the setup-error pipe: written once on
// failure, closed once the init is ready for signals. The lock keeps a late
// failure from writing to a descriptor number reused after the close.
var errPipe errorPipe

type errorPipe struct {
	mu     sync.Mutex
	closed bool
}

func (e *errorPipe) write(b []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.closed {
		unix.Write(fdError, b)
	}
}

func (e *errorPipe) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.closed {
		e.closed = true
		unix.Close(fdError)
	}
}

// forwarded are the signals the init passes on to the content.
var forwarded = []os.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2,
	unix.SIGWINCH, unix.SIGALRM, unix.SIGCONT, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU}
