package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Per-process resource limits (memory, CPU, processes) are enforced with
// cgroups where the server can make them, else with rlimits (Spec adds
// them; see LimitsInForce). Each sandbox gets a cgroup of its own under
// <the server's cgroup>/dais, made by Cmd.Start before the content runs
// and removed by Cmd.Wait.
//
// cgroup v1 (what Docker 20.10 gives on a v1 host): the container sees its
// hierarchies mounted read-only; with CAP_SYS_ADMIN the server mounts each
// controller's hierarchy again, writable, under cgroupMountDir (the same
// hierarchy: the kernel shares it), and works below its own cgroup there.
// cgroup v2 is not used yet: a v2 server would need to move itself into a
// leaf first (no internal processes), and no machine of this project has a
// v2 host to test it on. Both are stated by LimitsInForce.

// cgroupMountDir is where the server mounts writable v1 hierarchies.
const cgroupMountDir = "/run/dais/cgroup"

// limitControllers are the v1 controllers dais sets limits with.
var limitControllers = []string{"memory", "pids", "cpu"}

type cgroupSet struct {
	// base is the directory of each controller under which sandboxes'
	// cgroups are made: <mount>/<server's cgroup>/dais.
	base map[string]string
	note string
}

var (
	cgroupsOnce sync.Once
	cgroups     *cgroupSet
	cgroupsErr  error
	cgroupSeq   atomic.Int64
)

// LimitsInForce says how per-process limits are enforced here: by cgroup
// v1 controllers, or by rlimits only (and why), for the start log line and
// the selftest.
func LimitsInForce() string {
	cs, err := limitCgroups()
	if err != nil {
		return "rlimits only (RLIMIT_NPROC counts every process of the content's user; memory: RLIMIT_DATA, an allocation over it fails " +
			"rather than the process being killed; no CPU limit): " + err.Error()
	}
	return "cgroup v1 (" + cs.note + ")"
}

// HaveLimitCgroups tells whether Cmd.Start puts sandboxes in cgroups.
func HaveLimitCgroups() bool {
	_, err := limitCgroups()
	return err == nil
}

func limitCgroups() (*cgroupSet, error) {
	cgroupsOnce.Do(func() { cgroups, cgroupsErr = findCgroups() })
	return cgroups, cgroupsErr
}

// findCgroups finds, or mounts, a writable hierarchy of each controller and
// makes the server's "dais" cgroup in it.
func findCgroups() (*cgroupSet, error) {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return nil, errors.New("the host uses cgroup v2, which dais does not drive yet")
	}
	own, err := ownCgroups()
	if err != nil {
		return nil, err
	}
	mounts, err := cgroupMounts()
	if err != nil {
		return nil, err
	}
	cs := &cgroupSet{base: map[string]string{}}
	var how []string
	for _, ctl := range limitControllers {
		path, ok := own[ctl]
		if !ok {
			return nil, fmt.Errorf("no %s controller in /proc/self/cgroup", ctl)
		}
		m, ok := mounts[ctl]
		if ok {
			if rel, err := filepath.Rel(m.root, path); err == nil && !strings.HasPrefix(rel, "..") {
				dir := filepath.Join(m.point, rel, "dais")
				if err := os.Mkdir(dir, 0o755); err == nil || errors.Is(err, os.ErrExist) {
					cs.base[ctl] = dir
					how = append(how, ctl)
					continue
				}
			}
		}
		// Mount the hierarchy again, writable (needs CAP_SYS_ADMIN).
		point := filepath.Join(cgroupMountDir, ctl)
		if err := os.MkdirAll(point, 0o755); err != nil {
			return nil, fmt.Errorf("the %s cgroup is read-only and %s cannot be made: %v", ctl, point, err)
		}
		if !isMountPoint(point) {
			if err := unix.Mount("cgroup", point, "cgroup", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, m.options(ctl)); err != nil {
				return nil, fmt.Errorf("the %s cgroup is read-only and mounting it writable failed (%v): run with --cap-add SYS_ADMIN for cgroup limits", ctl, err)
			}
		}
		dir := filepath.Join(point, path, "dais")
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("making the %s cgroup %s: %v", ctl, dir, err)
		}
		cs.base[ctl] = dir
		how = append(how, ctl+" mounted at "+point)
	}
	cs.note = strings.Join(how, ", ")
	return cs, nil
}

// ownCgroups maps each v1 controller to the server's cgroup path.
func ownCgroups() (map[string]string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			out[c] = f[2]
		}
	}
	return out, nil
}

type cgroupMount struct {
	point, root string
	ctls        []string // the hierarchy's controllers, for a new mount of it
}

// options are the mount options of a new mount of m's hierarchy: its
// controllers (a hierarchy is mounted with exactly those it has).
func (m cgroupMount) options(ctl string) string {
	if len(m.ctls) == 0 {
		return ctl
	}
	return strings.Join(m.ctls, ",")
}

// cgroupMounts maps each v1 controller to a mount of its hierarchy, from
// /proc/self/mountinfo.
func cgroupMounts() (map[string]cgroupMount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]cgroupMount{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 || qf[0] != "cgroup" {
			continue
		}
		var ctls []string
		for _, o := range strings.Split(qf[2], ",") {
			switch o {
			case "rw", "ro":
			default:
				ctls = append(ctls, o)
			}
		}
		m := cgroupMount{point: unescapeMount(pf[4]), root: unescapeMount(pf[3])}
		for _, c := range ctls {
			if slices.Contains(limitControllers, c) {
				m.ctls = ctls
				if prev, ok := out[c]; !ok || (!writable(prev.point) && writable(m.point)) {
					out[c] = m
				}
			}
		}
	}
	return out, sc.Err()
}

