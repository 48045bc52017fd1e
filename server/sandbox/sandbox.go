// Package sandbox describes and starts the sandboxed processes dais runs for
// content (R, Python, Quarto).
//
// A sandbox is described by an OCI runtime-spec [specs.Spec] built with [Spec]
// from [Options]: one value that says what a content process sees, printable
// for debugging (`dais sandbox spec`). It is applied by `dais sandbox-exec`, a
// re-exec of the dais binary (the runc "init" pattern: namespaces are created
// by clone(2) before the Go runtime starts threads), started with [Command].
//
// Inside, in order: new mount, user, PID and network namespaces (lo up; for
// outbound access a user-mode network stack attached by the server); /
// made rprivate; the masks (DataDir, the database and config directories,
// /home, /var/tmp) covered by empty read-only tmpfs (files by /dev/null); a
// fresh private /tmp; the read-only runtime directories, the read-only code
// directory and the writable working directory bound at their own paths
// (read-only applied to every submount); a fresh /proc when the kernel
// allows it; then the RunAs user with its own groups only, every capability
// dropped, no_new_privs, parent-death signal, rlimits, every inherited file
// descriptor closed, and exec.
package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// DefaultRunAs is the user content runs as when Options.RunAs is empty
// (Applications.RunAs; uid 999 in the image).
const DefaultRunAs = "rstudio-connect"

// DefaultPath is the PATH inside a sandbox, after Options.PathDirs.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// ExitSetup is the exit status of `dais sandbox-exec` when the sandbox could
// not be built (the step and the reason are on stderr and in [SetupError]).
// Like `docker run`'s 125, it tells the caller the content never started.
const ExitSetup = 125

// AllowedEnv lists the server's environment variables passed into a sandbox.
// Nothing else of the server's environment passes.
var AllowedEnv = []string{"LANG", "LC_ALL", "LC_CTYPE", "TZ"}

// Options says what a content process runs and what it may see.
// Paths are absolute host paths; binds appear at the same path inside.
type Options struct {
	// Args is the program and its arguments. Args[0] should be absolute
	// (a runtime's executable); otherwise it is looked up in the sandbox's PATH.
	Args []string
	// Env is the content's own environment (KEY=VALUE): CONNECT_SERVER,
	// CONNECT_CONTENT_GUID, R_LIBS, VIRTUAL_ENV, the variables set through the
	// API, ... It is added after the allow-list and wins over it.
	Env []string
	// PathDirs are runtime bin directories put before DefaultPath in PATH
	// (e.g. /opt/R/4.2.2/bin, <venv>/bin).
	PathDirs []string
	// Dir is the working directory inside. Default WorkDir, else CodeDir.
	Dir string
	// CodeDir is the content's unpacked bundle, visible read-only.
	CodeDir string
	// WorkDir is the content's writable directory (output, HOME by default).
	WorkDir string
	// ReadOnly are more directories made visible read-only, submounts
	// included: runtime installations (/opt/R/4.2.2), package libraries.
	ReadOnly []string
	// ReadWrite are more directories made visible writable.
	ReadWrite []string
	// Masks are hidden: directories under an empty read-only tmpfs, files
	// under /dev/null. Usually DefaultMasks(cfg). Absent paths are skipped.
	Masks []string
	// RunAs is the user name content runs as; its own groups only.
	// Default DefaultRunAs.
	RunAs string
	// Rlimits are applied before exec, e.g. {Type: "RLIMIT_NOFILE", Soft: 4096, Hard: 4096}.
	Rlimits []specs.POSIXRlimit
	// TmpSize bounds the private /tmp, in bytes. Default 0: tmpfs's default
	// (half of RAM).
	TmpSize int64
	// MemoryLimit is the memory, in bytes, the sandbox's processes may use
	// together; over it the kernel kills one and Cmd.ExitReason says so.
	// CPULimit is the CPUs they may use (0.5: half of one). ProcessLimit is
	// the most processes and threads they may have. 0: unlimited. Enforced
	// with cgroups where the server can make them (LimitsInForce), else
	// with RLIMIT_DATA and RLIMIT_NPROC (no CPU limit).
	MemoryLimit  int64
	CPULimit     float64
	ProcessLimit int
	// DiskLimit is the most bytes WorkDir may hold (and, in Landlock mode,
	// the private TMPDIR, which is on disk there: it gets TmpSize). 0:
	// unlimited. Enforced in every mode by RLIMIT_FSIZE (no one file over
	// it) and by the server measuring the directory every DiskCheckEvery:
	// over it, the sandbox is killed and Cmd.ExitReason says so.
	DiskLimit int64
	// NoUserNamespace leaves out the user namespace (then mounts are made as
	// the real root). Default false: a user namespace with an identity
	// mapping of the server's own ids.
	NoUserNamespace bool
	// NoPIDNamespace leaves out the PID namespace. Default false: content is
	// in its own PID namespace under a small init, so that when the server
	// dies, the content's children die too and content cannot see or signal
	// the server's processes.
	NoPIDNamespace bool
	// Mode is ModeNamespaces (the default, also for "" and ModeAuto: the
	// server resolves auto with Choose) or ModeLandlock (landlock.go).
	Mode Mode
	// Port is the TCP port the content serves on; in Landlock mode the only
	// one it may bind (0: none).
	Port int
	// ConnectPorts are the TCP ports Landlock-confined content may connect
	// to, as "1-1023,5432". Default DefaultConnectPorts.
	ConnectPorts string
	// Network is what a namespaces-mode sandbox reaches from its own
	// network namespace: NetworkLoopback (the default) or NetworkOutbound.
	Network Network
	// NetHelper is slirp4netns for NetworkOutbound. Default: found in PATH.
	NetHelper string
}

