//go:build linux && !dais_sandbox_exec

package sandbox

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/sys/capability"
	"golang.org/x/sys/unix"
)

// Probe is `dais sandbox probe`: run INSIDE a sandbox, it tries what content
// must not be able to do (and what it must), one line per check:
// "ok <check>" or "FAIL <check>: <detail>". It returns the number of failures.
// SelfTest runs it; it can be run by hand through any sandbox.
func Probe(args []string, w io.Writer) int {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(w)
	var hidden, readOnly, writable, absent, masks, envAbsent list
	fs.Var(&hidden, "hidden", "a `file` that must be unreadable (repeatable)")
	fs.Var(&readOnly, "readonly", "a `dir` where creating a file must fail (repeatable)")
	fs.Var(&writable, "writable", "a `dir` where creating a file must work (repeatable)")
	fs.Var(&absent, "absent", "a `path` that must not exist (repeatable)")
	fs.Var(&masks, "mask", "a masked `dir` that must not be unmounted or remounted (repeatable)")
	fs.Var(&envAbsent, "env-absent", "an environment `variable` that must be unset (repeatable)")
	uid := fs.Int("uid", -1, "expected uid")
	gid := fs.Int("gid", -1, "expected gid")
	serverPid := fs.Int("server-pid", 0, "host `pid` of the server, which must not be signalled or traced")
	pidns := fs.Bool("pidns", false, "the sandbox has its own PID namespace (--server-pid is then a host pid)")
	marker := fs.String("marker", "probe", "`name` of the files written in writable dirs")
	sleep := fs.Duration("sleep", 0, "after the checks, sleep this long")
	child := fs.Bool("child", false, "before sleeping, start a child that sleeps an hour (for the parent-death test)")
	var otherPids, connect, links list
	fs.Var(&otherPids, "other-pid", "`pid` of another content's process: no signal, ptrace, environ, fd or root (repeatable)")
	fs.Var(&connect, "connect", "a TCP `port` on 127.0.0.1 (another content's) that must refuse this content (repeatable)")
	fs.Var(&links, "link-target", "a `file` (the database) that a symlink or hard link in the first --writable dir must not expose (repeatable)")
	allowBnd := fs.Bool("allow-bounding", false, "a server without root cannot empty the bounding set: accept it (no_new_privs keeps it unusable)")
	listen := fs.Int("listen", 0, "TCP `port` of this content: binding it must work, and it is served while sleeping")
	bindOther := fs.Int("bind-other", 0, "a TCP `port` that is not this content's: binding it must fail")
	abstract := fs.String("abstract", "", "`name` of an abstract Unix socket of the server that must refuse this content")
	var connectAddrs, reach, scanPids list
	fs.Var(&connectAddrs, "connect-addr", "a TCP `host:port` that must refuse this content (repeatable)")
	fs.Var(&reach, "reach", "a TCP `host:port` this content must reach (repeatable)")
	fs.Var(&scanPids, "scan-pid", "a `pid` whose /proc/PID/net/tcp and tcp6 are read: no listener found there (nor in this sandbox's own) may accept this content (repeatable)")
	nameserver := fs.String("nameserver", "", "the `address` /etc/resolv.conf must name first")
	if err := fs.Parse(args); err != nil {
		return 1
	}
	failures := 0
	check := func(name string, err error) {
		if err != nil {
			failures++
			fmt.Fprintf(w, "FAIL %s: %v\n", name, err)
			return
		}
		fmt.Fprintf(w, "ok %s\n", name)
	}

	for _, p := range hidden {
		_, err := os.ReadFile(p)
		check("hidden "+p, wantErr(err, "read it"))
	}
	for _, p := range absent {
		_, err := os.Lstat(p)
		if err == nil {
			err = errors.New("it exists")
		} else if errors.Is(err, os.ErrNotExist) {
			err = nil
		}
		check("absent "+p, err)
	}
	for _, d := range readOnly {
		f := filepath.Join(d, "."+*marker+"-write-test")
		err := os.WriteFile(f, []byte("x"), 0o644)
		check("read-only "+d, wantErr(err, "created "+f))
	}
	for i, d := range writable {
		d = os.ExpandEnv(d) // "$TMPDIR": the private one of Landlock mode
		writable[i] = d
		f := filepath.Join(d, *marker)
		check("writable "+d, os.WriteFile(f, []byte(*marker), 0o644))
	}
	for _, m := range masks {
		check("umount "+m, wantErr(unix.Unmount(m, unix.MNT_DETACH), "unmounted it"))
		check("remount rw "+m, wantErr(unix.Mount("", m, "", unix.MS_REMOUNT|unix.MS_BIND, ""), "remounted it"))
	}
	check("mount tmpfs", wantErr(unix.Mount("tmpfs", "/tmp", "tmpfs", 0, ""), "mounted a tmpfs"))
	if *uid >= 0 {
		check("uid", equal(os.Getuid(), *uid, "uid"))
		check("euid", equal(os.Geteuid(), *uid, "euid"))
	}
	if *gid >= 0 {
		check("gid", equal(os.Getgid(), *gid, "gid"))
		groups, err := os.Getgroups()
		if err == nil {
			for _, g := range groups {
				if g == 0 {
					err = errors.New("member of group 0")
				}
			}
		}
		check("groups", err)
	}
	// Raw syscalls on this thread: Go's syscall.Setuid would ask every thread.
	_, _, e := unix.RawSyscall(unix.SYS_SETUID, 0, 0, 0)
	check("setuid(0)", wantErr(errnoErr(e), "became root"))
	_, _, e = unix.RawSyscall(unix.SYS_SETGID, 0, 0, 0)
	check("setgid(0)", wantErr(errnoErr(e), "became group 0"))
	check("regain a capability", regainCap())
	status, err := os.ReadFile("/proc/self/status")
	check("read /proc/self/status", err)
	for _, k := range []string{"CapInh", "CapEff", "CapPrm", "CapBnd", "CapAmb"} {
		if k == "CapBnd" && *allowBnd {
			fmt.Fprintln(w, "note CapBnd kept: the server has no root to empty it; no_new_privs keeps exec from using it")
			continue
		}
		check(k+" is 0", statusField(string(status), k, "0000000000000000"))
	}
	check("NoNewPrivs is 1", statusField(string(status), "NoNewPrivs", "1"))
	for _, k := range envAbsent {
		_, set := os.LookupEnv(k)
		var err error
		if set {
			err = fmt.Errorf("%s is set", k)
		}
		check("env "+k+" absent", err)
	}
	check("no inherited fds", openFds())
	if *serverPid > 0 {
		// SIGWINCH: ignored by default, so a hit harms nothing; SelfTest
		// also checks from outside that the server got none.
		err := unix.Kill(*serverPid, unix.SIGWINCH)
		if err == nil && *pidns {
			// pid numbers are the sandbox's own: whatever was hit is inside it.
			fmt.Fprintf(w, "note pid %d is a process of this sandbox, not the server\n", *serverPid)
			err = errors.New("not the server")
		}
		check("signal the server", wantErr(err, "could signal it"))
		err = unix.PtraceAttach(*serverPid)
		if err == nil {
			unix.PtraceDetach(*serverPid)
			if *pidns {
				err = errors.New("not the server")
			}
		}
		check("ptrace the server", wantErr(err, "attached"))
		if !*pidns {
			procChecks(check, "the server", *serverPid)
		}
	}
	for _, v := range otherPids {
		pid, _ := strconv.Atoi(v)
		err := unix.Kill(pid, unix.SIGWINCH)
		check("signal another content "+v, wantErr(err, "could signal it"))
		err = unix.PtraceAttach(pid)
		if err == nil {
			unix.PtraceDetach(pid)
		}
		check("ptrace another content "+v, wantErr(err, "attached"))
		procChecks(check, "another content", pid)
	}
	for _, p := range connect {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+p, 5*time.Second)
		if err == nil {
			c.Close()
		}
		check("connect to another content's port "+p, wantErr(err, "connected"))
		// Multipath TCP falls back to TCP and escapes Landlock's TCP rules.
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 262)
		if err == nil {
			port, _ := strconv.Atoi(p)
			err = unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}})
			unix.Close(fd)
		}
		check("connect over Multipath TCP to another content's port "+p, wantErr(err, "connected"))
	}
	if *abstract != "" {
		c, err := net.DialTimeout("unix", "@"+*abstract, 5*time.Second)
		if err == nil {
			c.Close()
		}
		check("connect to the server's abstract socket @"+*abstract, wantErr(err, "connected"))
	}
	for _, a := range connectAddrs {
		c, err := net.DialTimeout("tcp", a, 5*time.Second)
		if err == nil {
			c.Close()
		}
		check("connect to "+a, wantErr(err, "connected"))
	}
	for _, a := range reach {
		c, err := net.DialTimeout("tcp", a, 5*time.Second)
		if err == nil {
			c.Close()
		}
		check("reach "+a, err)
	}
	if len(scanPids) > 0 {
		check("connect to every listener /proc shows", connectListeners(scanPids, *listen))
	}
	if *nameserver != "" {
		check("/etc/resolv.conf names "+*nameserver, firstNameserver(*nameserver))
	}
	var served net.Listener
	if *listen > 0 {
		l, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(*listen))
		check("bind its own port "+strconv.Itoa(*listen), err)
		served = l
	}
	if *bindOther > 0 {
		l, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(*bindOther))
		if err == nil {
			l.Close()
		}
		check("bind a second port "+strconv.Itoa(*bindOther), wantErr(err, "bound it"))
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 262)
		if err == nil {
			err = unix.Bind(fd, &unix.SockaddrInet4{Port: *bindOther, Addr: [4]byte{127, 0, 0, 1}})
			unix.Close(fd)
		}
		check("bind a second port over Multipath TCP", wantErr(err, "bound it"))
	}
	for i, target := range links {
		if len(writable) == 0 {
			check("link to "+target, errors.New("no --writable dir to put the link in"))
			break
		}
		sym := filepath.Join(writable[0], fmt.Sprintf(".symlink-%d", i))
		os.Remove(sym)
		err := os.Symlink(target, sym)
		if err == nil {
			_, err = os.ReadFile(sym)
			err = wantErr(err, "read "+target+" through a symlink")
		} else {
			err = nil // not even the link
		}
		check("symlink to "+target, err)
		hard := filepath.Join(writable[0], fmt.Sprintf(".hardlink-%d", i))
		os.Remove(hard)
		err = os.Link(target, hard)
		if err == nil {
			_, err = os.ReadFile(hard)
			err = wantErr(err, "hard-linked and read "+target)
		} else {
			err = nil
		}
		check("hard link to "+target, err)
	}
	if *child {
		// A grandchild that outlives nothing: it must die with the server.
		self, _ := os.Executable()
		p, err := os.StartProcess(self, []string{self, "sandbox", "probe", "--sleep-child"}, &os.ProcAttr{Files: []*os.File{nil, nil, os.Stderr}})
		check("start a child", err)
		if p != nil {
			fmt.Fprintf(w, "child %d\n", p.Pid)
		}
	}
	if *sleep > 0 {
		if served != nil {
			go func() {
				for {
					c, err := served.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
		}
		fmt.Fprintf(w, "pid %d\n", os.Getpid())
		fmt.Fprintf(w, "tmpdir %s\n", os.Getenv("TMPDIR"))
		fmt.Fprintln(w, "sleeping")
		time.Sleep(*sleep)
	}
	return failures
}

// procChecks reads what /proc would give away of pid: its environment, its
// open files, its root and its memory.
func procChecks(check func(string, error), who string, pid int) {
	dir := "/proc/" + strconv.Itoa(pid)
	_, err := os.ReadFile(dir + "/environ")
	check("read "+who+"'s environ", wantErr(err, "read it"))
	_, err = os.Readlink(dir + "/fd/0")
	check("read "+who+"'s fd links", wantErr(err, "read where its fd 0 leads"))
	_, err = os.ReadDir(dir + "/root/")
	check("enter "+who+"'s root", wantErr(err, "listed it"))
	f, err := os.Open(dir + "/mem")
	if err == nil {
		f.Close()
	}
	check("open "+who+"'s mem", wantErr(err, "opened it"))
}

// ProbeSleepChild is the grandchild Probe --sleep starts.
func ProbeSleepChild() { time.Sleep(time.Hour) }

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func wantErr(err error, what string) error {
	if err == nil {
		return errors.New("allowed: " + what)
	}
	return nil
}

func errnoErr(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func equal(got, want int, what string) error {
	if got != want {
		return fmt.Errorf("%s is %d, want %d", what, got, want)
	}
	return nil
}

func statusField(status, key, want string) error {
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && k == key {
			if v = strings.TrimSpace(v); v != want {
				return fmt.Errorf("%s is %s, want %s", key, v, want)
			}
			return nil
		}
	}
	return fmt.Errorf("%s not in /proc/self/status", key)
}

// regainCap tries to raise CAP_SYS_ADMIN, CAP_SETUID and CAP_DAC_OVERRIDE.
func regainCap() error {
	c, err := capability.NewPid2(0)
	if err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	c.Set(capability.CAPS, capability.CAP_SYS_ADMIN, capability.CAP_SETUID, capability.CAP_DAC_OVERRIDE)
	if err := c.Apply(capability.CAPS); err == nil {
		return errors.New("allowed: capset raised capabilities")
	}
	if err := capability.SetAmbient(true, capability.CAP_SYS_ADMIN); err == nil {
		return errors.New("allowed: raised an ambient capability")
	}
	return nil
}

func openFds() error {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return err
	}
	var extra []string
	for _, e := range ents {
		fd, _ := strconv.Atoi(e.Name())
		if fd <= 2 {
			continue
		}
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // ReadDir's own, closed by now
		}
		// Descriptors this program opened itself (ReadDir's, the Go
		// runtime's) are close-on-exec; an inherited one cannot be.
		if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC != 0 {
			continue
		}
		extra = append(extra, e.Name()+" -> "+target)
	}
	if len(extra) > 0 {
		return fmt.Errorf("open: %s", strings.Join(extra, ", "))
	}
	return nil
}

