package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/datalock"
)

// mountinfoFile writes a fake /proc/self/mountinfo: "/" of type rootFS
// (overlay: a container's root) plus the given "mountpoint fstype" pairs.
func mountinfoFile(t *testing.T, rootFS string, mounts ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("100 1 0:50 / / rw,relatime - " + rootFS + " " + rootFS + " rw,lowerdir=/l,upperdir=/u,workdir=/w\n")
	for i, m := range mounts {
		// "MOUNTPOINT FSTYPE [ROOT]": ROOT is the mount's root within its
		// filesystem (a Docker volume's is /var/lib/docker/volumes/NAME/_data).
		f := strings.Fields(m)
		mp, fs, root := f[0], f[1], "/"
		if len(f) > 2 {
			root = f[2]
		}
		b.WriteString(strconv.Itoa(101+i) + " 100 0:" + strconv.Itoa(60+i) + " " + root + " " + mp + " rw,relatime - " + fs + " src" + strconv.Itoa(i) + " rw\n")
	}
	p := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// sysRoot writes fake /proc and /sys files under a directory.
func sysRoot(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, body := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// runCheck runs `dais-init --check` (optionally behind a wrapper such as
// setpriv) and returns its exit code and stderr.
func runCheck(t *testing.T, wrapper []string, env []string, args ...string) (int, string) {
	t.Helper()
	argv := append(append(append([]string{}, wrapper...), initBin, "--check", "--rendered", filepath.Join(t.TempDir(), "run", "r.gcfg")), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append([]string{"PATH=" + fakeBin + ":" + os.Getenv("PATH")}, env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, string(out)
}

func TestPreflight(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	base := writeConfig(t, dir, "[Server]\nDataDir = /data\n")
	pgBase := filepath.Join(dir, "pg.gcfg")
	os.WriteFile(pgBase, []byte("[Server]\nDataDir = /data\n[Database]\nProvider = postgres\n[Postgres]\nURL = postgres://u@db/dais\n"), 0o644)
	empty := filepath.Join(dir, "empty.gcfg")
	os.WriteFile(empty, nil, 0o644)
	goodMounts := mountinfoFile(t, "overlay", "/data ext4")
	apparmorOn := sysRoot(t, map[string]string{
		"/sys/module/apparmor/parameters/enabled": "Y\n",
		"/proc/self/attr/current":                 "docker-default (enforce)\n",
	})
	usernsOff := sysRoot(t, map[string]string{"/proc/sys/user/max_user_namespaces": "0\n"})
	noRuntimes := "DAIS_INIT_SKIP_CHECKS=runtimes"

	tests := []struct {
		name    string
		wrapper []string
		env     []string
		config  string
		code    int
		line    string // the exact last line of the output
	}{
		{"all checks pass with the real probe as root", nil,
			[]string{noRuntimes, "DAIS_INIT_TEST_MOUNTINFO=" + goodMounts}, base, 0, ""},
		{"capability missing (real, dropped with setpriv)", []string{"setpriv", "--bounding-set", "-sys_admin"},
			[]string{noRuntimes, "DAIS_INIT_TEST_LANDLOCK=0", "DAIS_INIT_TEST_MOUNTINFO=" + goodMounts}, base, 78,
			"dais-init: no sandbox mode works here: namespaces mode: CAP_SYS_ADMIN is missing: dais sandboxes content in mount namespaces; run the container with --cap-add SYS_ADMIN (or --privileged); Landlock mode: Landlock is unavailable (landlock_create_ruleset: ENOSYS (DAIS_INIT_TEST_LANDLOCK)). Either run the container with --cap-add SYS_ADMIN (namespaces mode), or use a kernel with Landlock ABI >= 6 (Linux 6.12 or later, `landlock` in the boot parameter lsm=) and a seccomp profile that allows landlock_create_ruleset, landlock_add_rule and landlock_restrict_self (Landlock mode, no privileges needed)"},
		{"capability missing (fake)", nil,
			[]string{noRuntimes, "DAIS_INIT_TEST_LANDLOCK=0", "DAIS_INIT_TEST_CAPEFF=00000000a80425fb", "DAIS_INIT_TEST_MOUNTINFO=" + goodMounts}, base, 78,
			"dais-init: no sandbox mode works here: namespaces mode: CAP_SYS_ADMIN is missing: dais sandboxes content in mount namespaces; run the container with --cap-add SYS_ADMIN (or --privileged); Landlock mode: Landlock is unavailable (landlock_create_ruleset: ENOSYS (DAIS_INIT_TEST_LANDLOCK)). Either run the container with --cap-add SYS_ADMIN (namespaces mode), or use a kernel with Landlock ABI >= 6 (Linux 6.12 or later, `landlock` in the boot parameter lsm=) and a seccomp profile that allows landlock_create_ruleset, landlock_add_rule and landlock_restrict_self (Landlock mode, no privileges needed)"},
		{"no capability, Landlock serves (fake ABI 6)", nil,
			[]string{noRuntimes, "DAIS_INIT_TEST_LANDLOCK=6", "DAIS_INIT_TEST_CAPEFF=00000000a80425fb", "DAIS_INIT_TEST_MOUNTINFO=" + goodMounts}, base, 0, ""},
		{"no capability, Landlock ABI too old", nil,
			[]string{noRuntimes, "DAIS_INIT_TEST_LANDLOCK=5", "DAIS_INIT_TEST_CAPEFF=00000000a80425fb", "DAIS_INIT_TEST_MOUNTINFO=" + goodMounts}, base, 78,
			"dais-init: no sandbox mode works here: namespaces mode: CAP_SYS_ADMIN is missing: dais sandboxes content in mount namespaces; run the container with --cap-add SYS_ADMIN (or --privileged); Landlock mode: the kernel offers Landlock ABI 5, dais needs 6. Either run the container with --cap-add SYS_ADMIN (namespaces mode), or use a kernel with Landlock ABI >= 6 (Linux 6.12 or later, `landlock` in the boot parameter lsm=) and a seccomp profile that allows landlock_create_ruleset, landlock_add_rule and landlock_restrict_self (Landlock mode, no privileges needed)"},
		{"Landlock forced, unavailable", nil,
			[]string{noRuntimes, "CONNECT_SANDBOX_MODE=landlock", "DAIS_INIT_TEST_LANDLOCK=0", "DAIS_INIT_TEST_MOUNTINFO=" + goodMounts}, base, 78,
			"dais-init: Sandbox.Mode = landlock, but Landlock is unavailable (landlock_create_ruleset: ENOSYS (DAIS_INIT_TEST_LANDLOCK)): use a kernel with Landlock ABI >= 6 (Linux 6.12 or later, `landlock` in the boot parameter lsm=) and a seccomp profile that allows landlock_create_ruleset, landlock_add_rule and landlock_restrict_self (Landlock mode, no privileges needed); or set Sandbox.Mode = auto and run the container with --cap-add SYS_ADMIN (namespaces mode)"},
		{"namespaces forced, capability missing", nil,
			[]string{noRuntimes, "CONNECT_SANDBOX_MODE=namespaces", "DAIS_INIT_TEST_LANDLOCK=7", "DAIS_INIT_TEST_CAPEFF=00000000a80425fb", "DAIS_INIT_TEST_MOUNTINFO=" + goodMounts}, base, 78,
			"dais-init: CAP_SYS_ADMIN is missing: dais sandboxes content in mount namespaces; run the container with --cap-add SYS_ADMIN (or --privileged)"},
		{"user namespaces off", nil,
			[]string{noRuntimes, "DAIS_INIT_TEST_LANDLOCK=0", "DAIS_INIT_TEST_CAPEFF=000001ffffffffff", "DAIS_INIT_TEST_PROBE=clone:ENOSPC", "DAIS_INIT_TEST_SYSROOT=" + usernsOff, "DAIS_INIT_TEST_MOUNTINFO=" + goodMounts}, base, 78,
			"dais-init: no sandbox mode works here: namespaces mode: user namespaces are switched off (/proc/sys/user/max_user_namespaces = 0): enable them on the host (sysctl -w user.max_user_namespaces=15000), dais sandboxes content in a user + mount namespace; Landlock mode: Landlock is unavailable (landlock_create_ruleset: ENOSYS (DAIS_INIT_TEST_LANDLOCK)). Either run the container with --cap-add SYS_ADMIN (namespaces mode), or use a kernel with Landlock ABI >= 6 (Linux 6.12 or later, `landlock` in the boot parameter lsm=) and a seccomp profile that allows landlock_create_ruleset, landlock_add_rule and landlock_restrict_self (Landlock mode, no privileges needed)"},
		{"seccomp denies unshare", nil,
			[]string{noRuntimes, "DAIS_INIT_TEST_LANDLOCK=0", "DAIS_INIT_TEST_CAPEFF=000001ffffffffff", "DAIS_INIT_TEST_PROBE=clone:EPERM", "DAIS_INIT_TEST_SYSROOT=" + dir, "DAIS_INIT_TEST_MOUNTINFO=" + goodMounts}, base, 78,
			"dais-init: no sandbox mode works here: namespaces mode: creating a user + mount namespace (unshare) is denied (EPERM (operation not permitted)) although CAP_SYS_ADMIN is present, most likely by a seccomp profile: run the container with --security-opt seccomp=unconfined (or a profile allowing unshare and mount); Landlock mode: Landlock is unavailable (landlock_create_ruleset: ENOSYS (DAIS_INIT_TEST_LANDLOCK)). Either run the container with --cap-add SYS_ADMIN (namespaces mode), or use a kernel with Landlock ABI >= 6 (Linux 6.12 or later, `landlock` in the boot parameter lsm=) and a seccomp profile that allows landlock_create_ruleset, landlock_add_rule and landlock_restrict_self (Landlock mode, no privileges needed)"},
		{"AppArmor denies mount", nil,
			[]string{noRuntimes, "DAIS_INIT_TEST_LANDLOCK=0", "DAIS_INIT_TEST_CAPEFF=000001ffffffffff", "DAIS_INIT_TEST_PROBE=tmpfs:EACCES", "DAIS_INIT_TEST_SYSROOT=" + apparmorOn, "DAIS_INIT_TEST_MOUNTINFO=" + goodMounts}, base, 78,
			"dais-init: no sandbox mode works here: namespaces mode: mount is denied by AppArmor (profile docker-default (enforce)) although CAP_SYS_ADMIN is present: run the container with --security-opt apparmor=unconfined; Landlock mode: Landlock is unavailable (landlock_create_ruleset: ENOSYS (DAIS_INIT_TEST_LANDLOCK)). Either run the container with --cap-add SYS_ADMIN (namespaces mode), or use a kernel with Landlock ABI >= 6 (Linux 6.12 or later, `landlock` in the boot parameter lsm=) and a seccomp profile that allows landlock_create_ruleset, landlock_add_rule and landlock_restrict_self (Landlock mode, no privileges needed)"},
		{"seccomp denies mount", nil,
			[]string{noRuntimes, "DAIS_INIT_TEST_LANDLOCK=0", "DAIS_INIT_TEST_CAPEFF=000001ffffffffff", "DAIS_INIT_TEST_PROBE=rprivate:EPERM", "DAIS_INIT_TEST_SYSROOT=" + dir, "DAIS_INIT_TEST_MOUNTINFO=" + goodMounts}, base, 78,
			"dais-init: no sandbox mode works here: namespaces mode: mount (rprivate) is denied (EPERM (operation not permitted)) although CAP_SYS_ADMIN is present, most likely by a seccomp profile: run the container with --security-opt seccomp=unconfined (or a profile allowing unshare and mount); Landlock mode: Landlock is unavailable (landlock_create_ruleset: ENOSYS (DAIS_INIT_TEST_LANDLOCK)). Either run the container with --cap-add SYS_ADMIN (namespaces mode), or use a kernel with Landlock ABI >= 6 (Linux 6.12 or later, `landlock` in the boot parameter lsm=) and a seccomp profile that allows landlock_create_ruleset, landlock_add_rule and landlock_restrict_self (Landlock mode, no privileges needed)"},
		{"default DataDir", nil,
			[]string{noRuntimes, "DAIS_INIT_TEST_MOUNTINFO=" + goodMounts}, empty, 78,
			"dais-init: Server.DataDir is the default /var/lib/rstudio-connect, on the container's writable layer: set Server.DataDir = /data (or CONNECT_SERVER_DATADIR=/data) and mount a volume there: -v $PWD/data:/data"},
		{"DataDir on the container's overlay root", nil,
			[]string{noRuntimes, "DAIS_INIT_TEST_MOUNTINFO=" + mountinfoFile(t, "overlay", "/srv ext4")}, base, 78,
			"dais-init: Server.DataDir /data is on the container's writable layer (overlay on /): mount a volume there: -v $PWD/data:/data"},
		{"DataDir from CONNECT_SERVER_DATADIR on tmpfs", nil,
			[]string{noRuntimes, "CONNECT_SERVER_DATADIR=/scratch/d", "DAIS_INIT_TEST_MOUNTINFO=" + mountinfoFile(t, "overlay", "/scratch tmpfs")}, base, 78,
			"dais-init: Server.DataDir /scratch/d is on tmpfs /scratch, lost when the container stops: mount a volume there: -v $PWD/data:/scratch/d"},
		{"SQLite on NFS", nil,
			[]string{noRuntimes, "DAIS_INIT_TEST_MOUNTINFO=" + mountinfoFile(t, "overlay", "/data nfs4")}, base, 78,
			"dais-init: the SQLite database directory /data/db is on a network filesystem (nfs4 on /data), where SQLite locking is unreliable: use PostgreSQL (Database.Provider = postgres, Postgres.URL) or a local volume"},
		{"SQLite on a FUSE mount below a local DataDir", nil,
			[]string{noRuntimes, "CONNECT_SQLITE_DIR=/data/remote/db", "DAIS_INIT_TEST_MOUNTINFO=" + mountinfoFile(t, "overlay", "/data ext4", "/data/remote fuse.sshfs")}, base, 78,
			"dais-init: the SQLite database directory /data/remote/db is on a network filesystem (fuse.sshfs on /data/remote), where SQLite locking is unreliable: use PostgreSQL (Database.Provider = postgres, Postgres.URL) or a local volume"},
		{"DataDir on an anonymous Docker volume (the image's VOLUME, no -v)", nil,
			[]string{noRuntimes, "DAIS_INIT_TEST_MOUNTINFO=" + mountinfoFile(t, "overlay", "/data ext4 /var/lib/docker/volumes/"+strings.Repeat("3f", 32)+"/_data")}, base, 78,
			"dais-init: Server.DataDir /data is on an anonymous Docker volume, lost when the container is removed: mount a volume there: -v $PWD/data:/data (or a named volume: -v dais-data:/data)"},
		{"DataDir on a named Docker volume is persistent", nil,
			[]string{noRuntimes, "DAIS_INIT_TEST_MOUNTINFO=" + mountinfoFile(t, "overlay", "/data ext4 /var/lib/docker/volumes/dais-data/_data")}, base, 0, ""},
		{"DataDir on a host's own ext4 root is persistent", nil,
			[]string{noRuntimes, "DAIS_INIT_TEST_MOUNTINFO=" + mountinfoFile(t, "ext4")}, base, 0, ""},
		{"PostgreSQL with DataDir on NFS is fine", nil,
			[]string{noRuntimes, "DAIS_INIT_TEST_MOUNTINFO=" + mountinfoFile(t, "overlay", "/data nfs4")}, pgBase, 0, ""},
		{"skipped checks pass and say so", nil,
			[]string{"DAIS_INIT_SKIP_CHECKS=cap,datadir,runtimes", "DAIS_INIT_TEST_CAPEFF=0", "DAIS_INIT_TEST_MOUNTINFO=" + mountinfoFile(t, "overlay")}, base, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := runCheck(t, tt.wrapper, tt.env, "--config", tt.config)
			if code != tt.code {
				t.Errorf("exit %d, want %d; output:\n%s", code, tt.code, out)
			}
			lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
			last := lines[len(lines)-1]
			if tt.line != "" && last != tt.line {
				t.Errorf("last line\n%s\nwant\n%s", last, tt.line)
			}
			if tt.code == 0 && !strings.Contains(last, `msg="checks passed"`) {
				t.Errorf("last line %q, want checks passed", last)
			}
		})
	}

	t.Run("skipped checks are logged as WARNING", func(t *testing.T) {
		code, out := runCheck(t, nil, []string{"DAIS_INIT_TEST_CAPEFF=0", "DAIS_INIT_TEST_MOUNTINFO=" + mountinfoFile(t, "overlay")},
			"--skip-checks", "cap,datadir,runtimes", "--config", base)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
		for _, c := range []string{"cap", "datadir", "runtimes"} {
			want := `level=WARN msg="WARNING: preflight check SKIPPED by --skip-checks/DAIS_INIT_SKIP_CHECKS: ` + c + " ("
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "SKIPPED by --skip-checks/DAIS_INIT_SKIP_CHECKS: netfs") {
			t.Errorf("netfs reported skipped")
		}
	})

	t.Run("unknown check name is refused", func(t *testing.T) {
		code, out := runCheck(t, nil, nil, "--skip-checks", "cpa", "--config", base)
		want := `dais-init: unknown check "cpa" in --skip-checks / DAIS_INIT_SKIP_CHECKS: want some of cap,datadir,netfs,lock,runtimes, or all`
		if code != 2 || strings.TrimSpace(out) != want {
			t.Errorf("exit %d output %q, want 2 and %q", code, out, want)
		}
	})
}

func TestPreflightLockHeld(t *testing.T) {
	needRoot(t)
	data := t.TempDir()
	base := writeConfig(t, t.TempDir(), "[Server]\nDataDir = "+data+"\n")
	mounts := mountinfoFile(t, "overlay", data+" ext4")
	release, err := datalock.Acquire(filepath.Join(data, "db"))
	if err != nil {
		t.Fatal(err)
	}
	code, out := runCheck(t, nil, []string{"DAIS_INIT_SKIP_CHECKS=runtimes", "DAIS_INIT_TEST_MOUNTINFO=" + mounts}, "--config", base)
	want := "dais-init: the SQLite database directory " + data + "/db is in use by another running dais (pid " + strconv.Itoa(os.Getpid()) +
		"): stop it first; to run several servers on one DataDir use PostgreSQL (Database.Provider = postgres)"
	if code != 78 || !strings.HasSuffix(strings.TrimSpace(out), want) {
		t.Errorf("exit %d, output:\n%s\nwant 78 and last line\n%s", code, out, want)
	}
	release()
	if code, out := runCheck(t, nil, []string{"DAIS_INIT_SKIP_CHECKS=runtimes", "DAIS_INIT_TEST_MOUNTINFO=" + mounts}, "--config", base); code != 0 {
		t.Errorf("after release: exit %d: %s", code, out)
	}
}

func TestPreflightRuntimes(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	script := func(name, out string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte("#!/bin/sh\necho '"+out+"'\n"), 0o755)
		return p
	}
	oldR := script("R", "R version 3.0.2 (2013-09-25) -- \"Frisbee Sailing\"")
	newPy := script("python3", "Python 3.12.1")
	oldPy := script("python3.4", "Python 3.4.10")
	q := script("quarto", "1.4.550")
	base := writeConfig(t, dir, "[Server]\nDataDir = /data\n[R]\nExecutable = "+oldR+"\n[Python]\nExecutable = "+newPy+"\nExecutable = "+oldPy+"\n[Quarto]\nExecutable = "+q+"\n")
	code, out := runCheck(t, nil, []string{"DAIS_INIT_SKIP_CHECKS=cap", "DAIS_INIT_TEST_MOUNTINFO=" + mountinfoFile(t, "overlay", "/data ext4")}, "--config", base)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	for _, want := range []string{
		`level=WARN msg="R 3.0.2 is older than the supported minimum 3.1.0: content needing it will not deploy" component=dais-init path=` + oldR,
		`level=INFO msg="found Python 3.12.1" component=dais-init path=` + newPy,
		`level=WARN msg="Python 3.4.10 is older than the supported minimum 3.5: content needing it will not deploy" component=dais-init path=` + oldPy,
		`level=INFO msg="found Quarto 1.4.550" component=dais-init path=` + q,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestRenderedConfigAndScrubbedEnvironment(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	base := writeConfig(t, dir, "[Server]\nDataDir = /data\nPublicWarning = v1\n")
	rendered := filepath.Join(dir, "run", "dais", "r.gcfg")
	env := []string{
		"PATH=" + fakeBin + ":" + os.Getenv("PATH"),
		"DAIS_INIT_SKIP_CHECKS=runtimes",
		"DAIS_INIT_TEST_MOUNTINFO=" + mountinfoFile(t, "overlay", "/data ext4"),
		"CONNECT_POSTGRES_PASSWORD=s3cret-Pw",
		"CONNECT_SERVER_ADDRESS=https://dais.example.org/",
		"RSC_LICENSE_SERVER=license.example.org:8999",
		"KEEP_ME=yes",
		"FAKE_DAIS_THEN=signals",
	}
	// Relative paths, from the directory dais-init starts in: the reloads
	// below run after dais-init has moved to /.
	p := startInitIn(t, dir, env, "--config", filepath.Base(base), "--rendered", "run/dais/r.gcfg")
	p.expect("args serve --config " + rendered)
	var environ []string
	for {
		var l string
		select {
		case l = <-p.lines:
		case <-time.After(10 * time.Second):
			t.Fatalf("no ready line; stderr: %s", p.stderr)
		}
		if l == "ready" {
			break
		}
		environ = append(environ, strings.TrimPrefix(l, "env "))
	}
	joined := strings.Join(environ, "\n")
	for _, bad := range []string{"CONNECT_POSTGRES_PASSWORD", "s3cret-Pw", "CONNECT_SERVER_ADDRESS", "RSC_LICENSE_SERVER"} {
		if strings.Contains(joined, bad) {
			t.Errorf("child environment has %s:\n%s", bad, joined)
		}
	}
	if !strings.Contains(joined, "KEEP_ME=yes") {
		t.Errorf("child environment lost KEEP_ME:\n%s", joined)
	}
	fi, err := os.Stat(rendered)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("rendered mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(rendered)
	for _, want := range []string{"s3cret-Pw", "https://dais.example.org/", "license.example.org:8999", "v1"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("rendered file lacks %q:\n%s", want, b)
		}
	}

	// HUP: the file is rendered again before the server hears of it.
	writeConfig(t, dir, "[Server]\nDataDir = /data\nPublicWarning = v2\n")
	p.signal(syscall.SIGHUP)
	p.expect("child 1")
	b, _ = os.ReadFile(rendered)
	if !strings.Contains(string(b), "v2") || !strings.Contains(string(b), "s3cret-Pw") {
		t.Errorf("after HUP the rendered file is:\n%s", b)
	}
	// A broken file on HUP keeps the last good rendering.
	writeConfig(t, dir, "[Server\n")
	p.signal(syscall.SIGHUP)
	p.expect("child 1")
	if b2, _ := os.ReadFile(rendered); string(b2) != string(b) {
		t.Errorf("a failed reload changed the rendered file")
	}
	if !p.waitStderr("configuration reload failed") {
		t.Errorf("stderr lacks the reload failure: %s", p.stderr)
	}
	p.stdin.Close()
	if code, _ := p.wait(); code != 0 {
		t.Errorf("exit %d: %s", code, p.stderr)
	}
}
