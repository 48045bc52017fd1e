package setup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/datalock"
	"github.com/dais-dev/dais/server/sandbox"
	"golang.org/x/sys/unix"
)

// Check names, as --skip-checks takes them.
const (
	checkCap      = "cap"
	checkDataDir  = "datadir"
	checkNetFS    = "netfs"
	checkLock     = "lock"
	checkRuntimes = "runtimes"
)

var checkNames = []string{checkCap, checkDataDir, checkNetFS, checkLock, checkRuntimes}

var checkWhat = map[string]string{
	checkCap:      "a sandbox mode: CAP_SYS_ADMIN and the mount namespace probe, else Landlock; content sandboxing will fail at run time if neither works",
	checkDataDir:  "Server.DataDir on a persistent mount; data may be lost when the container is removed",
	checkNetFS:    "SQLite not on a network filesystem; the database may corrupt",
	checkLock:     "SQLite data directory not in use; two servers on one SQLite database corrupt it",
	checkRuntimes: "R, Python and Quarto versions",
}

// Log attribute keys.
const (
	keyCheck = "check"
	keyPath  = "path"
	keyErr   = "err"
)

// exitConfig is EX_CONFIG from sysexits.h: a check or the configuration failed.
const exitConfig = 78

// checkError is a failed preflight check: Error is the one line the user reads.
type checkError struct {
	check string
	msg   string
}

func (e *checkError) Error() string { return e.msg }

// probeResult is what the namespace probe child reports: the step that
// failed ("" when all worked) and its errno.
type probeResult struct {
	Step  string // "clone", "rprivate", "tmpfs", "bind"; "" = success
	Errno error
}

// host is what the checks read from the system; tests replace parts of it.
type host struct {
	// capSysAdmin reports whether CAP_SYS_ADMIN is in the effective set.
	capSysAdmin func() (bool, error)
	// probe creates a user + mount namespace and mounts a tmpfs in a child.
	probe func(ctx context.Context) probeResult
	// landlockABI is the kernel's Landlock ABI (an error when the calls fail).
	landlockABI func() (int, error)
	// mountinfo opens the mount table (/proc/self/mountinfo).
	mountinfo func() (io.ReadCloser, error)
	// readFile reads small /proc and /sys files (sysctls, AppArmor state).
	readFile func(string) ([]byte, error)
	// runtimes finds R, Python and Quarto installations.
	runtimes func(ctx context.Context, c *config.Config) []runtimeFinding
}

// preflight runs every check not skipped; the first failure is returned.
func preflight(ctx context.Context, log *slog.Logger, h *host, o *options, cfg *config.Config) error {
	checks := []struct {
		name string
		run  func() error
	}{
		{checkCap, func() error { return checkSandboxMode(ctx, log, h, cfg) }},
		{checkDataDir, func() error { return checkDataDirMount(h, cfg) }},
		{checkNetFS, func() error { return checkNetworkFS(h, cfg) }},
		{checkLock, func() error { return checkSQLiteLock(cfg) }},
		{checkRuntimes, func() error { logRuntimes(log, h.runtimes(ctx, cfg)); return nil }},
	}
	for _, c := range checks {
		if o.skipped(c.name) {
			log.Warn("WARNING: preflight check SKIPPED by --skip-checks/DAIS_INIT_SKIP_CHECKS: "+c.name+" ("+checkWhat[c.name]+")", keyCheck, c.name)
			continue
		}
		if err := c.run(); err != nil {
			return err
		}
	}
	return nil
}

// Messages of the capability check. Stable: the e2e tests match them.
const (
	msgCapMissing = "CAP_SYS_ADMIN is missing: dais sandboxes content in mount namespaces; run the container with --cap-add SYS_ADMIN (or --privileged)"
	msgUserNSOff  = "user namespaces are switched off (%s = %s): enable them on the host (sysctl -w %s), dais sandboxes content in a user + mount namespace"
	msgAppArmor   = "mount is denied by AppArmor (%s) although CAP_SYS_ADMIN is present: run the container with --security-opt apparmor=unconfined"
	msgSeccomp    = "%s is denied (%s) although CAP_SYS_ADMIN is present, most likely by a seccomp profile: run the container with --security-opt seccomp=unconfined (or a profile allowing unshare and mount)"
	msgProbeOther = "the mount namespace probe failed at %s: %s: run the container with --cap-add SYS_ADMIN, or --privileged"
)

// Messages of the sandbox mode check. Stable: the e2e tests match them.
const (
	msgNoMode         = "no sandbox mode works here: namespaces mode: %s; Landlock mode: %s. Either " + sandbox.FixNamespaces + ", or " + sandbox.FixLandlock
	msgForcedLandlock = "Sandbox.Mode = landlock, but %s: " + sandbox.FixLandlock + "; or set Sandbox.Mode = auto and " + sandbox.FixNamespaces
)

