package sandbox

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// File descriptors sandbox-exec inherits (os/exec ExtraFiles start at 3).
const (
	fdSpec  = 3 // the spec in its wire form (wire.go), a sealed memfd
	fdError = 4 // write end of the setup-error pipe
	fdAlive = 5 // read end of the server's alive pipe: EOF once the server is gone
)

// Cmd is a sandboxed content process: `dais sandbox-exec` (or its helper
// program, see ExecPath) building the sandbox and running the content. Set
// Stdin, Stdout and Stderr on it, then call Start and Wait (or Run, Output,
// CombinedOutput) of Cmd, not of the embedded exec.Cmd: Cmd.Start either
// hands the spec to a pre-started sandbox-exec (prestart.go) or starts one,
// from a thread that lives as long as the server, so that the parent-death
// signal fires only when the server dies (golang/go#27505); Cmd.Wait
// reports a sandbox that could not be built as a *SetupError.
//
// Cancelling the context SIGKILLs the sandbox's process group; with the PID
// namespace (the default) that kills every process of the content.
type Cmd struct {
	*exec.Cmd
	// Cold starts a new sandbox-exec for this Cmd even when a pre-started
	// one is idle, and starts none for later (benchmarks and tests).
	Cold bool

	ctx  context.Context
	wire []byte // the spec's wire form
	// Landlock mode: the server's connect ruleset (fd 6 of sandbox-exec)
	// and the private TMPDIR, removed by Wait.
	landlock bool
	connect  *os.File
	// shared are the rules every content shares (sharedRules), fd 7.
	shared    *os.File
	sharedKey string
	tmpDir    string
	key       warmKey
	attr      *syscall.SysProcAttr
	// warmAttr is what a pre-started sandbox-exec for this Cmd starts
	// with: attr, and in Landlock mode under a server with root, the
	// content's user (asContentUser).
	warmAttr *syscall.SysProcAttr
	errR     *os.File
	started  bool

	// ready is closed when sandbox-exec closes the error pipe: it exec'd
	// the content, or (with a PID namespace) its init forwards signals
	// now, or it exited. setupErr is what it wrote there, if anything.
	ready    chan struct{}
	setupErr []byte

	// Namespaces mode: the sandbox's network (network_linux.go). netns is
	// its network namespace, pinned from Start to Wait for DialContext;
	// helper the spec of its outbound helper (slirp4netns), helperCmd the
	// helper running; passFiles the descriptors a helper gets as 3, 4, ...
	network       Network
	nsMu          sync.RWMutex
	netns         *os.File
	helper        *specs.Spec
	helperCmd     *Cmd
	helperOut     lockedBuffer
	helperDone    chan struct{}
	netMu         sync.Mutex
	helperErr     error
	helperDied    bool
	contentExited bool
	passFiles     []*os.File

	// Limits (cgroup_linux.go): the sandbox's cgroup when limits are set
	// and cgroups are in force, made by Start and removed by Wait; reason
	// says why the sandbox ended when dais knows ("killed: over its 256 MB
	// memory limit").
	lim    limits
	cg     *cgroup
	reason string
	// OnLimit, when set before Start, is called (from another goroutine)
	// each time the kernel kills a process of the sandbox for its memory
	// limit while the sandbox goes on (a worker of gunicorn, say).
	OnLimit func(reason string)
	memDone chan struct{} // closed by Wait: ends watchMemory
	// watchDisk (disk_linux.go): diskDone, closed by Wait, ends it;
	// diskReason is set when it killed the sandbox.
	diskDone   chan struct{}
	diskMu     sync.Mutex
	diskReason string

	// Set when a pre-started sandbox-exec runs this Cmd: Wait is ours.
	warm    bool
	exited  chan struct{}
	copying sync.WaitGroup
	copyMu  sync.Mutex
	copyErr error
	pipes   []*os.File // parent ends of the stdio pipes, closed after Wait
}

