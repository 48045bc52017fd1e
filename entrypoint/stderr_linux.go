package main

import (
	"io"
	"runtime"
	"sync"
	"syscall"
)

// stderrWriter writes dais-init's own messages to a file descriptor.
// dais-init forwards SIGPIPE to its child, so the SIGPIPE that the kernel
// raises in the writing thread when the reader of stderr is gone must not
// be taken for one sent to dais-init: every write runs on one OS thread that
// blocks SIGPIPE, and after a write fails with EPIPE the signal it raised is
// taken off that thread's pending set. The thread starts with the first
// write: a command that never makes dais-init log costs none.
type stderrWriter struct {
	fd    int
	start sync.Once
	mu    sync.Mutex // one write at a time, answered in order
	req   chan []byte
	res   chan error
}

func newStderrWriter(fd int) *stderrWriter {
	return &stderrWriter{fd: fd, req: make(chan []byte), res: make(chan error)}
}

func (w *stderrWriter) Write(b []byte) (int, error) {
	w.start.Do(func() { go w.loop() })
	w.mu.Lock()
	defer w.mu.Unlock()
	w.req <- b
	if err := <-w.res; err != nil {
		return 0, err
	}
	return len(b), nil
}

func (w *stderrWriter) loop() {
	// Never unlocked: the thread ends with the process, mask and all.
	runtime.LockOSThread()
	pipe := sigsetOf(syscall.SIGPIPE)
	_ = pthreadSigmask(sigBlock, &pipe, nil)
	for b := range w.req {
		err := writeAll(w.fd, b)
		if err == syscall.EPIPE {
			sigtimedwaitNow(&pipe)
		}
		w.res <- err
	}
}

func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := syscall.Write(fd, b)
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN { // a non-blocking stderr: wait until it drains
			waitWritable(fd)
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// ownStderr is dais-init's stderr (fd 2) behind a stderrWriter.
func ownStderr() io.Writer { return newStderrWriter(2) }
