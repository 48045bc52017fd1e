package main

import (
	"strconv"
	"syscall"
	"unsafe"
)

// The few system calls dais-init makes that package syscall lacks; it does
// not link golang.org/x/sys/unix (with encoding/binary and reflect, more to
// load at every start).

const (
	prSetChildSubreaper = 36     // PR_SET_CHILD_SUBREAPER
	tiocgpgrp           = 0x540f // TIOCGPGRP
	atFdcwd             = -100   // AT_FDCWD
	atEaccess           = 0x200  // AT_EACCESS
	sigBlock            = 0      // SIG_BLOCK
	pollOut             = 0x4    // POLLOUT
)

// sigset is the kernel's sigset_t on Linux: one bit per signal 1..64.
type sigset uint64

func sigsetOf(s syscall.Signal) sigset { return 1 << (uint(s) - 1) }

func pthreadSigmask(how int, set, old *sigset) error {
	if _, _, e := syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, uintptr(how), uintptr(unsafe.Pointer(set)), uintptr(unsafe.Pointer(old)), 8, 0, 0); e != 0 {
		return e
	}
	return nil
}

// sigtimedwaitNow takes a pending signal of set off this thread, if any.
func sigtimedwaitNow(set *sigset) {
	var now syscall.Timespec
	syscall.Syscall6(syscall.SYS_RT_SIGTIMEDWAIT, uintptr(unsafe.Pointer(set)), 0, uintptr(unsafe.Pointer(&now)), 8, 0, 0)
}

func prctl(option, arg uintptr) error {
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRCTL, option, arg, 0, 0, 0, 0); e != 0 {
		return e
	}
	return nil
}

// foregroundGroup is the foreground process group of the terminal on fd.
func foregroundGroup(fd int) (int, error) {
	var pgrp int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), tiocgpgrp, uintptr(unsafe.Pointer(&pgrp))); e != 0 {
		return 0, e
	}
	return int(pgrp), nil
}

// waitWritable blocks until fd can be written.
func waitWritable(fd int) {
	pfd := struct {
		fd             int32
		events, revent int16
	}{int32(fd), pollOut, 0}
	syscall.Syscall(syscall.SYS_POLL, uintptr(unsafe.Pointer(&pfd)), 1, ^uintptr(0))
}

var signalNames = [...]string{
	1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE",
	9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM",
	16: "SIGSTKFLT", 17: "SIGCHLD", 18: "SIGCONT", 19: "SIGSTOP", 20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU",
	23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ", 26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO",
	30: "SIGPWR", 31: "SIGSYS",
}

// signalName is "SIGTERM", or "SIGRTMIN+N" above 33 (as kill -l names them
// from SIGRTMIN = 34), or "signal N".
func signalName(s syscall.Signal) string {
	switch {
	case s > 0 && int(s) < len(signalNames):
		return signalNames[s]
	case s >= 34 && s <= 64:
		return "SIGRTMIN+" + strconv.Itoa(int(s)-34)
	}
	return "signal " + strconv.Itoa(int(s))
}