// Command prepares `daisPath sandbox-exec` to run spec. daisPath "" means
// ExecPath(): the dais-sandbox-exec helper when it sits next to this
// executable, else this executable. The process gets an empty environment
// (spec.Process.Env is applied inside) and its own session.
func Command(ctx context.Context, daisPath string, spec *specs.Spec) (*Cmd, error) {
	if spec == nil || spec.Process == nil || len(spec.Process.Args) == 0 {
		return nil, errors.New("sandbox: spec without a process")
	}
	if spec.Linux == nil {
		return nil, errors.New("sandbox: spec without namespaces (Linux)")
	}
	if daisPath == "" {
		p, err := ExecPath()
		if err != nil {
			return nil, err
		}
		daisPath = p
	}
	b, err := encodeSpec(spec)
	if err != nil {
		return nil, fmt.Errorf("sandbox: encode spec: %w", err)
	}
	if f := OnCommand; f != nil {
		f(spec)
	}
	attr := &syscall.SysProcAttr{
		Setsid: true,
		// Covers the moments before sandbox-exec sets its own (a change of
		// uid clears it).
		Pdeathsig: syscall.SIGKILL,
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Path != "" {
			return nil, fmt.Errorf("sandbox: joining namespace %s is not supported", ns.Path)
		}
		switch ns.Type {
		case specs.MountNamespace:
			attr.Cloneflags |= unix.CLONE_NEWNS
		case specs.UserNamespace:
			attr.Cloneflags |= unix.CLONE_NEWUSER
			attr.UidMappings = idMap(spec.Linux.UIDMappings)
			attr.GidMappings = idMap(spec.Linux.GIDMappings)
			attr.GidMappingsEnableSetgroups = true
		case specs.PIDNamespace:
			attr.Cloneflags |= unix.CLONE_NEWPID
		case specs.IPCNamespace:
			attr.Cloneflags |= unix.CLONE_NEWIPC
		case specs.UTSNamespace:
			attr.Cloneflags |= unix.CLONE_NEWUTS
		case specs.NetworkNamespace:
			attr.Cloneflags |= unix.CLONE_NEWNET
		default:
			return nil, fmt.Errorf("sandbox: namespace %q is not supported", ns.Type)
		}
	}
	c := &Cmd{ctx: ctx, wire: b, attr: attr, warmAttr: attr, ready: make(chan struct{}), lim: specLimits(spec)}
	if specMode(spec) == ModeLandlock {
		if attr.Cloneflags != 0 {
			return nil, errors.New("sandbox: a Landlock spec has no namespace")
		}
		if c.connect, err = ConnectRuleset(spec.Annotations[AnnotationConnectTCP]); err != nil {
			return nil, err
		}
		if c.shared, c.sharedKey, err = sharedRules(spec); err != nil {
			return nil, err
		}
		if err := makeTmpBase(); err != nil {
			return nil, err
		}
		c.landlock, c.tmpDir = true, spec.Annotations[AnnotationTmpDir]
		c.warmAttr = asContentUser(attr, spec.Process.User)
	} else if attr.Cloneflags&unix.CLONE_NEWNS == 0 {
		return nil, errors.New("sandbox: the spec needs a mount namespace")
	}
	if attr.Cloneflags&unix.CLONE_NEWNET != 0 {
		c.network = Network(cmp.Or(spec.Annotations[AnnotationNetwork], string(NetworkLoopback)))
		if c.network == NetworkOutbound {
			if spec.Annotations[AnnotationNetHelper] == "" || attr.Cloneflags&unix.CLONE_NEWUSER == 0 {
				return nil, errors.New("sandbox: an outbound network spec needs a helper and a user namespace (build it with Spec)")
			}
			c.helper = helperSpec(spec)
		}
	}

	cmd := exec.CommandContext(ctx, daisPath, "sandbox-exec")
	cmd.Env = sandboxExecEnv
	cmd.SysProcAttr = attr
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		return c.kill(cmd.Process.Pid)
	}
	cmd.WaitDelay = 5 * time.Second
	c.Cmd = cmd
	c.key = keyOf(daisPath, c.warmAttr, spec.Annotations[AnnotationConnectTCP], c.sharedKey)
	return c, nil
}

