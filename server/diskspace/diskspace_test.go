package diskspace

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"
)

type sqliteErr struct{ code int }

func (e sqliteErr) Error() string { return fmt.Sprintf("sqlite error %d", e.code) }
func (e sqliteErr) Code() int     { return e.code }

type pgErr struct{ state string }

func (e pgErr) Error() string    { return "pg error " + e.state }
func (e pgErr) SQLState() string { return e.state }

func TestIsFull(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("boom"), false},
		{&fs.PathError{Op: "write", Path: "/data/x", Err: syscall.ENOSPC}, true},
		{fmt.Errorf("store upload: %w", &fs.PathError{Op: "write", Path: "/data/x", Err: syscall.EDQUOT}), true},
		{sqliteErr{13}, true},
		{fmt.Errorf("create content: %w", sqliteErr{13}), true},
		{sqliteErr{5}, false}, // SQLITE_BUSY
		{pgErr{"53100"}, true},
		{pgErr{"23505"}, false},
		{errors.New("exec: tar: write error: no space left on device"), true},
	}
	for _, tt := range tests {
		if got := IsFull(tt.err); got != tt.want {
			t.Errorf("IsFull(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// fakeVolume is a Monitor over a volume whose free space the test sets,
// with a clock the test moves and the log in a buffer.
func fakeVolume(free, total, reserve int64) (*Monitor, *int64, *time.Time, *bytes.Buffer) {
	var logb bytes.Buffer
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := New("/data", func() int64 { return reserve }, slog.New(slog.NewTextHandler(&logb, nil)))
	m.now = func() time.Time { return now }
	f := &free
	m.statfs = func(string) (int64, int64, error) { return *f, total, nil }
	return m, f, &now, &logb
}

// TestCheckAndLogOnceAMinute (issue 23, defect 7): below the reserve,
// work that writes is refused with a message naming the volume and its
// free space; the log says so once a minute, not once a request.
func TestCheckAndLogOnceAMinute(t *testing.T) {
	m, free, now, logb := fakeVolume(900<<20, 10<<30, 256<<20)
	if err := m.Check(100 << 20); err != nil {
		t.Fatalf("900 MiB free, 100 MiB asked, 256 MiB reserve: %v", err)
	}
	if ok, _ := m.Degraded(); ok {
		t.Fatal("degraded with 900 MiB free")
	}
	err := m.Check(700 << 20)
	var fe *FullError
	if !errors.As(err, &fe) || fe.Status() != 507 {
		t.Fatalf("700 MiB asked of 900 MiB free with a 256 MiB reserve: %v", err)
	}
	for _, want := range []string{"/data", "900.0 MiB free of 10.0 GiB", "needs 700.0 MiB", "256.0 MiB", "Server.DataDirReserve"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
	*free = 100 << 20
	*now = now.Add(2 * time.Second)
	for range 500 {
		if m.Check(0) == nil {
			t.Fatal("100 MiB free under a 256 MiB reserve passes")
		}
	}
	if ok, why := m.Degraded(); !ok || !strings.Contains(why, "100.0 MiB free") {
		t.Errorf("Degraded = %v %q", ok, why)
	}
	if n := strings.Count(logb.String(), Degraded); n != 1 {
		t.Errorf("%d log lines for 502 refusals within a second, want 1:\n%s", n, logb.String())
	}
	*now = now.Add(61 * time.Second)
	m.Check(0)
	if n := strings.Count(logb.String(), Degraded); n != 2 {
		t.Errorf("%d log lines after a minute, want 2", n)
	}
	if !strings.Contains(logb.String(), "refusals_since_last_said=501") {
		t.Errorf("the second line does not count the refusals in between:\n%s", logb.String())
	}
}

// TestFailedWrite: a write that failed for lack of space reports the
// volume full for a minute, even when statfs shows room again (the
// temporary file that took it was removed).
func TestFailedWrite(t *testing.T) {
	m, free, now, _ := fakeVolume(0, 1<<30, 0)
	if m.Failed(errors.New("other")) != nil || m.Failed(nil) != nil {
		t.Fatal("Failed made a FullError of an error that is not about space")
	}
	cause := &fs.PathError{Op: "write", Path: "/data/apps/1/upload-x.tar.gz", Err: syscall.ENOSPC}
	fe := m.Failed(fmt.Errorf("store upload: %w", cause))
	if fe == nil || !strings.Contains(fe.Error(), "no space left on device") || !errors.Is(fe, syscall.ENOSPC) {
		t.Fatalf("Failed = %v", fe)
	}
	*free = 500 << 20
	*now = now.Add(5 * time.Second)
	if ok, _ := m.Degraded(); !ok {
		t.Error("not degraded 5 s after a write failed for lack of space")
	}
	*now = now.Add(2 * time.Minute)
	if ok, why := m.Degraded(); ok {
		t.Errorf("still degraded 2 min after, with 500 MiB free and no reserve: %s", why)
	}
	var nilMonitor *Monitor
	if nilMonitor.Check(1<<40) != nil {
		t.Error("a nil Monitor refused")
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}
