package schedule_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/schedule"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/store/storetest"
)

func TestNext(t *testing.T) {
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name    string
		s       store.Schedule
		after   string
		want    string // RFC3339 in UTC; "" when an error is expected
		wantErr string
	}{
		{"every minute", store.Schedule{Cron: "* * * * *"}, "2026-01-01T10:00:30Z", "2026-01-01T10:01:00Z", ""},
		{"daily 6:00 UTC", store.Schedule{Cron: "0 6 * * *"}, "2026-01-01T10:00:00Z", "2026-01-02T06:00:00Z", ""},
		{"daily 6:00 Berlin (winter, UTC+1)", store.Schedule{Cron: "0 6 * * *", Timezone: "Europe/Berlin"}, "2026-01-01T10:00:00Z", "2026-01-02T05:00:00Z", ""},
		{"daily 6:00 Berlin (summer, UTC+2)", store.Schedule{Cron: "0 6 * * *", Timezone: "Europe/Berlin"}, "2026-07-01T10:00:00Z", "2026-07-02T04:00:00Z", ""},
		{"descriptor", store.Schedule{Cron: "@hourly"}, "2026-01-01T10:20:00Z", "2026-01-01T11:00:00Z", ""},
		{"every 2h", store.Schedule{Cron: "@every 2h"}, "2026-01-01T10:20:00Z", "2026-01-01T12:20:00Z", ""},
		{"interval", store.Schedule{IntervalSeconds: 3600}, "2026-01-01T10:20:00Z", "2026-01-01T11:20:00Z", ""},
		{"both", store.Schedule{Cron: "* * * * *", IntervalSeconds: 60}, "2026-01-01T10:00:00Z", "", "not both"},
		{"neither", store.Schedule{}, "2026-01-01T10:00:00Z", "", "needs a cron expression"},
		{"bad cron", store.Schedule{Cron: "61 * * * *"}, "2026-01-01T10:00:00Z", "", "cron expression"},
		{"bad zone", store.Schedule{Cron: "* * * * *", Timezone: "Mars/Olympus"}, "2026-01-01T10:00:00Z", "", "IANA name"},
		{"zone in expression", store.Schedule{Cron: "CRON_TZ=UTC * * * * *"}, "2026-01-01T10:00:00Z", "", "timezone"},
		{"interval too short", store.Schedule{IntervalSeconds: 5}, "2026-01-01T10:00:00Z", "", "minimum"},
		{"every too short", store.Schedule{Cron: "@every 5s"}, "2026-01-01T10:00:00Z", "", "more often"},
		{"never", store.Schedule{Cron: "0 0 30 2 *"}, "2026-01-01T10:00:00Z", "", "never runs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := schedule.Next(&tt.s, at(tt.after))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(at(tt.want)) {
				t.Errorf("Next = %s, want %s", got.Format(time.RFC3339), tt.want)
			}
		})
	}
}

