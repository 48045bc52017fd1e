// Package sigprof delivers SIGPROF to a channel, which os/signal cannot do
// (the Go runtime keeps SIGPROF for its profiler). On linux/amd64 only: its
// signal handler is in assembly.
package sigprof
