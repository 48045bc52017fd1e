// Package diskspace watches the free space of the data volume
// (Server.DataDir) and says in words when it is full (issue 23, defect 7):
//
//   - Check refuses work that would write to the volume (an upload, an
//     unpacked bundle, a render) once its free space is below the reserve
//     (Server.DataDirReserve), kept so that the database never runs out
//     first;
//   - Failed recognises a write that failed for lack of space (ENOSPC,
//     EDQUOT, SQLite's "database or disk is full", PostgreSQL's
//     disk_full) and turns it into a *FullError naming the volume and its
//     free space, which the HTTP side answers with 507 Insufficient
//     Storage;
//   - Degraded is what the readiness endpoint and `dais health` report;
//   - the server log says the volume is full at most once a minute,
//     however many requests find it so.
package diskspace

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"time"
)

// StatusInsufficientStorage is HTTP's 507.
const StatusInsufficientStorage = 507

// Degraded is the readiness status of a full data volume.
const Degraded = "degraded: data volume full"

// logEvery is how often the log repeats that the volume is full.
const logEvery = time.Minute

// sticky is how long a write that failed for lack of space keeps the
// volume reported full, whatever statfs says meanwhile (space freed by a
// deleted temporary file is often taken again at once).
const sticky = time.Minute

// cacheFor bounds how often statfs runs.
const cacheFor = time.Second

// Monitor watches one data volume. It is safe for concurrent use; the
// zero value is not usable, call New. A nil *Monitor never reports the
// volume full.
type Monitor struct {
	dir     string
	reserve func() int64
	log     *slog.Logger
	statfs  func(dir string) (free, total int64, err error)
	now     func() time.Time

	mu         sync.Mutex
	free       int64
	total      int64
	measured   time.Time
	statErr    error
	failedAt   time.Time // last write that failed for lack of space
	failure    error
	loggedAt   time.Time
	suppressed int
}

// New watches the volume of dir; reserve returns the bytes to keep free
// (Server.DataDirReserve, read at each check so a reload applies).
func New(dir string, reserve func() int64, log *slog.Logger) *Monitor {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reserve == nil {
		reserve = func() int64 { return 0 }
	}
	return &Monitor{dir: dir, reserve: reserve, log: log, statfs: statfs, now: time.Now}
}

// Usage is the data volume's space, in bytes.
type Usage struct {
	Dir     string `json:"path"`
	Free    int64  `json:"free_bytes"`
	Total   int64  `json:"total_bytes"`
	Reserve int64  `json:"reserve_bytes"`
}

// Usage measures the volume (at most once a second). ok is false when it
// cannot be measured.
func (m *Monitor) Usage() (u Usage, ok bool) {
	if m == nil {
		return Usage{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.usageLocked()
}

func (m *Monitor) usageLocked() (Usage, bool) {
	now := m.now()
	if now.Sub(m.measured) >= cacheFor {
		m.free, m.total, m.statErr = m.statfs(m.dir)
		m.measured = now
	}
	return Usage{Dir: m.dir, Free: m.free, Total: m.total, Reserve: m.reserve()}, m.statErr == nil
}

// FullError says the data volume is full, or would be below its reserve.
type FullError struct {
	Usage
	// Need is the bytes the refused work would have written (0 unknown).
	Need int64
	// Cause is the write that failed, nil when refused beforehand.
	Cause error
}

func (e *FullError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the data volume %s is full: %s free of %s", e.Dir, Bytes(e.Free), Bytes(e.Total))
	switch {
	case e.Cause != nil:
		fmt.Fprintf(&b, " (a write failed: %v)", rootCause(e.Cause))
	case e.Need > 0:
		fmt.Fprintf(&b, ", and this needs %s more", Bytes(e.Need))
	}
	if e.Reserve > 0 {
		fmt.Fprintf(&b, "; dais keeps %s free for its database (Server.DataDirReserve)", Bytes(e.Reserve))
	}
	b.WriteString("; free space on the volume or make it larger")
	return b.String()
}

func (e *FullError) Unwrap() error { return e.Cause }

// Status is the HTTP status of the error: 507 Insufficient Storage.
func (e *FullError) Status() int { return StatusInsufficientStorage }

// Check returns a *FullError when writing need more bytes would leave the
// volume below its reserve, or a write failed for lack of space within the
// last minute; else nil. A volume that cannot be measured passes.
func (m *Monitor) Check(need int64) error {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.usageLocked()
	var err *FullError
	switch {
	case !m.failedAt.IsZero() && m.now().Sub(m.failedAt) < sticky:
		err = &FullError{Usage: u, Need: need, Cause: m.failure}
	case ok && u.Free-need < u.Reserve:
		err = &FullError{Usage: u, Need: need}
	case ok && need > 0 && u.Free < need:
		err = &FullError{Usage: u, Need: need}
	default:
		return nil
	}
	m.noteLocked(err)
	return err
}

// Failed returns err as a *FullError when it is a write that failed for
// lack of space (see IsFull), recording it for Degraded and the log; any
// other err, and nil, come back nil.
func (m *Monitor) Failed(err error) *FullError {
	var fe *FullError
	if errors.As(err, &fe) {
		return fe
	}
	if !IsFull(err) {
		return nil
	}
	if m == nil {
		return &FullError{Cause: err}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.measured = time.Time{} // measure again: it changed
	u, _ := m.usageLocked()
	m.failedAt, m.failure = m.now(), err
	fe = &FullError{Usage: u, Cause: err}
	m.noteLocked(fe)
	return fe
}

// Degraded tells whether the volume is full (below its reserve, or a write
// failed for lack of space within the last minute), and why.
func (m *Monitor) Degraded() (bool, string) {
	if err := m.Check(0); err != nil {
		return true, err.Error()
	}
	return false, ""
}

// noteLocked logs that the volume is full, at most once a minute.
func (m *Monitor) noteLocked(err *FullError) {
	now := m.now()
	if !m.loggedAt.IsZero() && now.Sub(m.loggedAt) < logEvery {
		m.suppressed++
		return
	}
	m.log.Error(Degraded+": "+err.Error(), "data_dir", err.Dir, "free_bytes", err.Free, "reserve_bytes", err.Reserve,
		"refusals_since_last_said", m.suppressed)
	m.loggedAt, m.suppressed = now, 0
}

// IsFull tells whether err is a write that failed for lack of space:
// ENOSPC or EDQUOT, SQLite's SQLITE_FULL, PostgreSQL's disk_full (53100).
func IsFull(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	var coded interface{ Code() int }
	if errors.As(err, &coded) && coded.Code()&0xff == 13 { // SQLITE_FULL, and its extended codes
		return true
	}
	var pg interface{ SQLState() string }
	if errors.As(err, &pg) && pg.SQLState() == "53100" {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "database or disk is full") || strings.Contains(msg, "no space left on device")
}

func rootCause(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		if _, ok := u.(syscall.Errno); ok {
			return err // keep "write /data/...: no space left on device"
		}
		err = u
	}
}

// Bytes writes n for people: "812 B", "3.4 MiB", "12.0 GiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit && exp < 4; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
