package rawsig

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Supported tells whether Notify works on this platform.
const Supported = true

// pipeFD is the write end of the pipe, written by handler.
var pipeFD uintptr

func handler()
func restorer()
func handlerAddrs() (handler, restorer uintptr)

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

var (
	mu    sync.Mutex
	start sync.Once
	errs  error
	chans [65]chan<- os.Signal // by signal number
)

// Notify delivers sigs to c from now on. A signal already given to another
// channel moves to c.
func Notify(c chan<- os.Signal, sigs ...syscall.Signal) error {
	start.Do(func() { errs = startReader() })
	if errs != nil {
		return errs
	}
	mu.Lock()
	for _, s := range sigs {
		if s > 0 && int(s) < len(chans) {
			chans[s] = c
		}
	}
	mu.Unlock()
	h, r := handlerAddrs()
	// On the signal stack every Go thread has; SA_RESTART so that no system
	// call of the runtime's sees EINTR because of it.
	sa := kernelSigaction{handler: h, flags: saOnstack | saRestart | saRestorer, restorer: r}
	var blocked unix.Sigset_t
	_ = unix.PthreadSigmask(unix.SIG_BLOCK, nil, &blocked)
	unblock := false
	for _, s := range sigs {
		if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(s), uintptr(unsafe.Pointer(&sa)), 0, 8, 0, 0); e != 0 {
			return fmt.Errorf("handler for %v: %w", s, e)
		}
		if blocked.Val[0]&(1<<(uint(s)-1)) != 0 {
			unblock = true
		}
	}
	if unblock {
		// Blocked since the program started (an inherited mask), and so on
		// every runtime thread: one thread of ours takes them.
		go func() {
			runtime.LockOSThread()
			var set unix.Sigset_t
			for _, s := range sigs {
				set.Val[0] |= 1 << (uint(s) - 1)
			}
			_ = unix.PthreadSigmask(unix.SIG_UNBLOCK, &set, nil)
			select {}
		}()
	}
	return nil
}

func startReader() error {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return fmt.Errorf("signal pipe: %w", err)
	}
	pipeFD = uintptr(p[1])
	r := os.NewFile(uintptr(p[0]), "rawsig")
	go func() {
		var b [128]byte
		for {
			n, err := r.Read(b[:])
			if err != nil {
				return
			}
			for _, s := range b[:n] {
				mu.Lock()
				c := chans[s]
				mu.Unlock()
				if c != nil {
					c <- syscall.Signal(s)
				}
			}
		}
	}()
	return nil
}
