//go:build linux

package sandbox

import (
	"fmt"
	"path/filepath"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Unsearchable returns the first directory on the way to path (path
// included) that u may not search, by its owner, group and mode bits, and
// a sentence that says why and how to fix it; "" when u reaches path. A
// Landlock sandbox keeps the host's directories: its content, running as
// u, needs search permission on every directory above its work directory,
// which namespaces mode does not (there the directories are mounted
// afresh). Root reaches everything.
func Unsearchable(path string, u specs.User) (dir, why string) {
	if u.UID == 0 {
		return "", ""
	}
	path = filepath.Clean(path)
	if !filepath.IsAbs(path) {
		return "", ""
	}
	// path and its ancestors, from / down.
	dirs := []string{path}
	for d := path; d != "/"; {
		d = filepath.Dir(d)
		dirs = append(dirs, d)
	}
	slices.Reverse(dirs)
	for _, d := range dirs {
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err != nil {
			return "", "" // gone or out of reach of the caller: not for this check to say
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return "", ""
		}
		var bit uint32
		switch {
		case st.Uid == u.UID:
			bit = 0o100
		case st.Gid == u.GID || slices.Contains(u.AdditionalGids, st.Gid):
			bit = 0o010
		default:
			bit = 0o001
		}
		if st.Mode&bit != 0 {
			continue
		}
		why = fmt.Sprintf("the content's user (uid %d, gid %d) may not search %s (mode %04o, owner uid %d, group gid %d), above %s: "+
			"give that user search permission on it (chmod o+x %s, or chown %d %s), or use namespaces mode (--cap-add SYS_ADMIN), which mounts the content's directories afresh",
			u.UID, u.GID, d, st.Mode&0o7777, st.Uid, st.Gid, path, d, u.UID, d)
		return d, why
	}
	return "", ""
}

// UnsearchableBy is Unsearchable for the run-as user name (see Options.RunAs);
// "" when the user does not exist (its first start says so, with the fix).
func UnsearchableBy(path, runAs string) (dir, why string) {
	u, err := lookupUser(runAs)
	if err != nil {
		return "", ""
	}
	return Unsearchable(path, u)
}
