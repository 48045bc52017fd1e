//go:build !dais_sandbox_exec

package sandbox

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// probeIn copies this test binary into a directory the sandbox sees
// read-only (not /tmp, which each sandbox replaces) and returns its path
// and the directory.
func probeIn(t *testing.T) (string, string) {
	t.Helper()
	dir := filepath.Join(dataDir(t), "bin")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "dais")
	if err := copyFile(os.Args[0], p, 0o755); err != nil {
		t.Fatal(err)
	}
	return p, dir
}

// serving starts a sandbox whose content listens on 127.0.0.1:port (of its
// own network namespace) until killed, and waits until it does.
func serving(t *testing.T, ctx context.Context, o Options, probe string, port int, cold bool) *Cmd {
	t.Helper()
	o.Args = []string{probe, "sandbox", "probe", "--listen", strconv.Itoa(port), "--sleep", "1h"}
	s, err := Spec(o)
	if err != nil {
		t.Fatal(err)
	}
	cmd := modeCommand(t, ctx, s, cold)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if sc.Text() == "sleeping" {
			go io.Copy(io.Discard, out)
			return cmd
		}
	}
	cmd.Wait()
	t.Fatalf("the content did not start serving: %s", stderr.String())
	return nil
}

// TestNetworkNamespace: two contents serve on the same port number, each
// in its own network namespace; the server reaches each through its Cmd
// (DialContext), which leads into that sandbox's namespace only; neither
// port is on the server's loopback; after Wait the namespace is let go.
func TestNetworkNamespace(t *testing.T) {
	needRoot(t)
	probe, bin := probeIn(t)
	for _, sm := range startModes {
		t.Run(sm.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			port := freeTCPPort()
			o := Options{RunAs: testUser(t), ReadOnly: []string{bin}, Dir: "/"}
			a := serving(t, ctx, o, probe, port, sm.cold)
			b := serving(t, ctx, o, probe, port, true) // same port: another namespace
			addr := "127.0.0.1:" + strconv.Itoa(port)
			for name, cmd := range map[string]*Cmd{"a": a, "b": b} {
				c, err := cmd.DialContext(ctx, "tcp", addr)
				if err != nil {
					t.Fatalf("dial %s inside its namespace: %v", name, err)
				}
				// The peer is in that sandbox: its namespace's inode is the
				// sandbox's, not the server's.
				c.Close()
			}
			if c, err := net.DialTimeout("tcp", addr, 2*time.Second); err == nil {
				c.Close()
				t.Fatalf("%s answers on the server's loopback: the content shares the server's network", addr)
			}
			if nsOf(t, a.Process.Pid) == nsOf(t, os.Getpid()) || nsOf(t, a.Process.Pid) == nsOf(t, b.Process.Pid) {
				t.Fatal("the sandboxes do not have network namespaces of their own")
			}
			// The server's own threads are all back in its namespace.
			if self := nsOf(t, os.Getpid()); threadNamespaces(t)[self] == 0 || len(threadNamespaces(t)) != 1 {
				t.Fatalf("server threads in network namespaces %v, want all in %s", threadNamespaces(t), self)
			}
			a.Process.Signal(syscall.SIGKILL)
			a.Wait()
			if c, err := a.DialContext(ctx, "tcp", addr); err == nil {
				c.Close()
				t.Fatal("dial after Wait reached something")
			}
			b.Process.Signal(syscall.SIGKILL)
			b.Wait()
		})
	}
}

func nsOf(t *testing.T, pid int) string {
	t.Helper()
	l, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// threadNamespaces counts this process's threads per network namespace.
func threadNamespaces(t *testing.T) map[string]int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/task/" + e.Name() + "/ns/net"); err == nil {
			out[l]++
		}
	}
	return out
}

// TestNetworkOutbound: content with outbound network reaches a listener on
// this host's own address (the outside, as a database on the Docker network
// would be) through its slirp4netns helper, but not the server's loopback
// through the helper's gateway; its resolv.conf names the helper's DNS. When
// the helper dies, the content is ended, with the reason; when the content
// ends, the helper does too.
func TestNetworkOutbound(t *testing.T) {
	needRoot(t)
	helper, err := PrepareOutbound()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("outbound network (CI=true: not skipping): %v", err)
		}
		t.Skip(err)
	}
	ip := externalIPv4()
	if ip == "" {
		t.Skip("no non-loopback IPv4 address here to reach")
	}
	probe, bin := probeIn(t)
	outside, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer outside.Close()
	go acceptAll(outside)
	inside, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer inside.Close()
	go acceptAll(inside)
	loopPort := strconv.Itoa(inside.Addr().(*net.TCPAddr).Port)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := Options{RunAs: testUser(t), ReadOnly: []string{bin}, Dir: "/", Network: NetworkOutbound, NetHelper: helper,
		Args: []string{probe, "sandbox", "probe", "--reach", outside.Addr().String(), "--nameserver", netDNS,
			"--connect-addr", "10.0.2.2:" + loopPort, "--connect", loopPort}}
	out, err := runSandbox(t, ctx, o)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"ok reach " + outside.Addr().String(), "ok /etc/resolv.conf names " + netDNS,
		"ok connect to 10.0.2.2:" + loopPort, "ok connect to another content's port " + loopPort} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "FAIL") {
		t.Errorf("a check failed:\n%s", out)
	}

	// The helper dies under a running content: the content is ended.
	port := freeTCPPort()
	cmd := serving(t, ctx, o, probe, port, true)
	if cmd.helperCmd == nil {
		t.Fatal("no helper runs beside the content")
	}
	hp := cmd.helperCmd.Process.Pid
	syscall.Kill(-hp, syscall.SIGKILL)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "outbound network helper") {
			t.Errorf("Wait = %v, want the helper's death named", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the content still runs 20 s after its network helper died")
	}

	// The content ends: its helper is gone too.
	cmd = serving(t, ctx, o, probe, port, true)
	hp = cmd.helperCmd.Process.Pid
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if running(hp) {
		t.Errorf("the helper (pid %d) outlived its content", hp)
	}
}
