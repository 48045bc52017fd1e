package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dais-dev/dais/internal/shinytest"
)

// TestShinySessionsPinned: a Shiny app with two processes in the container
// (min_processes 2, max_processes 2), 20 sessions open at once through
// dais's own port, as browsers open them: the page, then the WebSocket
// where shiny.js opens it for that page, then each session's download
// link (session/<token>/download/dl) five times. Every download answers
// 200 with the process and the session that started it, and the sessions
// are spread over both processes. Before sessions were pinned, the proxy
// sent each request to the least busy process: a session's downloads
// answered 404 whenever it was the other one (server/content
// TestPinnedShinySessions).
func TestShinySessionsPinned(t *testing.T) {
	c, key := deployServer(t)
	var content struct {
		GUID string `json:"guid"`
	}
	apiJSON(t, c, "POST", "/__api__/v1/content", key, strings.NewReader(`{"name":"pinned","title":"pinned","access_type":"all"}`), &content)
	apiJSON(t, c, "PATCH", "/__api__/v1/content/"+content.GUID, key, strings.NewReader(`{"min_processes":2,"max_processes":2}`), nil)
	var b struct {
		ID string `json:"id"`
	}
	apiJSON(t, c, "POST", "/__api__/v1/content/"+content.GUID+"/bundles", key, bytes.NewReader(bundle(t, "testdata/shiny-pinned")), &b)
	var d struct {
		TaskID string `json:"task_id"`
	}
	apiJSON(t, c, "POST", "/__api__/v1/content/"+content.GUID+"/deploy", key, strings.NewReader(`{"bundle_id":"`+b.ID+`"}`), &d)
	for first, deadline := 0, time.Now().Add(5*time.Minute); ; {
		var tk v1Task
		apiJSON(t, c, "GET", "/__api__/v1/tasks/"+d.TaskID+"?wait=10&first="+strconv.Itoa(first), key, nil, &tk)
		first = tk.Last
		if tk.Finished {
			if tk.Code != 0 {
				t.Fatalf("deploy: %s", tk.Error)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("deploy not finished in 5 minutes")
		}
	}

	const sessions, downloads = 20, 5
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	client := &http.Client{Timeout: 60 * time.Second}
	type session struct {
		page     *shinytest.Page
		pid, dl  string
		token    string
		answered int
	}
	var all []*session
	pids := map[string]int{}
	start := time.Now()
	for i := range sessions {
		page, err := shinytest.LoadPage(ctx, client, c.URL("/content/"+content.GUID+"/"), nil)
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		s := shinytest.Dial(t, ctx, page.WebSocket(), nil)
		s.Detail = func() string { return tail(c.Logs(), 3000) }
		s.Send(t, "init", shinytest.Init(page.URL.Path, nil, "pid", "dl"))
		s.Expect(t, `"pid":"process `, `"dl":"session/`)
		x := &session{page: page}
		json.Unmarshal(s.Value("pid"), &x.pid)
		json.Unmarshal(s.Value("dl"), &x.dl)
		x.token = strings.Split(x.dl, "/")[1]
		pids[x.pid]++
		all = append(all, x)
	}
	if len(pids) != 2 {
		t.Fatalf("the %d sessions are on %v; want both processes", sessions, pids)
	}
	failed := 0
	for i, x := range all {
		for n := range downloads {
			u := x.page.Resolve(x.dl)
			resp, err := client.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			want := x.pid + " session " + x.token
			if got := strings.TrimSpace(string(body)); resp.StatusCode != http.StatusOK || got != want {
				failed++
				t.Errorf("session %d (%s), download %d, GET %s: %s %q; want 200 %q", i, x.pid, n, u, resp.Status, got, want)
				continue
			}
			x.answered++
		}
	}
	t.Logf("%d sessions on two processes (%v), %d downloads each: %d failed, in %s; the first page's base: %s",
		sessions, pids, downloads, failed, time.Since(start).Round(time.Millisecond), all[0].page.Base)
}