// checkSandboxMode passes when the mode Sandbox.Mode asks for can work:
// namespaces (the capability check and probe below), Landlock (the kernel
// offers sandbox.LandlockMinABI), or for auto either, namespaces first.
// dais serve then chooses the same way and logs its choice.
func checkSandboxMode(ctx context.Context, log *slog.Logger, h *host, cfg *config.Config) error {
	mode := strings.ToLower(cfg.Sandbox.Mode)
	var nsErr error
	if mode != "landlock" {
		nsErr = checkCapabilities(ctx, h)
		if nsErr == nil || mode == "namespaces" {
			return nsErr
		}
	}
	llErr := checkLandlock(h)
	if llErr == nil {
		if nsErr != nil {
			log.Info("namespaces mode unavailable ("+nsErr.Error()+"): content will be confined with Landlock, which needs no privilege", keyCheck, checkCap)
		}
		return nil
	}
	if mode == "landlock" {
		return &checkError{checkCap, fmt.Sprintf(msgForcedLandlock, llErr)}
	}
	return &checkError{checkCap, fmt.Sprintf(msgNoMode, nsErr, llErr)}
}

func checkLandlock(h *host) error {
	abi, err := h.landlockABI()
	if err != nil {
		return fmt.Errorf("Landlock is unavailable (%v)", err)
	}
	if abi < sandbox.LandlockMinABI {
		return fmt.Errorf("the kernel offers Landlock ABI %d, dais needs %d", abi, sandbox.LandlockMinABI)
	}
	return nil
}

func checkCapabilities(ctx context.Context, h *host) error {
	ok, err := h.capSysAdmin()
	if err != nil {
		return &checkError{checkCap, fmt.Sprintf("cannot read capabilities: %v: run the container with --cap-add SYS_ADMIN (or --privileged)", err)}
	}
	if !ok {
		return &checkError{checkCap, msgCapMissing}
	}
	r := h.probe(ctx)
	if r.Step == "" {
		return nil
	}
	return &checkError{checkCap, classifyProbe(h, r)}
}

// classifyProbe turns a failed probe into the line naming the fix.
func classifyProbe(h *host, r probeResult) string {
	if r.Step == "clone" {
		for _, s := range []struct{ file, sysctl string }{
			{"/proc/sys/user/max_user_namespaces", "user.max_user_namespaces=15000"},
			{"/proc/sys/kernel/unprivileged_userns_clone", "kernel.unprivileged_userns_clone=1"},
		} {
			if b, err := h.readFile(s.file); err == nil && strings.TrimSpace(string(b)) == "0" {
				return fmt.Sprintf(msgUserNSOff, s.file, "0", s.sysctl)
			}
		}
		if errors.Is(r.Errno, errENOSPC) {
			return fmt.Sprintf(msgUserNSOff, "/proc/sys/user/max_user_namespaces", "exhausted", "user.max_user_namespaces=15000")
		}
		if isPermission(r.Errno) {
			return fmt.Sprintf(msgSeccomp, "creating a user + mount namespace (unshare)", errnoName(r.Errno))
		}
		return fmt.Sprintf(msgProbeOther, "unshare", errnoName(r.Errno))
	}
	if isPermission(r.Errno) {
		if profile := apparmorProfile(h); profile != "" {
			return fmt.Sprintf(msgAppArmor, "profile "+profile)
		}
		return fmt.Sprintf(msgSeccomp, "mount ("+r.Step+")", errnoName(r.Errno))
	}
	return fmt.Sprintf(msgProbeOther, r.Step, errnoName(r.Errno))
}

// apparmorProfile is the confining AppArmor profile of this process, "" when
// AppArmor is off or we are unconfined.
func apparmorProfile(h *host) string {
	if b, err := h.readFile("/sys/module/apparmor/parameters/enabled"); err != nil || !strings.HasPrefix(string(b), "Y") {
		return ""
	}
	b, err := h.readFile("/proc/self/attr/apparmor/current")
	if err != nil {
		if b, err = h.readFile("/proc/self/attr/current"); err != nil {
			return ""
		}
	}
	p := strings.TrimSpace(strings.TrimRight(string(b), "\x00\n"))
	if p == "" || p == "unconfined" {
		return ""
	}
	return p
}

// Messages of the mount checks. Stable: the e2e tests match them.
const (
	msgDefaultDataDir = "Server.DataDir is the default " + config.DefaultDataDir + ", on the container's writable layer: set Server.DataDir = /data (or CONNECT_SERVER_DATADIR=/data) and mount a volume there: -v $PWD/data:/data"
	msgNotPersistent  = "Server.DataDir %s is on the container's writable layer (%s on /): mount a volume there: -v $PWD/data:%s"
	msgAnonVolume     = "Server.DataDir %s is on an anonymous Docker volume, lost when the container is removed: mount a volume there: -v $PWD/data:%s (or a named volume: -v dais-data:%s)"
	msgTmpfs          = "Server.DataDir %s is on %s %s, lost when the container stops: mount a volume there: -v $PWD/data:%s"
	msgNetFS          = "the SQLite database directory %s is on a network filesystem (%s on %s), where SQLite locking is unreliable: use PostgreSQL (Database.Provider = postgres, Postgres.URL) or a local volume"
	msgNotWritable    = "%s %s is not writable by the server, which runs as uid %d (gid %d) (%v): give it the directory (on the host: chown %d the directory mounted on %s), or use a named volume (-v dais-data:/data), which takes the image's /data, owned by uid 999"
	msgLocked         = "the SQLite database directory %s is in use by another running dais%s: stop it first; to run several servers on one DataDir use PostgreSQL (Database.Provider = postgres)"
)

