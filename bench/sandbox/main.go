// Command sandbox-bench measures the spawn latency of `true` in the full
// dais sandbox (p50, p99) and the sandboxes started per second, against
// bubblewrap doing the same masks in the same run. dais is measured the way
// the server starts content (dais-sandbox-exec, pre-started), with a new
// dais-sandbox-exec per start, and re-executing dais itself. Run it as root through
// bench/sandbox.sh.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dais-dev/dais/server/sandbox"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "noop" {
		return // the cost of starting this Go binary, for reference
	}
	n := flag.Int("n", 200, "spawns per peer for the latency figures")
	dur := flag.Duration("throughput-for", 3*time.Second, "how long each throughput run lasts")
	workers := flag.Int("workers", 2, "parallel spawners for the throughput figure")
	dais := flag.String("dais", "", "path of the dais binary, measured too (its package inits count)")
	helper := flag.String("helper", "", "path of dais-sandbox-exec, the program the server runs (pre-started and cold)")
	runAs := flag.String("run-as", "nobody", "user the content runs as")
	outbound := flag.Bool("outbound", true, "also measure the pre-started helper with outbound network (slirp4netns attached to each sandbox)")
	only := flag.String("only", "", "measure only the peers whose name matches this regular expression (bwrap, the reference, always)")
	settle := flag.Duration("settle", 50*time.Millisecond, "for the latency figures, how long to wait after the previous start's pre-start is done before the next start is timed (0: back to back)")
	flag.Parse()
	onlyRE, err := regexp.Compile(*only)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandbox-bench: -only:", err)
		os.Exit(2)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "sandbox-bench: run as root (mounts and namespaces)")
		os.Exit(2)
	}
	if err := run(*n, *dur, *workers, *settle, *dais, *helper, *runAs, *outbound, onlyRE, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox-bench:", err)
		os.Exit(1)
	}
}

// bwrapName is the reference peer's name.
const bwrapName = "bwrap (bubblewrap)"

type peer struct {
	name  string
	spawn func() error
}

