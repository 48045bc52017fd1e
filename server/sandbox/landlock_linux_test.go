//go:build !dais_sandbox_exec

package sandbox

import (
	"context"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// needLandlock skips when the kernel has no Landlock of LandlockMinABI,
// unless CI=true, where it fails.
func needLandlock(t *testing.T) {
	t.Helper()
	abi, err := LandlockABI()
	if err == nil && abi >= LandlockMinABI {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("Landlock ABI %d (%v), need %d (CI=true: not skipping)", abi, err, LandlockMinABI)
	}
	t.Skipf("Landlock ABI %d (%v), need %d", abi, err, LandlockMinABI)
}

func TestLandlockShell(t *testing.T) {
	needRoot(t)
	needLandlock(t)
	dd := dataDir(t)
	code, work := filepath.Join(dd, "apps/1/code"), filepath.Join(dd, "apps/1/work")
	os.MkdirAll(code, 0o755)
	os.MkdirAll(work, 0o755)
	os.Chmod(work, 0o777)
	os.WriteFile(filepath.Join(dd, "secret"), []byte("s"), 0o644)
	for _, sm := range startModes {
		t.Run(sm.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := runSandboxMode(t, ctx, Options{
				Mode: ModeLandlock, CodeDir: code, WorkDir: work, Masks: []string{dd}, RunAs: testUser(t),
				Args: []string{"/bin/sh", "-c", "id -u; echo hi > $TMPDIR/x && cat $TMPDIR/x; echo w > " + work + "/w && cat " + work + "/w; cat " + dd + "/secret || echo denied; ls /tmp >/dev/null 2>&1 || echo tmp-denied; echo $TMPDIR"},
			}, sm.cold)
			t.Logf("%s", out)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, "hi\nw\ndenied\ntmp-denied\n") {
				t.Errorf("output %q", out)
			}
		})
	}
}

// The self-test in Landlock mode, as root (content as RunAs) and, when
// DAIS_TEST_LANDLOCK_NONROOT is unset, again as uid 999 through setpriv
// (content as the server's own uid).
func TestSelfTestLandlock(t *testing.T) {
	needRoot(t)
	needLandlock(t)
	dd := dataDir(t)
	db := filepath.Join(dd, "db")
	os.MkdirAll(db, 0o755)
	secret := filepath.Join(db, "connect.db")
	os.WriteFile(secret, []byte("SQLite format 3"), 0o644)
	var out strings.Builder
	err := SelfTest(context.Background(), SelfTestOptions{
		DaisPath: os.Args[0], DataDir: dd, Masks: []string{"/home", "/var/tmp"}, Secrets: []string{secret},
		RunAs: testUser(t), Mode: ModeLandlock,
	}, &out)
	lines := strings.Split(out.String(), "\n")
	for _, l := range lines {
		if strings.HasPrefix(l, "FAIL") {
			t.Error(l)
		}
	}
	if err != nil {
		t.Fatalf("SelfTest: %v\n%s", err, out.String())
	}
	for _, w := range landlockRequired(secret) {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "ok ") && strings.Contains(l, w) }) {
			t.Errorf("no passing check mentions %q\n%s", w, out.String())
		}
	}
}

// landlockRequired are the checks a Landlock self-test must pass.
func landlockRequired(secret string) []string {
	return []string{
		"hidden /tmp/dais-selftest-", "/secret", "/b/code/app.R", "/a/work/marker-a", "marker-a",
		"read-only ", "/runtime/lib", "writable /tmp/dais-sandbox/", "/a/work",
		"uid", "gid", "setuid(0)", "regain a capability",
		"CapEff is 0", "CapPrm is 0", "CapAmb is 0", "CapInh is 0", "NoNewPrivs is 1",
		"env " + selftestSecretEnv + " absent", "no inherited fds", "signal the server", "ptrace the server",
		"read the server's environ", "read the server's fd links", "enter the server's root", "open the server's mem",
		"signal another content", "ptrace another content", "read another content's environ",
		"read another content's fd links", "enter another content's root", "open another content's mem",
		"connect to another content's port", "connect to the server's abstract socket",
		"bind its own port", "bind a second port", "bind a second port over Multipath TCP", "connect over Multipath TCP", "symlink to " + secret, "hard link to " + secret,
		"hidden " + secret, "content A's private TMPDIR",
		"host: the work dir write is visible outside", "setup error names the step", "a fork bomb stops at the process limit",
		"server SIGKILLed: content and its children die",
	}
}