// Mount option words understood by sandbox-exec, beyond the OCI ones.
const (
	// optMkdir asks sandbox-exec to create the destination when missing
	// (it then lies in a mask's tmpfs).
	optMkdir = "x-dais.mkdir"
	// optOptional asks sandbox-exec to go on when the mount fails with
	// EPERM (a fresh /proc inside Docker's user namespace restrictions).
	optOptional = "x-dais.optional"
)

// Spec builds the runtime spec of a sandbox. It resolves RunAs in the host's
// user database and checks that the paths exist, so that errors are reported
// to the server (with the option to fix) and not only in the content's log.
func Spec(o Options) (*specs.Spec, error) {
	if len(o.Args) == 0 || o.Args[0] == "" {
		return nil, errors.New("sandbox: no program to run (Options.Args is empty)")
	}
	runAs := o.RunAs
	if runAs == "" {
		runAs = DefaultRunAs
	}
	var u specs.User
	var err error
	if o.Mode == ModeLandlock && os.Geteuid() != 0 {
		// A server without root cannot change user: content runs as the
		// server's uid, and Landlock alone keeps it from the server's files.
		u = specs.User{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
		if cu, err := user.Current(); err == nil {
			runAs, u.Username = cu.Username, cu.Username
		}
	} else if u, err = lookupUser(runAs); err != nil {
		return nil, err
	}
	var mounts []specs.Mount
	if o.Mode != ModeLandlock {
		if mounts, err = mountList(o); err != nil {
			return nil, err
		}
	}
	dir := o.Dir
	if dir == "" {
		dir = o.WorkDir
	}
	if dir == "" {
		dir = o.CodeDir
	}
	if dir == "" {
		dir = "/tmp"
	}
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("sandbox: working directory %q is not absolute", dir)
	}

	none := []string{}
	s := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: "/"},
		Process: &specs.Process{
			User: u,
			Args: slices.Clone(o.Args),
			Env:  env(o, runAs),
			Cwd:  dir,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: none, Effective: none, Inheritable: none, Permitted: none, Ambient: none,
			},
			Rlimits:         slices.Clone(o.Rlimits),
			NoNewPrivileges: true,
		},
		Mounts: mounts,
		Linux: &specs.Linux{
			RootfsPropagation: "rprivate",
			Namespaces:        []specs.LinuxNamespace{{Type: specs.MountNamespace}},
		},
	}
	if o.Mode == ModeLandlock {
		s, err := landlockSpec(o, s, runAs)
		if err == nil {
			withLimits(o, s)
		}
		return s, err
	}
	defer withLimits(o, s)
	if !o.NoUserNamespace {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		s.Linux.UIDMappings = identityMap("/proc/self/uid_map")
		s.Linux.GIDMappings = identityMap("/proc/self/gid_map")
	}
	if !o.NoPIDNamespace {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace})
		s.Mounts = append(s.Mounts, specs.Mount{
			Destination: "/proc", Type: "proc", Source: "proc",
			Options: []string{"nosuid", "nodev", "noexec", optOptional},
		})
	}
	if err := networkSpec(o, s); err != nil {
		return nil, err
	}
	return s, nil
}

