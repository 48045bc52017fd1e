package process

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestCutWorker(t *testing.T) {
	tests := []struct {
		path, id, rest string
		ok             bool
	}{
		{"/_w_811c9dc5e0b6db8e/session/x/download/dl", "811c9dc5e0b6db8e", "/session/x/download/dl", true},
		{"/_w_abc/", "abc", "/", true},
		{"/_w_abc", "abc", "", true},
		{"/_w_/x", "", "", false},
		{"/_w_ABC/x", "", "", false}, // not the form of an id: the app's own path
		{"/_w_a.b/x", "", "", false},
		{"/x/_w_abc/", "", "", false}, // only the first segment
		{"/", "", "", false},
	}
	for _, tt := range tests {
		id, rest, ok := cutWorker(tt.path)
		if id != tt.id || rest != tt.rest || ok != tt.ok {
			t.Errorf("cutWorker(%q) = %q, %q, %v; want %q, %q, %v", tt.path, id, rest, ok, tt.id, tt.rest, tt.ok)
		}
	}
}

func TestInsertBase(t *testing.T) {
	tests := []struct {
		name, page string
		ok         bool
		starts     string
	}{
		{"shiny", "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\"/>", true, "<!DOCTYPE html>\n<html>\n<head><base href=\"_w_1/\"><script>"},
		{"attributes and case", "<HTML><HEAD lang=\"en\"><TITLE>", true, "<HTML><HEAD lang=\"en\"><base href=\"_w_1/\"><script>"},
		{"no head", "<p>fragment</p>", false, "<p>fragment</p>"},
		{"header is not head", "<html><body><header>x</header>", false, "<html><body><header>"},
		{"a base of its own", "<html><head><BASE href=\"/x/\"></head>", false, "<html><head><BASE"},
		{"a base later in the body is not the head's", "<html><head><title>t</title></head><body><base href=x>", true, "<html><head><base href=\"_w_1/\">"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, ok := insertBase([]byte(tt.page), "_w_1/")
			if ok != tt.ok || !strings.HasPrefix(string(out), tt.starts) {
				t.Errorf("insertBase = %v %q; want %v, starting %q", ok, out, tt.ok, tt.starts)
			}
			if !ok && string(out) != tt.page {
				t.Errorf("page changed though not pinned: %q", out)
			}
		})
	}
}

var baseRE = regexp.MustCompile(`<base href="([^"]*)">`)

// pinGet GETs url and returns the status, the body, and the answering
// process's pid (from the helper app's JSON or page).
func pinGet(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func pidOf(t *testing.T, body string) float64 {
	t.Helper()
	var e struct{ Pid float64 }
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("%v: %q", err, body)
	}
	return e.Pid
}

