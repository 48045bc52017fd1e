//go:build !unix

package datalock

import "errors"

func acquire(dir string) (func() error, error) {
	return nil, errors.New("datalock: unsupported platform")
}
