//go:build !linux

package store

// lockFile is a no-op off Linux, where dais does not run servers.
func lockFile(string) (func(), error) { return func() {}, nil }
