//go:build !(linux && amd64)

package sigprof

import "os"

// Supported tells whether Notify works on this platform.
const Supported = false

// Notify does nothing here: the Go runtime keeps SIGPROF to itself.
func Notify(c chan<- os.Signal) error { return nil }
