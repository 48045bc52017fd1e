//go:build unix

package runtime

import (
	"os/exec"
	"syscall"
)

// ownGroup puts a version query in its own process group: under dais-init,
// `docker stop` sends SIGTERM to dais serve's whole group, and a query
// killed by it would fail the render that asked (the server drains
// renders; the query ends on its own, bounded by Finder.Timeout).
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}
