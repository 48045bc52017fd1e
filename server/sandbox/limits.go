package sandbox

import (
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Annotations of a spec's limits (Options.MemoryLimit, CPULimit,
// ProcessLimit), read by Command to make the sandbox's cgroups.
const (
	AnnotationMemoryLimit  = "org.dais.limits.memory"
	AnnotationCPULimit     = "org.dais.limits.cpu"
	AnnotationProcessLimit = "org.dais.limits.pids"
	// The directories whose disk use is bounded, with their limits, as
	// "bytes:path" lines (Options.DiskLimit).
	AnnotationDiskLimits = "org.dais.limits.disk"
)

// withLimits records o's limits in s; where no cgroup can enforce them,
// it sets the rlimits that come closest instead.
func withLimits(o Options, s *specs.Spec) {
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	var dirs []string
	bound := func(dir string, n int64) {
		if dir != "" && n > 0 {
			dirs = append(dirs, strconv.FormatInt(n, 10)+":"+dir)
		}
	}
	bound(o.WorkDir, o.DiskLimit)
	bound(s.Annotations[AnnotationTmpDir], o.TmpSize) // Landlock's TMPDIR is on disk
	if len(dirs) > 0 {
		s.Annotations[AnnotationDiskLimits] = strings.Join(dirs, "\n")
	}
	if o.DiskLimit > 0 && o.WorkDir != "" {
		// No one file over the work directory's limit, at once and in
		// every mode (Python gets EFBIG; a program that keeps SIGXFSZ's
		// default dies of it). One limit for every file the content
		// writes: the TMPDIR's is left to the measure.
		s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_FSIZE", Soft: uint64(o.DiskLimit), Hard: uint64(o.DiskLimit)})
	}
	if o.MemoryLimit <= 0 && o.CPULimit <= 0 && o.ProcessLimit <= 0 {
		return
	}
	if o.MemoryLimit > 0 {
		s.Annotations[AnnotationMemoryLimit] = strconv.FormatInt(o.MemoryLimit, 10)
	}
	if o.CPULimit > 0 {
		s.Annotations[AnnotationCPULimit] = strconv.FormatFloat(o.CPULimit, 'g', -1, 64)
	}
	if o.ProcessLimit > 0 {
		s.Annotations[AnnotationProcessLimit] = strconv.Itoa(o.ProcessLimit)
	}
	if HaveLimitCgroups() {
		return
	}
	set := func(typ string, v uint64) {
		for i, r := range s.Process.Rlimits {
			if r.Type == typ {
				s.Process.Rlimits[i].Soft, s.Process.Rlimits[i].Hard = min(r.Soft, v), min(r.Hard, v)
				return
			}
		}
		s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: typ, Soft: v, Hard: v})
	}
	if o.MemoryLimit > 0 {
		set("RLIMIT_DATA", uint64(o.MemoryLimit))
	}
	if o.ProcessLimit > 0 {
		set("RLIMIT_NPROC", uint64(o.ProcessLimit))
	}
}

// specLimits reads the limits withLimits recorded.
func specLimits(s *specs.Spec) limits {
	var l limits
	if s.Annotations == nil {
		return l
	}
	l.memory, _ = strconv.ParseInt(s.Annotations[AnnotationMemoryLimit], 10, 64)
	l.cpu, _ = strconv.ParseFloat(s.Annotations[AnnotationCPULimit], 64)
	l.pids, _ = strconv.Atoi(s.Annotations[AnnotationProcessLimit])
	for _, line := range strings.Split(s.Annotations[AnnotationDiskLimits], "\n") {
		n, dir, ok := strings.Cut(line, ":")
		if b, err := strconv.ParseInt(n, 10, 64); ok && err == nil && b > 0 && dir != "" {
			l.disk = append(l.disk, diskLimit{dir: dir, bytes: b})
		}
	}
	return l
}

// diskLimit bounds what one directory holds.
type diskLimit struct {
	dir   string
	bytes int64
}

// limits are one sandbox's limits; zero fields are unlimited.
type limits struct {
	memory int64
	cpu    float64
	pids   int
	disk   []diskLimit // not a cgroup's: the server measures them
}

// any tells whether a cgroup has something to enforce.
func (l limits) any() bool { return l.memory > 0 || l.cpu > 0 || l.pids > 0 }
