package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// ---- inside sandbox-exec

// loopbackUp brings lo up in the sandbox's new network namespace (while
// sandbox-exec is still root of its user namespace).
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("read flags of lo: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	return nil
}

// routeWait bounds the wait of a sandbox with outbound network for its
// helper to configure the network.
const routeWait = 10 * time.Second

// waitForRoute waits until the namespace has a default route: the helper
// (started by the server right after this sandbox) configured tap0. The
// content starts only then, so that its first connection does not fail.
func waitForRoute(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	pause := 200 * time.Microsecond
	for {
		if ok, err := hasDefaultRoute(); err != nil {
			return err
		} else if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no default route after %s: the server's %s helper did not configure the network (its output is in this error or the server's log)", limit, NetHelperName)
		}
		time.Sleep(pause)
		pause = min(2*pause, 5*time.Millisecond)
	}
}

func hasDefaultRoute() (bool, error) {
	b, err := os.ReadFile("/proc/self/net/route")
	if err != nil {
		return false, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 1 && f[1] == "00000000" {
			return true, nil
		}
	}
	return false, nil
}

// readOnlyAll makes every mount this mount namespace shows read-only (the
// top one at each mount point; what lies beneath is unreachable).
func readOnlyAll() error {
	ms, err := mountinfo.GetMounts(nil)
	if err != nil {
		return fmt.Errorf("read mountinfo: %w", err)
	}
	var points []string
	for _, m := range ms {
		points = append(points, m.Mountpoint)
	}
	slices.Sort(points)
	for _, p := range slices.Compact(points) {
		var st unix.Statfs_t
		if err := unix.Statfs(p, &st); err != nil || st.Flags&unix.ST_RDONLY != 0 {
			continue // gone, or read-only already
		}
		if err := remount(p, unix.MS_RDONLY); err != nil && !errors.Is(err, unix.EINVAL) {
			return err
		}
	}
	return nil
}

// ---- in the server

// DialContext connects to addr (network "tcp", "tcp4", ...) as the content
// of c would: inside its network namespace when it has one (namespaces
// mode), else from the server's. The namespace is pinned from Start to
// Wait, so the address cannot lead into another one.
func (c *Cmd) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c.nsMu.RLock()
	defer c.nsMu.RUnlock()
	if c.network == "" {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	if c.netns == nil {
		return nil, errors.New("sandbox: dial: the sandbox is not running")
	}
	return dialIn(ctx, c.netns, network, addr)
}

var hostNS struct {
	once sync.Once
	f    *os.File
	err  error
}

// hostNet is the server's own network namespace, to return to after a dial.
func hostNet() (*os.File, error) {
	hostNS.once.Do(func() {
		// Any thread but one locked by dialIn is in the server's namespace.
		hostNS.f, hostNS.err = os.Open("/proc/thread-self/ns/net")
		if hostNS.err != nil {
			hostNS.err = fmt.Errorf("sandbox: open the server's network namespace: %w", hostNS.err)
		}
	})
	return hostNS.f, hostNS.err
}