func lookupUser(name string) (specs.User, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return specs.User{}, fmt.Errorf("sandbox: run-as user %q: %w (create it, e.g. `useradd --system --uid 999 %s`, or set Applications.RunAs)", name, err, name)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return specs.User{}, fmt.Errorf("sandbox: run-as user %q: %w", name, err)
	}
	if uid == 0 {
		return specs.User{}, fmt.Errorf("sandbox: run-as user %q is root: set Applications.RunAs to an unprivileged user", name)
	}
	gids, err := u.GroupIds()
	if err != nil {
		return specs.User{}, fmt.Errorf("sandbox: groups of run-as user %q: %w", name, err)
	}
	var extra []uint32
	for _, g := range gids {
		n, err := strconv.ParseUint(g, 10, 32)
		if err != nil || n == gid || n == 0 {
			continue // never the root group
		}
		extra = append(extra, uint32(n))
	}
	return specs.User{UID: uint32(uid), GID: uint32(gid), AdditionalGids: extra, Username: name}, nil
}

// env is the allow-list, then the content's own variables.
func env(o Options, runAs string) []string {
	path := DefaultPath
	if len(o.PathDirs) > 0 {
		path = strings.Join(o.PathDirs, ":") + ":" + DefaultPath
	}
	home := o.WorkDir
	if home == "" {
		home = "/tmp"
	}
	e := []string{"PATH=" + path, "HOME=" + home, "USER=" + runAs, "LOGNAME=" + runAs, "TMPDIR=/tmp"}
	lang := false
	for _, k := range AllowedEnv {
		if v, ok := os.LookupEnv(k); ok {
			e = append(e, k+"="+v)
			lang = lang || k == "LANG"
		}
	}
	if !lang {
		e = append(e, "LANG=C.UTF-8")
	}
	// Later entries win: drop earlier ones the content overrides.
	over := map[string]bool{}
	for _, kv := range o.Env {
		k, _, _ := strings.Cut(kv, "=")
		over[k] = true
	}
	out := e[:0]
	for _, kv := range e {
		k, _, _ := strings.Cut(kv, "=")
		if !over[k] {
			out = append(out, kv)
		}
	}
	return append(out, o.Env...)
}

