//go:build !linux

package diskspace

import "errors"

// statfs is not implemented off Linux: the volume counts as never full.
func statfs(string) (free, total int64, err error) {
	return 0, 0, errors.New("free space is only measured on Linux")
}
