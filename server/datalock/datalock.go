// Package datalock guards a SQLite data directory against a second running
// dais: `dais serve` holds an exclusive flock on <dir>/dais.lock while it
// runs, and dais-init probes the same lock before it starts the server.
package datalock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// FileName is the lock file's name inside the SQLite directory.
const FileName = "dais.lock"

// ErrLocked means another process (another running dais) holds the lock.
var ErrLocked = errors.New("data directory is in use by another running dais")

// Path returns the lock file's path for the SQLite directory dir.
func Path(dir string) string { return filepath.Join(dir, FileName) }

// Acquire takes an exclusive, non-blocking lock on <dir>/dais.lock, creating
// dir and the file when missing. It returns ErrLocked (wrapped, with the
// holder's pid when known) when another process holds it. The lock lives as
// long as the returned release is not called and the process runs; the
// kernel drops it when the process exits, so a crash never leaves it stale.
func Acquire(dir string) (release func() error, err error) {
	return acquire(dir)
}

// Probe reports whether the lock on dir is free right now: it acquires and
// releases it. A missing directory counts as free and is not created.
func Probe(dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	release, err := Acquire(dir)
	if err != nil {
		return err
	}
	if err := release(); err != nil {
		return fmt.Errorf("release lock %s: %w", Path(dir), err)
	}
	return nil
}