// mountList orders the mounts: masks, /tmp, read-only binds, code, writable binds.
func mountList(o Options) ([]specs.Mount, error) {
	var ms []specs.Mount
	var masked []string
	under := func(p, dir string) bool {
		return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
	}
	masks := slices.Clone(o.Masks)
	// Outer masks first, so that a mask inside another one is skipped.
	slices.SortStableFunc(masks, func(a, b string) int { return len(filepath.Clean(a)) - len(filepath.Clean(b)) })
	for _, p := range masks {
		if p == "" {
			continue
		}
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("sandbox: mask %q is not an absolute path", p)
		}
		p = filepath.Clean(p)
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r // mountinfo and the checks below speak resolved paths
		}
		if p == "/" || p == "/tmp" {
			continue // / cannot be masked; /tmp gets its own tmpfs below
		}
		if slices.ContainsFunc(masked, func(m string) bool { return under(p, m) }) {
			continue
		}
		fi, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("sandbox: mask %s: %w", p, err)
		}
		masked = append(masked, p)
		if fi.IsDir() {
			ms = append(ms, specs.Mount{Destination: p, Type: "tmpfs", Source: "tmpfs",
				Options: []string{"ro", "nosuid", "nodev", "noexec", "mode=0755", "size=1m"}})
		} else {
			ms = append(ms, specs.Mount{Destination: p, Type: "bind", Source: "/dev/null",
				Options: []string{"bind", "ro"}})
		}
	}
	tmpOpts := []string{"nosuid", "nodev", "mode=1777"}
	if o.TmpSize > 0 {
		tmpOpts = append(tmpOpts, "size="+strconv.FormatInt(o.TmpSize, 10))
	}
	ms = append(ms, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: tmpOpts})
	masked = append(masked, "/tmp") // binds under /tmp land in the fresh tmpfs

	bind := func(what, p string, ro bool) error {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("sandbox: %s %q is not an absolute path", what, p)
		}
		p = filepath.Clean(p)
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("sandbox: %s: %w", what, err)
		}
		// Resolved: sandbox-exec finds the submounts to make read-only in
		// mountinfo, which shows resolved paths.
		if p, err = filepath.EvalSymlinks(p); err != nil {
			return fmt.Errorf("sandbox: %s: %w", what, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("sandbox: %s %s is not a directory", what, p)
		}
		for _, m := range masked {
			if under(m, p) {
				return fmt.Errorf("sandbox: %s %s would uncover the mask %s: bind a directory inside it instead", what, p, m)
			}
		}
		opt := []string{"rbind", "rw", "nosuid", "nodev"}
		if ro {
			opt[1] = "ro"
		}
		if slices.ContainsFunc(masked, func(m string) bool { return under(p, m) }) {
			opt = append(opt, optMkdir)
		}
		ms = append(ms, specs.Mount{Destination: p, Type: "bind", Source: p, Options: opt})
		return nil
	}
	for _, p := range o.ReadOnly {
		if err := bind("read-only directory", p, true); err != nil {
			return nil, err
		}
	}
	if o.CodeDir != "" {
		if err := bind("code directory", o.CodeDir, true); err != nil {
			return nil, err
		}
	}
	if o.WorkDir != "" {
		if err := bind("working directory", o.WorkDir, false); err != nil {
			return nil, err
		}
	}
	for _, p := range o.ReadWrite {
		if err := bind("writable directory", p, false); err != nil {
			return nil, err
		}
	}
	// Parents before children, so that a bind inside another one (a
	// read-only library inside a writable directory) lands on top of it.
	first := slices.IndexFunc(ms, func(m specs.Mount) bool { return m.Destination == "/tmp" && m.Type == "tmpfs" }) + 1
	slices.SortStableFunc(ms[first:], func(a, b specs.Mount) int { return len(a.Destination) - len(b.Destination) })
	return ms, nil
}

// identityMap maps the ids the server itself has onto themselves, so that
// file owners look the same inside and the RunAs user is mapped.
func identityMap(file string) []specs.LinuxIDMapping {
	b, err := os.ReadFile(file)
	if err != nil {
		return []specs.LinuxIDMapping{{ContainerID: 0, HostID: 0, Size: 4294967295}}
	}
	var m []specs.LinuxIDMapping
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		inside, err1 := strconv.ParseUint(f[0], 10, 32)
		size, err2 := strconv.ParseUint(f[2], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		m = append(m, specs.LinuxIDMapping{ContainerID: uint32(inside), HostID: uint32(inside), Size: uint32(size)})
	}
	return m
}

// SetupError is returned by Cmd.Wait when `dais sandbox-exec` could not build
// the sandbox: the content never ran. Step names what failed ("mask /data").
type SetupError struct {
	Step string
	Err  string
}

func (e *SetupError) Error() string { return "sandbox: " + e.Step + ": " + e.Err }
