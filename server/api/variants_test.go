package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

type variantOut struct {
	ID          int64  `json:"id"`
	AppID       int64  `json:"app_id"`
	Key         string `json:"key"`
	IsDefault   bool   `json:"is_default"`
	RenderingID *int64 `json:"rendering_id"`
}

type connectSchedule struct {
	ID        int64     `json:"id"`
	AppID     int64     `json:"app_id"`
	VariantID int64     `json:"variant_id"`
	Type      string    `json:"type"`
	Schedule  string    `json:"schedule"`
	StartTime time.Time `json:"start_time"`
	NextRun   time.Time `json:"next_run"`
	Timezone  string    `json:"timezone"`
	Email     bool      `json:"email"`
	Activate  bool      `json:"activate"`
}

// TestVariantsAndSchedules drives Connect's legacy variants and schedules
// API as connectapi does, over the same schedules as dais's own API.
func TestVariantsAndSchedules(t *testing.T) {
	f := newFixture(t)
	f.addUser(t, "bob", "publisher")
	doc := f.deployBundle(t, "publisher", "doc", exampleBundle(t, "rmarkdown"))
	site := f.deployStatic(t, "publisher", "site", "<p>static</p>")

	var vs []variantOut
	f.do(t, "GET", "/__api__/applications/"+doc+"/variants", "publisher", "").must(t, &vs)
	if len(vs) != 1 || !vs[0].IsDefault || vs[0].ID != vs[0].AppID || len(vs[0].Key) != 8 || vs[0].RenderingID == nil {
		t.Fatalf("variants of a document = %+v", vs)
	}
	v := vs[0]
	vp := fmt.Sprintf("/__api__/variants/%d", v.ID)
	var none []variantOut
	f.do(t, "GET", "/__api__/applications/"+site+"/variants", "publisher", "").must(t, &none)
	if len(none) != 0 {
		t.Fatalf("variants of static content = %+v", none)
	}

	start := time.Now().UTC().Add(48 * time.Hour).Truncate(time.Second)
	body := fmt.Sprintf(`{"app_id":%d,"variant_id":%d,"type":"day","schedule":"{\"N\":2}","start_time":"%s","timezone":"America/New_York","email":false}`,
		v.ID, v.ID, start.Format(time.RFC3339))
	f.run(t, []apiCase{
		{"variant", "GET", vp, "viewer", "", 404, "no variant"},
		{"variant for its owner", "GET", vp, "publisher", "", 200, `"is_default":true`},
		{"no schedule yet", "GET", vp + "/schedules", "publisher", "", 200, "[]"},
		{"another user's", "POST", "/__api__/schedules", "bob", body, 404, "no variant"},
		{"unknown type", "POST", "/__api__/schedules", "publisher", strings.Replace(body, `"day"`, `"fortnight"`, 1), 400, "not a schedule type"},
		{"bad parameters", "POST", "/__api__/schedules", "publisher", strings.Replace(body, `{\"N\":2}`, `{\"N\":0}`, 1), 400, "N must be"},
		{"bad start", "POST", "/__api__/schedules", "publisher", strings.Replace(body, start.Format(time.RFC3339), "tomorrow", 1), 400, "start_time"},
		{"bad time zone", "POST", "/__api__/schedules", "publisher", strings.Replace(body, "America/New_York", "Mars/Olympus", 1), 400, "time zone"},
		{"no variant", "POST", "/__api__/schedules", "publisher", `{"type":"day"}`, 400, "variant_id (or app_id) is required"},
		{"static content has none", "POST", "/__api__/schedules", "publisher", fmt.Sprintf(`{"variant_id":%d,"type":"day"}`, v.ID+1), 404, "no variant"},
	})
	var sc connectSchedule
	f.do(t, "POST", "/__api__/schedules", "publisher", body).must(t, &sc)
	if sc.Type != "day" || sc.Schedule != `{"N":2}` || !sc.StartTime.Equal(start) || !sc.NextRun.Equal(start) || !sc.Activate || sc.VariantID != v.ID {
		t.Fatalf("created schedule %+v (start %s)", sc, start)
	}
	if a := f.do(t, "POST", "/__api__/schedules", "publisher", body); a.status != http.StatusConflict || !strings.Contains(a.body, fmt.Sprintf("POST /__api__/schedules/%d", sc.ID)) {
		t.Fatalf("a second schedule: %d %s", a.status, a.body)
	}
	// The same schedule in dais's own API.
	var own struct {
		Type, Schedule string
		NextRun        time.Time `json:"next_run"`
	}
	f.do(t, "GET", "/__api__/v1/content/"+doc+"/schedule", "publisher", "").must(t, &own)
	if own.Type != "day" || !own.NextRun.Equal(start) {
		t.Fatalf("dais's view of the schedule: %+v", own)
	}

	// connectapi's set_schedule sends back what it read with its changes
	// and fields of its own; the next run follows the new rule.
	var list []json.RawMessage
	f.do(t, "GET", vp+"/schedules", "publisher", "").must(t, &list)
	if len(list) != 1 {
		t.Fatalf("variant schedules: %s", list)
	}
	var back map[string]any
	json.Unmarshal(list[0], &back)
	back["type"], back["schedule"] = "weekday", map[string]any{}
	back["start_time"] = "2026-03-06T14:30:00Z" // a Friday, 09:30 in New York
	back["app_guid"], back["variant_key"] = doc, v.Key
	b, _ := json.Marshal(back)
	var upd connectSchedule
	f.do(t, "POST", fmt.Sprintf("/__api__/schedules/%d", sc.ID), "publisher", string(b)).must(t, &upd)
	if upd.Type != "weekday" || upd.NextRun.Before(time.Now()) || upd.NextRun.Weekday() == time.Saturday || upd.NextRun.Weekday() == time.Sunday {
		t.Fatalf("updated schedule %+v", upd)
	}
	ny, _ := time.LoadLocation("America/New_York")
	if h, m, _ := upd.NextRun.In(ny).Clock(); h != 9 || m != 30 {
		t.Fatalf("next run %s is not at 09:30 in New York", upd.NextRun.In(ny))
	}
	f.run(t, []apiCase{
		{"get", "GET", fmt.Sprintf("/__api__/schedules/%d", sc.ID), "publisher", "", 200, `"type":"weekday"`},
		{"listed", "GET", "/__api__/schedules", "publisher", "", 200, `"type":"weekday"`},
		{"not listed for others", "GET", "/__api__/schedules", "bob", "", 200, "[]"},
		{"hidden from others", "GET", fmt.Sprintf("/__api__/schedules/%d", sc.ID), "bob", "", 404, "no schedule"},
		{"others cannot change", "POST", fmt.Sprintf("/__api__/schedules/%d", sc.ID), "bob", `{"type":"day"}`, 404, "no schedule"},
		{"unknown schedule", "GET", "/__api__/schedules/99999", "publisher", "", 404, "no schedule"},
	})

	// Render through the variant, as content_render does; the rendering is listed.
	var task struct {
		ID     string `json:"id"`
		TaskID string `json:"task_id"`
	}
	f.do(t, "POST", vp+"/render", "publisher", "").must(t, &task)
	if task.ID == "" || task.TaskID != task.ID {
		t.Fatalf("render answer %+v", task)
	}
	f.waitTask(t, "publisher", task.TaskID)
	var renderings []struct {
		ID     int64 `json:"id"`
		Active bool  `json:"active"`
		Status string
	}
	f.do(t, "GET", vp+"/renderings", "publisher", "").must(t, &renderings)
	if len(renderings) < 2 || !renderings[0].Active || renderings[0].Status != "succeeded" || renderings[1].Active {
		t.Fatalf("renderings = %+v; want the new one first and active", renderings)
	}
	f.do(t, "POST", "/__api__/v1/content/"+doc+"/permissions", "publisher",
		`{"principal_guid":"`+f.users["viewer"].GUID+`","principal_type":"user","role":"viewer"}`).must(t, nil)
	f.run(t, []apiCase{
		{"others cannot render", "POST", vp + "/render", "bob", "", 404, "no variant"},
		{"a viewer cannot render", "POST", vp + "/render", "viewer", "", 403, "may view but not change"},
		{"a viewer cannot schedule", "POST", fmt.Sprintf("/__api__/schedules/%d", sc.ID), "viewer", `{"type":"day"}`, 403, "may view but not change"},
		{"a viewer sees the schedule", "GET", vp + "/schedules", "viewer", "", 200, `"type":"weekday"`},
		{"delete", "DELETE", fmt.Sprintf("/__api__/schedules/%d", sc.ID), "publisher", "", 200, "{}"},
		{"gone", "GET", vp + "/schedules", "publisher", "", 200, "[]"},
	})
}