// stores runs f against a fresh SQLite store and a fresh PostgreSQL schema.
func stores(t *testing.T, f func(t *testing.T, open func() store.Store)) {
	t.Run("sqlite", func(t *testing.T) {
		st := storetest.SQLite(t)
		f(t, func() store.Store { return st })
	})
	t.Run("postgres", func(t *testing.T) {
		url := storetest.PostgresURL(t)
		f(t, func() store.Store {
			st, err := store.OpenPostgres(context.Background(), url, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		})
	})
}

// newDoc makes a user and a content to hang schedules on.
func newDoc(t *testing.T, st store.Store) *store.Content {
	t.Helper()
	ctx := context.Background()
	u := &store.User{Username: "pub", Role: store.RolePublisher}
	if err := st.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	c := &store.Content{Name: "report", OwnerID: u.ID, AccessType: store.AccessAll, AppMode: "rmd-static"}
	if err := st.CreateContent(ctx, c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestMissedRunsOnce: a schedule every minute whose next run passed three
// hours ago (the server was down) runs once at start, not 180 times, and
// its next run is then in the future.
func TestMissedRunsOnce(t *testing.T) {
	stores(t, func(t *testing.T, open func() store.Store) {
		ctx := context.Background()
		st := open()
		c := newDoc(t, st)
		now := time.Now().UTC()
		sc := &store.Schedule{ContentID: c.ID, Cron: "* * * * *", Enabled: true, NextRunAt: now.Add(-3 * time.Hour)}
		if err := st.CreateSchedule(ctx, sc); err != nil {
			t.Fatal(err)
		}
		var renders atomic.Int32
		// The clock stands still: on the real one, polls that cross a
		// minute find the next run due and rightly run it.
		s, err := schedule.New(schedule.Options{Store: st, Node: "n1", Poll: 20 * time.Millisecond, Now: func() time.Time { return now },
			Render: func(_ context.Context, id int64) (string, error) {
				if id != c.ID {
					t.Errorf("render of content %d, want %d", id, c.ID)
				}
				renders.Add(1)
				return "task", nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if got := renders.Load(); got != 1 {
			t.Errorf("renders right after Start = %d, want 1", got)
		}
		time.Sleep(300 * time.Millisecond) // ~15 more polls
		if err := s.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		if got := renders.Load(); got != 1 {
			t.Errorf("renders after polling = %d, want 1 (the missed runs run once)", got)
		}
		got, err := st.Schedule(ctx, sc.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.NextRunAt.After(now) || got.NextRunAt.After(now.Add(time.Minute)) {
			t.Errorf("next run %s, want within the next minute", got.NextRunAt)
		}
		if got.LastNode != "n1" || got.LastRunAt.IsZero() {
			t.Errorf("last run %s on %q, want now on n1", got.LastRunAt, got.LastNode)
		}
	})
}

// TestNotDueNotRun: disabled and future schedules do not run.
func TestNotDueNotRun(t *testing.T) {
	stores(t, func(t *testing.T, open func() store.Store) {
		ctx := context.Background()
		st := open()
		c := newDoc(t, st)
		now := time.Now().UTC()
		for _, sc := range []*store.Schedule{
			{ContentID: c.ID, Cron: "* * * * *", Enabled: false, NextRunAt: now.Add(-time.Hour)},
			{ContentID: c.ID, IntervalSeconds: 3600, Enabled: true, NextRunAt: now.Add(time.Hour)},
		} {
			if err := st.CreateSchedule(ctx, sc); err != nil {
				t.Fatal(err)
			}
		}
		var renders atomic.Int32
		s, _ := schedule.New(schedule.Options{Store: st, Render: func(context.Context, int64) (string, error) {
			renders.Add(1)
			return "", nil
		}})
		n, err := s.RunDue(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 || renders.Load() != 0 {
			t.Errorf("claimed %d, rendered %d; want 0 and 0", n, renders.Load())
		}
	})
}

// TestSeveralServersOneRun: schedulers of several servers sharing one
// database, each with its own connection pool, race for one due run: one
// render in total.
func TestSeveralServersOneRun(t *testing.T) {
	stores(t, func(t *testing.T, open func() store.Store) {
		ctx := context.Background()
		first := open()
		c := newDoc(t, first)
		const due = 5
		for range due {
			sc := &store.Schedule{ContentID: c.ID, Cron: "*/5 * * * *", Enabled: true, NextRunAt: time.Now().UTC().Add(-time.Minute)}
			if err := first.CreateSchedule(ctx, sc); err != nil {
				t.Fatal(err)
			}
		}
		var renders atomic.Int32
		now := time.Now().UTC() // every server's clock, standing still: a run that came due again would be run again
		nodes := map[string]int{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 4 {
			st := first
			if i > 0 {
				st = open()
			}
			node := string(rune('a' + i))
			s, err := schedule.New(schedule.Options{Store: st, Node: node, Now: func() time.Time { return now }, Render: func(context.Context, int64) (string, error) {
				renders.Add(1)
				mu.Lock()
				nodes[node]++
				mu.Unlock()
				return "", nil
			}})
			if err != nil {
				t.Fatal(err)
			}
			wg.Go(func() {
				<-start
				for range 3 {
					if _, err := s.RunDue(ctx); err != nil {
						t.Error(err)
					}
				}
			})
		}
		close(start)
		wg.Wait()
		if got := renders.Load(); got != due {
			t.Errorf("renders = %d for %d due schedules, want exactly %d (by node: %v)", got, due, due, nodes)
		}
	})
}

// TestCapacityLeavesTheRest: a server claims no more due runs than it has
// render capacity for; a second server with room takes the rest, and each
// run happens once.
func TestCapacityLeavesTheRest(t *testing.T) {
	stores(t, func(t *testing.T, open func() store.Store) {
		ctx := context.Background()
		st := open()
		c := newDoc(t, st)
		const due = 5
		for range due {
			sc := &store.Schedule{ContentID: c.ID, IntervalSeconds: 3600, Enabled: true, NextRunAt: time.Now().UTC().Add(-time.Minute)}
			if err := st.CreateSchedule(ctx, sc); err != nil {
				t.Fatal(err)
			}
		}
		counted := func(n *int) schedule.RenderFunc {
			return func(context.Context, int64) (string, error) { *n++; return "", nil }
		}
		var busyRuns, idleRuns int
		busy, _ := schedule.New(schedule.Options{Store: st, Node: "busy", Render: counted(&busyRuns), Capacity: func() int { return 2 }})
		idle, _ := schedule.New(schedule.Options{Store: open(), Node: "idle", Render: counted(&idleRuns)})
		full, _ := schedule.New(schedule.Options{Store: st, Node: "full", Render: counted(new(int)), Capacity: func() int { return 0 }})
		if n, err := full.RunDue(ctx); err != nil || n != 0 {
			t.Fatalf("a server with no free slot claimed %d (%v)", n, err)
		}
		if n, err := busy.RunDue(ctx); err != nil || n != 2 {
			t.Fatalf("a server with 2 free slots claimed %d of %d due (%v), want 2", n, due, err)
		}
		if n, err := idle.RunDue(ctx); err != nil || n != due-2 {
			t.Fatalf("the other server claimed %d (%v), want the %d left", n, err, due-2)
		}
		if n, _ := busy.RunDue(ctx); n != 0 || busyRuns != 2 || idleRuns != due-2 {
			t.Errorf("runs: busy %d, idle %d, then %d more; want 2, %d, 0", busyRuns, idleRuns, n, due-2)
		}
	})
}