func checkDataDirMount(h *host, cfg *config.Config) error {
	dir := filepath.Clean(cfg.Server.DataDir)
	if dir == config.DefaultDataDir {
		return &checkError{checkDataDir, msgDefaultDataDir}
	}
	m, err := mountOf(h, dir)
	if err != nil {
		return &checkError{checkDataDir, fmt.Sprintf("cannot find the mount of Server.DataDir %s: %v", dir, err)}
	}
	if m.Mountpoint == "/" && containerRootFS[m.FSType] {
		return &checkError{checkDataDir, fmt.Sprintf(msgNotPersistent, dir, m.FSType, dir)}
	}
	if m.FSType == "tmpfs" || m.FSType == "ramfs" {
		return &checkError{checkDataDir, fmt.Sprintf(msgTmpfs, dir, m.FSType, m.Mountpoint, dir)}
	}
	// The image declares VOLUME /data, so without -v Docker mounts an
	// anonymous volume there: it survives a restart but not `docker rm`
	// (nor --rm), and nobody can find it again by name.
	if anonymousVolume.MatchString(m.Root) {
		return &checkError{checkDataDir, fmt.Sprintf(msgAnonVolume, dir, dir, dir)}
	}
	return checkWritable(checkDataDir, "Server.DataDir", dir)
}

// checkWritable refuses a directory the server, when it runs without root
// (docker run --user 999), could not write: the start would fail later
// with a bare "permission denied". Root writes anywhere.
func checkWritable(check, what, dir string) error {
	if os.Geteuid() == 0 {
		return nil
	}
	err := unix.Access(dir, unix.W_OK|unix.X_OK)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	return &checkError{check, fmt.Sprintf(msgNotWritable, what, dir, os.Geteuid(), os.Getegid(), err, os.Geteuid(), dir)}
}

// anonymousVolume matches the root of an anonymous Docker volume's mount:
// <docker data root>/volumes/<64 hex digits>/_data. Named volumes have
// their name there instead.
var anonymousVolume = regexp.MustCompile(`/volumes/[0-9a-f]{64}/_data$`)

// containerRootFS are the filesystems of a container's own root: writes
// there vanish with the container.
var containerRootFS = map[string]bool{"overlay": true, "aufs": true, "fuse.fuse-overlayfs": true, "rootfs": true, "tmpfs": true, "ramfs": true}

// networkFS are filesystems where SQLite's file locks cannot be trusted.
var networkFS = map[string]bool{
	"nfs": true, "nfs4": true, "cifs": true, "smb3": true, "smbfs": true, "9p": true,
	"ceph": true, "glusterfs": true, "lustre": true, "afs": true, "gpfs": true,
	"davfs": true, "sshfs": true,
}

func isNetworkFS(fstype string) bool {
	return networkFS[fstype] || strings.HasPrefix(fstype, "fuse.") || fstype == "fuse"
}

func sqliteProvider(cfg *config.Config) bool {
	p := strings.ToLower(strings.TrimSpace(cfg.Database.Provider))
	return p == "" || p == "sqlite"
}

func checkNetworkFS(h *host, cfg *config.Config) error {
	if !sqliteProvider(cfg) {
		return nil
	}
	dir := filepath.Clean(cfg.SQLiteDir())
	m, err := mountOf(h, dir)
	if err != nil {
		return &checkError{checkNetFS, fmt.Sprintf("cannot find the mount of the SQLite directory %s: %v", dir, err)}
	}
	if isNetworkFS(m.FSType) {
		return &checkError{checkNetFS, fmt.Sprintf(msgNetFS, dir, m.FSType, m.Mountpoint)}
	}
	return nil
}

func checkSQLiteLock(cfg *config.Config) error {
	if !sqliteProvider(cfg) {
		return nil
	}
	dir := filepath.Clean(cfg.SQLiteDir())
	err := datalock.Probe(dir)
	if errors.Is(err, datalock.ErrLocked) {
		who := ""
		if i := strings.LastIndex(err.Error(), "(pid "); i >= 0 {
			who = " " + err.Error()[i:]
		}
		return &checkError{checkLock, fmt.Sprintf(msgLocked, dir, who)}
	}
	if err != nil {
		return &checkError{checkLock, fmt.Sprintf("cannot lock the SQLite database directory: %v: check that %s is writable by root", err, dir)}
	}
	return nil
}

// resolveExisting resolves symlinks in the longest existing prefix of path.
func resolveExisting(path string) string {
	rest := ""
	for p := path; ; p = filepath.Dir(p) {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(r, rest)
		}
		if p == "/" || p == "." {
			return path
		}
		rest = filepath.Join(filepath.Base(p), rest)
	}
}

func openMountinfo(path string) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return os.Open(path) }
}