// kill ends the sandbox whose sandbox-exec is pid: SIGKILL to its process
// group (with a PID namespace, its init's death ends every process in it);
// in Landlock mode, sigCleanup to its init, which kills every descendant
// (those that left the process group too) and exits.
func (c *Cmd) kill(pid int) error {
	if c.landlock {
		// The init's Go runtime drops a signal nobody has asked for yet:
		// a cleanup signal that came before the init registered for it
		// was lost, 1 cancel in 10-20 of a just pre-started sandbox (it
		// then took WaitDelay's SIGKILL). The init closes its error pipe
		// once registered (readSetup then closes ready); wait for that,
		// a little while at most.
		t := time.NewTimer(2 * time.Second)
		select {
		case <-c.ready:
		case <-t.C:
		}
		t.Stop()
		if err := syscall.Kill(pid, sigCleanup); err == nil {
			return nil
		}
	}
	// Setsid made the pid the process group id.
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		return syscall.Kill(pid, syscall.SIGKILL)
	}
	return nil
}

// makeTmpBase makes the directories of the Landlock sandboxes' private
// TMPDIRs: tmpBase, 0711, and in it tmpRoot, this server's. Both are the
// server's own, not links. Under a server with root tmpRoot is 1733: a
// pre-started sandbox-exec runs as the content's user already
// (asContentUser) and makes its TMPDIR there itself; no one but the server
// may list it, and the sticky bit keeps each user from removing or
// renaming another's (Landlock hides it from content anyway). Without
// root, content runs as the server's user: 0711.
//
// The first call locks tmpRoot for as long as the server runs and removes
// every other server's directory that no running server holds: what a
// server killed before its sandboxes' Wait left behind. A tmpRoot removed
// meanwhile (a clean-up of /tmp) is made and locked again.
func makeTmpBase() error {
	mode := uint32(0o711)
	if os.Geteuid() == 0 {
		mode = 0o1733
	}
	root := tmpRoot()
	tmpLock.Lock()
	defer tmpLock.Unlock()
	// Every Landlock start comes here: one lstat(2) when all is in place.
	var st unix.Stat_t
	if tmpLock.swept && tmpLock.fd >= 0 && unix.Lstat(root, &st) == nil && st.Dev == tmpLock.dev && st.Ino == tmpLock.ino &&
		st.Mode&unix.S_IFMT == unix.S_IFDIR && st.Mode&0o7777 == mode {
		return nil
	}
	if _, err := ownDir(tmpBase(), 0o711); err != nil {
		return err
	}
	st, err := ownDir(root, mode)
	if err != nil {
		return err
	}
	if tmpLock.fd < 0 || tmpLock.dev != st.Dev || tmpLock.ino != st.Ino {
		fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("sandbox: %s: %w", root, err)
		}
		if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			unix.Close(fd)
			return fmt.Errorf("sandbox: lock %s: %w", root, err)
		}
		if tmpLock.fd >= 0 {
			unix.Close(tmpLock.fd)
		}
		tmpLock.fd, tmpLock.dev, tmpLock.ino = fd, st.Dev, st.Ino
	}
	if !tmpLock.swept {
		tmpLock.swept = true
		sweepTmp()
	}
	return nil
}

// RemoveTmp removes this server's directory of Landlock TMPDIRs and its
// lock, once no sandbox of this server runs any more: at the end of `dais
// serve` and of `dais sandbox selftest`, so that a clean stop leaves
// nothing in /tmp for the next server's sweep. A later Landlock start
// makes it again.
func RemoveTmp() error {
	tmpLock.Lock()
	defer tmpLock.Unlock()
	if tmpLock.fd < 0 {
		return nil // no Landlock start made it
	}
	err := os.RemoveAll(tmpRoot())
	unix.Close(tmpLock.fd)
	tmpLock.fd, tmpLock.dev, tmpLock.ino = -1, 0, 0
	if err != nil {
		return fmt.Errorf("sandbox: remove %s: %w", tmpRoot(), err)
	}
	return nil
}

// tmpLock is the lock on tmpRoot (its open descriptor), and whether the
// other servers' directories were swept.
var tmpLock = struct {
	sync.Mutex
	fd       int
	dev, ino uint64
	swept    bool
}{fd: -1}

// sweepTmp removes the directories in tmpBase of servers that are gone:
// those whose lock it can take.
func sweepTmp() {
	entries, _ := os.ReadDir(tmpBase())
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "s-") || e.Name() == serverTmpName() || !e.IsDir() {
			continue
		}
		p := filepath.Join(tmpBase(), e.Name())
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) == nil {
			os.RemoveAll(p)
		}
		unix.Close(fd)
	}
}

