package api_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/store"
)

// TestSchedules drives GET/PUT/DELETE .../schedule.
func TestSchedules(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	owner := f.users["publisher"]
	doc := &store.Content{Name: "report", OwnerID: owner.ID, AccessType: store.AccessAll, AppMode: "rmd-static"}
	app := &store.Content{Name: "app", OwnerID: owner.ID, AccessType: store.AccessAll, AppMode: "shiny"}
	for _, c := range []*store.Content{doc, app} {
		if err := f.st.CreateContent(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	path := func(guid string) string { return "/__api__/v1/content/" + guid + "/schedule" }
	f.run(t, []apiCase{
		{"none yet", "GET", path(doc.GUID), "publisher", "", 404, "has no schedule"},
		{"bad cron", "PUT", path(doc.GUID), "publisher", `{"cron":"every day"}`, 400, "cron expression"},
		{"bad zone", "PUT", path(doc.GUID), "publisher", `{"cron":"0 6 * * *","timezone":"Nowhere/City"}`, 400, "IANA"},
		{"neither", "PUT", path(doc.GUID), "publisher", `{}`, 400, "needs a cron expression"},
		{"not a document", "PUT", path(app.GUID), "publisher", `{"interval_seconds":3600}`, 400, "not a document"},
		{"no content", "PUT", path("nope"), "publisher", `{"interval_seconds":3600}`, 404, "no content"},
		{"viewer may read", "GET", path(doc.GUID), "viewer", "", 404, "has no schedule"},
		{"viewer may not set", "PUT", path(doc.GUID), "viewer", `{"interval_seconds":3600}`, 403, "may view but not change"},
		{"set cron", "PUT", path(doc.GUID), "publisher", `{"cron":"0 6 * * *","timezone":"Europe/Berlin"}`, 200, `"timezone":"Europe/Berlin"`},
		{"read it", "GET", path(doc.GUID), "publisher", "", 200, `"cron":"0 6 * * *"`},
		{"replace with interval", "PUT", path(doc.GUID), "publisher", `{"interval_seconds":7200,"enabled":false}`, 200, `"enabled":false`},
		{"read again", "GET", path(doc.GUID), "publisher", "", 200, `"interval_seconds":7200`},
		{"delete", "DELETE", path(doc.GUID), "publisher", "", 200, "{}"},
		{"gone", "GET", path(doc.GUID), "publisher", "", 404, "has no schedule"},
		{"delete again", "DELETE", path(doc.GUID), "publisher", "", 404, "has no schedule"},
	})

	// One schedule per content, whatever the number of PUTs.
	scheds, err := f.st.ListSchedules(ctx, doc.ID)
	if err != nil || len(scheds) != 0 {
		t.Fatalf("schedules after DELETE: %v %+v", err, scheds)
	}
	for range 3 {
		sent := time.Now() // the server's next run is after its now, not the test's later one
		a := f.do(t, "PUT", path(doc.GUID), "publisher", `{"cron":"*/5 * * * *"}`)
		var v struct {
			NextRun time.Time `json:"next_run"`
		}
		if err := json.Unmarshal([]byte(a.body), &v); err != nil {
			t.Fatalf("PUT: %d %s", a.status, a.body)
		}
		if !v.NextRun.After(sent) || v.NextRun.After(time.Now().Add(5*time.Minute)) {
			t.Errorf("next_run %s, want within 5 minutes", v.NextRun)
		}
	}
	if scheds, _ := f.st.ListSchedules(ctx, doc.ID); len(scheds) != 1 {
		t.Errorf("%d schedules after three PUTs, want 1", len(scheds))
	}
}
