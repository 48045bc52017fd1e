package api_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/dais-dev/dais/server/web"
)

type pagedAnswer struct {
	Results []map[string]any `json:"results"`
	Paging  struct {
		Cursors struct {
			Previous *string `json:"previous"`
			Next     *string `json:"next"`
		} `json:"cursors"`
		First    string  `json:"first"`
		Previous *string `json:"previous"`
		Next     *string `json:"next"`
		Last     string  `json:"last"`
	} `json:"paging"`
}

// paged gets path as role and decodes Connect's paged answer.
func (f *fixture) paged(t *testing.T, path, role string) pagedAnswer {
	t.Helper()
	var p pagedAnswer
	f.do(t, "GET", path, role, "").must(t, &p)
	return p
}

// follow reads every page from path on, by the paging object's next
// links (full URLs, as connectapi follows them), and returns the results.
func (f *fixture) follow(t *testing.T, path, role string) ([]map[string]any, int) {
	t.Helper()
	var all []map[string]any
	pages := 0
	for path != "" {
		p := f.paged(t, path, role)
		pages++
		all = append(all, p.Results...)
		path = ""
		if p.Paging.Next != nil {
			path = strings.TrimPrefix(*p.Paging.Next, f.ts.URL)
		}
		if pages > 100 {
			t.Fatal("paging does not end")
		}
	}
	return all, pages
}

func fieldOf(rs []map[string]any, key string) []string {
	var out []string
	for _, r := range rs {
		v, _ := r[key].(string)
		out = append(out, v)
	}
	return out
}

