package schedule_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/schedule"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/store/storetest"
	"github.com/dais-dev/dais/server/web"
)

// TestAPI drives GET/PUT/DELETE .../schedule through the web server, with
// the content lookup of the deployment side replaced by a small fake that
// finds the content by guid (every caller may edit).
func TestAPI(t *testing.T) {
	ctx := context.Background()
	st := storetest.SQLite(t)
	doc := newDoc(t, st)
	app := &store.Content{Name: "app", OwnerID: doc.OwnerID, AccessType: store.AccessAll, AppMode: "shiny"}
	if err := st.CreateContent(ctx, app); err != nil {
		t.Fatal(err)
	}
	key, rec, err := web.NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	rec.UserID, rec.Name = doc.OwnerID, "test"
	if err := st.CreateAPIKey(ctx, &rec); err != nil {
		t.Fatal(err)
	}
	ws, err := web.New(web.Options{Config: config.Defaults(), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	sch, err := schedule.New(schedule.Options{Store: st, Render: func(context.Context, int64) (string, error) { return "t", nil }})
	if err != nil {
		t.Fatal(err)
	}
	sch.Register(ws, schedule.Access{
		Content: func(r *http.Request, edit bool) (*store.Content, *store.User, error) {
			c, err := st.ContentByGUID(r.Context(), r.PathValue("guid"))
			if errors.Is(err, store.ErrNotFound) {
				return nil, nil, &web.RequestError{Status: http.StatusNotFound, Msg: "no content"}
			}
			return c, nil, err
		},
		WriteErr: func(w http.ResponseWriter, r *http.Request, err error) { web.WriteRequestError(w, err) },
	})
	srv := httptest.NewServer(ws)
	defer srv.Close()

	tests := []struct {
		name       string
		method     string
		guid       string
		body       string
		wantStatus int
		wantBody   string
	}{
		{"none yet", "GET", doc.GUID, "", 404, "has no schedule"},
		{"bad cron", "PUT", doc.GUID, `{"cron":"every day"}`, 400, "cron expression"},
		{"bad zone", "PUT", doc.GUID, `{"cron":"0 6 * * *","timezone":"Nowhere/City"}`, 400, "IANA"},
		{"neither", "PUT", doc.GUID, `{}`, 400, "needs a cron expression"},
		{"not a document", "PUT", app.GUID, `{"interval_seconds":3600}`, 400, "not a document"},
		{"no content", "PUT", "nope", `{"interval_seconds":3600}`, 404, "no content"},
		{"set cron", "PUT", doc.GUID, `{"cron":"0 6 * * *","timezone":"Europe/Berlin"}`, 200, `"timezone":"Europe/Berlin"`},
		{"read it", "GET", doc.GUID, "", 200, `"cron":"0 6 * * *"`},
		{"replace with interval", "PUT", doc.GUID, `{"interval_seconds":7200,"enabled":false}`, 200, `"enabled":false`},
		{"read again", "GET", doc.GUID, "", 200, `"interval_seconds":7200`},
		{"delete", "DELETE", doc.GUID, "", 200, "{}"},
		{"gone", "GET", doc.GUID, "", 404, "has no schedule"},
		{"delete again", "DELETE", doc.GUID, "", 404, "has no schedule"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req, _ := http.NewRequest(tt.method, srv.URL+"/__api__/v1/content/"+tt.guid+"/schedule", body)
			req.Header.Set("Authorization", "Key "+key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || !strings.Contains(string(b), tt.wantBody) {
				t.Fatalf("%s = %d %s, want %d with %q", tt.method, resp.StatusCode, b, tt.wantStatus, tt.wantBody)
			}
		})
	}

	// One schedule per content, whatever the number of PUTs.
	scheds, err := st.ListSchedules(ctx, doc.ID)
	if err != nil || len(scheds) != 0 {
		t.Fatalf("schedules after DELETE: %v %+v", err, scheds)
	}
	for range 3 {
		req, _ := http.NewRequest("PUT", srv.URL+"/__api__/v1/content/"+doc.GUID+"/schedule", strings.NewReader(`{"cron":"*/5 * * * *"}`))
		req.Header.Set("Authorization", "Key "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			NextRun time.Time `json:"next_run"`
		}
		json.NewDecoder(resp.Body).Decode(&v)
		resp.Body.Close()
		if !v.NextRun.After(time.Now()) || v.NextRun.After(time.Now().Add(5*time.Minute)) {
			t.Errorf("next_run %s, want within 5 minutes", v.NextRun)
		}
	}
	if scheds, _ := st.ListSchedules(ctx, doc.ID); len(scheds) != 1 {
		t.Errorf("%d schedules after three PUTs, want 1", len(scheds))
	}
}
