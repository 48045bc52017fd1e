package deploy

// What the API (server/api) asks of the deploy service: store an uploaded
// bundle, start a deploy or a render, delete a content, restart its
// processes after a change, read a process log. The HTTP handlers, their
// JSON and their authorization live in server/api; errors returned here
// that the client caused are *web.RequestError with their status.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/dais-dev/dais/server/content/manifest"
	"github.com/dais-dev/dais/server/content/runtime"
	"github.com/dais-dev/dais/server/diskspace"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

// MaxUploadBytes bounds an uploaded (compressed) bundle.
const MaxUploadBytes = 2 << 30

// errStatus is a failure the client caused (or may retry), with its status.
func errStatus(status int, msg string) error { return &web.RequestError{Status: status, Msg: msg} }

// CheckSpace refuses (507, naming the data volume and its free space)
// work that would write need more bytes (0 unknown) to a data volume
// below its reserve (Server.DataDirReserve).
func (s *Service) CheckSpace(need int64) error {
	if err := s.o.Disk.Check(max(need, 0)); err != nil {
		return errStatus(diskspace.StatusInsufficientStorage, err.Error())
	}
	return nil
}

// spaceErr is err in words when it is a write that failed for lack of
// space (a *web.RequestError with status 507), else err.
func (s *Service) spaceErr(err error) error {
	if fe := s.o.Disk.Failed(err); fe != nil {
		return errStatus(fe.Status(), fe.Error())
	}
	return err
}

// checkedWriter writes to w and, every checkEvery bytes, asks the disk
// monitor whether the volume went below its reserve meanwhile.
type checkedWriter struct {
	w     io.Writer
	disk  *diskspace.Monitor
	since int64
}

const checkEvery = 8 << 20

func (c *checkedWriter) Write(p []byte) (int, error) {
	c.since += int64(len(p))
	if c.since >= checkEvery {
		c.since = 0
		if err := c.disk.Check(0); err != nil {
			return 0, err
		}
	}
	return c.w.Write(p)
}

// ReceiveBundle stores body, a bundle's tar.gz, as a new bundle of c.
func (s *Service) ReceiveBundle(ctx context.Context, c *store.Content, body io.Reader) (*store.Bundle, error) {
	dir := s.contentDir(c.ID)
	if err := s.CheckSpace(0); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, s.spaceErr(fmt.Errorf("create %s: %w (check Server.DataDir)", dir, err))
	}
	tmp, err := os.CreateTemp(dir, s.uploadPattern()) // crash leftovers: cleanup.go
	if err != nil {
		return nil, s.spaceErr(fmt.Errorf("store upload: %w", err))
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(&checkedWriter{w: tmp, disk: s.o.Disk}, http.MaxBytesReader(nil, io.NopCloser(body), MaxUploadBytes))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if fe := s.o.Disk.Failed(err); fe != nil {
		// Not the client's fault: the volume is full.
		return nil, errStatus(fe.Status(), "storing the bundle failed: "+fe.Error())
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, errStatus(http.StatusRequestEntityTooLarge, fmt.Sprintf("bundle larger than %d bytes", int64(MaxUploadBytes)))
	}
	if status, msg, ok := web.BodyError(err); ok && status == http.StatusRequestTimeout {
		return nil, errStatus(status, "reading the bundle failed: "+msg)
	}
	if err != nil {
		return nil, errStatus(http.StatusBadRequest, "reading the bundle failed: "+err.Error())
	}
	if n == 0 {
		return nil, errStatus(http.StatusBadRequest, "the bundle is empty: send the tar.gz archive as the request body")
	}
	b := &store.Bundle{ContentID: c.ID, Path: dir, Size: n}
	if err := s.st.CreateBundle(ctx, b); err != nil {
		return nil, s.spaceErr(err)
	}
	bdir := s.bundleDir(c.ID, b.ID)
	if err := os.MkdirAll(bdir, 0o755); err != nil {
		return nil, s.spaceErr(err)
	}
	if err := os.Rename(tmp.Name(), s.archivePath(c.ID, b.ID)); err != nil {
		return nil, fmt.Errorf("store bundle %d: %w", b.ID, err)
	}
	s.log.Info("bundle uploaded", logKeyContent, c.GUID, logKeyBundle, b.ID, "bytes", n)
	return b, nil
}

