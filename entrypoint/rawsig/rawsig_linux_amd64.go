package rawsig

import (
	"errors"
	"os"
	"runtime"
	"sync"
	"syscall"
	"unsafe"
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
	var blocked uint64 // the kernel's sigset_t: one bit per signal 1..64
	_, _, _ = syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, 0, 0, uintptr(unsafe.Pointer(&blocked)), 8, 0, 0)
	unblock := false
	for _, s := range sigs {
		if _, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(s), uintptr(unsafe.Pointer(&sa)), 0, 8, 0, 0); e != 0 {
			return errors.New("handler for " + s.String() + ": " + e.Error())
		}
		if blocked&(1<<(uint(s)-1)) != 0 {
			unblock = true
		}
	}
	if unblock {
		// Blocked since the program started (an inherited mask), and so on
		// every runtime thread: one thread of ours takes them.
		go func() {
			runtime.LockOSThread()
			var set uint64
			for _, s := range sigs {
				set |= 1 << (uint(s) - 1)
			}
			syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, 1, uintptr(unsafe.Pointer(&set)), 0, 8, 0, 0) // SIG_UNBLOCK
			select {}
		}()
	}
	return nil
}

func startReader() error {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		return errors.New("signal pipe: " + err.Error())
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
