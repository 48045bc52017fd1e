//go:build !linux

package setup

import (
	"errors"

	"github.com/moby/sys/mountinfo"
)

func mountOf(h *host, path string) (*mountinfo.Info, error) {
	return nil, errors.New("mount tables are read on Linux only")
}
