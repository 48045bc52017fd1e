package sandbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Network is what a namespaces-mode sandbox may reach ([Applications]
// OutboundNetwork and the content's outbound_network). Either way the
// sandbox has a network namespace of its own, with its own loopback: no
// other content's listener, no listener of dais or of the container is
// there, and the server reaches the content's port by dialing inside it
// (Cmd.DialContext).
type Network string

const (
	// NetworkLoopback (also "") is lo alone: nothing outside the sandbox.
	NetworkLoopback Network = "loopback"
	// NetworkOutbound adds a user-mode network stack (slirp4netns,
	// attached by the server): connections to the outside as if from the
	// container, but not to the container's loopback, and no port of the
	// content is exposed.
	NetworkOutbound Network = "outbound"
)

// NetHelperName is the user-mode network stack NetworkOutbound needs
// (Debian's slirp4netns).
const NetHelperName = "slirp4netns"

// The network slirp4netns gives the sandbox (its defaults): the content
// is 10.0.2.100 on tap0, its gateway 10.0.2.2 (the container's loopback
// behind it is refused: --disable-host-loopback), its DNS 10.0.2.3,
// forwarded to the container's first nameserver (Docker's 127.0.0.11 on a
// user-defined network).
const (
	netTap = "tap0"
	netDNS = "10.0.2.3"
	netMTU = "65520"
)

// Annotations of a namespaces-mode spec's network.
const (
	// AnnotationNetwork is the sandbox's Network (its namespace is a clone flag).
	AnnotationNetwork = "org.dais.net"
	// AnnotationNetHelper is the path of slirp4netns for NetworkOutbound.
	AnnotationNetHelper = "org.dais.net.helper"
	// annotationPassFDs asks sandbox-exec to give the program this many
	// descriptors received after its fixed ones, as 3, 4, ... (the
	// outbound helper's namespaces).
	annotationPassFDs = "org.dais.sandbox.pass-fds"
	// annotationReadOnlyRoot asks sandbox-exec to make every mount it sees
	// read-only (the outbound helper runs as uid 0 without capabilities:
	// root-owned files must not be writable for it).
	annotationReadOnlyRoot = "org.dais.sandbox.readonly-root"
)

// ErrNoNetHelper: NetworkOutbound asked for, slirp4netns not installed.
var ErrNoNetHelper = errors.New("sandbox: outbound network needs " + NetHelperName + " (apt-get install slirp4netns), or set Applications.OutboundNetwork = false")

// FindNetHelper is the path of slirp4netns, or ErrNoNetHelper.
func FindNetHelper() (string, error) {
	p, err := exec.LookPath(NetHelperName)
	if err != nil {
		return "", ErrNoNetHelper
	}
	return filepath.Abs(p)
}

// networkSpec gives a namespaces-mode spec its network namespace and, for
// NetworkOutbound, the helper's path and a resolv.conf naming the helper's
// DNS forwarder.
func networkSpec(o Options, s *specs.Spec) error {
	n := o.Network
	if n == "" {
		n = NetworkLoopback
	}
	if n != NetworkLoopback && n != NetworkOutbound {
		return fmt.Errorf("sandbox: network %q: want %q or %q", n, NetworkLoopback, NetworkOutbound)
	}
	if o.NoUserNamespace {
		// Bringing lo up needs CAP_NET_ADMIN over the namespace: the root of
		// a user namespace has it, a container's root (without
		// --cap-add NET_ADMIN) does not. Without the user namespace the
		// content shares the server's network (docs/sandbox.md).
		return nil
	}
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[AnnotationNetwork] = string(n)
	if n != NetworkOutbound {
		return nil
	}
	helper := o.NetHelper
	if helper == "" {
		var err error
		if helper, err = FindNetHelper(); err != nil {
			return err
		}
	}
	s.Annotations[AnnotationNetHelper] = helper
	resolv, err := resolvConf("/etc/resolv.conf")
	if err != nil {
		return err
	}
	if resolv != "" {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/etc/resolv.conf", Type: "bind", Source: resolv,
			Options: []string{"bind", "ro", "nosuid", "nodev"}})
	}
	return nil
}

// netDir holds the resolv.conf shown to sandboxes with outbound network.
func netDir() string { return filepath.Join(os.TempDir(), "dais-sandbox-net") }

// resolvConf writes (when it changed) the resolv.conf of sandboxes with
// outbound network: the helper's DNS forwarder as the one nameserver, the
// search and options lines of host (the container's). "" when host does
// not exist.
func resolvConf(host string) (string, error) {
	b, err := os.ReadFile(host)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("sandbox: read %s: %w", host, err)
	}
	var out bytes.Buffer
	out.WriteString("# dais: DNS of content with outbound network, forwarded by " + NetHelperName + " to this container's resolver\n")
	out.WriteString("nameserver " + netDNS + "\n")
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 && (f[0] == "search" || f[0] == "domain" || f[0] == "options") {
			out.WriteString(strings.Join(f, " ") + "\n")
		}
	}
	dir := netDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("sandbox: make %s: %w", dir, err)
	}
	p := filepath.Join(dir, "resolv.conf")
	if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, out.Bytes()) {
		return p, nil
	}
	f, err := os.CreateTemp(dir, ".resolv-*")
	if err != nil {
		return "", fmt.Errorf("sandbox: write resolv.conf: %w", err)
	}
	_, err = f.Write(out.Bytes())
	err = errors.Join(err, f.Chmod(0o644), f.Close())
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("sandbox: write resolv.conf: %w", err)
	}
	return p, nil
}

// helperSpec is the spec of the outbound helper of the sandbox s: slirp4netns
// as uid 0 with every capability dropped and no_new_privs, in mount and PID
// namespaces of its own (no user namespace: as uid 0 of the server's, it
// owns the sandbox's user namespace, which lets it join the sandbox's network
// namespace and create the tap device there without any capability here),
// the sandbox's masks, everything read-only, the sandbox's user and network
// namespaces as descriptors 3 and 4.
func helperSpec(s *specs.Spec) *specs.Spec {
	var ms []specs.Mount
	for _, m := range s.Mounts {
		mask := (m.Type == "tmpfs" && m.Destination != "/tmp") || (m.Type == "bind" && m.Source == "/dev/null")
		if mask {
			ms = append(ms, m)
		}
	}
	// No fresh /proc: the container's, with /proc/sys read-only, serves
	// /proc/self/fd; then every mount is made read-only.
	ms = append(ms, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "noexec", "size=1m"}})
	none := []string{}
	return &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: "/"},
		Process: &specs.Process{
			User: specs.User{UID: 0, GID: 0},
			Args: []string{s.Annotations[AnnotationNetHelper], "--configure", "--mtu=" + netMTU,
				"--disable-host-loopback", "--enable-seccomp",
				"--userns-path=/proc/self/fd/3", "--netns-type=path", "/proc/self/fd/4", netTap},
			Env: []string{"PATH=" + DefaultPath, "LANG=C.UTF-8"},
			Cwd: "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding: none, Effective: none, Inheritable: none, Permitted: none, Ambient: none,
			},
			NoNewPrivileges: true,
		},
		Mounts: ms,
		Linux: &specs.Linux{
			RootfsPropagation: "rprivate",
			Namespaces:        []specs.LinuxNamespace{{Type: specs.MountNamespace}, {Type: specs.PIDNamespace}},
		},
		Annotations: map[string]string{annotationPassFDs: "2", annotationReadOnlyRoot: "true"},
	}
}