// TestLandlockRuleKinds: every Landlock rule of a spec on a path that is
// not a directory is marked optFile (sandbox-exec then applies file rights
// without a stat per rule), and no directory is.
func TestLandlockRuleKinds(t *testing.T) {
	dd := dataDir(t)
	code, work := filepath.Join(dd, "apps/1/code"), filepath.Join(dd, "apps/1/work")
	os.MkdirAll(code, 0o755)
	os.MkdirAll(work, 0o755)
	s, err := Spec(Options{Mode: ModeLandlock, CodeDir: code, WorkDir: work, Masks: []string{dd, "/etc/rstudio-connect", "/home", "/var/tmp"},
		RunAs: testUser(t), Args: []string{"/bin/true"}})
	if err != nil {
		t.Fatal(err)
	}
	files, dirs := 0, 0
	for _, m := range s.Mounts {
		if m.Type != mountLandlock {
			continue
		}
		fi, err := os.Stat(m.Source)
		if err != nil {
			continue // the private TMPDIR, made at the start
		}
		marked := slices.Contains(m.Options, optFile)
		if fi.IsDir() == marked {
			t.Errorf("%s: directory %v, marked as a file %v", m.Source, fi.IsDir(), marked)
		}
		if marked {
			files++
		} else {
			dirs++
		}
	}
	if files == 0 || dirs == 0 {
		t.Errorf("%d file rules and %d directory rules: want both", files, dirs)
	}
}

// TestLandlockLeftBehind: what the content leaves running when its main
// process exits (a background child, a setsid'd one, a double-forked
// grandchild) is killed before Wait returns, and an exit with nothing left
// behind takes the short path (no child: nothing to look for).
func TestLandlockLeftBehind(t *testing.T) {
	needRoot(t)
	needLandlock(t)
	dd := dataDir(t)
	code, work := filepath.Join(dd, "apps/1/code"), filepath.Join(dd, "apps/1/work")
	os.MkdirAll(code, 0o755)
	os.MkdirAll(work, 0o755)
	for _, sm := range startModes {
		t.Run(sm.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := runSandboxMode(t, ctx, Options{
				Mode: ModeLandlock, CodeDir: code, WorkDir: work, Masks: []string{dd}, RunAs: testUser(t),
				Args: []string{"/bin/sh", "-c", "sleep 300 </dev/null >/dev/null 2>&1 & echo $!; setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $!; (sleep 300 </dev/null >/dev/null 2>&1 & echo $!); exit 0"},
			}, sm.cold)
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			pids := strings.Fields(out)
			if len(pids) != 3 {
				t.Fatalf("want 3 pids, got %q", out)
			}
			for _, p := range pids {
				n, err := strconv.Atoi(p)
				if err != nil {
					t.Fatal(err)
				}
				if err := syscall.Kill(n, 0); err != syscall.ESRCH {
					t.Errorf("pid %d left behind by the content still exists after Wait (kill 0: %v)", n, err)
				}
			}
			start := time.Now()
			if _, err := runSandboxMode(t, ctx, Options{Mode: ModeLandlock, CodeDir: code, WorkDir: work, Masks: []string{dd}, RunAs: testUser(t),
				Args: []string{"/bin/true"}}, sm.cold); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: nothing left behind: a start and exit in %s", sm.name, time.Since(start).Round(time.Microsecond))
		})
	}
}

