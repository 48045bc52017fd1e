//go:build !dais_sandbox_exec

package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"strings"
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
