package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Mode is how sandboxes are built ([Sandbox] Mode).
type Mode string

const (
	// ModeAuto picks namespaces when they can be created, else Landlock.
	ModeAuto Mode = "auto"
	// ModeNamespaces builds mount, user and PID namespaces (needs
	// CAP_SYS_ADMIN: --cap-add SYS_ADMIN in Docker).
	ModeNamespaces Mode = "namespaces"
	// ModeLandlock confines content with Landlock rulesets, which an
	// unprivileged process may apply to itself: no capability needed.
	ModeLandlock Mode = "landlock"
)

// ParseMode reads a [Sandbox] Mode value; "" is ModeAuto.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case "":
		return ModeAuto, nil
	case ModeAuto, ModeNamespaces, ModeLandlock:
		return m, nil
	}
	return "", fmt.Errorf("sandbox mode %q: want auto, namespaces or landlock", s)
}

// LandlockMinABI is the lowest Landlock ABI dais runs content under: 6
// (Linux 6.12) scopes signals and abstract Unix sockets to the sandbox, so
// that content cannot signal or reach other content running as the same
// user; 4 brought the TCP bind and connect rules.
const LandlockMinABI = 6

// DefaultConnectPorts are the TCP ports Landlock-confined content may
// connect to ([Sandbox] LandlockConnectPorts): the well-known ports and the
// usual database, cache and HTTP ports. Content ports (the kernel's
// ephemeral range, where dais allocates them) must stay outside, so that
// content cannot reach another content's process. Landlock names one port
// per rule and every start copies the rules into two new domains (1,033
// ports, 1-1023 and ten more until December 2026, cost about 0.4 ms of CPU
// and 0.1-0.3 ms of latency per start on a quiet machine), so the list
// names the usual services' ports (docs/sandbox.md) rather than
// "everything but the content ports".
const DefaultConnectPorts = "21,22,25,53,80,88,110,143,389,443,445,465,587,636,873,993,995,1025,1433,1521,2181,3268,3269,3306,3939,5432,5439,5984,6379,7474,7687,8020,8080,8086,8123,8443,9000,9042,9092,9200,9418,10000,11211,21050,27017"

// Spec annotations of a Landlock sandbox. The filesystem rules are mounts
// of type "landlock" (a path and its access: read, write, execute); the
// rest is here.
const (
	AnnotationMode       = "org.dais.sandbox.mode"
	AnnotationBindTCP    = "org.dais.landlock.bind-tcp"
	AnnotationConnectTCP = "org.dais.landlock.connect-tcp"
	AnnotationScoped     = "org.dais.landlock.scoped"
	AnnotationTmpDir     = "org.dais.landlock.tmpdir"
	AnnotationMinABI     = "org.dais.landlock.min-abi"
	// AnnotationSharedRules is how many of the spec's first rules depend
	// on the masks alone (not on the content): a pre-started sandbox-exec
	// builds them while it waits for its spec (landlock_linux.go).
	AnnotationSharedRules = "org.dais.landlock.shared-rules"
)

// mountLandlock is the type of the mounts that are Landlock rules.
const mountLandlock = "landlock"

// Access words of a Landlock rule, in its mount options.
const (
	accessRead    = "read"
	accessWrite   = "write"
	accessExecute = "execute"
	accessDevice  = "device" // read, write and ioctl on a device node
	// optFile marks a rule whose path is not a directory (read at Spec
	// time), so that sandbox-exec applies only the rights a file takes
	// without a stat(2) per rule: a wrong guess fails the start (EINVAL),
	// it never widens a rule.
	optFile = "x-dais.file"
)

// Messages naming the fixes, for the server's refusal and dais-init's.
const (
	// FixNamespaces is how to get namespaces mode.
	FixNamespaces = "run the container with --cap-add SYS_ADMIN (namespaces mode)"
	// FixLandlock is how to get Landlock mode.
	FixLandlock = "use a kernel with Landlock ABI >= 6 (Linux 6.12 or later, `landlock` in the boot parameter lsm=) and a seccomp profile that allows landlock_create_ruleset, landlock_add_rule and landlock_restrict_self (Landlock mode, no privileges needed)"
)