// ownDir makes dir (0700) unless it is there, checks it is a directory of
// this server's user, not a link, and gives it mode.
func ownDir(dir string, mode uint32) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := os.Mkdir(dir, 0o700)
	if err != nil && !errors.Is(err, os.ErrExist) {
		return st, fmt.Errorf("sandbox: make %s: %w", dir, err)
	}
	if err := unix.Lstat(dir, &st); err != nil {
		return st, fmt.Errorf("sandbox: %s: %w", dir, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != os.Geteuid() {
		return st, fmt.Errorf("sandbox: %s is not a directory of this server's user (uid %d): remove it", dir, os.Geteuid())
	}
	if st.Mode&0o7777 != mode {
		// unix.Chmod: os.Chmod spells the sticky bit os.ModeSticky.
		if err := unix.Chmod(dir, mode); err != nil {
			return st, fmt.Errorf("sandbox: %s: %w", dir, err)
		}
	}
	return st, nil
}

// asContentUser is attr for a pre-started Landlock sandbox-exec. Under a
// server with root, it starts as the content's user (Credential) from a
// thread without a bounding set (onUserSpawnerThread), so that it never
// holds a capability and nothing on the start's path changes user: the
// content's thread took the user after the spec came, the init's other
// threads after the content ran (0.3-0.6 ms of a start, p50, the last
// difference from namespaces mode's). A cold sandbox-exec still starts as
// the server's user: it joins the sandbox's cgroups first thing, which
// needs it.
func asContentUser(attr *syscall.SysProcAttr, u specs.User) *syscall.SysProcAttr {
	if os.Geteuid() != 0 || u.UID == 0 {
		return attr
	}
	a := *attr
	a.Credential = &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: slices.Clone(u.AdditionalGids)}
	return &a
}

// OnCommand, when set, is called with every spec Command is given: the
// server logs it at debug level (with Describe). Set it before the first
// Command.
var OnCommand func(*specs.Spec)

// sandboxExecEnv is sandbox-exec's whole environment: nothing of the
// server's. Its Go runtime needs no collector (it allocates a few
// kilobytes, then execs or waits as the sandbox's init) and two Ps, so that
// the init's signal set-up runs beside the content's start.
var sandboxExecEnv = []string{"GOMAXPROCS=2", "GOGC=off"}

// Start starts the sandbox: on a pre-started sandbox-exec when one is
// idle for the same program and namespaces, else on a new one. With a
// network namespace, it pins it (DialContext) and, for outbound network,
// starts the helper that the content waits for.
func (c *Cmd) Start() error {
	if err := c.start(); err != nil {
		return err
	}
	if err := c.attachNetwork(); err != nil {
		c.kill(c.Process.Pid)
		c.Wait()
		return err
	}
	return nil
}

func (c *Cmd) start() error {
	if c.started {
		return errors.New("sandbox: Cmd already started")
	}
	c.started = true
	if err := c.ctx.Err(); err != nil {
		close(c.ready)
		return err
	}
	if c.lim.any() && HaveLimitCgroups() {
		cg, err := newCgroup(c.lim)
		if err != nil {
			close(c.ready)
			return err
		}
		c.cg = cg
	}
	if !c.Cold && len(c.wire) <= maxWarmSpec {
		defer refill(c.key, c.warmAttr, c.extraFiles())
		for w := takeWarm(c.key); w != nil; w = takeWarm(c.key) {
			// Into the cgroup before the spec is sent: the content and all
			// it starts are born inside.
			if c.cg != nil && c.cg.add(w.proc.Pid) != nil {
				w.release()
				continue
			}
			if c.startWarm(w) {
				c.watchMemory()
				c.watchDisk()
				return nil
			}
		}
	}
	err := c.startCold()
	if err != nil && c.cg != nil {
		c.cg.remove()
		c.cg = nil
	}
	if err == nil {
		c.watchMemory()
		c.watchDisk()
	}
	return err
}

