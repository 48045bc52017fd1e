// Package rawsig delivers signals to channels like os/signal, through a
// signal handler of its own instead of the Go runtime's:
//
//   - it can deliver SIGPROF, which the runtime keeps for its profiler (and
//     os/signal never delivers);
//   - enabling a signal costs one system call, where os/signal hands each
//     one to a runtime thread and waits for it (two thread switches a
//     signal, most of a minimal init's start-up when it listens to all).
//
// The handler, in assembly because it runs outside the Go runtime, writes
// the signal number to a pipe; a goroutine reads the pipe and sends each
// signal to its channel, in the order they came. A forked child gets SIG_DFL
// back before it execs (the runtime resets the handlers it owned).
//
// Use it only for signals the runtime does not need: not SIGSEGV, SIGBUS,
// SIGFPE, SIGILL (faults the runtime turns into panics), not SIGURG unless
// asynchronous preemption is off, not 32 and 33, and no CPU profiling in
// the program. linux/amd64 only: elsewhere Supported is false.
package rawsig
