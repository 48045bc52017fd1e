package storetest

import (
	"testing"
	"time"

	"github.com/dais-dev/dais/server/store"
)

// testConnectSchedules: a schedule of one of Connect's kinds keeps its
// kind, parameters, start and email flag through create, update and list.
func testConnectSchedules(t *testing.T, s store.Store) {
	c := ctx(t)
	u := mkUser(t, s, "csowner", store.RolePublisher)
	ct := mkContent(t, s, u.ID, "cs-doc")
	sc := &store.Schedule{ContentID: ct.ID, Kind: "dayofweek", Spec: `{"Days":[1,3]}`, StartAt: T0, Email: true,
		Timezone: "America/New_York", Enabled: true, NextRunAt: T0.Add(time.Hour)}
	must(t, s.CreateSchedule(c, sc))
	got, err := s.Schedule(c, sc.ID)
	must(t, err)
	if got.Kind != "dayofweek" || got.Spec != `{"Days":[1,3]}` || !got.StartAt.Equal(us(T0)) || !got.Email || got.Cron != "" || got.IntervalSeconds != 0 {
		t.Fatalf("Schedule = %+v", got)
	}
	got.Kind, got.Spec, got.StartAt, got.Email = "minute", `{"N":15}`, T0.Add(24*time.Hour), false
	must(t, s.UpdateSchedule(c, got))
	all, err := s.ListSchedules(c, ct.ID)
	must(t, err)
	if len(all) != 1 || all[0].Kind != "minute" || all[0].Spec != `{"N":15}` || !all[0].StartAt.Equal(us(T0.Add(24*time.Hour))) || all[0].Email {
		t.Fatalf("ListSchedules = %+v", all)
	}
	// dais's own schedules have none of it.
	cron := &store.Schedule{ContentID: ct.ID, Cron: "0 6 * * *", Enabled: true, NextRunAt: T0}
	must(t, s.CreateSchedule(c, cron))
	got, err = s.Schedule(c, cron.ID)
	must(t, err)
	if got.Kind != "" || got.Spec != "" || !got.StartAt.IsZero() || got.Email {
		t.Fatalf("cron schedule = %+v", got)
	}
}
