package content_test

import (
	"io/fs"
	"strconv"
	"syscall"
)

func ownerOf(fi fs.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return strconv.Itoa(int(st.Uid))
	}
	return "?"
}
