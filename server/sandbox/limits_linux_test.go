//go:build !dais_sandbox_exec

package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// hogScript allocates and touches memory in 16 MB steps up to 512 MB.
const hogScript = `
b = []
for i in range(32):
    b.append(bytearray(16 << 20))
    print(i, flush=True)
print("survived", flush=True)
`

// forkScript starts sleeping children until a fork fails, prints how many
// it started, and ends them.
const forkScript = `
import os, signal, sys
kids = []
err = ""
for i in range(400):
    try:
        pid = os.fork()
    except OSError as e:
        err = str(e)
        break
    if pid == 0:
        signal.pause()
        os._exit(0)
    kids.append(pid)
for k in kids:
    os.kill(k, signal.SIGKILL)
for k in kids:
    os.waitpid(k, 0)
print(len(kids), err, flush=True)
`

// TestLimits: a memory hog is killed by its memory limit and Cmd says so in
// words; a fork bomb stops at the process limit; in both sandbox modes and
// both ways of starting, with cgroups (the host here) or rlimits.
func TestLimits(t *testing.T) {
	needRoot(t)
	t.Logf("limits in force: %s", LimitsInForce())
	if os.Getenv("CI") == "true" && !HaveLimitCgroups() {
		t.Fatalf("CI=true: no cgroup limits on a root host: %s", LimitsInForce())
	}
	dd := dataDir(t)
	work := filepath.Join(dd, "work")
	os.Mkdir(work, 0o777)
	os.Chmod(work, 0o777)
	modes := []Mode{ModeNamespaces}
	if abi, err := LandlockABI(); err == nil && abi >= 6 {
		modes = append(modes, ModeLandlock)
	}
	for _, mode := range modes {
		for _, sm := range startModes {
			name := string(mode) + "/" + sm.name
			base := func(args ...string) Options {
				return Options{Args: args, WorkDir: work, Masks: []string{dd}, RunAs: testUser(t), Mode: mode}
			}
			t.Run(name+"/memory", func(t *testing.T) {
				o := base("python3", "-c", hogScript)
				o.MemoryLimit = 64 << 20
				s, err := Spec(o)
				if err != nil {
					t.Fatal(err)
				}
				cmd := modeCommand(t, context.Background(), s, sm.cold)
				var out strings.Builder
				cmd.Stdout, cmd.Stderr = &out, &out
				err = cmd.Run()
				checkMode(t, cmd, sm.cold)
				if strings.Contains(out.String(), "survived") || err == nil {
					t.Fatalf("the hog allocated 512 MB under a 64 MB limit (err %v): %s", err, out.String())
				}
				if HaveLimitCgroups() {
					if got, want := cmd.ExitReason(), "killed: over its 64 MB memory limit"; got != want {
						t.Errorf("ExitReason %q, want %q (err %v, output %s)", got, want, err, out.String())
					}
				} else if !strings.Contains(out.String(), "MemoryError") {
					t.Errorf("with RLIMIT_DATA the allocation should fail with MemoryError: %s", out.String())
				}
			})
			t.Run(name+"/processes", func(t *testing.T) {
				o := base("python3", "-c", forkScript)
				o.ProcessLimit = 40
				out, err := runSandboxMode(t, context.Background(), o, sm.cold)
				if err != nil {
					t.Fatalf("%v: %s", err, out)
				}
				f := strings.Fields(out)
				n, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(out, " ", 2)[0]))
				if len(f) < 2 || n <= 0 || n >= 40 || !strings.Contains(out, "Resource temporarily unavailable") {
					t.Errorf("want a refused fork after fewer than 40 children, got %q", out)
				}
			})
			t.Run(name+"/work directory", func(t *testing.T) {
				// Files of 3 MB each, every one under the 8 MB limit, until
				// the work directory holds 24 MB: the server's measure ends it.
				defer func(d time.Duration) { DiskCheckEvery = d }(DiskCheckEvery)
				DiskCheckEvery = 200 * time.Millisecond
				dir, _ := os.MkdirTemp(work, "disk-")
				os.Chmod(dir, 0o777)
				defer os.RemoveAll(dir)
				o := base("/bin/sh", "-c", `for i in 1 2 3 4 5 6 7 8; do head -c 3000000 /dev/urandom > f$i || exit 9; done; echo wrote; sleep 30`)
				o.WorkDir, o.Dir, o.DiskLimit = dir, dir, 8<<20
				s, err := Spec(o)
				if err != nil {
					t.Fatal(err)
				}
				cmd := modeCommand(t, context.Background(), s, sm.cold)
				var out strings.Builder
				cmd.Stdout, cmd.Stderr = &out, &out
				var told []string
				var mu sync.Mutex
				cmd.OnLimit = func(r string) { mu.Lock(); told = append(told, r); mu.Unlock() }
				start := time.Now()
				err = cmd.Run()
				if err == nil || time.Since(start) > 20*time.Second {
					t.Fatalf("not ended by its disk limit after %v (err %v): %s", time.Since(start), err, out.String())
				}
				got := cmd.ExitReason()
				if !strings.HasPrefix(got, "killed: its work directory holds ") || !strings.HasSuffix(got, ", over its 8 MB disk limit") {
					t.Errorf("ExitReason %q (err %v, output %s)", got, err, out.String())
				}
				mu.Lock()
				defer mu.Unlock()
				if len(told) != 0 {
					t.Errorf("OnLimit told %q: the sandbox's end is Wait's to say", told)
				}
			})
			t.Run(name+"/one file", func(t *testing.T) {
				// One file over the limit fails at once (RLIMIT_FSIZE): Python
				// gets EFBIG, dd dies of SIGXFSZ.
				dir, _ := os.MkdirTemp(work, "file-")
				os.Chmod(dir, 0o777)
				defer os.RemoveAll(dir)
				o := base("python3", "-c", `
import errno
try:
    with open("big", "wb") as f:
        for i in range(16):
            f.write(b"x" * (1 << 20))
    print("wrote 16 MB")
except OSError as e:
    print("refused", errno.errorcode[e.errno])
`)
				o.WorkDir, o.Dir, o.DiskLimit = dir, dir, 8<<20
				out, err := runSandboxMode(t, context.Background(), o, sm.cold)
				if err != nil || strings.TrimSpace(out) != "refused EFBIG" {
					t.Errorf("python: got %q, %v; want refused EFBIG", out, err)
				}
				o.Args = []string{"/bin/sh", "-c", "dd if=/dev/zero of=big2 bs=1M count=16 2>/dev/null; echo survived"}
				s, err := Spec(o)
				if err != nil {
					t.Fatal(err)
				}
				cmd := modeCommand(t, context.Background(), s, sm.cold)
				var sh strings.Builder
				cmd.Stdout, cmd.Stderr = &sh, &sh
				cmd.Run()
				if fi, err := os.Stat(filepath.Join(dir, "big2")); err != nil || fi.Size() > 8<<20 {
					t.Errorf("dd wrote a file over the limit: %v %v", fi, err)
				}
			})
			t.Run(name+"/cpu", func(t *testing.T) {
				// A busy loop for 2 s of wall time under a quarter of a CPU
				// gets about 0.5 s of CPU (cgroup v1's CFS quota); unlimited, 0.95 s
				// even with the whole test suite running beside it.
				if !HaveLimitCgroups() {
					t.Skip("no CPU limit without cgroups (rlimits only): " + LimitsInForce())
				}
				o := base("python3", "-c", `
import time
end = time.time() + 2
while time.time() < end:
    pass
print("%.3f" % time.process_time())
`)
				o.CPULimit = 0.25
				out, err := runSandboxMode(t, context.Background(), o, sm.cold)
				if err != nil {
					t.Fatalf("%v: %s", err, out)
				}
				used, err := strconv.ParseFloat(strings.TrimSpace(out), 64)
				if err != nil || used > 0.75 || used < 0.05 {
					t.Errorf("CPU time of 2 s busy under cpu_limit 0.25: %q s, want about 0.5", out)
				}
			})
			t.Run(name+"/within limits", func(t *testing.T) {
				o := base("/bin/sh", "-c", "echo ok")
				o.MemoryLimit, o.ProcessLimit, o.CPULimit = 64<<20, 40, 0.5
				out, err := runSandboxMode(t, context.Background(), o, sm.cold)
				if err != nil || out != "ok\n" {
					t.Errorf("got %q, %v", out, err)
				}
			})
		}
	}
}