// TestProxyPinsWorkers: a pinned pool of two processes. A top-level page
// names the process that served it in its <base href>; requests below
// _w_<worker>/ reach that process whatever its load, with the segment
// removed; a worker that is gone is given one process for good; a pool a
// redeploy replaced still serves its workers; an unpinned pool's pages
// are left as they are.
func TestProxyPinsWorkers(t *testing.T) {
	px, srv := proxyServer(t, "")
	pool := readyPool(t, Options{Min: 2, Max: 2, Pin: true})
	px.Set("abc", pool)
	base := srv.URL + "/content/abc/"

	code, page, h := pinGet(t, base+"page.html")
	m := baseRE.FindStringSubmatch(page)
	if code != 200 || m == nil || !strings.Contains(page, "createSocket") {
		t.Fatalf("page: %d %q; want a <base href> and the WebSocket script", code, page)
	}
	if h.Get("ETag") != "" || h.Get("Cache-Control") != "no-store" || h.Get("Content-Length") != "" && h.Get("Content-Length") != strconv.Itoa(len(page)) {
		t.Errorf("page headers: %v", h)
	}
	href := m[1]
	if !regexp.MustCompile(`^_w_` + WorkerPattern + `/$`).MatchString(href) {
		t.Fatalf("base href %q", href)
	}
	// Every request below the worker reaches the process that served the
	// page, also while it is the busier one: hold a slow request on it.
	_, first, _ := pinGet(t, base+href+"x")
	pid := pidOf(t, first)
	done := make(chan struct{})
	go func() { pinGet(t, base+href+"slow?ms=1500"); close(done) }()
	for i := range 10 {
		code, body, _ := pinGet(t, base+href+"session/tok/download/dl?w=")
		var e struct {
			Pid   float64
			Path  string
			Query string
		}
		json.Unmarshal([]byte(body), &e)
		if code != 200 || e.Pid != pid || e.Path != "/session/tok/download/dl" || e.Query != "w=" {
			t.Fatalf("request %d below %s: %d %s; want pid %v, path /session/tok/download/dl", i, href, code, body, pid)
		}
	}
	// The least busy process (the other one) still takes new pages.
	if _, other, _ := pinGet(t, base+"x"); pidOf(t, other) == pid {
		t.Errorf("a request with no worker went to the busy process %v", pid)
	}
	<-done

	// A page loaded below a worker names its worker relative to itself.
	_, again, _ := pinGet(t, base+href+"page.html")
	if m := baseRE.FindStringSubmatch(again); m == nil || !strings.HasPrefix(m[1], "../_w_") {
		t.Errorf("page below a worker: base %q; want ../_w_<worker>/", m)
	}
	// A worker id no process has: one process takes it, for every request.
	gone := map[float64]bool{}
	for range 6 {
		_, body, _ := pinGet(t, base+"_w_0000000000000000/x")
		gone[pidOf(t, body)] = true
	}
	if len(gone) != 1 {
		t.Errorf("requests for a gone worker went to processes %v; want one", gone)
	}
	// A path that only looks like a worker's is the app's.
	if _, body, _ := pinGet(t, base+"_w_NOT/x"); !strings.Contains(body, `"path":"/_w_NOT/x"`) {
		t.Errorf("/_w_NOT/x reached the app as %s", body)
	}
	if code, _, _ := pinGet(t, base+href[:len(href)-1]); code != 200 {
		t.Errorf("the worker without its slash: %d; want a redirect to it with the slash", code)
	}

	// A redeploy: the old pool's worker keeps answering its requests.
	next := readyPool(t, Options{Min: 1, Max: 1, Pin: true})
	px.Set("abc", next)
	if _, body, _ := pinGet(t, base+href+"x"); pidOf(t, body) != pid {
		t.Errorf("after the swap, the old worker's request went to pid %v; want %v", pidOf(t, body), pid)
	}
	_, fresh, _ := pinGet(t, base+"x")
	if pidOf(t, fresh) == pid {
		t.Errorf("a request with no worker went to the old pool")
	}

	// Unpinned (an API): pages pass unchanged, _w_ paths are the app's.
	px.Set("api", readyPool(t, Options{Min: 1, Max: 1}))
	if _, p, _ := pinGet(t, srv.URL+"/content/api/page.html"); strings.Contains(p, "<base") {
		t.Errorf("an unpinned app's page got a base: %q", p)
	}
}

// TestProxyForward: a node forwards a session's request, WebSocket
// included, to the node at an address, marked as forwarded; when that
// node cannot be reached, the request is served here.
func TestProxyForward(t *testing.T) {
	pxA, srvA := proxyServer(t, "")
	pxA.Set("abc", readyPool(t, Options{Min: 1, Max: 1, Pin: true}))
	addrA := strings.TrimPrefix(srvA.URL, "http://")
	pxB := NewProxy(quietLogger(), "")
	var seen []string
	to := addrA
	srvB := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pxB.Forward(w, r, to, "nodeB", func(w http.ResponseWriter, r *http.Request) {
			seen = append(seen, r.Header.Get(ForwardedByHeader))
			io.WriteString(w, "served here")
		})
	}))
	t.Cleanup(srvB.Close)

	code, body, _ := pinGet(t, srvB.URL+"/content/abc/x?q=1")
	var e struct{ Path, Query, Rsc string }
	json.Unmarshal([]byte(body), &e)
	if code != 200 || e.Path != "/x" || e.Query != "q=1" || e.Rsc != srvB.URL+"/content/abc/x?q=1" {
		t.Errorf("forwarded GET: %d %s; want the app's answer, with the public URL of node B's request", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srvB.URL, "http")+"/content/abc/ws", nil)
	if err != nil {
		t.Fatalf("WebSocket through the forward: %v", err)
	}
	defer c.CloseNow()
	c.Write(ctx, websocket.MessageText, []byte("hi"))
	if _, b, err := c.Read(ctx); err != nil || string(b) != "echo: hi" {
		t.Errorf("WebSocket round trip: %q %v", b, err)
	}

	to = "127.0.0.1:1" // nothing listens
	if code, body, _ := pinGet(t, srvB.URL+"/content/abc/x"); code != 200 || body != "served here" || len(seen) != 1 || seen[0] != "nodeB" {
		t.Errorf("unreachable node: %d %q, fallback saw %q; want it served here, marked forwarded", code, body, seen)
	}
}