func (c *Cmd) startCold() error {
	alive, err := alivePipe()
	if err != nil {
		close(c.ready)
		return err
	}
	specFile, err := memfile("dais-sandbox-spec", c.wire)
	if err != nil {
		close(c.ready)
		return err
	}
	defer specFile.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		close(c.ready)
		return fmt.Errorf("sandbox: error pipe: %w", err)
	}
	c.errR = errR
	c.ExtraFiles = append([]*os.File{specFile, errW, alive}, c.extraFiles()...)
	if c.cg != nil {
		// sandbox-exec joins its cgroups itself, first thing: moved from
		// here only after its exec, it could fork the content before
		// (a fork bomb then escaped the process limit, on an idle machine).
		c.Cmd.Env = append(slices.Clone(sandboxExecEnv), envCgroups+"="+strings.Join(c.cg.procsFiles(), ":"))
	}
	onSpawnerThread(func() { err = c.Cmd.Start() })
	errW.Close()
	if err != nil {
		errR.Close()
		close(c.ready)
		return fmt.Errorf("sandbox: start %s sandbox-exec: %w%s", c.Path, err, startHint(err))
	}
	if c.cg != nil {
		// And from here too, in case it could not.
		if err := c.cg.add(c.Process.Pid); err != nil {
			syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			c.Cmd.Wait()
			errR.Close()
			close(c.ready)
			return err
		}
	}
	go c.readSetup()
	return nil
}

func (c *Cmd) memoryReason() string {
	return "killed: over its " + FormatBytes(c.lim.memory) + " memory limit"
}

// watchMemory reports the memory kills of a sandbox that goes on, every
// half second until it exits.
func (c *Cmd) watchMemory() {
	if c.cg == nil || c.lim.memory <= 0 || c.OnLimit == nil {
		return
	}
	cg, on := c.cg, c.OnLimit
	c.memDone = make(chan struct{})
	exited := c.memDone
	go func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		seen := 0
		for {
			select {
			case <-exited:
				return
			case <-t.C:
			}
			if n := cg.oomKills(); n > seen {
				seen = n
				on(c.memoryReason() + " (a process of the sandbox; " + strconv.Itoa(n) + " so far)")
			}
		}
	}()
}

// ExitReason says why the sandbox ended when dais knows, after Wait: its
// memory limit ("killed: over its 256 MB memory limit"), or "" otherwise.
func (c *Cmd) ExitReason() string { return c.reason }

// extraFiles are the descriptors sandbox-exec gets after the alive pipe:
// in Landlock mode the connect ruleset, as fd 6, and the shared rules, as
// fd 7; for the outbound helper
// the namespaces it joins, from 6 on.
func (c *Cmd) extraFiles() []*os.File {
	if c.connect != nil && c.shared != nil {
		return []*os.File{c.connect, c.shared}
	}
	if c.connect != nil {
		return []*os.File{c.connect}
	}
	return c.passFiles
}

// readSetup reads the error pipe to its end: a setup error, or nothing.
func (c *Cmd) readSetup() {
	defer close(c.ready)
	defer c.errR.Close()
	c.setupErr, _ = io.ReadAll(io.LimitReader(c.errR, 64<<10))
}

// startWarm hands the spec and the standard descriptors to the pre-started
// w. False means w was gone (it is reaped) and nothing was started.
func (c *Cmd) startWarm(w *warmProc) bool {
	fds, childEnds, copies, err := c.stdio()
	if err != nil {
		w.release()
		return false
	}
	sc, err := w.sock.SyscallConn()
	if err == nil {
		cerr := sc.Write(func(fd uintptr) bool {
			err = unix.Sendmsg(int(fd), c.wire, unix.UnixRights(fds...), nil, 0)
			return err != unix.EAGAIN
		})
		if err == nil {
			err = cerr
		}
	}
	for _, f := range childEnds {
		f.Close()
	}
	if err != nil {
		for _, f := range c.pipes {
			f.Close()
		}
		c.pipes = nil
		w.release()
		return false
	}
	w.sock.Close()
	// Only now: had the send failed, the next start would need all of
	// Stdin still unread.
	for _, f := range copies {
		c.copying.Go(f)
	}
	c.warm = true
	c.Process = w.proc
	c.errR = w.errR
	c.exited = make(chan struct{})
	go c.readSetup()
	go c.watchWarm()
	return true
}

