package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// File descriptors sandbox-exec inherits (os/exec ExtraFiles start at 3).
const (
	fdSpec  = 3 // the JSON spec, a sealed memfd
	fdError = 4 // write end of the setup-error pipe
	fdAlive = 5 // read end of the server's alive pipe: EOF once the server is gone
)

// Cmd is a sandboxed content process: an exec.Cmd running
// `dais sandbox-exec`. Set Stdin, Stdout and Stderr on it, then call Start
// and Wait (or Run, Output, CombinedOutput) of Cmd, not of the embedded exec.Cmd: Cmd.Start starts
// the process from a thread that lives as long as the server, so that the
// parent-death signal fires only when the server dies (golang/go#27505), and
// Cmd.Wait reports a sandbox that could not be built as a *SetupError.
//
// Cancelling the context SIGKILLs the sandbox's process group; with the PID
// namespace (the default) that kills every process of the content.
type Cmd struct {
	*exec.Cmd
	spec       *os.File
	errR, errW *os.File
	started    bool
}

// Command prepares `daisPath sandbox-exec` to run spec. daisPath "" means
// this executable. The process gets an empty environment (spec.Process.Env is
// applied inside) and its own session.
func Command(ctx context.Context, daisPath string, spec *specs.Spec) (*Cmd, error) {
	if spec == nil || spec.Process == nil || len(spec.Process.Args) == 0 {
		return nil, errors.New("sandbox: spec without a process")
	}
	if daisPath == "" {
		p, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("sandbox: find the dais executable: %w", err)
		}
		daisPath = p
	}
	alive, err := alivePipe()
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("sandbox: encode spec: %w", err)
	}
	specFile, err := memfile("dais-sandbox-spec", b)
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		specFile.Close()
		return nil, fmt.Errorf("sandbox: error pipe: %w", err)
	}

	cmd := exec.CommandContext(ctx, daisPath, "sandbox-exec")
	// Nothing of the server's environment. sandbox-exec's Go runtime needs
	// one P and no collector: it allocates a few kilobytes, then execs or
	// waits as the sandbox's init.
	cmd.Env = []string{"GOMAXPROCS=1", "GOGC=off"}
	cmd.ExtraFiles = []*os.File{specFile, errW, alive}
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
	if attr.Cloneflags&unix.CLONE_NEWNS == 0 {
		return nil, errors.New("sandbox: the spec needs a mount namespace")
	}
	cmd.SysProcAttr = attr
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		// Setsid made the pid the process group id.
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if err != nil {
			return cmd.Process.Kill()
		}
		return nil
	}
	cmd.WaitDelay = 5 * time.Second
	return &Cmd{Cmd: cmd, spec: specFile, errR: errR, errW: errW}, nil
}

// Start starts the sandbox from the spawner thread.
func (c *Cmd) Start() error {
	if c.started {
		return errors.New("sandbox: Cmd already started")
	}
	c.started = true
	var err error
	onSpawnerThread(func() { err = c.Cmd.Start() })
	c.spec.Close()
	c.errW.Close()
	if err != nil {
		c.errR.Close()
		return fmt.Errorf("sandbox: start %s sandbox-exec: %w%s", c.Path, err, startHint(err))
	}
	return nil
}

// Wait waits for the content to exit. If the sandbox could not be built it
// returns a *SetupError (exit status ExitSetup).
//
// Once the content's main process has exited, Wait SIGKILLs what is left of
// its process group (children it left behind), then reaps it.
func (c *Cmd) Wait() error {
	if c.Process != nil {
		var info unix.Siginfo
		for {
			err := unix.Waitid(unix.P_PID, c.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
			if err != unix.EINTR {
				break
			}
		}
		syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
	}
	err := c.Cmd.Wait()
	defer c.errR.Close()
	// sandbox-exec holds the write end close-on-exec, so it is closed by now;
	// the deadline only guards against a surprise.
	c.errR.SetReadDeadline(time.Now().Add(time.Second))
	b, _ := io.ReadAll(io.LimitReader(c.errR, 64<<10))
	if len(b) > 0 {
		step, msg, _ := strings.Cut(string(b), "\x00")
		return &SetupError{Step: step, Err: msg}
	}
	return err
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
	spawnOnce sync.Once
	spawnCh   chan func()
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

// onSpawnerThread runs f on one OS thread that is locked for the life of the
// process. The parent-death signal of a child is tied to the thread that
// forked it, and Go ends a locked thread whose goroutine exits; starting
// every sandbox here makes the signal mean "the server died".
func onSpawnerThread(f func()) {
	spawnOnce.Do(func() {
		spawnCh = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: the thread lives as long as the process
			for g := range spawnCh {
				g()
			}
		}()
	})
	done := make(chan struct{})
	spawnCh <- func() { f(); close(done) }
	<-done
}
