#include "textflag.h"

// handler is the signal handler. The kernel calls it as a C
// function, handler(int sig) with sig in DI, on the thread's signal stack,
// outside the Go runtime: it touches no Go state, only writes the signal
// number as one byte to the pipe pipeFD and returns to restorer.
// A full pipe drops the byte, as a pending signal is not queued twice.
TEXT ·handler(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	DI
	MOVQ	·pipeFD(SB), DI
	MOVQ	SP, SI
	MOVQ	$1, DX
	MOVQ	$1, AX	// write(profPipe, &sig, 1)
	SYSCALL
	POPQ	DI
	RET

// restorer returns from the handler (the sa_restorer of x86-64 Linux).
TEXT ·restorer(SB),NOSPLIT|NOFRAME,$0
	MOVQ	$15, AX	// rt_sigreturn
	SYSCALL
	INT	$3

// func handlerAddrs() (handler, restorer uintptr)
TEXT ·handlerAddrs(SB),NOSPLIT,$0-16
	LEAQ	·handler(SB), AX
	MOVQ	AX, handler+0(FP)
	LEAQ	·restorer(SB), AX
	MOVQ	AX, restorer+8(FP)
	RET
