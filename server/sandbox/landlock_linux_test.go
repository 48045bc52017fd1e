//go:build !dais_sandbox_exec

package sandbox

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
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

// appDirs is a data directory (see dataDir) with one content's code and
// work directories in it (0755), as the server lays them out.
func appDirs(t *testing.T) (dd, code, work string) {
	t.Helper()
	dd = dataDir(t)
	code, work = filepath.Join(dd, "apps/1/code"), filepath.Join(dd, "apps/1/work")
	for _, d := range []string{code, work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dd, code, work
}

func TestLandlockShell(t *testing.T) {
	needRoot(t)
	needLandlock(t)
	dd, code, work := appDirs(t)
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

// The self-test in Landlock mode, as root (content as RunAs); as uid 999
// (content as the server's own uid), TestSelfTestInDocker.
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
		DaisPath: testExec, ExecPath: testExec, DataDir: dd, Masks: []string{"/home", "/var/tmp"}, Secrets: []string{secret},
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
		"server SIGKILLed: content and its children die", "(pre-started sandbox-exec)",
	}
}

// TestLandlockRuleKinds: every Landlock rule of a spec on a path that is
// not a directory is marked optFile (sandbox-exec then applies file rights
// without a stat per rule), and no directory is.
func TestLandlockRuleKinds(t *testing.T) {
	dd, code, work := appDirs(t)
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
	dd, code, work := appDirs(t)
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
		cmd, err := Command(ctx, testExec, s)
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
	dd, code, work := appDirs(t)
	for _, d := range []string{filepath.Join(dd, "a"), filepath.Join(dd, "b")} {
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

// TestLandlockPrestartedAsUser: under a server with root, a pre-started
// Landlock sandbox-exec runs as the content's user from its exec on, with
// no capability (it could not change user if it tried): nothing on the
// start's path changes user. It makes the content's TMPDIR itself in the
// 1733 directory of this server's TMPDIRs, which that user cannot list; another user cannot read the
// TMPDIR. A program the user cannot run is pre-started as root instead.
func TestLandlockPrestartedAsUser(t *testing.T) {
	needRoot(t)
	needLandlock(t)
	dd, code, work := appDirs(t)
	u, err := lookupUser(testUser(t))
	if err != nil {
		t.Fatal(err)
	}
	ids := func(n uint32) string { s := strconv.Itoa(int(n)); return s + "\t" + s + "\t" + s + "\t" + s }
	var groups []string
	for _, g := range u.AdditionalGids {
		groups = append(groups, strconv.Itoa(int(g)))
	}
	// status is what /proc/<pid>/status says of the lines named.
	status := func(pid int) map[string]string {
		t.Helper()
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok {
				m[k] = strings.TrimSpace(v)
			}
		}
		return m
	}
	idle := func(cmd *Cmd) int {
		t.Helper()
		waitIdle(t, cmd)
		warm.Lock()
		defer warm.Unlock()
		l := warm.idle[cmd.key]
		return l[len(l)-1].proc.Pid // the one takeWarm hands out
	}
	asUser := func(uid, gid uint32, args ...string) (string, error) {
		c := exec.Command(args[0], args[1:]...)
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
		out, err := c.CombinedOutput()
		return string(out), err
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Spec(Options{Mode: ModeLandlock, CodeDir: code, WorkDir: work, Masks: []string{dd}, RunAs: testUser(t),
		Args: []string{"/bin/sh", "-c", "id -u; echo $TMPDIR; read p; kill -0 $p 2>/dev/null && echo signalled || echo no-signal; " +
			"cat /proc/$p/environ >/dev/null 2>&1 && echo environ-read || echo no-environ; exec sleep 300"}})
	if err != nil {
		t.Fatal(err)
	}
	cmd, err := Command(ctx, testExec, s)
	if err != nil {
		t.Fatal(err)
	}
	pid := idle(cmd)
	st := status(pid)
	if st["Uid"] != ids(u.UID) || st["Gid"] != ids(u.GID) || st["Groups"] != strings.Join(groups, " ") {
		t.Errorf("pre-started sandbox-exec %d: Uid %q, Gid %q, Groups %q; want the content's user %d:%d %v from its start",
			pid, st["Uid"], st["Gid"], st["Groups"], u.UID, u.GID, groups)
	}
	for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		if strings.Trim(st[k], "0") != "" {
			t.Errorf("pre-started sandbox-exec %d: %s is %s, want 0", pid, k, st[k])
		}
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if cmd.Process.Pid != pid || !cmd.warm {
		t.Errorf("started on %d (pre-started %v), want the idle %d", cmd.Process.Pid, cmd.warm, pid)
	}
	sc := bufio.NewScanner(out)
	var lines []string
	for len(lines) < 2 && sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) < 2 || lines[0] != strconv.Itoa(int(u.UID)) {
		t.Fatalf("content said %q, want its uid %d and its TMPDIR", lines, u.UID)
	}
	tmp := lines[1]
	// The next pre-started sandbox-exec, of the content's user too: the
	// content can neither signal it nor read its /proc entries (Landlock:
	// it is outside the content's domain).
	next := idle(cmd)
	if st := status(next); st["Uid"] != ids(u.UID) {
		t.Errorf("the next pre-started sandbox-exec %d: Uid %q", next, st["Uid"])
	}
	if o, err := asUser(u.UID, u.GID, "/bin/sh", "-c", `kill -0 "$0"`, strconv.Itoa(next)); err != nil {
		t.Errorf("outside any sandbox, the content's user cannot signal %d (%v %s): the check below proves nothing", next, err, o)
	}
	in.Write([]byte(strconv.Itoa(next) + "\n"))
	for len(lines) < 4 && sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if !slices.Equal(lines[2:], []string{"no-signal", "no-environ"}) {
		t.Errorf("content against the pre-started sandbox-exec %d of its user: %q, want no-signal, no-environ", next, lines[2:])
	}
	if st := status(pid); st["Uid"] != ids(u.UID) {
		t.Errorf("the sandbox's init: Uid %q", st["Uid"])
	}
	var base, dir unix.Stat_t
	if err := unix.Lstat(tmpRoot(), &base); err != nil || base.Mode&0o7777 != 0o1733 || base.Uid != 0 {
		t.Errorf("%s: mode %o, uid %d (%v); want 1733, root's", tmpRoot(), base.Mode&0o7777, base.Uid, err)
	}
	var top unix.Stat_t
	if err := unix.Lstat(tmpBase(), &top); err != nil || top.Mode&0o7777 != 0o711 || top.Uid != 0 || filepath.Dir(tmpRoot()) != tmpBase() {
		t.Errorf("%s: mode %o, uid %d (%v); want 0711, root's, holding %s", tmpBase(), top.Mode&0o7777, top.Uid, err, tmpRoot())
	}
	if err := unix.Lstat(tmp, &dir); err != nil || dir.Mode&0o777 != 0o700 || dir.Uid != u.UID || filepath.Dir(tmp) != tmpRoot() {
		t.Errorf("TMPDIR %s: mode %o, uid %d (%v); want 0700 in %s, the content's user's", tmp, dir.Mode&0o777, dir.Uid, err, tmpRoot())
	}
	// Outside any sandbox, by the users' own permissions alone.
	for _, d := range []string{tmpBase(), tmpRoot()} {
		if o, err := asUser(u.UID, u.GID, "/bin/ls", d); err == nil || !strings.Contains(o, "Permission denied") {
			t.Errorf("the content's user listed %s: %v %s", d, err, o)
		}
	}
	other := u.UID + 1
	if o, err := asUser(other, other, "/bin/ls", tmp); err == nil || !strings.Contains(o, "Permission denied") {
		t.Errorf("uid %d listed another user's TMPDIR %s: %v %s", other, tmp, err, o)
	}
	cancel()
	cmd.Wait()

	// A program the content's user cannot run (the go command's 0700
	// build directory): pre-started as root, it changes user at the start.
	if _, err := asUser(u.UID, u.GID, "/bin/sh", "-c", `test -x "$0"`, os.Args[0]); err == nil {
		t.Logf("%s: the content's user may run it: nothing to check", os.Args[0])
		return
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	s.Process.Args = []string{"/bin/sh", "-c", "id -u"}
	if s, err = withNewTmpDirSpec(s); err != nil {
		t.Fatal(err)
	}
	cmd, err = Command(ctx2, os.Args[0], s)
	if err != nil {
		t.Fatal(err)
	}
	if st := status(idle(cmd)); st["Uid"] != ids(0) {
		t.Errorf("pre-started sandbox-exec of a program the user cannot run: Uid %q, want root's", st["Uid"])
	}
	b, err := cmd.Output()
	if err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(int(u.UID)) || !cmd.warm {
		t.Errorf("content said %q (%v, pre-started %v), want uid %d", b, err, cmd.warm, u.UID)
	}
}

// withNewTmpDirSpec is s with a new private TMPDIR name, as a new Spec
// would have.
func withNewTmpDirSpec(s *specs.Spec) (*specs.Spec, error) {
	tmp, err := tmpName()
	if err != nil {
		return nil, err
	}
	old := s.Annotations[AnnotationTmpDir]
	for i := range s.Mounts {
		if s.Mounts[i].Source == old {
			s.Mounts[i].Source, s.Mounts[i].Destination = tmp, tmp
		}
	}
	for i, kv := range s.Process.Env {
		if kv == "TMPDIR="+old {
			s.Process.Env[i] = "TMPDIR=" + tmp
		}
	}
	s.Annotations[AnnotationTmpDir] = tmp
	return s, nil
}

// Unsearchable names the first directory a user may not search, by its
// owner, group and mode, and nothing once it may.
func TestUnsearchable(t *testing.T) {
	d, err := os.MkdirTemp("", "dais-unsearchable-") // t.TempDir's parent is 0700
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	locked := filepath.Join(d, "locked")
	work := filepath.Join(locked, "apps", "1", "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0o755)
	os.Chmod(locked, 0o750)
	var st unix.Stat_t
	if err := unix.Stat(locked, &st); err != nil {
		t.Fatal(err)
	}
	other := specs.User{UID: st.Uid + 1, GID: st.Gid + 1}
	if dir, why := Unsearchable(work, other); dir != locked || !strings.Contains(why, "chmod o+x "+locked) || !strings.Contains(why, "mode 0750") {
		t.Fatalf("Unsearchable = %q, %q; want %s named, with its mode and the fix", dir, why, locked)
	}
	inGroup := other
	inGroup.AdditionalGids = []uint32{st.Gid}
	if dir, why := Unsearchable(work, inGroup); dir != "" {
		t.Fatalf("a member of the group may search %s (0750), got %q, %q", locked, dir, why)
	}
	owner := specs.User{UID: st.Uid, GID: st.Gid + 1}
	os.Chmod(locked, 0o700)
	if dir, _ := Unsearchable(work, owner); dir != "" {
		t.Fatalf("the owner may search %s (0700), got %q", locked, dir)
	}
	os.Chmod(locked, 0o711)
	if dir, why := Unsearchable(work, other); dir != "" {
		t.Fatalf("%s is 0711, got %q, %q", locked, dir, why)
	}
	if dir, _ := Unsearchable(work, specs.User{}); dir != "" {
		t.Fatal("root was refused")
	}
}

// A Landlock sandbox whose work directory lies under a directory the
// content's user may not search (a --tmpfs /data of mode 0770, a host
// directory of mode 0700) fails with that directory named and the fix, not
// "exec: permission denied" and a hint about CAP_SYS_ADMIN.
func TestLandlockUnsearchableWorkDir(t *testing.T) {
	needRoot(t)
	needLandlock(t)
	dd, code, work := appDirs(t)
	os.Chmod(work, 0o777)
	os.Chmod(dd, 0o770)
	for _, sm := range startModes {
		t.Run(sm.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := Spec(Options{Mode: ModeLandlock, CodeDir: code, WorkDir: work, Masks: []string{dd}, RunAs: testUser(t), Args: []string{"/bin/true"}})
			if err != nil {
				t.Fatal(err)
			}
			cmd := modeCommand(t, ctx, s, sm.cold)
			err = cmd.Run()
			var se *SetupError
			if !errors.As(err, &se) {
				t.Fatalf("got %v, want a SetupError", err)
			}
			if se.Step != "landlock: enter the work directory" || !strings.Contains(se.Err, "may not search "+dd+" (mode 0770") ||
				!strings.Contains(se.Err, "chmod o+x "+dd) || strings.Contains(se.Err, "CAP_SYS_ADMIN") {
				t.Fatalf("setup error %q: %q; want the directory, its mode and the fix", se.Step, se.Err)
			}
		})
	}
}

// The first Landlock Command of a server locks its directory of TMPDIRs
// and removes those of servers that are gone (killed before their
// sandboxes' Wait removed each TMPDIR), not those of running ones.
func TestTmpSweep(t *testing.T) {
	needRoot(t)
	if err := os.MkdirAll(tmpBase(), 0o711); err != nil {
		t.Fatal(err)
	}
	dead := filepath.Join(tmpBase(), "s-1-deadbeef")
	live := filepath.Join(tmpBase(), "s-2-feedface")
	old := filepath.Join(tmpBase(), "0123456789abcdef") // a TMPDIR of the layout before: left alone
	for _, d := range []string{filepath.Join(dead, "0011223344556677"), live, old} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(d, "f"), []byte("x"), 0o600)
	}
	t.Cleanup(func() {
		for _, d := range []string{dead, live, old} {
			os.RemoveAll(d)
		}
	})
	// Another server holds live: a descriptor of its own (flock locks
	// belong to the open file, so this one conflicts with the sweep's).
	fd, err := unix.Open(live, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	tmpLock.Lock()
	tmpLock.swept = false
	tmpLock.Unlock()
	if err := makeTmpBase(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("%s, of a server that is gone, not removed (%v)", dead, err)
	}
	for _, d := range []string{live, old, tmpRoot()} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s removed: %v", d, err)
		}
	}
	// This server's own directory is held: another server's sweep leaves it.
	other, err := unix.Open(tmpRoot(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(other)
	if err := unix.Flock(other, unix.LOCK_EX|unix.LOCK_NB); err != unix.EWOULDBLOCK {
		t.Errorf("this server's %s is not locked: flock = %v", tmpRoot(), err)
	}
	// Removed under a running server (a clean-up of /tmp), it is made and
	// locked again.
	if err := os.RemoveAll(tmpRoot()); err != nil {
		t.Fatal(err)
	}
	if err := makeTmpBase(); err != nil {
		t.Fatal(err)
	}
	again, err := unix.Open(tmpRoot(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("%s not made again: %v", tmpRoot(), err)
	}
	defer unix.Close(again)
	if err := unix.Flock(again, unix.LOCK_EX|unix.LOCK_NB); err != unix.EWOULDBLOCK {
		t.Errorf("%s, made again, is not locked: flock = %v", tmpRoot(), err)
	}
	// A clean stop (RemoveTmp) leaves nothing behind and lets go of the
	// lock; the next Landlock start makes both again.
	if err := RemoveTmp(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmpRoot()); !os.IsNotExist(err) {
		t.Errorf("%s left after RemoveTmp (%v)", tmpRoot(), err)
	}
	if err := unix.Flock(again, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Errorf("the lock is still held after RemoveTmp: flock = %v", err)
	}
	if err := makeTmpBase(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmpRoot()); err != nil {
		t.Errorf("%s not made after RemoveTmp: %v", tmpRoot(), err)
	}
}
