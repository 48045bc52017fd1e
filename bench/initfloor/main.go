// Command initfloor is the Go floor of bench/init.sh: the least a static Go
// program does to run a command as an init would (find it in PATH, fork,
// exec, wait, exit with its status), with nothing of an init's duties
// (signals, reaping). dais-init is measured against it.
package main

import (
	"os"
	"strings"
	"syscall"
)

func main() {
	argv := os.Args[1:]
	path := argv[0]
	if !strings.Contains(path, "/") {
		for _, dir := range strings.Split(os.Getenv("PATH"), ":") {
			if syscall.Access(dir+"/"+path, 1) == nil { // X_OK
				path = dir + "/" + path
				break
			}
		}
	}
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{0, 1, 2}})
	if err != nil {
		os.Exit(127)
	}
	var ws syscall.WaitStatus
	for {
		if _, err := syscall.Wait4(pid, &ws, 0, nil); err != syscall.EINTR {
			break
		}
	}
	if ws.Signaled() {
		os.Exit(128 + int(ws.Signal()))
	}
	os.Exit(ws.ExitStatus())
}