func TestAuditLog(t *testing.T) {
	f := newFixture(t)
	guid := f.deployStatic(t, "publisher", "audited", "<p>hello</p>")
	f.do(t, "PATCH", "/__api__/v1/content/"+guid, "publisher", `{"title":"Audited report"}`)
	f.do(t, "POST", "/__api__/v1/content/"+guid+"/permissions", "publisher",
		`{"principal_guid":"`+f.users["viewer"].GUID+`","principal_type":"user","role":"viewer"}`)
	f.do(t, "PATCH", "/__api__/v1/content/"+guid+"/environment", "publisher", `[{"name":"SECRET","value":"s3cret-value"}]`)
	f.do(t, "POST", "/__api__/v1/groups", "administrator", `{"name":"auditors"}`)
	// A refused write is not an action taken.
	if a := f.do(t, "PATCH", "/__api__/v1/content/"+guid, "viewer", `{"title":"x"}`); a.status < 400 {
		t.Fatalf("viewer changed content: %d", a.status)
	}

	all := f.paged(t, "/__api__/v1/audit_logs?limit=500", "administrator")
	actions := fieldOf(all.Results, "action")
	for _, want := range []string{"add_application", "upload_bundle", "deploy_application", "update_application",
		"add_application_permission", "update_environment_variables", "add_group"} {
		if !slices.Contains(actions, want) {
			t.Errorf("audit log %v lacks %s", actions, want)
		}
	}
	if len(actions) != 7 {
		t.Errorf("audit log has %d entries %v, want 7 (the viewer's refused PATCH is not one)", len(actions), actions)
	}
	byAction := map[string]map[string]any{}
	for _, r := range all.Results {
		byAction[r["action"].(string)] = r
	}
	dep := byAction["deploy_application"]
	if dep["user_guid"] != f.users["publisher"].GUID || dep["user_description"] != "publisher1" || dep["user_id"] != jsonID(f.users["publisher"].ID) {
		t.Errorf("deploy entry's actor: %v", dep)
	}
	if d, _ := dep["event_description"].(string); d != `Deployed content "audited" (`+guid+`)` {
		t.Errorf("deploy entry names the content as %q", d)
	}
	if d, _ := byAction["update_application"]["event_description"].(string); !strings.Contains(d, `"Audited report" (`+guid+`)`) {
		t.Errorf("the settings change names the content as %q", d)
	}
	if tm, err := time.Parse(time.RFC3339, dep["time"].(string)); err != nil || time.Since(tm) > time.Minute {
		t.Errorf("deploy entry's time %v: %v", dep["time"], err)
	}
	if id, _ := dep["id"].(string); id == "" {
		t.Errorf("id %v is not a string", dep["id"])
	}
	if b, _ := json.Marshal(all); strings.Contains(string(b), "s3cret-value") {
		t.Error("an environment variable's value reached the audit log")
	}

	// Cursor paging: pages of 2 forward give the same entries in the same
	// order; descending gives them reversed; previous goes back.
	fwd, pages := f.follow(t, "/__api__/v1/audit_logs?limit=2", "administrator")
	if got, want := fieldOf(fwd, "id"), fieldOf(all.Results, "id"); !slices.Equal(got, want) || pages != 4 {
		t.Errorf("paged ids %v in %d pages, want %v in 4", got, pages, want)
	}
	desc, _ := f.follow(t, "/__api__/v1/audit_logs?limit=3&ascOrder=false", "administrator")
	rev := fieldOf(all.Results, "id")
	slices.Reverse(rev)
	if got := fieldOf(desc, "id"); !slices.Equal(got, rev) {
		t.Errorf("descending ids %v, want %v", got, rev)
	}
	p1 := f.paged(t, "/__api__/v1/audit_logs?limit=2", "administrator")
	if p1.Paging.Previous != nil || p1.Paging.Next == nil || *p1.Paging.Cursors.Next != fieldOf(all.Results, "id")[1] {
		t.Errorf("first page's paging: %+v", p1.Paging)
	}
	p2 := f.paged(t, strings.TrimPrefix(*p1.Paging.Next, f.ts.URL), "administrator")
	back := f.paged(t, strings.TrimPrefix(*p2.Paging.Previous, f.ts.URL), "administrator")
	if got := fieldOf(back.Results, "id"); !slices.Equal(got, fieldOf(p1.Results, "id")) {
		t.Errorf("previous of page 2 is %v, want page 1 %v", got, fieldOf(p1.Results, "id"))
	}
	last := f.paged(t, strings.TrimPrefix(p1.Paging.Last, f.ts.URL), "administrator")
	if got := fieldOf(last.Results, "id"); !slices.Equal(got, fieldOf(all.Results, "id")[5:]) {
		t.Errorf("last page %v, want %v", got, fieldOf(all.Results, "id")[5:])
	}

	f.run(t, []apiCase{
		{"viewer", "GET", "/__api__/v1/audit_logs", "viewer", "", http.StatusForbidden, ""},
		{"publisher", "GET", "/__api__/v1/audit_logs", "publisher", "", http.StatusForbidden, ""},
		{"anonymous", "GET", "/__api__/v1/audit_logs", "", "", http.StatusUnauthorized, ""},
		{"limit not a number", "GET", "/__api__/v1/audit_logs?limit=ten", "administrator", "", http.StatusBadRequest, "limit"},
		{"limit zero", "GET", "/__api__/v1/audit_logs?limit=0", "administrator", "", http.StatusBadRequest, "limit"},
		{"limit too large", "GET", "/__api__/v1/audit_logs?limit=501", "administrator", "", http.StatusBadRequest, "500"},
		{"bad cursor", "GET", "/__api__/v1/audit_logs?next=not-a-cursor", "administrator", "", http.StatusBadRequest, "next"},
		{"negative cursor", "GET", "/__api__/v1/audit_logs?previous=-4", "administrator", "", http.StatusBadRequest, "previous"},
		{"both cursors", "GET", "/__api__/v1/audit_logs?next=1&previous=3", "administrator", "", http.StatusBadRequest, "not both"},
		{"bad order", "GET", "/__api__/v1/audit_logs?ascOrder=sideways", "administrator", "", http.StatusBadRequest, "ascOrder"},
		{"cursor past the end", "GET", "/__api__/v1/audit_logs?next=999999", "administrator", "", http.StatusOK, `"results":[]`},
	})
}

func jsonID(id int64) string {
	b, _ := json.Marshal(id)
	return string(b)
}

