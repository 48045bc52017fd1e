package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/store"
)

func auditIDs(ls []store.AuditLog) []int64 {
	var out []int64
	for _, l := range ls {
		out = append(out, l.ID)
	}
	return out
}

func testAuditLogs(t *testing.T, s store.Store) {
	c := ctx(t)
	var ids []int64
	for i := range 5 {
		l := &store.AuditLog{Time: T0.Add(time.Duration(i) * time.Minute), UserID: int64(i % 2), UserGUID: fmt.Sprint("g", i), UserDescription: "alice", Action: "add_application", EventDescription: fmt.Sprint("event ", i)}
		must(t, s.AddAuditLog(c, l))
		ids = append(ids, l.ID)
	}
	all, info, err := s.ListAuditLogs(c, store.Page{Limit: 10, Asc: true})
	must(t, err)
	eq(t, "entries", fmt.Sprint(auditIDs(all)), fmt.Sprint(ids))
	eq(t, "more", info.HasNext || info.HasPrevious, false)
	eq(t, "time", all[2].Time, us(T0.Add(2*time.Minute)))
	eq(t, "user id of the server", all[0].UserID, int64(0))
	eq(t, "event", all[3].EventDescription, "event 3")

	// Ascending pages of two, forward then back.
	p1, i1, err := s.ListAuditLogs(c, store.Page{Limit: 2, Asc: true})
	must(t, err)
	eq(t, "page 1", fmt.Sprint(auditIDs(p1)), fmt.Sprint(ids[:2]))
	eq(t, "page 1 next", i1, store.PageInfo{HasNext: true})
	p2, i2, err := s.ListAuditLogs(c, store.Page{Limit: 2, Asc: true, Next: &p1[1].ID})
	must(t, err)
	eq(t, "page 2", fmt.Sprint(auditIDs(p2)), fmt.Sprint(ids[2:4]))
	eq(t, "page 2 info", i2, store.PageInfo{HasNext: true, HasPrevious: true})
	p3, i3, err := s.ListAuditLogs(c, store.Page{Limit: 2, Asc: true, Next: &p2[1].ID})
	must(t, err)
	eq(t, "page 3", fmt.Sprint(auditIDs(p3)), fmt.Sprint(ids[4:]))
	eq(t, "page 3 next", i3.HasNext, false)
	back, ib, err := s.ListAuditLogs(c, store.Page{Limit: 2, Asc: true, Previous: &p3[0].ID})
	must(t, err)
	eq(t, "back to page 2", fmt.Sprint(auditIDs(back)), fmt.Sprint(ids[2:4]))
	eq(t, "page 2 from behind", ib, store.PageInfo{HasNext: true, HasPrevious: true})
	first, ifirst, err := s.ListAuditLogs(c, store.Page{Limit: 2, Asc: true, Previous: &p2[0].ID})
	must(t, err)
	eq(t, "back to page 1", fmt.Sprint(auditIDs(first)), fmt.Sprint(ids[:2]))
	eq(t, "page 1 has no previous", ifirst.HasPrevious, false)

	// Descending: newest first.
	d1, _, err := s.ListAuditLogs(c, store.Page{Limit: 3})
	must(t, err)
	eq(t, "newest first", fmt.Sprint(auditIDs(d1)), fmt.Sprint([]int64{ids[4], ids[3], ids[2]}))
	d2, di, err := s.ListAuditLogs(c, store.Page{Limit: 3, Next: &d1[2].ID})
	must(t, err)
	eq(t, "older", fmt.Sprint(auditIDs(d2)), fmt.Sprint([]int64{ids[1], ids[0]}))
	eq(t, "oldest page", di, store.PageInfo{HasPrevious: true})

	n, err := s.DeleteAuditLogsBefore(c, T0.Add(2*time.Minute))
	must(t, err)
	eq(t, "deleted by retention", n, int64(2))
	rest, _, err := s.ListAuditLogs(c, store.Page{Limit: 10, Asc: true})
	must(t, err)
	eq(t, "kept", fmt.Sprint(auditIDs(rest)), fmt.Sprint(ids[2:]))
}