// TestLandlockCancelAtOnce: cancelling a Landlock sandbox ends it at once,
// however soon after its start. The init's Go runtime dropped a cleanup
// signal that came before the init had registered for it, and then only
// WaitDelay's SIGKILL (5 s) ended the sandbox: 1 cancel in 10-20 right
// after a pre-started start, which hung the selftest in CI.
func TestLandlockCancelAtOnce(t *testing.T) {
	needLandlock(t)
	dd := dataDir(t)
	slow := 0
	for i := range 300 {
		ctx, cancel := context.WithCancel(context.Background())
		s, err := Spec(Options{Mode: ModeLandlock, Masks: []string{dd}, RunAs: testUser(t), Args: []string{"/bin/sh", "-c", "echo up; exec sleep 300"}})
		if err != nil {
			t.Fatal(err)
		}
		cmd, err := Command(ctx, os.Args[0], s)
		if err != nil {
			t.Fatal(err)
		}
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout = pw
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pw.Close()
		line := make([]byte, 3)
		pr.Read(line) // the content runs
		pr.Close()
		start := time.Now()
		cancel()
		cmd.Wait()
		if d := time.Since(start); d > 2*time.Second {
			slow++
			t.Errorf("start %d (pre-started %v): ended %v after its cancel", i, cmd.warm, d.Round(time.Millisecond))
			if slow == 3 {
				t.FailNow()
			}
		}
	}
}

// TestLandlockSharedRulesFollowMasks: a pre-started sandbox-exec builds
// the rules every content shares (they depend on the masks) before its
// spec comes; a start with other masks must get its own, not the rules of
// a sandbox-exec started for the previous masks.
func TestLandlockSharedRulesFollowMasks(t *testing.T) {
	needRoot(t)
	needLandlock(t)
	dd := dataDir(t)
	code, work := filepath.Join(dd, "apps/1/code"), filepath.Join(dd, "apps/1/work")
	for _, d := range []string{code, work, filepath.Join(dd, "a"), filepath.Join(dd, "b")} {
		os.MkdirAll(d, 0o755)
	}
	os.Chmod(work, 0o777)
	os.WriteFile(filepath.Join(dd, "a/secret"), []byte("A\n"), 0o644)
	os.WriteFile(filepath.Join(dd, "b/secret"), []byte("B\n"), 0o644)
	script := "cat " + dd + "/a/secret || echo a-denied; cat " + dd + "/b/secret || echo b-denied"
	for i := range 4 {
		hide, want := "a", "a-denied\nB\n"
		if i%2 == 1 {
			hide, want = "b", "A\nb-denied\n"
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := runSandboxMode(t, ctx, Options{
			Mode: ModeLandlock, CodeDir: code, WorkDir: work, Masks: []string{filepath.Join(dd, hide)}, RunAs: testUser(t),
			Args: []string{"/bin/sh", "-c", script},
		}, false)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, want) {
			t.Errorf("start %d, %s masked: output %q, want %q", i, hide, out, want)
		}
	}
}

// A sandbox-exec's prebuilt shared rules are used only when the spec has
// every one of them (a rule listed twice in the spec counts once).
func TestPrebuiltWithin(t *testing.T) {
	rule := func(p string, opts ...string) specs.Mount {
		return specs.Mount{Type: mountLandlock, Source: p, Destination: p, Options: opts}
	}
	a, b, c := rule("/a", accessRead), rule("/b", accessRead), rule("/c", accessRead, accessWrite)
	p := &prebuilt{rules: map[string]bool{ruleKey(a): true, ruleKey(b): true}}
	for _, tc := range []struct {
		ms   []specs.Mount
		want bool
	}{
		{[]specs.Mount{a, b, c}, true},
		{[]specs.Mount{c, b, a}, true},
		{[]specs.Mount{a, a, c}, false},
		{[]specs.Mount{a, c}, false},
		{[]specs.Mount{a, rule("/b", accessRead, accessWrite), c}, false},
		{[]specs.Mount{a, {Type: "tmpfs", Source: "/b", Destination: "/b", Options: []string{accessRead}}}, false},
	} {
		if got := p.within(tc.ms); got != tc.want {
			t.Errorf("within(%v) = %v, want %v", tc.ms, got, tc.want)
		}
	}
}
