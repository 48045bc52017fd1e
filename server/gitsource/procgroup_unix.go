//go:build unix

package gitsource

import (
	"os/exec"
	"syscall"
)

// killGroup makes cmd's deadline end its whole process group: git runs
// helpers (git-remote-http) that would otherwise outlive it, holding the
// connection.
func killGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
