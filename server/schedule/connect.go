package schedule

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dais-dev/dais/server/store"
)

// Kinds are Connect's schedule types, as its API and connectapi name them.
var Kinds = []string{"minute", "hour", "day", "weekday", "week", "dayofweek", "semimonth", "dayofmonth", "dayweekofmonth", "year"}

// maxN bounds "every N units" of the calendar kinds: runs further apart
// than a century are a mistake, and the search for the next run is a walk
// over the days in between.
const maxN = 100

// spec is the JSON "schedule" of a Connect schedule. Its fields are
// capitalised as Connect's are: {"N": 2}, {"Days": [1, 3]}, {"First":
// true}, {"N": 1, "Day": 15}, {"N": 1, "Day": 1, "Week": 2}.
type spec struct {
	N     int   // every N units (minute, hour, day, week, dayofmonth, dayweekofmonth, year)
	Days  []int // weekdays, 0 Sunday to 6 Saturday (dayofweek)
	First bool  // semimonth: the 1st and 15th, else the 14th and the last day
	Day   int   // day of the month (dayofmonth) or weekday (dayweekofmonth)
	Week  int   // the week of the month, 1 to 5 (dayweekofmonth)
}

// rawSpec accepts what clients send: connectapi unboxes a single day
// ({"Days": 1}) and older Connect wrote First as "TRUE".
type rawSpec struct {
	N     *int            `json:"N"`
	Days  json.RawMessage `json:"Days"`
	First json.RawMessage `json:"First"`
	Day   *int            `json:"Day"`
	Week  *int            `json:"Week"`
}

// CheckSpec tells whether raw is valid parameters for a schedule of kind.
func CheckSpec(kind, raw string) error {
	_, err := parseSpec(kind, raw)
	return err
}

// parseSpec reads and checks the parameters of a schedule of kind.
func parseSpec(kind, raw string) (spec, error) {
	var sp spec
	if !slices.Contains(Kinds, kind) {
		return sp, fmt.Errorf("type %q is not a schedule type: use one of %s", kind, strings.Join(Kinds, ", "))
	}
	var r rawSpec
	if strings.TrimSpace(raw) != "" {
		if err := json.Unmarshal([]byte(raw), &r); err != nil {
			return sp, fmt.Errorf(`schedule %q is not the JSON object a %s schedule takes (e.g. {"N": 1}): %v`, raw, kind, err)
		}
	}
	sp.N = 1
	if r.N != nil {
		sp.N = *r.N
	}
	switch kind {
	case "minute", "hour":
		if sp.N < 1 || sp.N > 1_000_000 {
			return sp, fmt.Errorf("schedule N must be a positive number of %ss", kind)
		}
	case "day", "week", "dayofmonth", "dayweekofmonth", "year":
		if sp.N < 1 || sp.N > maxN {
			return sp, fmt.Errorf("schedule N must be from 1 to %d", maxN)
		}
	}
	switch kind {
	case "dayofweek":
		var days []int
		var one int
		switch {
		case len(r.Days) == 0:
		case json.Unmarshal(r.Days, &days) == nil:
		case json.Unmarshal(r.Days, &one) == nil:
			days = []int{one}
		default:
			return sp, errors.New("schedule Days must be a list of weekdays, 0 (Sunday) to 6 (Saturday)")
		}
		if len(days) == 0 {
			return sp, errors.New(`a dayofweek schedule needs Days, e.g. {"Days": [1, 3]} for Monday and Wednesday`)
		}
		for _, d := range days {
			if d < 0 || d > 6 {
				return sp, fmt.Errorf("schedule Days: %d is not a weekday: use 0 (Sunday) to 6 (Saturday)", d)
			}
		}
		sp.Days = days
	case "semimonth":
		switch v := strings.ToLower(strings.Trim(string(r.First), `"`)); v {
		case "true", "1":
			sp.First = true
		case "false", "0", "", "null":
		default:
			return sp, fmt.Errorf("schedule First must be true (the 1st and 15th) or false (the 14th and the last day), not %s", r.First)
		}
	case "dayofmonth":
		if r.Day == nil || *r.Day < 1 || *r.Day > 31 {
			return sp, errors.New(`a dayofmonth schedule needs Day, 1 to 31, e.g. {"N": 1, "Day": 15}`)
		}
		sp.Day = *r.Day
	case "dayweekofmonth":
		if r.Day == nil || *r.Day < 0 || *r.Day > 6 || r.Week == nil || *r.Week < 1 || *r.Week > 5 {
			return sp, errors.New(`a dayweekofmonth schedule needs Day, 0 (Sunday) to 6, and Week, 1 to 5, e.g. {"N": 1, "Day": 1, "Week": 2}`)
		}
		sp.Day, sp.Week = *r.Day, *r.Week
	}
	return sp, nil
}