func TestUsageVisits(t *testing.T) {
	f := newFixture(t)
	other := f.addUser(t, "publisher2", "publisher")
	mine := f.deployStatic(t, "publisher", "mine", "<p>mine</p>")
	theirs := f.deployStatic(t, "publisher2", "theirs", "<p>theirs</p>")
	before := time.Now().UTC().Add(-time.Second).Format(time.RFC3339)
	for _, p := range []string{"/", "/index.html", "/"} {
		if a := f.raw(t, "GET", "/content/"+mine+p, "publisher", nil); a.status != http.StatusOK {
			t.Fatalf("GET %s: %d", p, a.status)
		}
	}
	f.raw(t, "GET", "/content/"+mine+"/style.css", "publisher", nil) // an asset, not a visit
	f.raw(t, "HEAD", "/content/"+mine+"/", "publisher", nil)         // not a view
	f.raw(t, "GET", "/content/"+theirs+"/", "publisher2", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f.usage.Flush(ctx)

	all := f.paged(t, "/__api__/v1/instrumentation/content/visits?limit=500", "administrator")
	if len(all.Results) != 4 {
		t.Fatalf("visits %v, want 4", all.Results)
	}
	v := all.Results[0]
	if v["content_guid"] != mine || v["user_guid"] != f.users["publisher"].GUID || v["data_version"] != float64(1) || v["bundle_id"] == nil || v["path"] != "/" {
		t.Errorf("visit %v", v)
	}
	if _, err := time.Parse(time.RFC3339, v["time"].(string)); err != nil {
		t.Errorf("time: %v", err)
	}
	// A publisher sees the visits of their own content only.
	own := f.paged(t, "/__api__/v1/instrumentation/content/visits?limit=500", "publisher2")
	if got := fieldOf(own.Results, "content_guid"); !slices.Equal(got, []string{theirs}) {
		t.Errorf("publisher2 sees visits of %v, want only %s (user %s)", got, theirs, other.Username)
	}
	// Connect's filters.
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"content_guid=" + mine, 3},
		{"content_guid=" + mine + "|" + theirs, 4},
		{"from=" + before, 4},
		{"from=2099-01-01T00:00:00Z", 0},
		{"to=2000-01-01T00:00:00Z", 0},
		{"min_data_version=2", 0},
		{"limit=1&asc_order=false", 1},
	} {
		if got := f.paged(t, "/__api__/v1/instrumentation/content/visits?"+tc.query, "administrator"); len(got.Results) != tc.want {
			t.Errorf("?%s: %d visits, want %d", tc.query, len(got.Results), tc.want)
		}
	}
	paged, pages := f.follow(t, "/__api__/v1/instrumentation/content/visits?limit=1&content_guid="+mine, "administrator")
	if len(paged) != 3 || pages != 3 {
		t.Errorf("paging by 1: %d visits in %d pages, want 3 in 3", len(paged), pages)
	}

	f.run(t, []apiCase{
		{"viewer", "GET", "/__api__/v1/instrumentation/content/visits", "viewer", "", http.StatusForbidden, ""},
		{"viewer shiny", "GET", "/__api__/v1/instrumentation/shiny/usage", "viewer", "", http.StatusForbidden, ""},
		{"anonymous", "GET", "/__api__/v1/instrumentation/content/visits", "", "", http.StatusUnauthorized, ""},
		{"bad from", "GET", "/__api__/v1/instrumentation/content/visits?from=yesterday", "administrator", "", http.StatusBadRequest, "from"},
		{"bad to", "GET", "/__api__/v1/instrumentation/shiny/usage?to=2024-13-01", "administrator", "", http.StatusBadRequest, "to"},
		{"bad data version", "GET", "/__api__/v1/instrumentation/content/visits?min_data_version=new", "administrator", "", http.StatusBadRequest, "min_data_version"},
		{"bad limit", "GET", "/__api__/v1/instrumentation/shiny/usage?limit=-1", "administrator", "", http.StatusBadRequest, "limit"},
		{"bad cursor", "GET", "/__api__/v1/instrumentation/content/visits?previous=abc", "administrator", "", http.StatusBadRequest, "previous"},
		{"bad order", "GET", "/__api__/v1/instrumentation/shiny/usage?asc_order=up", "administrator", "", http.StatusBadRequest, "asc_order"},
	})
}