// TestLimitsFallback: without cgroups, the spec carries the rlimits that
// come closest.
func TestLimitsFallback(t *testing.T) {
	s := &specs.Spec{Process: &specs.Process{Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NPROC", Soft: 1000, Hard: 1000}}}}
	haveCgroups := HaveLimitCgroups()
	withLimits(Options{MemoryLimit: 1 << 30, ProcessLimit: 100, CPULimit: 1}, s)
	l := specLimits(s)
	if l.memory != 1<<30 || l.pids != 100 || l.cpu != 1 {
		t.Errorf("annotations read back as %+v", l)
	}
	if haveCgroups {
		if len(s.Process.Rlimits) != 1 || s.Process.Rlimits[0].Soft != 1000 {
			t.Errorf("with cgroups the rlimits stay: %+v", s.Process.Rlimits)
		}
		return
	}
	want := map[string]uint64{"RLIMIT_NPROC": 100, "RLIMIT_DATA": 1 << 30}
	for _, r := range s.Process.Rlimits {
		if want[r.Type] != r.Soft || want[r.Type] != r.Hard {
			t.Errorf("%s = %d/%d, want %d", r.Type, r.Soft, r.Hard, want[r.Type])
		}
		delete(want, r.Type)
	}
	if len(want) > 0 {
		t.Errorf("missing rlimits %v", want)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{256 << 20: "256 MB", 1 << 30: "1 GB", 3 << 29: "1.5 GB", 1000: "1000 bytes"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