// watchWarm ends a pre-started sandbox when its context is done, as
// exec.Cmd does for the others: kill, then, should it still be there after
// WaitDelay (an init that did not act on the cleanup signal), SIGKILL its
// process group and its init.
func (c *Cmd) watchWarm() {
	select {
	case <-c.ctx.Done():
	case <-c.exited:
		return
	}
	pid := c.Process.Pid
	c.kill(pid)
	t := time.NewTimer(c.WaitDelay)
	defer t.Stop()
	select {
	case <-c.exited:
	case <-t.C:
		syscall.Kill(-pid, syscall.SIGKILL)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// stdio gives the descriptors for the content's standard input, output and
// error, as exec.Cmd would: /dev/null for nil, the file itself for an
// *os.File, else a pipe and a copy to run once the descriptors are sent
// (waited for in Wait). childEnds are closed once sent.
func (c *Cmd) stdio() (fds []int, childEnds []*os.File, copies []func(), err error) {
	fail := func(err error) ([]int, []*os.File, []func(), error) {
		for _, f := range append(childEnds, c.pipes...) {
			f.Close()
		}
		c.pipes = nil
		return nil, nil, nil, err
	}
	var outFd = -1
	for i, s := range []any{c.Stdin, c.Stdout, c.Stderr} {
		if i == 2 && c.Stderr != nil && sameWriter(c.Stderr, c.Stdout) && outFd >= 0 {
			fds = append(fds, outFd) // one pipe for both, as exec.Cmd does
			continue
		}
		switch v := s.(type) {
		case nil:
			f, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
			if err != nil {
				return fail(err)
			}
			childEnds = append(childEnds, f)
			fds = append(fds, int(f.Fd()))
		case *os.File:
			fds = append(fds, int(v.Fd()))
		default:
			r, w, err := os.Pipe()
			if err != nil {
				return fail(err)
			}
			if i == 0 {
				childEnds = append(childEnds, r)
				c.pipes = append(c.pipes, w)
				fds = append(fds, int(r.Fd()))
				copies = append(copies, func() {
					io.Copy(w, v.(io.Reader)) // the content may stop reading: errors are its business
					w.Close()
				})
			} else {
				childEnds = append(childEnds, w)
				c.pipes = append(c.pipes, r)
				fds = append(fds, int(w.Fd()))
				copies = append(copies, func() {
					if _, err := io.Copy(v.(io.Writer), r); err != nil {
						c.copyMu.Lock()
						c.copyErr = cmp.Or(c.copyErr, err)
						c.copyMu.Unlock()
					}
				})
			}
		}
		if i == 1 {
			outFd = fds[1]
		}
	}
	return fds, childEnds, copies, nil
}

// sameWriter is a == b, false where the type cannot be compared.
func sameWriter(a, b io.Writer) (same bool) {
	defer func() { recover() }()
	return a == b
}

// Signal sends sig to the sandbox. It first waits (up to 2 s) until the
// sandbox is ready for it: sandbox-exec registers the signals its init
// forwards beside the content's start, and a signal that came before
// would end the init, and so SIGKILL the content instead of giving it the
// signal. SIGKILL does not wait.
func (c *Cmd) Signal(sig os.Signal) error {
	if c.Process == nil {
		return errors.New("sandbox: not started")
	}
	if sig != syscall.SIGKILL {
		t := time.NewTimer(2 * time.Second)
		select {
		case <-c.ready:
		case <-t.C:
		}
		t.Stop()
	}
	return c.Process.Signal(sig)
}

// Wait waits for the content to exit. If the sandbox could not be built it
// returns a *SetupError (exit status ExitSetup).
//
// Once the content's main process has exited, Wait SIGKILLs what is left of
// its process group (children it left behind), then reaps it.
func (c *Cmd) Wait() error {
	if c.Process == nil {
		return errors.New("sandbox: not started")
	}
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, c.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			break
		}
	}
	c.contentExit()
	syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
	var err error
	if c.warm {
		err = c.waitWarm()
	} else {
		err = c.Cmd.Wait()
	}
	netErr := c.detachNetwork()
	// sandbox-exec and its init hold the write end close-on-exec, so it is
	// closed by now; the deadline only guards against a surprise.
	c.errR.SetReadDeadline(time.Now().Add(time.Second))
	<-c.ready
	if c.tmpDir != "" {
		os.RemoveAll(c.tmpDir)
	}
	if c.memDone != nil {
		close(c.memDone)
	}
	if c.diskDone != nil {
		close(c.diskDone)
	}
	c.diskMu.Lock()
	c.reason = c.diskReason
	c.diskMu.Unlock()
	var ee *exec.ExitError
	if c.reason == "" && len(c.lim.disk) > 0 && errors.As(err, &ee) && ee.ExitCode() == 128+int(unix.SIGXFSZ) {
		c.reason = "killed: wrote a file over its disk limit"
	}
	if c.cg != nil {
		if c.cg.oomKills() > 0 {
			c.reason = c.memoryReason()
		} else if n := c.cg.pidsRefused(); n > 0 && err != nil {
			c.reason = fmt.Sprintf("ended after its process limit of %d refused %d new processes", c.lim.pids, n)
		}
		c.cg.remove()
	}
	if len(c.setupErr) > 0 {
		step, msg, _ := strings.Cut(string(c.setupErr), "\x00")
		if out := strings.TrimSpace(c.helperOut.String()); strings.HasPrefix(step, "network") && out != "" {
			msg += "; " + NetHelperName + " said: " + out
		}
		return &SetupError{Step: step, Err: msg}
	}
	if netErr != nil {
		return fmt.Errorf("sandbox: %w (and the content was ended: %v)", netErr, err)
	}
	return err
}

