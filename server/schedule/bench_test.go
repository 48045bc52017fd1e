package schedule_test

import (
	"context"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/schedule"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/store/storetest"
)

// benchDue is the number of schedules due in each iteration.
const benchDue = 50

// BenchmarkRunDue measures one scheduler pass over benchDue due schedules:
// "claim" is RunDue (compare-and-swap per run, safe across servers);
// "naive" is the peer, a read then a plain UpdateSchedule per run (what a
// single-server scheduler without a claim would do). bench/lifecycle.sh
// reports the ratio.
func BenchmarkRunDue(b *testing.B) {
	for _, db := range []struct {
		name string
		open func(testing.TB) store.Store
	}{
		{"sqlite", func(t testing.TB) store.Store { return storetest.SQLite(t) }},
		{"postgres", storetest.Postgres},
	} {
		for _, mode := range []string{"claim", "naive"} {
			b.Run(db.name+"/"+mode, func(b *testing.B) {
				ctx := context.Background()
				st := db.open(b)
				u := &store.User{Username: "pub", Role: store.RolePublisher}
				if err := st.CreateUser(ctx, u); err != nil {
					b.Fatal(err)
				}
				c := &store.Content{Name: "doc", OwnerID: u.ID, AccessType: store.AccessAll, AppMode: "rmd-static"}
				if err := st.CreateContent(ctx, c); err != nil {
					b.Fatal(err)
				}
				var ids []int64
				for range benchDue {
					sc := &store.Schedule{ContentID: c.ID, Cron: "* * * * *", Enabled: true, NextRunAt: time.Now().Add(-time.Hour)}
					if err := st.CreateSchedule(ctx, sc); err != nil {
						b.Fatal(err)
					}
					ids = append(ids, sc.ID)
				}
				s, err := schedule.New(schedule.Options{Store: st, Node: "bench",
					Render: func(context.Context, int64) (string, error) { return "", nil }})
				if err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for b.Loop() {
					b.StopTimer()
					// Make every schedule due again.
					for _, id := range ids {
						sc, _ := st.Schedule(ctx, id)
						sc.NextRunAt = time.Now().Add(-time.Hour)
						if err := st.UpdateSchedule(ctx, sc); err != nil {
							b.Fatal(err)
						}
					}
					b.StartTimer()
					if mode == "claim" {
						n, err := s.RunDue(ctx)
						if err != nil || n != benchDue {
							b.Fatalf("claimed %d (%v), want %d", n, err, benchDue)
						}
						continue
					}
					now := time.Now()
					due, err := st.DueSchedules(ctx, now)
					if err != nil || len(due) != benchDue {
						b.Fatalf("due %d (%v)", len(due), err)
					}
					for i := range due {
						next, _ := schedule.Next(&due[i], now)
						due[i].NextRunAt = next
						if err := st.UpdateSchedule(ctx, &due[i]); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*benchDue), "µs/run")
			})
		}
	}
}
