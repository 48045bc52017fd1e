package sandbox

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ipprotoMPTCP is IPPROTO_MPTCP. Landlock's TCP rules do not apply to
// Multipath TCP sockets, and an MPTCP connect reaches a plain TCP listener
// (it falls back to TCP), so in Landlock mode content gets no MPTCP socket:
// a seccomp filter makes socket(2) with that protocol fail with
// EPROTONOSUPPORT, which programs (Go's net.Listen among them) take as "use
// TCP". Foreign system call ABIs (32-bit, x32), where the protocol cannot be
// checked, get ENOSYS for the socket calls.
const ipprotoMPTCP = 262

// seccompNoMPTCP installs that filter on the calling thread (inherited by
// what it forks). no_new_privs must be set.
func seccompNoMPTCP() error {
	var arch uint32
	var foreignSocket []uint32 // socket calls of the compat ABI
	switch runtime.GOARCH {
	case "amd64":
		arch = unix.AUDIT_ARCH_X86_64
		foreignSocket = []uint32{102, 359} // i386 socketcall, socket
	case "arm64":
		arch = unix.AUDIT_ARCH_AARCH64
		foreignSocket = []uint32{281, 290} // arm socket, socketcall (not on arm: harmless)
	default:
		return fmt.Errorf("no seccomp filter for %s", runtime.GOARCH)
	}
	const (
		offNr   = 0
		offArch = 4
		offArg2 = 16 + 2*8 // args[2], low 32 bits (little endian)
		ret     = unix.BPF_RET | unix.BPF_K
		ld      = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
		jeq     = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
		jset    = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
	)
	allow := unix.SockFilter{Code: ret, K: unix.SECCOMP_RET_ALLOW}
	noProto := unix.SockFilter{Code: ret, K: unix.SECCOMP_RET_ERRNO | uint32(unix.EPROTONOSUPPORT)}
	noSys := unix.SockFilter{Code: ret, K: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)}
	// From instruction i, a jump of k lands on i+1+k.
	f := []unix.SockFilter{
		/* 0 */ {Code: ld, K: offArch},
		/* 1 */ {Code: jeq, K: arch, Jt: 0, Jf: 5}, // foreign ABI: 7
		/* 2 */ {Code: ld, K: offNr},
		/* 3 */ {Code: jset, K: 0x40000000, Jt: 8, Jf: 0}, // x32 on x86-64: 12, no socket at all
		/* 4 */ {Code: jeq, K: uint32(unix.SYS_SOCKET), Jt: 0, Jf: 5}, // else 10
		/* 5 */ {Code: ld, K: offArg2},
		/* 6 */ {Code: jeq, K: ipprotoMPTCP, Jt: 4, Jf: 3}, // 11 or 10
		/* 7 */ {Code: ld, K: offNr},
		/* 8 */ {Code: jeq, K: foreignSocket[0], Jt: 3, Jf: 0}, // 12
		/* 9 */ {Code: jeq, K: foreignSocket[1], Jt: 2, Jf: 0}, // 12 or 10
		/* 10 */ allow,
		/* 11 */ noProto,
		/* 12 */ noSys,
	}
	prog := unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}
	if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&prog)), 0, 0); err != nil {
		return fmt.Errorf("seccomp filter: %w", err)
	}
	runtime.KeepAlive(f)
	return nil
}
