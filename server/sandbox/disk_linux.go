package sandbox

import (
	"io/fs"
	"path/filepath"
	"syscall"
	"time"
)

// DiskCheckEvery is how often a running sandbox's bounded directories
// (Options.DiskLimit) are measured.
var DiskCheckEvery = 5 * time.Second

// watchDisk measures the sandbox's bounded directories every
// DiskCheckEvery until it exits; the first one found over its limit ends
// the sandbox, with the reason recorded for ExitReason (not told to
// OnLimit: that is for kills the sandbox outlives; Wait's caller says it).
func (c *Cmd) watchDisk() {
	if len(c.lim.disk) == 0 {
		return
	}
	c.diskDone = make(chan struct{})
	done, pid := c.diskDone, c.Process.Pid
	go func() {
		t := time.NewTicker(DiskCheckEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			for _, d := range c.lim.disk {
				used := diskUsage(d.dir)
				if used <= d.bytes {
					continue
				}
				what := "its work directory"
				if d.dir == c.tmpDir {
					what = "its TMPDIR"
				}
				reason := "killed: " + what + " holds " + FormatBytes(used) + ", over its " + FormatBytes(d.bytes) + " disk limit"
				c.diskMu.Lock()
				c.diskReason = reason
				c.diskMu.Unlock()
				c.kill(pid)
				return
			}
		}
	}()
}

// diskUsage is the space the files under dir take (allocated blocks, so a
// sparse file counts what it really uses; hard links once), without
// following links.
func diskUsage(dir string) int64 {
	var n int64
	seen := map[[2]uint64]bool{}
	filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil || e == nil {
			return nil // gone, or unreadable: what can be read counts
		}
		fi, err := e.Info()
		if err != nil {
			return nil
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if st.Nlink > 1 && !e.IsDir() {
			k := [2]uint64{st.Dev, st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		n += st.Blocks * 512
		return nil
	})
	return n
}
