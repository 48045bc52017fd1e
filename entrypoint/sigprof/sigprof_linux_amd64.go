package sigprof

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// SIGPROF never reaches os/signal: the Go runtime keeps it for its CPU
// profiler (signal.Notify ignores it and the runtime's handler swallows it).
// A program that never profiles can replace that handler with its own, in
// assembly since it runs outside the Go runtime (sigprof_linux_amd64.s): it
// writes the signal number to a pipe, and a goroutine reads the pipe and
// sends SIGPROF to the channel like os/signal does other signals. A forked
// child gets SIG_DFL back before it execs (the runtime resets the handlers
// it owned). Do not use runtime/pprof's CPU profile in such a program.

// profPipe is the write end of the pipe, read by profHandler.
var profPipe uintptr

func profHandler()
func profRestorer()
func profHandlerAddrs() (handler, restorer uintptr)

// kernelSigaction is struct sigaction as the x86-64 kernel takes it.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

const (
	saOnstack  = 0x08000000
	saRestart  = 0x10000000
	saRestorer = 0x04000000
)

// Supported tells whether Notify works on this platform.
const Supported = true

// Notify delivers SIGPROF to c from now on. Call it once.
func Notify(c chan<- os.Signal) error {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return fmt.Errorf("SIGPROF pipe: %w", err)
	}
	profPipe = uintptr(p[1])
	handler, restorer := profHandlerAddrs()
	// On the signal stack every Go thread has; SA_RESTART so that no
	// system call of the runtime's sees EINTR because of it.
	sa := kernelSigaction{handler: handler, flags: saOnstack | saRestart | saRestorer, restorer: restorer}
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(unix.SIGPROF), uintptr(unsafe.Pointer(&sa)), 0, 8, 0, 0); e != 0 {
		unix.Close(p[0])
		unix.Close(p[1])
		return fmt.Errorf("SIGPROF handler: %w", e)
	}
	r := os.NewFile(uintptr(p[0]), "sigprof")
	go func() {
		var b [64]byte
		for {
			n, err := r.Read(b[:])
			if err != nil {
				return
			}
			for _, s := range b[:n] {
				c <- syscall.Signal(s)
			}
		}
	}()
	return nil
}