func testUsage(t *testing.T, s store.Store) {
	c := ctx(t)
	must(t, s.RecordUsage(c, []store.UsageEvent{
		{Visit: &store.Visit{ContentID: 1, ContentGUID: "doc-a", UserGUID: "u1", BundleID: 7, Path: "/", Time: T0}},
		{Visit: &store.Visit{ContentID: 2, ContentGUID: "doc-b", Path: "/index.html", Time: T0.Add(time.Hour)}},
		{Visit: &store.Visit{ContentID: 1, ContentGUID: "doc-a", UserGUID: "u2", RenderingID: 3, Time: T0.Add(2 * time.Hour), DataVersion: 2}},
		{Session: &store.ShinySession{Key: "k1", ContentID: 3, ContentGUID: "app", UserGUID: "u1", Started: T0}},
		{Session: &store.ShinySession{Key: "k2", ContentID: 3, ContentGUID: "app", Started: T0.Add(3 * time.Hour)}},
		{SessionEnd: &store.ShinySession{Key: "k1", Ended: T0.Add(10 * time.Minute)}},
	}))
	vs, _, err := s.ListVisits(c, store.UsageFilter{Page: store.Page{Limit: 10, Asc: true}})
	must(t, err)
	eq(t, "visits", len(vs), 3)
	eq(t, "visit", fmt.Sprintf("%v %v %v %v %v %v %v", vs[0].ContentGUID, vs[0].UserGUID, vs[0].BundleID, vs[0].RenderingID, vs[0].Path, vs[0].Time.Equal(T0.Truncate(time.Microsecond)), vs[0].DataVersion), "doc-a u1 7 0 / true 1")
	eq(t, "anonymous", vs[1].UserGUID, "")
	for _, tc := range []struct {
		name string
		f    store.UsageFilter
		want int
	}{
		{"by guid", store.UsageFilter{ContentGUIDs: []string{"doc-a"}}, 2},
		{"by guids", store.UsageFilter{ContentGUIDs: []string{"doc-a", "doc-b"}}, 3},
		{"own content", store.UsageFilter{ContentIDs: []int64{2}}, 1},
		{"no own content", store.UsageFilter{OnlyContentIDs: true}, 0},
		{"data version", store.UsageFilter{MinDataVersion: 2}, 1},
		{"from", store.UsageFilter{From: T0.Add(30 * time.Minute)}, 2},
		{"to", store.UsageFilter{To: T0.Add(30 * time.Minute)}, 1},
		{"window", store.UsageFilter{From: T0.Add(30 * time.Minute), To: T0.Add(90 * time.Minute)}, 1},
	} {
		tc.f.Page = store.Page{Limit: 10, Asc: true}
		got, _, err := s.ListVisits(c, tc.f)
		must(t, err)
		eq(t, "visits "+tc.name, len(got), tc.want)
	}
	ss, _, err := s.ListShinySessions(c, store.UsageFilter{Page: store.Page{Limit: 10, Asc: true}})
	must(t, err)
	eq(t, "sessions", len(ss), 2)
	eq(t, "ended", ss[0].Ended, us(T0.Add(10*time.Minute)))
	eq(t, "open", ss[1].Ended.IsZero(), true)
	// A session overlapping the window counts though it started before it;
	// an open one counts from any time on.
	late, _, err := s.ListShinySessions(c, store.UsageFilter{Page: store.Page{Limit: 10, Asc: true}, From: T0.Add(5 * time.Minute)})
	must(t, err)
	eq(t, "overlapping", len(late), 2)
	later, _, err := s.ListShinySessions(c, store.UsageFilter{Page: store.Page{Limit: 10, Asc: true}, From: T0.Add(20 * time.Minute)})
	must(t, err)
	eq(t, "ended before from", len(later), 1)

	n, err := s.DeleteUsageBefore(c, T0.Add(90*time.Minute))
	must(t, err)
	eq(t, "deleted by retention (2 visits, 1 ended session)", n, int64(3))
	ss, _, err = s.ListShinySessions(c, store.UsageFilter{Page: store.Page{Limit: 10, Asc: true}})
	must(t, err)
	eq(t, "open session kept", len(ss), 1)
}
