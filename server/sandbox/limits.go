package sandbox

import (
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Annotations of a spec's limits (Options.MemoryLimit, CPULimit,
// ProcessLimit), read by Command to make the sandbox's cgroups.
const (
	AnnotationMemoryLimit  = "org.dais.limits.memory"
	AnnotationCPULimit     = "org.dais.limits.cpu"
	AnnotationProcessLimit = "org.dais.limits.pids"
)

// withLimits records o's limits in s; where no cgroup can enforce them,
// it sets the rlimits that come closest instead.
func withLimits(o Options, s *specs.Spec) {
	if o.MemoryLimit <= 0 && o.CPULimit <= 0 && o.ProcessLimit <= 0 {
		return
	}
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
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
	return l
}

// limits are one sandbox's limits; zero fields are unlimited.
type limits struct {
	memory int64
	cpu    float64
	pids   int
}

func (l limits) any() bool { return l.memory > 0 || l.cpu > 0 || l.pids > 0 }
