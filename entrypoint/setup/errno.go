package setup

import (
	"errors"
	"syscall"
)

var errENOSPC = syscall.ENOSPC

func isPermission(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES)
}

func errnoName(err error) string {
	var e syscall.Errno
	if errors.As(err, &e) {
		if n := errnoNames[e]; n != "" {
			return n + " (" + e.Error() + ")"
		}
		return e.Error()
	}
	if err == nil {
		return "unknown error"
	}
	return err.Error()
}

var errnoNames = map[syscall.Errno]string{
	syscall.EPERM: "EPERM", syscall.EACCES: "EACCES", syscall.ENOSPC: "ENOSPC",
	syscall.EINVAL: "EINVAL", syscall.ENOENT: "ENOENT", syscall.ENOSYS: "ENOSYS",
}
