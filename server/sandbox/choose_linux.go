//go:build linux && !dais_sandbox_exec

package sandbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/moby/sys/capability"
)

// Choose resolves [Sandbox] Mode: for ModeAuto, namespaces when this
// process has CAP_SYS_ADMIN and a namespaces sandbox really starts, else
// Landlock when the kernel offers LandlockMinABI and a Landlock sandbox
// really starts. A forced mode is tried alone. It returns the mode and why
// (for the log), or an error naming the fixes when no mode works. The
// trial sandboxes run /bin/true as runAs through daisPath (""
// meaning ExecPath()).
func Choose(ctx context.Context, want Mode, daisPath, runAs string) (Mode, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var why []string
	if want == ModeAuto || want == ModeNamespaces {
		err := tryNamespaces(ctx, daisPath, runAs)
		if err == nil {
			if want == ModeAuto {
				return ModeNamespaces, "auto: CAP_SYS_ADMIN is present and a namespaces sandbox starts", nil
			}
			return ModeNamespaces, "Sandbox.Mode = namespaces", nil
		}
		if want == ModeNamespaces {
			return "", "", fmt.Errorf("Sandbox.Mode = namespaces, but %v: %s, or set Sandbox.Mode = auto", err, FixNamespaces)
		}
		why = append(why, "namespaces: "+err.Error())
	}
	err := tryLandlock(ctx, daisPath, runAs)
	if err == nil {
		abi, _ := LandlockABI()
		if want == ModeAuto {
			return ModeLandlock, fmt.Sprintf("auto: namespaces unavailable (%s); Landlock ABI %d is", strings.Join(why, "; "), abi), nil
		}
		return ModeLandlock, fmt.Sprintf("Sandbox.Mode = landlock (Landlock ABI %d)", abi), nil
	}
	if want == ModeLandlock {
		return "", "", fmt.Errorf("Sandbox.Mode = landlock, but %v: %s, or set Sandbox.Mode = auto", err, FixLandlock)
	}
	why = append(why, "landlock: "+err.Error())
	return "", "", fmt.Errorf("no sandbox mode works here (%s): %s; or %s", strings.Join(why, "; "), FixNamespaces, FixLandlock)
}

func tryNamespaces(ctx context.Context, daisPath, runAs string) error {
	c, err := capability.NewPid2(0)
	if err == nil {
		err = c.Load()
	}
	if err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	if !c.Get(capability.EFFECTIVE, capability.CAP_SYS_ADMIN) {
		return errors.New("CAP_SYS_ADMIN is missing")
	}
	return trial(ctx, daisPath, Options{Args: []string{"/bin/true"}, RunAs: runAs, Dir: "/"})
}

func tryLandlock(ctx context.Context, daisPath, runAs string) error {
	abi, err := LandlockABI()
	if err != nil {
		return err
	}
	if abi < LandlockMinABI {
		return fmt.Errorf("the kernel offers Landlock ABI %d, below %d", abi, LandlockMinABI)
	}
	return trial(ctx, daisPath, Options{Args: []string{"/bin/true"}, RunAs: runAs, Dir: "/", Mode: ModeLandlock})
}

func trial(ctx context.Context, daisPath string, o Options) error {
	s, err := Spec(o)
	if err != nil {
		return err
	}
	cmd, err := Command(ctx, daisPath, s)
	if err != nil {
		return err
	}
	cmd.Cold = true
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		var se *SetupError
		if errors.As(err, &se) {
			return se
		}
		return fmt.Errorf("%w %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