func run(n int, dur time.Duration, workers int, settle time.Duration, daisPath, helperPath, runAs string, outbound bool, only *regexp.Regexp, w io.Writer) error {
	base, err := os.MkdirTemp("/var/lib", "dais-sandbox-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(base)
	os.Chmod(base, 0o755)
	code, work := filepath.Join(base, "apps/1/code"), filepath.Join(base, "apps/1/work")
	for _, d := range []string{code, work} {
		if err := os.MkdirAll(d, 0o777); err != nil {
			return err
		}
	}
	masks := []string{base, "/etc/rstudio-connect", "/home", "/var/tmp"}
	o := sandbox.Options{Args: []string{"/bin/true"}, CodeDir: code, WorkDir: work, Masks: masks, RunAs: runAs}
	spec, err := sandbox.Spec(o)
	if err != nil {
		return err
	}
	// As the server does with Applications.OutboundNetwork on: slirp4netns
	// attached to each sandbox's network namespace.
	var outSpec *specs.Spec
	if outbound {
		oo := o
		oo.Network = sandbox.NetworkOutbound
		if outSpec, err = sandbox.Spec(oo); err != nil {
			return fmt.Errorf("outbound network (or run with -outbound=false): %w", err)
		}
	}
	// Landlock mode ([Sandbox] Mode = landlock): the same directories as
	// rules instead of mounts, no namespace. Each start needs its own
	// private TMPDIR name (the server builds a spec per start); the rest of
	// the spec is shared, as for the namespaces peers.
	lo := o
	lo.Mode = sandbox.ModeLandlock
	llSpec, err := sandbox.Spec(lo)
	if err != nil {
		return err
	}
	abi, abiErr := sandbox.LandlockABI()
	landlock := abiErr == nil && abi >= sandbox.LandlockMinABI
	self, _ := os.Executable()
	// cold: a new sandbox-exec for every start; otherwise the server's way,
	// handing the spec to a pre-started one (and starting the next).
	daisSpawnSpec := func(bin string, cold bool, spec *specs.Spec) func() error {
		return func() error {
			cmd, err := sandbox.Command(context.Background(), bin, spec)
			if err != nil {
				return err
			}
			cmd.Cold = cold
			return cmd.Run()
		}
	}
	daisSpawn := func(bin string, cold bool) func() error { return daisSpawnSpec(bin, cold, spec) }
	// bwrap with the same namespaces, masks, binds, user and privileges.
	bargs := []string{"--unshare-user", "--unshare-pid", "--unshare-net", "--uid", fmt.Sprint(spec.Process.User.UID), "--gid", fmt.Sprint(spec.Process.User.GID),
		"--dev-bind", "/", "/"}
	for _, m := range masks {
		if _, err := os.Stat(m); err == nil {
			bargs = append(bargs, "--tmpfs", m)
		}
	}
	bargs = append(bargs, "--tmpfs", "/tmp", "--ro-bind", code, code, "--bind", work, work, "--proc", "/proc",
		"--chdir", work, "--clearenv", "--new-session", "--die-with-parent", "--cap-drop", "ALL", "/bin/true")
	bwrap, err := exec.LookPath("bwrap")
	if err != nil {
		return fmt.Errorf("bwrap not found: install Debian's bubblewrap")
	}
	peers := []peer{
		{"plain fork+exec (no sandbox)", func() error { return exec.Command("/bin/true").Run() }},
		{"plain fork+exec of a Go binary", func() error { return exec.Command(self, "noop").Run() }},
		{bwrapName, func() error {
			c := exec.Command(bwrap, bargs...)
			c.Env = []string{}
			if out, err := c.CombinedOutput(); err != nil {
				return fmt.Errorf("%w: %s", err, out)
			}
			return nil
		}},
	}
	if helperPath != "" {
		peers = append(peers,
			peer{"dais, pre-started helper", daisSpawn(helperPath, false)},
			peer{"dais, cold helper", daisSpawn(helperPath, true)})
		if outSpec != nil {
			peers = append(peers, peer{"dais, pre-started helper, outbound network (slirp4netns)", daisSpawnSpec(helperPath, false, outSpec)})
		}
	}
	if helperPath != "" && landlock {
		llSpawn := func(cold bool) func() error {
			return func() error {
				s, err := withNewTmpDir(llSpec)
				if err != nil {
					return err
				}
				return daisSpawnSpec(helperPath, cold, s)()
			}
		}
		peers = append(peers,
			peer{"dais Landlock, pre-started helper", llSpawn(false)},
			peer{"dais Landlock, cold helper", llSpawn(true)})
	} else if helperPath != "" {
		fmt.Fprintf(w, "note: Landlock mode not measured: %v (ABI %d, dais needs %d)\n", abiErr, abi, sandbox.LandlockMinABI)
	}
	if daisPath != "" {
		peers = append(peers, peer{"dais, cold re-exec of dais", daisSpawn(daisPath, true)})
	}
	peers = slices.DeleteFunc(peers, func(p peer) bool { return p.name != bwrapName && !only.MatchString(p.name) })
	ref := slices.IndexFunc(peers, func(p peer) bool { return p.name == bwrapName })
	type result struct {
		p50, p99 time.Duration
		cpu      time.Duration // CPU time per start, the bench's and its children's
		perSec   float64
		failed   int
	}
	res := make([]result, len(peers))
	for _, p := range peers {
		for range 5 { // warm up page cache and the spawner thread
			if err := p.spawn(); err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
		}
	}
	// Latency: the peers take turns, so that a change of the host's load
	// hits them all alike, each round starting with the next peer. Each
	// start is timed on a settled machine: after the previous start's
	// refill (a new sandbox-exec, a Go program's start) and a pause for
	// what the kernel does after a sandbox ends (its namespaces' teardown).
	// Back to back (-settle 0), the previous peer's refill overlaps the
	// next peer's start: on the 2-core machine whichever dais peer came
	// second measured 1.2-1.5x slower, whatever its mode. A server starts
	// content in one mode only; a burst of starts is the throughput figure.
	// A few failures are tolerated: on a busy host, mounts of other
	// containers come and go under bwrap's recursive bind of /.
	lat := make([][]time.Duration, len(peers))
	for round := range n {
		for k := range peers {
			i := (round + k) % len(peers)
			p := peers[i]
			if settle > 0 {
				sandbox.WaitPrestarts(5 * time.Second)
				time.Sleep(settle)
			}
			t, c := time.Now(), cpuTime()
			if err := p.spawn(); err != nil {
				if res[i].failed++; res[i].failed > n/10 {
					return fmt.Errorf("%s: %d failures, last: %w", p.name, res[i].failed, err)
				}
				continue
			}
			lat[i] = append(lat[i], time.Since(t))
			res[i].cpu += cpuTime() - c
		}
	}
	for i := range peers {
		l := lat[i]
		slices.Sort(l)
		res[i].p50, res[i].p99 = l[len(l)/2], l[(len(l)*99)/100]
		res[i].cpu /= time.Duration(len(l))
	}
	// Throughput: each peer alone, workers spawning in parallel.
	for i, p := range peers {
		var count atomic.Int64
		deadline := time.Now().Add(dur)
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for time.Now().Before(deadline) {
					if p.spawn() == nil {
						count.Add(1)
					}
				}
			})
		}
		wg.Wait()
		res[i].perSec = float64(count.Load()) / dur.Seconds()
	}
	reference := res[ref]
	fmt.Fprintf(w, "sandbox spawn of /bin/true: %d runs each, each timed %v after the previous start's pre-start was done; throughput with %d workers for %v (host load matters: compare ratios)\n", n, settle, workers, dur)
	fmt.Fprintf(w, "%-40s %10s %10s %10s %10s %12s %10s %7s\n", "peer", "p50", "p99", "p50/bwrap", "CPU/start", "starts/s", "vs bwrap", "failed")
	for i, p := range peers {
		fmt.Fprintf(w, "%-40s %10s %10s %10.2f %10s %12.1f %10.2f %7d\n", p.name, res[i].p50.Round(10*time.Microsecond), res[i].p99.Round(10*time.Microsecond),
			float64(res[i].p50)/float64(reference.p50), res[i].cpu.Round(10*time.Microsecond), res[i].perSec, res[i].perSec/reference.perSec, res[i].failed)
	}
	return nil
}

