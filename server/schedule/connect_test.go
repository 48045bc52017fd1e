package schedule_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/schedule"
	"github.com/dais-dev/dais/server/store"
)

func TestConnectNext(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatalf("no time zone database (install tzdata): %v", err)
	}
	// Start: Monday 2026-03-02 09:30 in New York (daylight saving time
	// starts on Sunday 2026-03-08).
	start := time.Date(2026, 3, 2, 9, 30, 0, 0, ny)
	at := func(y int, m time.Month, d, h, mi int) time.Time { return time.Date(y, m, d, h, mi, 0, 0, ny) }
	tests := []struct {
		name, kind, spec string
		after, want      time.Time
	}{
		{"before the start: the start", "day", `{"N":1}`, start.Add(-48 * time.Hour), start},
		{"every 15 minutes", "minute", `{"N":15}`, at(2026, 3, 2, 10, 7), at(2026, 3, 2, 10, 15)},
		{"every 15 minutes, on a slot", "minute", `{"N":15}`, at(2026, 3, 2, 10, 15), at(2026, 3, 2, 10, 30)},
		{"every 2 hours", "hour", `{"N":2}`, at(2026, 3, 2, 10, 0), at(2026, 3, 2, 11, 30)},
		{"daily, across the DST change, same local time", "day", `{"N":1}`, at(2026, 3, 7, 12, 0), at(2026, 3, 8, 9, 30)},
		{"every 3 days", "day", `{"N":3}`, at(2026, 3, 2, 9, 30), at(2026, 3, 5, 9, 30)},
		{"weekdays: Friday to Monday", "weekday", `{}`, at(2026, 3, 6, 10, 0), at(2026, 3, 9, 9, 30)},
		{"every 2 weeks", "week", `{"N":2}`, at(2026, 3, 3, 0, 0), at(2026, 3, 16, 9, 30)},
		{"Wednesdays and Saturdays", "dayofweek", `{"Days":[3,6]}`, at(2026, 3, 4, 10, 0), at(2026, 3, 7, 9, 30)},
		{"one unboxed day", "dayofweek", `{"Days":0}`, at(2026, 3, 2, 10, 0), at(2026, 3, 8, 9, 30)},
		{"1st and 15th", "semimonth", `{"First":true}`, at(2026, 3, 2, 10, 0), at(2026, 3, 15, 9, 30)},
		{"14th and last day", "semimonth", `{"First":false}`, at(2026, 3, 15, 0, 0), at(2026, 3, 31, 9, 30)},
		{"First as Connect's string", "semimonth", `{"First":"TRUE"}`, at(2026, 3, 15, 10, 0), at(2026, 4, 1, 9, 30)},
		{"the 31st of every month: April's last day", "dayofmonth", `{"N":1,"Day":31}`, at(2026, 3, 31, 10, 0), at(2026, 4, 30, 9, 30)},
		{"every 2 months on the 10th", "dayofmonth", `{"N":2,"Day":10}`, at(2026, 3, 10, 10, 0), at(2026, 5, 10, 9, 30)},
		{"second Tuesday", "dayweekofmonth", `{"N":1,"Day":2,"Week":2}`, at(2026, 3, 2, 10, 0), at(2026, 3, 10, 9, 30)},
		{"second Tuesday, next month", "dayweekofmonth", `{"N":1,"Day":2,"Week":2}`, at(2026, 3, 10, 10, 0), at(2026, 4, 14, 9, 30)},
		{"every 2 years", "year", `{"N":2}`, at(2026, 3, 2, 10, 0), at(2028, 3, 2, 9, 30)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &store.Schedule{Kind: tt.kind, Spec: tt.spec, StartAt: start, Timezone: "America/New_York"}
			got, err := schedule.Next(s, tt.after)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(tt.want) {
				t.Fatalf("Next after %s = %s, want %s", tt.after.In(ny), got.In(ny), tt.want)
			}
			if !got.After(tt.after) {
				t.Fatalf("Next %s is not after %s", got, tt.after)
			}
		})
	}
}

func TestConnectSpecRefused(t *testing.T) {
	start := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	for _, tt := range []struct{ kind, spec, want string }{
		{"fortnight", `{}`, "not a schedule type"},
		{"day", `{"N":0}`, "N must be"},
		{"day", `{"N":"x"}`, "not the JSON object"},
		{"dayofweek", `{}`, "needs Days"},
		{"dayofweek", `{"Days":[7]}`, "not a weekday"},
		{"dayofmonth", `{"N":1}`, "needs Day"},
		{"dayweekofmonth", `{"N":1,"Day":1,"Week":6}`, "Week, 1 to 5"},
		{"semimonth", `{"First":"maybe"}`, "First must be"},
	} {
		s := &store.Schedule{Kind: tt.kind, Spec: tt.spec, StartAt: start}
		if err := schedule.Validate(s); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s %s: %v, want an error with %q", tt.kind, tt.spec, err, tt.want)
		}
	}
	if err := schedule.Validate(&store.Schedule{Kind: "day", Spec: `{"N":1}`, Cron: "* * * * *", StartAt: start}); err == nil {
		t.Error("a type and a cron expression at once were accepted")
	}
	if err := schedule.Validate(&store.Schedule{Kind: "day", Spec: `{"N":1}`}); err == nil {
		t.Error("a type without a start was accepted")
	}
}

// TestConnectScheduleRuns: a schedule of one of Connect's types is run by
// the same scheduler as dais's own, and its next run moves by its rule.
func TestConnectScheduleRuns(t *testing.T) {
	stores(t, func(t *testing.T, open func() store.Store) {
		ctx := context.Background()
		st := open()
		c := newDoc(t, st)
		now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
		sc := &store.Schedule{ContentID: c.ID, Kind: "hour", Spec: `{"N":2}`, StartAt: now.Add(-3 * time.Hour),
			Enabled: true, NextRunAt: now.Add(-time.Hour)}
		if err := st.CreateSchedule(ctx, sc); err != nil {
			t.Fatal(err)
		}
		var rendered []int64
		s, err := schedule.New(schedule.Options{Store: st, Node: "n1", Now: func() time.Time { return now },
			Render: func(_ context.Context, id int64) (string, error) { rendered = append(rendered, id); return "task", nil }})
		if err != nil {
			t.Fatal(err)
		}
		if n, err := s.RunDue(ctx); err != nil || n != 1 || len(rendered) != 1 || rendered[0] != c.ID {
			t.Fatalf("RunDue = %d, %v; rendered %v", n, err, rendered)
		}
		got, err := st.Schedule(ctx, sc.ID)
		if err != nil {
			t.Fatal(err)
		}
		// Started at 09:00, every 2 hours: 11:00 was due, 13:00 is next.
		if want := now.Add(time.Hour); !got.NextRunAt.Equal(want) {
			t.Fatalf("next run %s, want %s", got.NextRunAt, want)
		}
	})
}