// PortRange is an inclusive range of TCP ports.
type PortRange struct{ First, Last uint16 }

// ParsePorts reads "1-1023,5432": ports and inclusive ranges.
func ParsePorts(s string) ([]PortRange, error) {
	var out []PortRange
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		a, b, isRange := strings.Cut(f, "-")
		if !isRange {
			b = a
		}
		first, err1 := strconv.ParseUint(a, 10, 16)
		last, err2 := strconv.ParseUint(b, 10, 16)
		if err1 != nil || err2 != nil || first == 0 || last < first {
			return nil, fmt.Errorf("port list %q: %q is not a port (1-65535) or a range first-last", s, f)
		}
		out = append(out, PortRange{uint16(first), uint16(last)})
	}
	return out, nil
}

// Overlaps tells whether any port of rs lies in [first, last].
func Overlaps(rs []PortRange, first, last int) bool {
	for _, r := range rs {
		if int(r.First) <= last && int(r.Last) >= first {
			return true
		}
	}
	return false
}

// tmpBase holds the Landlock sandboxes' private temporary directories
// (TMPDIR), in a directory per server (tmpRoot): each made by
// sandbox-exec, removed by Cmd.Wait.
func tmpBase() string { return filepath.Join(os.TempDir(), "dais-sandbox") }

// serverTmpName names this server's directory in tmpBase: its pid and a
// random part, so that no two servers' collide.
var serverTmpName = sync.OnceValue(func() string {
	var b [6]byte
	rand.Read(b[:])
	return "s-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:])
})

// tmpRoot is this server's directory of TMPDIRs. The server holds it
// locked (flock) while it runs, so that the next server to start removes
// what one that died left behind (see makeTmpBase): a TMPDIR lives on disk
// in Landlock mode, and Cmd.Wait removes it only when the server is there
// to wait.
func tmpRoot() string { return filepath.Join(tmpBase(), serverTmpName()) }

// alwaysHidden are hidden from Landlock-confined content besides the
// masks: the shared temporary directories (namespaces mode gives each
// sandbox its own /tmp; here TMPDIR is a private directory instead) and
// shared memory.
func alwaysHidden() []string {
	return []string{"/tmp", "/var/tmp", os.TempDir(), "/dev/shm", "/dev/mqueue"}
}

// devices content may open for reading and writing.
var devices = []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty", "/dev/ptmx", "/dev/pts"}

