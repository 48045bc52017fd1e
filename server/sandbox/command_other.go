//go:build !linux

package sandbox

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ErrUnsupported is returned off Linux: sandboxes need Linux namespaces.
var ErrUnsupported = errors.New("sandbox: content sandboxes need Linux")

// Cmd is a sandboxed content process (Linux only).
type Cmd struct{ *exec.Cmd }

// Command fails off Linux.
func Command(ctx context.Context, daisPath string, spec *specs.Spec) (*Cmd, error) {
	return nil, ErrUnsupported
}

// Main is `dais sandbox-exec`; off Linux it fails.
func Main(stderr io.Writer) int {
	io.WriteString(stderr, ErrUnsupported.Error()+"\n")
	return ExitSetup
}

// CLI is `dais sandbox ...`; off Linux it fails.
func CLI(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	io.WriteString(stderr, ErrUnsupported.Error()+"\n")
	return 1
}

// OnCommand is called with every spec Command is given (Linux only).
var OnCommand func(*specs.Spec)

// HelperName is the sandbox-exec helper program (Linux only).
const HelperName = "dais-sandbox-exec"

// ExecPath fails off Linux.
func ExecPath() (string, error) { return "", ErrUnsupported }

// SetPrestart does nothing off Linux.
func SetPrestart(n int) {}

// WaitPrestarts has nothing to wait for off Linux.
func WaitPrestarts(d time.Duration) bool { return true }

// Signal fails off Linux.
func (c *Cmd) Signal(sig os.Signal) error { return ErrUnsupported }

// LandlockABI is 0 off Linux.
func LandlockABI() (int, error) { return 0, ErrUnsupported }

// Choose fails off Linux.
func Choose(ctx context.Context, want Mode, daisPath, runAs string) (Mode, string, error) {
	return "", "", ErrUnsupported
}

// DialContext fails off Linux.
func (c *Cmd) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return nil, ErrUnsupported
}

// PrepareOutbound fails off Linux.
func PrepareOutbound() (string, error) { return "", ErrUnsupported }

// LimitsInForce says how limits are enforced: not at all off Linux.
func LimitsInForce() string { return "none (not Linux)" }

// HaveLimitCgroups is false off Linux.
func HaveLimitCgroups() bool { return false }

// ExitReason is empty off Linux.
func (c *Cmd) ExitReason() string { return "" }

// Unsearchable has nothing to say off Linux (no Landlock mode).
func Unsearchable(path string, u specs.User) (dir, why string) { return "", "" }

// UnsearchableBy has nothing to say off Linux.
func UnsearchableBy(path, runAs string) (dir, why string) { return "", "" }

// RemoveTmp has nothing to remove off Linux.
func RemoveTmp() error { return nil }
