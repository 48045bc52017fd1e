package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
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
	guid := deployPinned(t, c, key)
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
		page, err := shinytest.LoadPage(ctx, client, c.URL("/content/"+guid+"/"), nil)
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

// deployPinned deploys testdata/shiny-pinned through c with min_processes
// and max_processes 2 (set before the deploy, so its first pool has two)
// and returns its guid.
func deployPinned(t *testing.T, c *Container, key string) string {
	t.Helper()
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
			return content.GUID
		}
		if time.Now().After(deadline) {
			t.Fatal("deploy not finished in 5 minutes")
		}
	}
}

// onNode is u with its scheme and host those of base (another node's).
func onNode(t *testing.T, u, base string) string {
	t.Helper()
	x, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	b, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	x.Host = b.Host
	if strings.HasPrefix(x.Scheme, "ws") {
		x.Scheme = strings.Replace(b.Scheme, "http", "ws", 1)
	} else {
		x.Scheme = b.Scheme
	}
	return x.String()
}

// TestHAPinnedSessions: the app with two processes a node on the ha
// profile's two nodes, each request sent to a node directly, as a load
// balancer without stickiness may: 10 sessions whose page comes from one
// node, whose WebSocket is opened on the other, and whose download link
// is fetched 6 times, alternately through each node. Every download
// answers 200 with the session's own process: a node that has no
// process of the worker the URL names forwards the request (and the
// WebSocket) to the node that has it.
func TestHAPinnedSessions(t *testing.T) {
	h := startHA(t)
	guid := deployPinned(t, h.lb, h.key)
	nodes := []string{h.nodeURL("dais1", ""), h.nodeURL("dais2", "")}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	client := &http.Client{Timeout: 60 * time.Second}
	failed, total := 0, 0
	procs := map[string]bool{}
	for i := range 10 {
		home, other := nodes[i%2], nodes[(i+1)%2]
		page, err := shinytest.LoadPage(ctx, client, home+"/content/"+guid+"/", nil)
		if err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
		s := shinytest.Dial(t, ctx, onNode(t, page.WebSocket(), other), nil)
		s.Send(t, "init", shinytest.Init(page.URL.Path, nil, "pid", "dl"))
		s.Expect(t, `"pid":"process `, `"dl":"session/`)
		var proc, dl string
		json.Unmarshal(s.Value("pid"), &proc)
		json.Unmarshal(s.Value("dl"), &dl)
		procs[proc] = true
		want := proc + " session " + strings.Split(dl, "/")[1]
		for n := range 6 {
			u := onNode(t, page.Resolve(dl), nodes[n%2])
			total++
			resp, err := client.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if got := strings.TrimSpace(string(body)); resp.StatusCode != http.StatusOK || got != want {
				failed++
				t.Errorf("session %d (page from %s, WebSocket through %s), download %d, GET %s: %s %q; want 200 %q", i, home, other, n, u, resp.Status, got, want)
			}
		}
		s.Close()
	}
	t.Logf("10 sessions, page and WebSocket on different nodes, on %d processes: %d of %d downloads through either node failed", len(procs), failed, total)
	if len(procs) < 2 {
		t.Errorf("every session on one process %v: the test needs both nodes' processes", procs)
	}
}
