package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestLoggerLikeSlog: dais-init's lines read as slog's TextHandler writes
// them (the e2e tests and users' log parsers match them).
func TestLoggerLikeSlog(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2000, 2, 29, 12, 0, 0, 0, time.FixedZone("", 2*3600)),
		time.Date(2100, 3, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1600, 2, 29, 0, 0, 0, 0, time.UTC),
	} {
		if got, want := string(appendTime(nil, tm)), tm.UTC().Format("2006-01-02T15:04:05.000Z07:00"); got != want {
			t.Errorf("appendTime %q, want %q", got, want)
		}
	}
	for d := int64(-800000); d < 800000; d += 997 {
		tm := time.UnixMilli(d * 86400000).UTC()
		if y, m, dd := civil(d); y != tm.Year() || m != int(tm.Month()) || dd != tm.Day() {
			t.Fatalf("civil(%d) = %d-%d-%d, want %s", d, y, m, dd, tm)
		}
	}
	args := []any{keySignal, "SIGTERM", keyCode, 143, keyTimeout, (70 * time.Second).String(), keyElapsed, "1.5s",
		keyErr, `exec "x": no such file`, "empty", "", "eq", "a=b", "tab", "a\tb", "uni", "Grüße", "nl", "a\nb", "bs", `a\b`}
	for _, msg := range []string{"checks passed", "stopping: forwarded SIGTERM; SIGKILL later", `say "hi"`} {
		var ours, theirs bytes.Buffer
		newLogger(&ours).Warn(msg, args...)
		slog.New(slog.NewTextHandler(&theirs, nil)).With("component", "dais-init").Warn(msg, args...)
		// The times differ by the microseconds between the two calls (and
		// ours is in UTC).
		cut := func(s string) string { return s[strings.Index(s, " level="):] }
		if cut(ours.String()) != cut(theirs.String()) {
			t.Errorf("ours   %s\nslog's %s", ours.String(), theirs.String())
		}
	}
}
