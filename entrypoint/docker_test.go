package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// needDocker skips without a reachable Docker engine, or fails when CI=true.
func needDocker(t *testing.T) {
	t.Helper()
	err := exec.Command("docker", "version", "--format", "{{.Server.APIVersion}}").Run()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("needs Docker and CI=true: %v", err)
	}
	t.Skipf("needs Docker: %v", err)
}

// TestProbeInDocker runs the real capability check and namespace probe in
// containers started with the options users get wrong, in an image that
// holds nothing but dais-init and a dais whose init-setup is the real one
// (testchild).
func TestProbeInDocker(t *testing.T) {
	needDocker(t)
	dir := t.TempDir()
	for name, bin := range map[string]string{"dais-init": initBin, "dais": childBin} {
		data, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, name), data, 0o755)
	}
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY dais-init dais /usr/local/bin/\nENTRYPOINT [\"/usr/local/bin/dais-init\"]\n"), 0o644)
	image := "dais-init-probe-test:" + strconv.Itoa(os.Getpid())
	if out, err := exec.Command("docker", "build", "-q", "-t", image, dir).CombinedOutput(); err != nil {
		t.Fatalf("docker build: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", image).Run() })

	profile := func(name, body string) string {
		p := filepath.Join(dir, name+".json")
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	noMount := profile("nomount", `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mount"],"action":"SCMP_ACT_ERRNO"}]}`)
	// CLONE_NEWUSER is 0x10000000.
	noUserNS := profile("nouserns", `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["unshare","clone3"],"action":"SCMP_ACT_ERRNO"},`+
		`{"names":["clone"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":268435456,"valueTwo":268435456,"op":"SCMP_CMP_MASKED_EQ"}]}]}`)
	apparmor := false
	if b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled"); err == nil && strings.HasPrefix(string(b), "Y") {
		apparmor = true
	}

	tests := []struct {
		name string
		opts []string
		code int
		line string
	}{
		{"without the capability", nil, 78,
			"dais-init: CAP_SYS_ADMIN is missing: dais sandboxes content in mount namespaces; run the container with --cap-add SYS_ADMIN (or --privileged)"},
		{"seccomp denies mount", []string{"--cap-add", "SYS_ADMIN", "--security-opt", "apparmor=unconfined", "--security-opt", "seccomp=" + noMount}, 78,
			"dais-init: mount (rprivate) is denied (EPERM (operation not permitted)) although CAP_SYS_ADMIN is present, most likely by a seccomp profile: run the container with --security-opt seccomp=unconfined (or a profile allowing unshare and mount)"},
		{"seccomp denies user namespaces", []string{"--cap-add", "SYS_ADMIN", "--security-opt", "apparmor=unconfined", "--security-opt", "seccomp=" + noUserNS}, 78,
			"dais-init: creating a user + mount namespace (unshare) is denied (EPERM (operation not permitted)) although CAP_SYS_ADMIN is present, most likely by a seccomp profile: run the container with --security-opt seccomp=unconfined (or a profile allowing unshare and mount)"},
		{"capability with apparmor unconfined and the default seccomp profile", []string{"--cap-add", "SYS_ADMIN", "--security-opt", "apparmor=unconfined"}, 0, ""},
		// Sandbox.Mode = auto: without the capability, Landlock serves.
		{"without the capability, auto mode (Landlock)", []string{"-e", "CONNECT_SANDBOX_MODE=auto"}, 0, ""},
	}
	if apparmor {
		tests = append(tests, struct {
			name string
			opts []string
			code int
			line string
		}{"AppArmor's docker-default denies mount", []string{"--cap-add", "SYS_ADMIN"}, 78,
			"dais-init: mount is denied by AppArmor (profile docker-default (enforce)) although CAP_SYS_ADMIN is present: run the container with --security-opt apparmor=unconfined"})
	} else {
		t.Log("AppArmor is not enabled on this host: the AppArmor case runs with fake inputs only (TestPreflight)")
		tests = append(tests, struct {
			name string
			opts []string
			code int
			line string
		}{"capability alone (no AppArmor on this host)", []string{"--cap-add", "SYS_ADMIN"}, 0, ""})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The namespace probe's refusals, as in Sandbox.Mode = namespaces
			// (in auto mode Landlock would serve where the kernel has it).
			args := append([]string{"run", "--rm", "-e", "DAIS_INIT_SKIP_CHECKS=datadir,netfs,lock,runtimes", "-e", "CONNECT_SANDBOX_MODE=namespaces"}, tt.opts...)
			args = append(args, image, "--check")
			out, err := exec.Command("docker", args...).CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
			last := lines[len(lines)-1]
			if code != tt.code {
				t.Errorf("exit %d, want %d:\n%s", code, tt.code, out)
			}
			if tt.line != "" && last != tt.line {
				t.Errorf("last line\n%s\nwant\n%s", last, tt.line)
			}
			if tt.code == 0 && !strings.Contains(last, `msg="checks passed"`) {
				t.Errorf("last line %q", last)
			}
		})
	}
}