// waitWarm is exec.Cmd.Wait for a pre-started sandbox-exec: reap it, let the
// output copies finish (for at most WaitDelay once it has exited: children
// may hold the pipes), and report like exec.Cmd.
func (c *Cmd) waitWarm() error {
	state, err := c.Process.Wait()
	close(c.exited)
	if err != nil {
		return err
	}
	c.ProcessState = state
	done := make(chan struct{})
	go func() { c.copying.Wait(); close(done) }()
	t := time.NewTimer(c.WaitDelay)
	select {
	case <-done:
	case <-t.C:
		for _, f := range c.pipes {
			f.Close()
		}
		<-done
	}
	t.Stop()
	for _, f := range c.pipes {
		f.Close()
	}
	if !state.Success() {
		return &exec.ExitError{ProcessState: state}
	}
	c.copyMu.Lock()
	defer c.copyMu.Unlock()
	return c.copyErr
}

// Output runs the sandbox and returns its standard output (Stdout must be unset).
func (c *Cmd) Output() ([]byte, error) {
	if c.Stdout != nil {
		return nil, errors.New("sandbox: Stdout already set")
	}
	var b bytes.Buffer
	c.Stdout = &b
	err := c.Run()
	return b.Bytes(), err
}

// CombinedOutput runs the sandbox and returns its standard output and
// error together (Stdout and Stderr must be unset).
func (c *Cmd) CombinedOutput() ([]byte, error) {
	if c.Stdout != nil || c.Stderr != nil {
		return nil, errors.New("sandbox: Stdout or Stderr already set")
	}
	var b bytes.Buffer
	c.Stdout, c.Stderr = &b, &b
	err := c.Run()
	return b.Bytes(), err
}

// Run starts the sandbox and waits for it.
func (c *Cmd) Run() error {
	if err := c.Start(); err != nil {
		return err
	}
	return c.Wait()
}

func startHint(err error) string {
	switch {
	case errors.Is(err, syscall.EPERM):
		return " (creating namespaces needs CAP_SYS_ADMIN: run the container with --cap-add SYS_ADMIN or --privileged; a seccomp or AppArmor profile may also deny it)"
	case errors.Is(err, syscall.EINVAL), errors.Is(err, syscall.ENOSPC):
		return " (user namespaces may be disabled: check sysctl user.max_user_namespaces)"
	}
	return ""
}

func idMap(m []specs.LinuxIDMapping) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(m))
	for i, e := range m {
		out[i] = syscall.SysProcIDMap{ContainerID: int(e.ContainerID), HostID: int(e.HostID), Size: int(e.Size)}
	}
	return out
}