// dialIn dials from inside the network namespace ns: on a goroutine locked
// to its thread, which enters ns, creates and connects the socket (a
// socket stays in the namespace it was made in) and goes back. When going
// back fails, the thread stays locked and Go ends it with the goroutine.
// (Threads the runtime starts meanwhile are cloned from its clean template
// thread, not from a locked one.)
func dialIn(ctx context.Context, ns *os.File, network, addr string) (net.Conn, error) {
	home, err := hostNet()
	if err != nil {
		return nil, err
	}
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("sandbox: enter the content's network namespace: %w", err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if berr := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); berr != nil {
			// Leave the thread locked: it is discarded when we return.
			if c != nil {
				c.Close()
			}
			ch <- result{nil, fmt.Errorf("sandbox: return to the server's network namespace: %w", berr)}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

var tunOnce struct {
	once sync.Once
	err  error
}

// ensureTun makes /dev/net/tun (c 10:200, 0600) when it is missing: Docker
// gives containers no /dev/net, but its default device rules allow the tun
// device (c 10:200 rwm), so root in the container may create the node.
func ensureTun() error {
	tunOnce.once.Do(func() {
		const p = "/dev/net/tun"
		if _, err := os.Stat(p); err == nil {
			return
		}
		if err := os.MkdirAll("/dev/net", 0o755); err != nil {
			tunOnce.err = fmt.Errorf("sandbox: make /dev/net: %w (run the container with --device /dev/net/tun, or set Applications.OutboundNetwork = false)", err)
			return
		}
		if err := unix.Mknod(p, unix.S_IFCHR|0o600, int(unix.Mkdev(10, 200))); err != nil && !errors.Is(err, os.ErrExist) {
			tunOnce.err = fmt.Errorf("sandbox: create %s: %w (run the container with --device /dev/net/tun, or set Applications.OutboundNetwork = false)", p, err)
			return
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			tunOnce.err = fmt.Errorf("sandbox: open %s: %w (the device cgroup denies it: run the container with --device /dev/net/tun, or set Applications.OutboundNetwork = false)", p, err)
			return
		}
		f.Close()
	})
	return tunOnce.err
}

// PrepareOutbound checks that content can get outbound network here:
// slirp4netns is installed and /dev/net/tun exists (made when missing). It
// returns the helper's path.
func PrepareOutbound() (string, error) {
	p, err := FindNetHelper()
	if err != nil {
		return "", err
	}
	return p, ensureTun()
}

// attachNetwork pins the network namespace of the started sandbox and,
// for outbound network, starts its helper.
func (c *Cmd) attachNetwork() error {
	if c.network == "" {
		return nil
	}
	pid := strconv.Itoa(c.Process.Pid)
	netns, err := os.Open("/proc/" + pid + "/ns/net")
	if errors.Is(err, os.ErrNotExist) {
		return nil // sandbox-exec exited already (a setup error): Wait says why
	}
	if err != nil {
		return fmt.Errorf("sandbox: pin the network namespace: %w", err)
	}
	c.nsMu.Lock()
	c.netns = netns
	c.nsMu.Unlock()
	if c.network != NetworkOutbound {
		return nil
	}
	if err := ensureTun(); err != nil {
		return err
	}
	userns, err := os.Open("/proc/" + pid + "/ns/user")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sandbox: open the user namespace: %w", err)
	}
	defer userns.Close()
	h, err := Command(context.Background(), c.Path, c.helper)
	if err != nil {
		return fmt.Errorf("sandbox: outbound network helper: %w", err)
	}
	h.Cold = true
	h.passFiles = []*os.File{userns, netns}
	h.Stdout, h.Stderr = &c.helperOut, &c.helperOut
	if err := h.Start(); err != nil {
		return fmt.Errorf("sandbox: start the outbound network helper %s: %w", c.helper.Process.Args[0], err)
	}
	c.helperCmd = h
	c.helperDone = make(chan struct{})
	go func() {
		err := h.Wait()
		c.netMu.Lock()
		defer c.netMu.Unlock()
		c.helperErr = err
		close(c.helperDone)
		if !c.contentExited {
			// The content runs on without its network: end it, so that it
			// is started again with a new one (Wait says why). Not yet
			// reaped (contentExited is set before), so the pid is its own.
			c.helperDied = true
			c.kill(c.Process.Pid)
		}
	}()
	return nil
}

// contentExit tells the helper's watcher that the content has exited (Wait
// calls it before reaping the content).
func (c *Cmd) contentExit() {
	c.netMu.Lock()
	c.contentExited = true
	c.netMu.Unlock()
}

// detachNetwork stops the helper and unpins the namespace (in Wait, once
// the content is gone). It returns what went wrong with the network.
func (c *Cmd) detachNetwork() error {
	var err error
	if c.helperCmd != nil {
		c.helperCmd.kill(c.helperCmd.Process.Pid)
		<-c.helperDone
		c.netMu.Lock()
		if c.helperDied {
			err = fmt.Errorf("the outbound network helper %s exited (%v): %s", NetHelperName, c.helperErr, strings.TrimSpace(c.helperOut.String()))
		}
		c.netMu.Unlock()
	}
	c.nsMu.Lock()
	if c.netns != nil {
		c.netns.Close()
		c.netns = nil
	}
	c.nsMu.Unlock()
	return err
}

// lockedBuffer is a bounded buffer written by the helper's output copies.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := 8<<10 - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