// connectNext is the first run of a Connect schedule strictly after
// after: the runs are StartAt and then every N units of Kind from it, at
// StartAt's time of day in Timezone for the calendar kinds (so a daily
// run stays at 09:00 across a change of daylight saving time).
func connectNext(s *store.Schedule, after time.Time) (time.Time, error) {
	sp, err := parseSpec(s.Kind, s.Spec)
	if err != nil {
		return time.Time{}, err
	}
	if s.StartAt.IsZero() {
		return time.Time{}, errors.New("a schedule of type " + s.Kind + " needs a start_time")
	}
	loc, err := Location(s.Timezone)
	if err != nil {
		return time.Time{}, err
	}
	start := s.StartAt.In(loc)
	switch s.Kind {
	case "minute", "hour":
		step := time.Duration(sp.N) * time.Minute
		if s.Kind == "hour" {
			step = time.Duration(sp.N) * time.Hour
		}
		if after.Before(start) {
			return start.UTC(), nil
		}
		k := after.Sub(start)/step + 1
		return start.Add(k * step).UTC(), nil
	}
	matches := calendarRule(s.Kind, sp, start)
	from := start
	if after.After(from) {
		from = after.In(loc)
	}
	day := time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, time.UTC)
	limit := 366*(sp.N+1) + 31
	for range limit {
		if matches(day) {
			t := time.Date(day.Year(), day.Month(), day.Day(), start.Hour(), start.Minute(), start.Second(), 0, loc)
			if t.After(after) && !t.Before(start) {
				return t.UTC(), nil
			}
		}
		day = day.AddDate(0, 0, 1)
	}
	return time.Time{}, fmt.Errorf("schedule of type %s %s never runs", s.Kind, s.Spec)
}

// calendarRule tells whether a day (a UTC midnight standing for a date)
// has a run of a calendar kind counted from start.
func calendarRule(kind string, sp spec, start time.Time) func(time.Time) bool {
	first := time.Date(start.Year(), start.Month(), start.Day(), 0, 0, 0, 0, time.UTC)
	days := func(d time.Time) int { return int(d.Sub(first).Hours()+0.5) / 24 }
	months := func(d time.Time) int { return (d.Year()-first.Year())*12 + int(d.Month()) - int(first.Month()) }
	lastDay := func(d time.Time) int { return time.Date(d.Year(), d.Month()+1, 0, 0, 0, 0, 0, time.UTC).Day() }
	switch kind {
	case "day":
		return func(d time.Time) bool { return days(d)%sp.N == 0 }
	case "weekday":
		return func(d time.Time) bool { return d.Weekday() != time.Saturday && d.Weekday() != time.Sunday }
	case "week":
		return func(d time.Time) bool { return days(d)%(7*sp.N) == 0 }
	case "dayofweek":
		return func(d time.Time) bool { return slices.Contains(sp.Days, int(d.Weekday())) }
	case "semimonth":
		if sp.First {
			return func(d time.Time) bool { return d.Day() == 1 || d.Day() == 15 }
		}
		return func(d time.Time) bool { return d.Day() == 14 || d.Day() == lastDay(d) }
	case "dayofmonth":
		// Day 31 in a shorter month is its last day.
		return func(d time.Time) bool { return months(d)%sp.N == 0 && d.Day() == min(sp.Day, lastDay(d)) }
	case "dayweekofmonth":
		return func(d time.Time) bool {
			return months(d)%sp.N == 0 && int(d.Weekday()) == sp.Day && (d.Day()-1)/7+1 == sp.Week
		}
	default: // year: start's day of the year (February 29th: the 28th in other years)
		return func(d time.Time) bool {
			return (d.Year()-first.Year())%sp.N == 0 && d.Month() == first.Month() && d.Day() == min(first.Day(), lastDay(d))
		}
	}
}