// connectListeners reads the TCP listeners of /proc/net/tcp{,6} (this
// sandbox's) and of /proc/PID/net/tcp{,6} for each pid (another content's
// or the server's, when /proc shows them: the information is not secret,
// the access is what must fail), then connects to each on 127.0.0.1 and ::1.
// Only own (this content's port) may accept.
func connectListeners(pids []string, own int) error {
	ports := map[int]bool{}
	dirs := []string{"/proc/net"}
	for _, p := range pids {
		dirs = append(dirs, "/proc/"+p+"/net")
	}
	seen := 0
	for _, d := range dirs {
		for _, f := range []string{"tcp", "tcp6"} {
			b, err := os.ReadFile(filepath.Join(d, f))
			if err != nil {
				continue
			}
			seen++
			for _, port := range listeningPorts(string(b)) {
				ports[port] = true
			}
		}
	}
	if seen == 0 {
		return errors.New("no /proc/*/net/tcp could be read")
	}
	var reached []string
	tried := 0
	for port := range ports {
		if port == own {
			continue
		}
		for _, host := range []string{"127.0.0.1", "::1"} {
			tried++
			c, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), 2*time.Second)
			if err == nil {
				c.Close()
				reached = append(reached, net.JoinHostPort(host, strconv.Itoa(port)))
			}
		}
	}
	if len(reached) > 0 {
		return fmt.Errorf("allowed: connected to %s", strings.Join(reached, ", "))
	}
	return nil
}

// listeningPorts are the local ports of the LISTEN (0A) lines of a
// /proc/net/tcp or tcp6 file.
func listeningPorts(table string) []int {
	var out []int
	for _, line := range strings.Split(table, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 4 || f[3] != "0A" {
			continue
		}
		_, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(hexPort, 16, 16); err == nil {
			out = append(out, int(n))
		}
	}
	return out
}

// firstNameserver checks the first nameserver line of /etc/resolv.conf.
func firstNameserver(want string) error {
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if f[1] != want {
				return fmt.Errorf("first nameserver %s, want %s", f[1], want)
			}
			return nil
		}
	}
	return errors.New("no nameserver line")
}
