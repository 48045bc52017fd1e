package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The reliability battery (issue 23): faults, bad input, load and escape
// attempts against the image, made as a hostile publisher or an anonymous
// visitor would make them. Every case is a subtest of TestReliability and
// one row of the results table in docs/reliability.md.
//
// Light cases run wherever the e2e tests run (make test, CI). Heavy ones
// run only under `make reliability` (DAIS_RELIABILITY=1), which runs the
// whole battery one case after another and writes the table
// (DAIS_RELIABILITY_OUT names the file; scripts/reliability.sh splices it
// into docs/reliability.md). The whole battery stays under 10 minutes.
//
// Adding a case: in any _test.go file of this package,
//
//	func init() {
//		addCase(batteryCase{Name: "a fork bomb in one app", Issue: "23.5", Heavy: true, Run: func(t *testing.T, r *row) {
//			...                        // drive the container as a user would; t.Fatal on a defect
//			r.Figure("%d of %d processes", n, max) // what the table shows
//			r.Skip(t, "why")           // only where the host cannot do it (never for lack of Docker in CI)
//		}})
//	}
//
// Cases run in the order of their files' names, then of addCase calls.

// batteryCase is one case of the battery.
type batteryCase struct {
	// Name says what is tried, as the table's first column.
	Name string
	// Issue is where the case comes from: "23.3" is issue 23, defect 3;
	// "23" a property the issue says held before and must still hold.
	Issue string
	// Heavy cases run only under make reliability.
	Heavy bool
	Run   func(t *testing.T, r *row)
}

var battery []batteryCase

// addCase adds a case to the battery (call it from an init function).
func addCase(c batteryCase) { battery = append(battery, c) }

// row collects what a case measured.
type row struct {
	mu      sync.Mutex
	figures []string
	skip    string
}

// Figure records a measured figure for the table (and logs it).
func (r *row) Figure(t *testing.T, format string, args ...any) {
	t.Helper()
	s := fmt.Sprintf(format, args...)
	t.Log(s)
	r.mu.Lock()
	r.figures = append(r.figures, s)
	r.mu.Unlock()
}

// Skip skips the case with the reason the table shows. Only for what the
// host cannot do (no root for a loop device); in CI the e2e tests may not
// skip for lack of Docker.
func (r *row) Skip(t *testing.T, format string, args ...any) {
	t.Helper()
	r.mu.Lock()
	r.skip = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	t.Skip(r.skip)
}

// batteryFull tells whether the heavy cases run too (make reliability).
func batteryFull() bool { return os.Getenv("DAIS_RELIABILITY") == "1" }

func TestReliability(t *testing.T) {
	full := batteryFull()
	var lines []string
	heavy := 0
	for _, c := range battery {
		if c.Heavy && !full {
			heavy++
			continue
		}
		r := &row{}
		start := time.Now()
		ok := t.Run(c.Name, func(t *testing.T) { c.Run(t, r) })
		status := "pass"
		switch {
		case r.skip != "":
			status = "skipped: " + r.skip
		case !ok:
			status = "**FAIL**"
		}
		kind := "light"
		if c.Heavy {
			kind = "heavy"
		}
		lines = append(lines, fmt.Sprintf("| %s | %s | %s | %s | %s | %s |", c.Name, c.Issue, kind, status,
			strings.ReplaceAll(strings.Join(r.figures, "; "), "|", `\|`), time.Since(start).Round(time.Second)))
	}
	if heavy > 0 {
		t.Logf("%d heavy cases left to `make reliability` (DAIS_RELIABILITY=1)", heavy)
	}
	if out := os.Getenv("DAIS_RELIABILITY_OUT"); out != "" {
		table := "| case | issue | kind | result | figures | time |\n| --- | --- | --- | --- | --- | --- |\n" + strings.Join(lines, "\n") + "\n"
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out, []byte(table), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