// BundleOf finds a bundle of c by its id; "" means the newest.
func (s *Service) BundleOf(ctx context.Context, c *store.Content, ref string) (*store.Bundle, error) {
	if ref == "" {
		bs, err := s.st.ListBundles(ctx, c.ID)
		if err != nil {
			return nil, err
		}
		if len(bs) == 0 {
			return nil, errStatus(http.StatusBadRequest, "content "+c.Name+" has no bundle: upload one first")
		}
		return &bs[0], nil
	}
	id, err := strconv.ParseInt(ref, 10, 64)
	if err != nil {
		return nil, errStatus(http.StatusBadRequest, "bundle id "+ref+" is not a number")
	}
	b, err := s.st.Bundle(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && b.ContentID != c.ID) {
		return nil, errStatus(http.StatusNotFound, "content "+c.Name+" has no bundle "+ref)
	}
	return b, err
}

// StartDeploy records a deploy task of bundle ref ("" = newest) of c,
// started by u, and runs it in the background.
func (s *Service) StartDeploy(ctx context.Context, c *store.Content, u *store.User, ref string, o DeployOptions) (*store.Task, error) {
	return s.startDeploy(ctx, c, u, ref, o)
}

// StartRenderBy renders a document's active bundle again as a task
// started by u (POST /__api__/v1/content/{guid}/render).
func (s *Service) StartRenderBy(ctx context.Context, c *store.Content, u *store.User) (*store.Task, error) {
	return s.startRender(ctx, c, u)
}

// Delete stops the content, removes its files and its records.
func (s *Service) Delete(ctx context.Context, c *store.Content) error {
	lock := s.contentLock(c.ID)
	lock.Lock()
	defer lock.Unlock()
	s.deactivate(c.GUID)
	if err := s.st.DeleteContent(ctx, c.ID); err != nil {
		return err
	}
	if err := os.RemoveAll(s.contentDir(c.ID)); err != nil {
		s.log.Warn("remove content files", logKeyContent, c.GUID, logKeyErr, err)
	}
	s.log.Info("content deleted", logKeyContent, c.GUID)
	return nil
}

// Changed is told that c's settings were stored (before is how they
// were): locked content stops being served (its processes stop), unlocked
// content is served again, and when its process settings changed, its
// processes are replaced.
func (s *Service) Changed(before, c *store.Content) {
	switch {
	case c.Locked && !before.Locked:
		s.log.Info("content locked: its processes stop", logKeyContent, c.GUID)
		s.whileLocked(c, func() { s.deactivate(c.GUID) })
	case !c.Locked && before.Locked:
		s.log.Info("content unlocked", logKeyContent, c.GUID)
		s.whileLocked(c, func() {
			fresh, err := s.st.Content(s.ctx, c.ID)
			if err != nil || fresh.Locked || fresh.BundleID == nil {
				return
			}
			if err := s.activate(s.ctx, fresh); err != nil {
				s.log.Error("cannot serve unlocked content; deploy it again", logKeyContent, c.GUID, logKeyErr, err)
			}
		})
	case poolSettingsChanged(before, c):
		s.restartApp(c)
	}
}

// whileLocked runs f in the background under c's deploy lock.
func (s *Service) whileLocked(c *store.Content, f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		lock := s.contentLock(c.ID)
		lock.Lock()
		defer lock.Unlock()
		f()
	}()
}

// Restart replaces a running app's processes with fresh ones of the same
// bundle (after a change of its environment), without dropping requests.
func (s *Service) Restart(c *store.Content) { s.restartApp(c) }

