// Package schedule runs documents' renders on a schedule: a cron
// expression (github.com/robfig/cron/v3, five fields or a descriptor such
// as @daily), a plain interval in seconds, or one of Posit Connect's
// schedule types (every N minutes, hours, days, weeks, weekdays, given
// days of the week or month, twice a month, every N years; connect.go),
// evaluated in a time zone.
//
// Schedules live in the store with their next run time. The Scheduler, a
// serve.Component, looks for due schedules when it starts and then every
// Options.Poll; it claims each due run with the store's compare-and-swap
// (Store.ClaimSchedule), so that of several servers sharing one
// PostgreSQL exactly one runs it. The claim moves the next run time to the
// first slot after now, not after the missed one: a schedule whose runs
// were missed while every server was down runs once at start, not once per
// missed slot.
//
// The HTTP API of schedules is server/api (schedules.go).
package schedule

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/dais-dev/dais/server/store"
)

// MinInterval is the shortest interval (and the shortest gap a cron
// expression may ask for is one minute anyway): renders are heavy.
const MinInterval = 60 * time.Second

// parser reads standard five-field cron expressions and the descriptors
// (@hourly, @daily, @weekly, @monthly, @yearly, @every <duration>).
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Location is the schedule's time zone: tz, an IANA name, or UTC when empty.
func Location(tz string) (*time.Location, error) {
	if tz == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: %w (use an IANA name such as Europe/Berlin or America/New_York)", tz, err)
	}
	return loc, nil
}

// Validate checks that s names exactly one of Cron and IntervalSeconds,
// that the expression parses, and that the time zone exists.
func Validate(s *store.Schedule) error {
	_, err := next(s, time.Now())
	return err
}

// Next is the first run time of s strictly after after.
func Next(s *store.Schedule, after time.Time) (time.Time, error) {
	return next(s, after)
}

func next(s *store.Schedule, after time.Time) (time.Time, error) {
	hasCron := strings.TrimSpace(s.Cron) != ""
	if s.Kind != "" {
		if hasCron || s.IntervalSeconds != 0 {
			return time.Time{}, errors.New("a schedule has a type, a cron expression or an interval, only one")
		}
		return connectNext(s, after)
	}
	switch {
	case hasCron && s.IntervalSeconds != 0:
		return time.Time{}, errors.New("a schedule has either a cron expression or an interval, not both")
	case !hasCron && s.IntervalSeconds == 0:
		return time.Time{}, errors.New(`a schedule needs a cron expression ("cron": "0 6 * * *") or an interval ("interval_seconds": 3600)`)
	case s.IntervalSeconds < 0:
		return time.Time{}, fmt.Errorf("interval_seconds %d must be positive", s.IntervalSeconds)
	case s.IntervalSeconds > 0 && time.Duration(s.IntervalSeconds)*time.Second < MinInterval:
		return time.Time{}, fmt.Errorf("interval_seconds %d is below the minimum of %d", s.IntervalSeconds, int(MinInterval/time.Second))
	}
	loc, err := Location(s.Timezone)
	if err != nil {
		return time.Time{}, err
	}
	if !hasCron {
		return after.Add(time.Duration(s.IntervalSeconds) * time.Second).Truncate(time.Second), nil
	}
	expr := strings.TrimSpace(s.Cron)
	if strings.HasPrefix(expr, "CRON_TZ=") || strings.HasPrefix(expr, "TZ=") {
		return time.Time{}, errors.New(`give the time zone in "timezone", not inside the cron expression`)
	}
	sched, err := parser.Parse(expr)
	if err != nil {
		return time.Time{}, fmt.Errorf("cron expression %q: %w (five fields: minute hour day-of-month month day-of-week, or @hourly, @daily, @every 2h)", expr, err)
	}
	switch sc := sched.(type) {
	case *cron.SpecSchedule:
		sc.Location = loc
	case cron.ConstantDelaySchedule:
		if sc.Delay < MinInterval {
			return time.Time{}, fmt.Errorf("cron expression %q runs more often than every %s", expr, MinInterval)
		}
	}
	t := sched.Next(after.In(loc))
	if t.IsZero() {
		return time.Time{}, fmt.Errorf("cron expression %q never runs", expr)
	}
	return t.UTC(), nil
}

// IsDocument tells whether content of appMode can have a schedule: only
// documents (rmd-static, jupyter-static, quarto-static) render.
func IsDocument(appMode string) bool {
	switch appMode {
	case "rmd-static", "jupyter-static", "quarto-static":
		return true
	}
	return false
}

// Zones is ZoneNames of /usr/share/zoneinfo, the time zone database the
// server's Location reads, listed once (the list changes with a package
// upgrade, which restarts the server).
var Zones = sync.OnceValue(func() []string { return ZoneNames("/usr/share/zoneinfo") })

// ZoneNames lists the zones of a zoneinfo directory ("Area/City" and the
// old single names such as UTC), leaving out its other files.
func ZoneNames(dir string) []string {
	names := []string{"UTC"}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			if rel == "posix" || rel == "right" {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.ContainsAny(rel, ".") || rel == "Factory" || rel == "posixrules" || rel == "localtime" ||
			rel == "leapseconds" || rel == "SECURITY" || rel[0] < 'A' || rel[0] > 'Z' {
			return nil
		}
		if !slices.Contains(names, rel) {
			names = append(names, rel)
		}
		return nil
	})
	slices.Sort(names)
	return names
}
