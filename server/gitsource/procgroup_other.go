//go:build !unix

package gitsource

import "os/exec"

// killGroup: elsewhere the deadline ends git alone.
func killGroup(cmd *exec.Cmd) {}
