//go:build linux

package sandbox

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Pre-started sandbox-exec processes. Starting one costs more than the
// sandbox's own work: clone(2) with the namespaces, exec, and the Go
// runtime's start, about 2 ms of the 4 ms a sandbox takes on a small
// machine. So Cmd.Start hands its spec to a sandbox-exec started before
// it was needed, waiting in its namespaces on a socket (fd 3) for the spec
// and the content's standard descriptors, and starts the next one at once.
// One is kept idle per program and set of namespaces (SetPrestart); in
// Landlock mode per connect list, set of shared rules and content user.
//
// What a pre-started sandbox-exec has before its spec: new, empty
// namespaces, /dev/null for 0, 1 and 2, the same environment (none of the
// server's), the error pipe and the alive pipe; it has read nothing and
// mounted nothing. A Landlock one under a server with root runs as the
// content's user, with no capability (asContentUser). It dies with the
// server (parent-death signal, started from a spawner thread) and exits
// when the server closes its socket.

type warmKey struct {
	path  string
	flags uintptr
	maps  string
	// connect is the Landlock connect ruleset's port list ("" in
	// namespaces mode): its descriptor is given at the start.
	connect string
	// shared identifies the Landlock rules every content shares (see
	// sharedRules), built by a pre-started sandbox-exec while it waits.
	shared string
	// user is the user a pre-started Landlock sandbox-exec runs as
	// (asContentUser), "" for the server's.
	user string
}

func keyOf(path string, attr *syscall.SysProcAttr, connect, shared string) warmKey {
	k := warmKey{path, attr.Cloneflags, fmt.Sprint(attr.UidMappings, attr.GidMappings), connect, shared, ""}
	if c := attr.Credential; c != nil {
		k.user = fmt.Sprint(c.Uid, c.Gid, c.Groups)
	}
	return k
}

type warmProc struct {
	proc *os.Process
	sock *os.File // the server's end of the socket pair
	errR *os.File // read end of the error pipe
}

// release lets w go: it exits when its socket closes; it is reaped.
func (w *warmProc) release() {
	w.sock.Close()
	w.errR.Close()
	go w.proc.Wait()
}

var warm = struct {
	sync.Mutex
	keep     int
	idle     map[warmKey][]*warmProc
	starting map[warmKey]int
	// asServer are the keys whose sandbox-exec could not start as the
	// content's user (see prestartKey).
	asServer map[warmKey]bool
}{keep: 1, idle: map[warmKey][]*warmProc{}, starting: map[warmKey]int{}, asServer: map[warmKey]bool{}}

// SetPrestart sets how many sandbox-exec processes are kept started and
// idle for each program and set of namespaces (default 1); 0 starts every
// sandbox from scratch and releases the idle ones.
func SetPrestart(n int) {
	warm.Lock()
	warm.keep = max(n, 0)
	var drop []*warmProc
	for k, l := range warm.idle {
		if len(l) > warm.keep {
			drop = append(drop, l[warm.keep:]...)
			warm.idle[k] = l[:warm.keep]
		}
	}
	warm.Unlock()
	for _, w := range drop {
		w.release()
	}
}

// WaitPrestarts waits, for d at most, until no pre-started sandbox-exec is
// being started (the refill after a start), and tells whether none is. A
// benchmark measures a start after the previous start's refill is done:
// a Go program's start, overlapping the next measured start, is its
// largest cost on a small machine.
func WaitPrestarts(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		warm.Lock()
		busy := 0
		for _, n := range warm.starting {
			busy += n
		}
		warm.Unlock()
		if busy == 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(time.Millisecond)
	}
}

// takeWarm returns an idle pre-started sandbox-exec for key, or nil.
func takeWarm(key warmKey) *warmProc {
	warm.Lock()
	defer warm.Unlock()
	l := warm.idle[key]
	if len(l) == 0 {
		return nil
	}
	w := l[len(l)-1]
	warm.idle[key] = l[:len(l)-1]
	return w
}

// refill starts, in the background, what key lacks of its idle processes.
func refill(key warmKey, attr *syscall.SysProcAttr, extra []*os.File) {
	warm.Lock()
	n := warm.keep - len(warm.idle[key]) - warm.starting[key]
	if n > 0 {
		warm.starting[key] += n
	}
	warm.Unlock()
	for range n {
		go func() {
			w, err := prestartKey(key, attr, extra)
			warm.Lock()
			warm.starting[key]--
			if err == nil && len(warm.idle[key]) < warm.keep {
				warm.idle[key] = append(warm.idle[key], w)
				w = nil
			}
			warm.Unlock()
			if w != nil {
				w.release()
			}
		}()
	}
}

// errNoUserSpawner: no thread without a bounding set to start a
// sandbox-exec as the content's user from (onUserSpawnerThread).
var errNoUserSpawner = errors.New("sandbox: no spawner thread without a bounding set")

// prestartEnv is a pre-started sandbox-exec's environment: one P is enough,
// as its init registers its signals while it waits for the spec (a second
// P, for that to run beside the sandbox's construction, only costs CPU
// here: 0.80x bwrap's starts per second with two, 0.92x with one, same
// latency).
var prestartEnv = []string{"GOMAXPROCS=1", "GOGC=off"}

// prestartKey starts a sandbox-exec for key. One that should start as
// the content's user (attr.Credential) and cannot (the program is not
// executable by that user, or the server cannot empty a thread's bounding
// set) starts as the server's user instead, and so do key's next ones:
// that sandbox-exec changes user at the start, as a cold one does.
func prestartKey(key warmKey, attr *syscall.SysProcAttr, extra []*os.File) (*warmProc, error) {
	if attr.Credential == nil {
		return prestart(key.path, attr, extra)
	}
	warm.Lock()
	asServer := warm.asServer[key]
	warm.Unlock()
	if !asServer {
		w, err := prestart(key.path, attr, extra)
		if err == nil {
			return w, nil
		}
		if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) || errors.Is(err, errNoUserSpawner) {
			warm.Lock()
			warm.asServer[key] = true
			warm.Unlock()
		}
	}
	a := *attr
	a.Credential = nil
	return prestart(key.path, &a, extra)
}

// prestart starts a sandbox-exec that waits for its spec on a socket.
func prestart(path string, attr *syscall.SysProcAttr, extra []*os.File) (*warmProc, error) {
	alive, err := alivePipe()
	if err != nil {
		return nil, err
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("sandbox: socket pair: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "sandbox-exec socket"), os.NewFile(uintptr(fds[1]), "sandbox-exec socket")
	defer theirs.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		ours.Close()
		return nil, fmt.Errorf("sandbox: error pipe: %w", err)
	}
	defer errW.Close()
	null, err := os.Open(os.DevNull)
	if err != nil {
		ours.Close()
		errR.Close()
		return nil, err
	}
	defer null.Close()
	var p *os.Process
	start := func() {
		p, err = os.StartProcess(path, []string{path, "sandbox-exec"}, &os.ProcAttr{
			Env:   prestartEnv,
			Files: append([]*os.File{null, null, null, theirs, errW, alive}, extra...),
			Sys:   attr,
		})
	}
	if attr.Credential == nil {
		onSpawnerThread(start)
	} else if serr := onUserSpawnerThread(start); serr != nil {
		err = fmt.Errorf("%w: %v", errNoUserSpawner, serr)
	}
	if err != nil {
		ours.Close()
		errR.Close()
		return nil, err
	}
	return &warmProc{proc: p, sock: ours, errR: errR}, nil
}