// memfile is a sealed, close-on-exec memfd holding b, positioned at 0.
func memfile(name string, b []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("sandbox: memfd for the spec: %w", err)
	}
	f := os.NewFile(uintptr(fd), name)
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, fmt.Errorf("sandbox: write spec: %w", err)
	}
	unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SEAL|unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("sandbox: rewind spec: %w", err)
	}
	return f, nil
}

var (
	aliveOnce sync.Once
	aliveR    *os.File
	aliveErr  error
)

// alivePipe returns the read end of a pipe whose write end this process
// holds until it dies: sandbox-exec polls it after setting its parent-death
// signal, which closes the race where the server dies before that.
func alivePipe() (*os.File, error) {
	aliveOnce.Do(func() {
		r, w, err := os.Pipe()
		if err != nil {
			aliveErr = fmt.Errorf("sandbox: alive pipe: %w", err)
			return
		}
		aliveR = r
		aliveW = w
	})
	return aliveR, aliveErr
}

// aliveW is never written or closed: kept reachable so it is not finalized.
var aliveW *os.File

// spawnerThread is an OS thread locked for the life of the process that
// starts sandbox-execs. The parent-death signal of a child is tied to the
// thread that forked it, and Go ends a locked thread whose goroutine exits;
// starting every sandbox from one makes the signal mean "the server died".
type spawnerThread struct {
	once sync.Once
	ch   chan func()
	err  error // setup's: the thread is gone
}

// run runs f on the thread, made on the first call and given setup first.
func (s *spawnerThread) run(setup func() error, f func()) error {
	s.once.Do(func() {
		s.ch = make(chan func())
		ready := make(chan struct{})
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			if setup != nil {
				s.err = setup()
			}
			close(ready)
			if s.err != nil {
				return // and the thread with it, as it is
			}
			for g := range s.ch {
				g()
			}
		}()
		<-ready
	})
	if s.err != nil {
		return s.err
	}
	done := make(chan struct{})
	s.ch <- func() { f(); close(done) }
	<-done
	return nil
}

var spawner, userSpawner spawnerThread

// onSpawnerThread runs f on the spawner thread.
func onSpawnerThread(f func()) { spawner.run(nil, f) }

// onUserSpawnerThread runs f on a second spawner thread, one with an empty
// bounding set (a thread's own: the server's other threads keep theirs),
// which its children inherit: a sandbox-exec started from it as the
// content's user (asContentUser) never gains a capability, and the content
// it starts has none in its bounding set, as when sandbox-exec, started
// with root, emptied it itself. An error: no such thread here (the server
// lacks CAP_SETPCAP).
func onUserSpawnerThread(f func()) error { return userSpawner.run(dropBounding, f) }

// HelperName is the small program that does what `dais sandbox-exec` does,
// built from this package alone (cmd/dais-sandbox-exec). dais runs it in
// place of re-executing itself when it sits next to the dais executable:
// its runtime and package initialisation take about 1 ms where dais's
// take about 4 ms, on every content process start.
const HelperName = "dais-sandbox-exec"

var execPath struct {
	once sync.Once
	path string
	err  error
}

// ExecPath is the program Command runs for daisPath "": HelperName in the
// directory of this executable when it is a regular file with the same
// owner, writable by that owner only; otherwise this executable (`dais
// sandbox-exec`). A helper from another build is refused by sandbox-exec
// with a clear setup error (the spec's wire form is versioned).
func ExecPath() (string, error) {
	execPath.once.Do(func() {
		self, err := os.Executable()
		if err != nil {
			execPath.err = fmt.Errorf("sandbox: find the dais executable: %w", err)
			return
		}
		execPath.path = self
		if filepath.Base(self) == HelperName {
			return
		}
		helper := filepath.Join(filepath.Dir(self), HelperName)
		var hs, ss unix.Stat_t
		if unix.Stat(helper, &hs) != nil || unix.Stat(self, &ss) != nil {
			return
		}
		if hs.Mode&unix.S_IFMT == unix.S_IFREG && hs.Mode&0o022 == 0 && hs.Mode&0o100 != 0 && hs.Uid == ss.Uid {
			execPath.path = helper
		}
	})
	return execPath.path, execPath.err
}