func writable(dir string) bool { return unix.Access(dir, unix.W_OK) == nil }

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

func isMountPoint(dir string) bool {
	var a, b unix.Stat_t
	if unix.Stat(dir, &a) != nil || unix.Stat(filepath.Dir(dir), &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}

// cgroup is one sandbox's cgroup in each controller.
type cgroup struct {
	dirs   map[string]string
	limits limits
}

// newCgroup makes a sandbox's cgroups and writes its limits.
func newCgroup(l limits) (*cgroup, error) {
	cs, err := limitCgroups()
	if err != nil {
		return nil, err
	}
	name := strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(cgroupSeq.Add(1), 10)
	cg := &cgroup{dirs: map[string]string{}, limits: l}
	write := func(ctl, file, v string) error {
		if err := os.WriteFile(filepath.Join(cg.dirs[ctl], file), []byte(v), 0); err != nil {
			return fmt.Errorf("sandbox: setting %s %s: %w", ctl, file, err)
		}
		return nil
	}
	for _, ctl := range limitControllers {
		dir := filepath.Join(cs.base[ctl], name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			cg.remove()
			return nil, fmt.Errorf("sandbox: making cgroup %s: %w", dir, err)
		}
		cg.dirs[ctl] = dir
	}
	var err2 error
	if l.memory > 0 {
		err2 = write("memory", "memory.limit_in_bytes", strconv.FormatInt(l.memory, 10))
		if err2 == nil {
			// With swap accounting, swap counts too (else the limit only
			// moves the excess to swap). Absent without it: ignored.
			os.WriteFile(filepath.Join(cg.dirs["memory"], "memory.memsw.limit_in_bytes"), []byte(strconv.FormatInt(l.memory, 10)), 0)
		}
	}
	if err2 == nil && l.pids > 0 {
		err2 = write("pids", "pids.max", strconv.Itoa(l.pids))
	}
	if err2 == nil && l.cpu > 0 {
		const period = 100000
		if err2 = write("cpu", "cpu.cfs_period_us", strconv.Itoa(period)); err2 == nil {
			q := int64(l.cpu * period)
			if q < 1000 {
				q = 1000
			}
			err2 = write("cpu", "cpu.cfs_quota_us", strconv.FormatInt(q, 10))
		}
	}
	if err2 != nil {
		cg.remove()
		return nil, err2
	}
	return cg, nil
}

// add moves pid (a whole thread group) into the cgroups; its children
// follow it.
func (cg *cgroup) add(pid int) error {
	for _, ctl := range limitControllers {
		if err := os.WriteFile(filepath.Join(cg.dirs[ctl], "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("sandbox: moving the sandbox into its %s cgroup: %w", ctl, err)
		}
	}
	return nil
}

// envCgroups names, in a cold sandbox-exec's environment, the cgroup.procs
// files it writes itself into before anything else (joinCgroups).
const envCgroups = "DAIS_SANDBOX_CGROUPS"

// procsFiles are the cgroup.procs files of the sandbox's cgroups.
func (cg *cgroup) procsFiles() []string {
	var fs []string
	for _, ctl := range limitControllers {
		fs = append(fs, filepath.Join(cg.dirs[ctl], "cgroup.procs"))
	}
	return fs
}

// joinCgroups moves sandbox-exec into the cgroups the server made for it,
// before it forks anything. The server checks the move (Cmd.startCold).
func joinCgroups() error {
	v := os.Getenv(envCgroups)
	if v == "" {
		return nil
	}
	os.Unsetenv(envCgroups)
	for _, f := range strings.Split(v, ":") {
		if err := os.WriteFile(f, []byte("0"), 0); err != nil {
			return fail("join the sandbox's cgroup", err)
		}
	}
	return nil
}

// oomKills is how many processes the kernel killed for the memory limit.
func (cg *cgroup) oomKills() int {
	b, err := os.ReadFile(filepath.Join(cg.dirs["memory"], "memory.oom_control"))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "oom_kill "); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// pidsRefused is how many forks the process limit refused.
func (cg *cgroup) pidsRefused() int {
	b, err := os.ReadFile(filepath.Join(cg.dirs["pids"], "pids.events"))
	if err != nil {
		return 0
	}
	v, _ := strings.CutPrefix(strings.TrimSpace(string(b)), "max ")
	n, _ := strconv.Atoi(v)
	return n
}

// remove removes the cgroups once their processes are gone (a killed
// process leaves its cgroup a moment after it is reaped).
func (cg *cgroup) remove() {
	for _, dir := range cg.dirs {
		for i := 0; i < 100; i++ {
			err := unix.Rmdir(dir)
			if err == nil || err == unix.ENOENT {
				break
			}
			if err != unix.EBUSY {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// FormatBytes writes a memory size as people read it: "256 MB", "1.5 GB"
// (binary units, as the limits are set).
func FormatBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return strconv.FormatInt(n>>30, 10) + " GB"
	case n >= 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 1, 64) + " GB"
	case n >= 1<<20:
		return strconv.FormatInt(n>>20, 10) + " MB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