// landlockSpec is Spec for ModeLandlock: no namespace, no mount; the
// filesystem the content may use as rules (mounts of type "landlock"):
// read and execute everything of / but the masks and the shared temporary
// directories, its code and ReadOnly directories, read and write its work
// directory, ReadWrite and a private TMPDIR; bind only Options.Port; connect
// only to ConnectPorts; signals and abstract sockets scoped to the sandbox.
func landlockSpec(o Options, s *specs.Spec, runAs string) (*specs.Spec, error) {
	connect := o.ConnectPorts
	if connect == "" {
		connect = DefaultConnectPorts
	}
	if _, err := ParsePorts(connect); err != nil {
		return nil, fmt.Errorf("sandbox: Sandbox.LandlockConnectPorts: %w", err)
	}
	var hidden []string
	for _, p := range append(slices.Clone(o.Masks), alwaysHidden()...) {
		if p == "" {
			continue
		}
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("sandbox: mask %q is not an absolute path", p)
		}
		p = filepath.Clean(p)
		hidden = append(hidden, p)
		if r, err := filepath.EvalSymlinks(p); err == nil && r != p {
			hidden = append(hidden, r)
		}
	}
	hidden = append(hidden, "/dev") // only the devices listed below
	var ms []specs.Mount
	rule := func(p string, access ...string) {
		ms = append(ms, specs.Mount{Destination: p, Type: mountLandlock, Source: p, Options: access})
	}
	for _, e := range visibleTree("/", hidden) {
		if e.dir {
			rule(e.path, accessRead, accessExecute)
		} else {
			rule(e.path, accessRead, accessExecute, optFile)
		}
	}
	for _, d := range devices {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			rule(d, accessDevice)
		} else if err == nil {
			rule(d, accessDevice, optFile)
		}
	}
	shared := len(ms)
	dir := func(what, p string) (string, error) {
		if !filepath.IsAbs(p) {
			return "", fmt.Errorf("sandbox: %s %q is not an absolute path", what, p)
		}
		fi, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("sandbox: %s: %w", what, err)
		}
		if !fi.IsDir() {
			return "", fmt.Errorf("sandbox: %s %s is not a directory", what, p)
		}
		return filepath.EvalSymlinks(filepath.Clean(p))
	}
	for _, d := range append(slices.Clone(o.ReadOnly), o.CodeDir) {
		if d == "" {
			continue
		}
		p, err := dir("read-only directory", d)
		if err != nil {
			return nil, err
		}
		rule(p, accessRead, accessExecute)
	}
	for _, d := range append([]string{o.WorkDir}, o.ReadWrite...) {
		if d == "" {
			continue
		}
		p, err := dir("writable directory", d)
		if err != nil {
			return nil, err
		}
		rule(p, accessRead, accessWrite, accessExecute)
	}
	tmp, err := tmpName()
	if err != nil {
		return nil, err
	}
	ms = append(ms, specs.Mount{Destination: tmp, Type: mountLandlock, Source: tmp,
		Options: []string{accessRead, accessWrite, accessExecute, optMkdir}})

	s.Mounts = ms
	s.Linux = &specs.Linux{}
	s.Annotations = map[string]string{
		AnnotationMode:        string(ModeLandlock),
		AnnotationConnectTCP:  connect,
		AnnotationScoped:      "signal,abstract-unix-socket",
		AnnotationTmpDir:      tmp,
		AnnotationMinABI:      strconv.Itoa(LandlockMinABI),
		AnnotationBindTCP:     "none",
		AnnotationSharedRules: strconv.Itoa(shared),
	}
	if o.Port > 0 {
		s.Annotations[AnnotationBindTCP] = strconv.Itoa(o.Port)
	}
	for i, kv := range s.Process.Env {
		if strings.HasPrefix(kv, "TMPDIR=") {
			s.Process.Env[i] = "TMPDIR=" + tmp
		}
	}
	return s, nil
}

func tmpName() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("sandbox: name a temporary directory: %w", err)
	}
	return filepath.Join(tmpRoot(), hex.EncodeToString(b[:])), nil
}

// treeEntry is a path of visibleTree and whether it is a directory.
type treeEntry struct {
	path string
	dir  bool
}

// visibleTree lists the paths whose subtrees together make up root minus
// the hidden paths: root itself when nothing hidden lies inside it, else
// its entries, split the same way. Symbolic links are left out: a rule
// follows them, and one could lead into a hidden directory (what they
// point to is covered where it lies).
func visibleTree(root string, hidden []string) []treeEntry {
	return visibleTreeOf(root, true, hidden)
}

func visibleTreeOf(root string, dir bool, hidden []string) []treeEntry {
	under := func(p, dir string) bool {
		return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
	}
	if slices.ContainsFunc(hidden, func(h string) bool { return under(root, h) && root != "/" }) {
		return nil // root is hidden, or inside a hidden path
	}
	if !slices.ContainsFunc(hidden, func(h string) bool { return under(h, root) }) {
		return []treeEntry{{root, dir}}
	}
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil
	}
	var out []treeEntry
	for _, e := range ents {
		if e.Type()&os.ModeSymlink != 0 {
			continue
		}
		out = append(out, visibleTreeOf(filepath.Join(root, e.Name()), e.IsDir(), hidden)...)
	}
	return out
}

// specMode is the mode a spec was built for.
func specMode(s *specs.Spec) Mode {
	if s.Annotations[AnnotationMode] == string(ModeLandlock) {
		return ModeLandlock
	}
	return ModeNamespaces
}

// errNoLandlock says the kernel offers no usable Landlock.
var errNoLandlock = errors.New("landlock unavailable")
