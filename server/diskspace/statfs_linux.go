package diskspace

import "golang.org/x/sys/unix"

// statfs returns the bytes available to unprivileged users (what df shows
// as available) and the size of the filesystem holding dir.
func statfs(dir string) (free, total int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), int64(st.Blocks) * int64(st.Bsize), nil
}
