#include "textflag.h"

// profHandler is dais-init's SIGPROF handler. The kernel calls it as a C
// function, handler(int sig) with sig in DI, on the thread's signal stack,
// outside the Go runtime: it touches no Go state, only writes the signal
// number as one byte to the pipe profPipe and returns to profRestorer.
// A full pipe drops the byte, as a pending signal is not queued twice.
TEXT ·profHandler(SB),NOSPLIT|NOFRAME,$0
	PUSHQ	DI
	MOVQ	·profPipe(SB), DI
	MOVQ	SP, SI
	MOVQ	$1, DX
	MOVQ	$1, AX	// write(profPipe, &sig, 1)
	SYSCALL
	POPQ	DI
	RET

// profRestorer returns from the handler (the sa_restorer of x86-64 Linux).
TEXT ·profRestorer(SB),NOSPLIT|NOFRAME,$0
	MOVQ	$15, AX	// rt_sigreturn
	SYSCALL
	INT	$3

// func profHandlerAddrs() (handler, restorer uintptr)
TEXT ·profHandlerAddrs(SB),NOSPLIT,$0-16
	LEAQ	·profHandler(SB), AX
	MOVQ	AX, handler+0(FP)
	LEAQ	·profRestorer(SB), AX
	MOVQ	AX, restorer+8(FP)
	RET
