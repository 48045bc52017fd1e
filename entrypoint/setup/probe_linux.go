package setup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/sys/capability"
	"golang.org/x/sys/unix"
)

// probeArg is the hidden first argument of `dais init-setup` that makes it
// the namespace probe child.
const probeArg = "__dais-init-probe"

// realCapSysAdmin reads the effective capability set of this process.
func realCapSysAdmin() (bool, error) {
	c, err := capability.NewPid2(0)
	if err != nil {
		return false, err
	}
	if err := c.Load(); err != nil {
		return false, err
	}
	return c.Get(capability.EFFECTIVE, capability.CAP_SYS_ADMIN), nil
}

// fakeCapSysAdmin reads a CapEff-style hex mask (tests).
func fakeCapSysAdmin(hex string) func() (bool, error) {
	return func() (bool, error) {
		v, err := strconv.ParseUint(strings.TrimPrefix(hex, "0x"), 16, 64)
		if err != nil {
			return false, fmt.Errorf("DAIS_INIT_TEST_CAPEFF %q: %w", hex, err)
		}
		return v&(1<<uint(capability.CAP_SYS_ADMIN)) != 0, nil
	}
}

// realProbe proves what the sandbox needs: it re-executes itself in a new
// user + mount namespace (root mapped to root, as the sandbox does), where
// the child makes / rprivate, mounts a tmpfs and bind-mounts inside it.
func realProbe(ctx context.Context) probeResult {
	self, err := os.Executable()
	if err != nil {
		self = "/proc/self/exe"
	}
	target := os.TempDir()
	if fi, err := os.Stat(target); err != nil || !fi.IsDir() {
		target = "/"
	}
	cmd := exec.CommandContext(ctx, self, Command, probeArg, target)
	cmd.Args[0] = "dais"
	cmd.Env = []string{}
	uid, gid := os.Getuid(), os.Getgid()
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:                 syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}},
		GidMappingsEnableSetgroups: false,
		Pdeathsig:                  syscall.SIGKILL,
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			// The child ran and reports "step errno".
			step, num, ok := strings.Cut(strings.TrimSpace(out.String()), " ")
			n, perr := strconv.Atoi(num)
			if ok && perr == nil {
				return probeResult{Step: step, Errno: syscall.Errno(n)}
			}
			return probeResult{Step: "probe", Errno: fmt.Errorf("%v: %s", err, out.String())}
		}
		var errno syscall.Errno
		if errors.As(err, &errno) {
			return probeResult{Step: "clone", Errno: errno}
		}
		return probeResult{Step: "clone", Errno: err}
	}
	return probeResult{}
}

// runProbeChild is the probe child's body. It prints "step errno" and
// exits 1 on the first failure.
func runProbeChild(target string) int {
	fail := func(step string, err error) int {
		var errno syscall.Errno
		if !errors.As(err, &errno) {
			errno = syscall.EIO
		}
		fmt.Printf("%s %d\n", step, int(errno))
		return 1
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fail("rprivate", err)
	}
	if err := unix.Mount("dais-init-probe", target, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=64k,mode=0700"); err != nil {
		return fail("tmpfs", err)
	}
	a, b := filepath.Join(target, "a"), filepath.Join(target, "b")
	for _, d := range []string{a, b} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return fail("tmpfs", err)
		}
	}
	if err := unix.Mount(a, b, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fail("bind", err)
	}
	return 0
}

// fakeProbe parses "ok" or "step:ERRNO" (tests).
func fakeProbe(spec string) func(context.Context) probeResult {
	return func(context.Context) probeResult {
		if spec == "ok" {
			return probeResult{}
		}
		step, name, _ := strings.Cut(spec, ":")
		errno := syscall.EIO
		for e, n := range errnoNames {
			if n == name {
				errno = e
			}
		}
		return probeResult{Step: step, Errno: errno}
	}
}