// JobLog is the end (at most max lines) of the output of a process of c;
// nil when there is none. Only a log under c's own directory is read.
func (s *Service) JobLog(c *store.Content, j *store.Job, max int) []string {
	if j.LogPath == "" || !strings.HasPrefix(filepath.Clean(j.LogPath), s.contentDir(c.ID)+"/") {
		return nil
	}
	b, err := readTail(j.LogPath, maxLogTail)
	if err != nil {
		return nil
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > max {
		lines = lines[len(lines)-max:]
	}
	return lines
}

// JobLogFrom reads the output of a process of c from byte offset on (at
// most max bytes, ending at a line's end when it can) and returns it with
// the offset after it; unless whole, a last line without its newline
// (being written) is left for the next read. A negative offset starts at the last tail bytes'
// first full line. Only a log under c's own directory is read.
func (s *Service) JobLogFrom(c *store.Content, j *store.Job, offset, tail, max int64, whole bool) ([]byte, int64, error) {
	if j.LogPath == "" || !strings.HasPrefix(filepath.Clean(j.LogPath), s.contentDir(c.ID)+"/") {
		return nil, offset, errNoLog
	}
	f, err := os.OpenFile(j.LogPath, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, offset, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, offset, err
	}
	if !fi.Mode().IsRegular() {
		return nil, offset, fmt.Errorf("%s: %w", j.LogPath, errNotRegular)
	}
	skipPartial := false
	if offset < 0 {
		offset = max64(0, fi.Size()-tail)
		skipPartial = offset > 0
	}
	if offset > fi.Size() {
		offset = 0 // the log was replaced
	}
	b := make([]byte, min(max, fi.Size()-offset))
	n, err := f.ReadAt(b, offset)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, offset, err
	}
	b = b[:n]
	start := 0
	if skipPartial {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			start = i + 1
		}
	}
	end := len(b)
	if i := bytes.LastIndexByte(b, '\n'); !whole && i >= start {
		end = i + 1
	} else if !whole && int64(n) < max {
		end = start // a line being written: wait for its end
	}
	return b[start:end], offset + int64(end), nil
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// errNoLog: the process has no log dais may read.
var errNoLog = errors.New("the process has no log")

// maxLogTail bounds what is read of a process log: its end, however much
// the process wrote.
const maxLogTail = 1 << 20

// readTail reads the last max bytes of the regular file at path (opened
// without blocking: it is never a FIFO, but the content wrote what is in it).
func readTail(path string, max int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w", path, errNotRegular)
	}
	if off := fi.Size() - max; off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return nil, err
		}
	}
	return io.ReadAll(io.LimitReader(f, max))
}

// Stopping ends when the server starts to stop: long polls answer early.
func (s *Service) Stopping() context.Context { return s.o.Stopping }

// Installations lists the runtimes of lang that deploys may use.
func (s *Service) Installations(ctx context.Context, lang manifest.Language) ([]runtime.Installation, error) {
	return s.finder.Discover(ctx, lang)
}

// OpenArchive opens the archive of bundle b as it was uploaded.
func (s *Service) OpenArchive(b *store.Bundle) (*os.File, error) {
	f, err := os.Open(s.archivePath(b.ContentID, b.ID))
	if err != nil {
		return nil, fmt.Errorf("open bundle %d: %w", b.ID, err)
	}
	return f, nil
}

// DeleteBundle removes bundle b of c, its archive and its files. The
// active bundle and one being deployed are refused (409).
func (s *Service) DeleteBundle(ctx context.Context, c *store.Content, b *store.Bundle) error {
	lock := s.contentLock(c.ID)
	if !lock.TryLock() {
		return errStatus(http.StatusConflict, "a deploy of "+c.Name+" is in progress; delete the bundle once it has finished")
	}
	defer lock.Unlock()
	fresh, err := s.st.Content(ctx, c.ID)
	if err != nil {
		return err
	}
	if fresh.BundleID != nil && *fresh.BundleID == b.ID {
		return errStatus(http.StatusConflict, fmt.Sprintf("bundle %d is the active bundle of %s; deploy another bundle first", b.ID, c.Name))
	}
	if err := s.st.DeleteBundle(ctx, b.ID); err != nil {
		return err
	}
	if err := os.RemoveAll(s.bundleDir(c.ID, b.ID)); err != nil {
		s.log.Warn("remove bundle files", logKeyContent, c.GUID, logKeyBundle, b.ID, logKeyErr, err)
	}
	s.log.Info("bundle deleted", logKeyContent, c.GUID, logKeyBundle, b.ID)
	return nil
}
