//go:build !(linux && amd64)

package rawsig

import (
	"os"
	"os/signal"
	"syscall"
)

// Supported tells whether Notify works on this platform.
const Supported = false

// Notify falls back to os/signal here, which never delivers SIGPROF.
func Notify(c chan<- os.Signal, sigs ...syscall.Signal) error {
	for _, s := range sigs {
		if s != syscall.SIGPROF {
			signal.Notify(c, s)
		}
	}
	return nil
}