// TestUsageShiny opens a Shiny app's WebSocket through the proxy, as a
// browser does, and reads the session back with its start and end.
func TestUsageShiny(t *testing.T) {
	if err := exec.Command("Rscript", "-e", "library(shiny)").Run(); err != nil {
		t.Skip("R's shiny is not installed here: ", err)
	}
	f := newFixture(t)
	guid := f.deployBundle(t, "publisher", "app", exampleBundle(t, "shiny"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if a := f.raw(t, "GET", "/content/"+guid+"/", "publisher", nil); a.status != http.StatusOK {
		t.Fatalf("app page: %d %s", a.status, a.body)
	}
	h := http.Header{"Authorization": {"Key " + f.keys["publisher"]}}
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(f.ts.URL, "http")+"/content/"+guid+"/websocket/", &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		t.Fatalf("open the app's WebSocket: %v", err)
	}
	f.usage.Flush(ctx)
	open := f.paged(t, "/__api__/v1/instrumentation/shiny/usage", "administrator")
	if len(open.Results) != 1 || open.Results[0]["ended"] != nil || open.Results[0]["content_guid"] != guid || open.Results[0]["user_guid"] != f.users["publisher"].GUID {
		t.Fatalf("open session: %v", open.Results)
	}
	c.Close(websocket.StatusNormalClosure, "")
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.usage.Flush(ctx)
		got := f.paged(t, "/__api__/v1/instrumentation/shiny/usage?content_guid="+guid, "publisher")
		if len(got.Results) == 1 && got.Results[0]["ended"] != nil {
			started, _ := time.Parse(time.RFC3339, got.Results[0]["started"].(string))
			ended, _ := time.Parse(time.RFC3339, got.Results[0]["ended"].(string))
			if ended.Before(started) {
				t.Errorf("session ended %v before it started %v", ended, started)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("session not ended 10 s after the WebSocket closed: %v", got.Results)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The static visits list does not count app sessions.
	if v := f.paged(t, "/__api__/v1/instrumentation/content/visits", "administrator"); len(v.Results) != 0 {
		t.Errorf("visits of an app: %v", v.Results)
	}
}

// TestAuditedUploadsTakeLargeBundles: the audit record wrapped around the
// upload routes once hid their body policy, so every bundle over the JSON
// limit (4 MiB) was refused with 413. A 6 MiB bundle of random bytes (it
// does not compress) uploads through both routes and is audited.
func TestAuditedUploadsTakeLargeBundles(t *testing.T) {
	f := newFixture(t)
	noise := make([]byte, 6<<20)
	rand.Read(noise)
	bundle := bundleOf(t, "static", "", map[string]string{"index.html": "<p>big</p>", "noise.bin": string(noise)})
	if len(bundle) <= web.MaxJSONBody {
		t.Fatalf("bundle of %d bytes is not over the JSON limit", len(bundle))
	}
	var c struct{ GUID string }
	f.do(t, "POST", "/__api__/v1/content", "publisher", `{"name":"large"}`).must(t, &c)
	var b struct{ ID string }
	f.raw(t, "POST", "/__api__/v1/content/"+c.GUID+"/bundles", "publisher", bundle).must(t, &b)
	var old struct{ ID int64 }
	f.do(t, "POST", "/__api__/applications", "publisher", `{"name":"large-old"}`).must(t, &old)
	f.raw(t, "POST", "/__api__/applications/"+strconv.FormatInt(old.ID, 10)+"/upload", "publisher", bundle).must(t, nil)
	logs, _ := f.follow(t, "/__api__/v1/audit_logs?limit=50", "administrator")
	uploads := 0
	for _, l := range logs {
		if l["action"] == "upload_bundle" {
			uploads++
		}
	}
	if uploads != 2 {
		t.Errorf("%d upload_bundle audit records, want 2: %v", uploads, logs)
	}
}