// withNewTmpDir is a Landlock spec with a private TMPDIR of its own: a new
// name in the annotation, the rule and the environment (two sandboxes of
// one spec may not run at once, and the server builds one per start).
func withNewTmpDir(s *specs.Spec) (*specs.Spec, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	old := s.Annotations[sandbox.AnnotationTmpDir]
	tmp := filepath.Join(filepath.Dir(old), hex.EncodeToString(b[:]))
	c := *s
	c.Annotations = maps.Clone(s.Annotations)
	c.Annotations[sandbox.AnnotationTmpDir] = tmp
	c.Mounts = slices.Clone(s.Mounts)
	for i := range c.Mounts {
		if c.Mounts[i].Destination == old {
			c.Mounts[i].Destination, c.Mounts[i].Source = tmp, tmp
		}
	}
	p := *s.Process
	p.Env = slices.Clone(s.Process.Env)
	for i, kv := range p.Env {
		if kv == "TMPDIR="+old {
			p.Env[i] = "TMPDIR=" + tmp
		}
	}
	c.Process = &p
	return &c, nil
}

// cpuTime is the CPU time (user and system) of this process and of its
// children waited for: a start's CPU cost, which a loaded host's scheduling
// delays do not inflate as they do its latency.
func cpuTime() time.Duration {
	var self, kids syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	d := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return d(self.Utime) + d(self.Stime) + d(kids.Utime) + d(kids.Stime)
}
