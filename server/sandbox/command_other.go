//go:build !linux

package sandbox

import (
	"context"
	"errors"
	"io"
	"os/exec"

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
