package setup

import (
	"errors"
	"fmt"
	"strings"

	"github.com/moby/sys/mountinfo"
)

// mountOf returns the mount holding path: the one with the longest
// mountpoint that is path or a parent of it (the last such one, since later
// mounts hide earlier ones). Symlinks in the existing part of path are
// resolved first.
func mountOf(h *host, path string) (*mountinfo.Info, error) {
	path = resolveExisting(path)
	r, err := h.mountinfo()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	mounts, err := mountinfo.GetMountsFromReader(r, nil)
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	var best *mountinfo.Info
	for _, m := range mounts {
		mp := m.Mountpoint
		if mp == path || mp == "/" || strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/") {
			if best == nil || len(mp) >= len(best.Mountpoint) {
				best = m
			}
		}
	}
	if best == nil {
		return nil, errors.New("no mount contains it")
	}
	return best, nil
}
