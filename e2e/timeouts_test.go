package e2e

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func init() {
	addCase(batteryCase{Name: "a hung app (accepts a request, never answers) with connection_timeout 3 s set through the v1 API: 504 in time, said in the log; the server and other content answer meanwhile",
		Issue: "deadline", Run: testHungApp})
}

// hungApp accepts /hang and never answers it (a deadlock, a lost lock,
// a query that never returns); /pid answers.
const hungApp = `import os, time
from flask import Flask

app = Flask(__name__)


@app.get("/hang")
def hang():
    time.sleep(10 ** 6)
    return "never"


@app.get("/pid")
def pid():
    return str(os.getpid())
`

// testHungApp: with Connect's per-content connection_timeout (3 s) set
// through the v1 API, a request to an app that never answers gets 504
// about 3 s later, naming the setting, and the server log names the
// content; /__ping__ and another owner's app answer throughout. Before
// it, the API refused the field and the request waited as long as its
// client did.
func testHungApp(t *testing.T, r *row) {
	c, alice := deployServer(t)
	bob := publisherKey(t, c, "bob", "bob-password-e2e")
	hung, tk, out := deployV1(t, c, alice, "hung", bundle(t, flaskDir(t, hungApp)))
	if tk.Code != 0 {
		t.Fatalf("deploy of the hung app failed: %s\n%s", tk.Error, out)
	}
	other, tk, out := deployV1(t, c, bob, "other", bundle(t, flaskDir(t, secretApp)))
	if tk.Code != 0 {
		t.Fatalf("deploy of bob's app failed: %s\n%s", tk.Error, out)
	}

	// The server's defaults are Connect's (1 h), and reported so.
	var sched map[string]any
	apiJSON(t, c, "GET", "/__api__/server_settings/scheduler", alice, nil, &sched)
	if sched["connection_timeout"] != float64(3600) || sched["read_timeout"] != float64(3600) {
		t.Errorf("server_settings/scheduler: connection_timeout %v, read_timeout %v; want 3600, 3600", sched["connection_timeout"], sched["read_timeout"])
	}
	var shown map[string]any
	apiJSON(t, c, "PATCH", "/__api__/v1/content/"+hung, alice, strings.NewReader(`{"connection_timeout":3}`), &shown)
	if shown["connection_timeout"] != float64(3) || shown["read_timeout"] != nil {
		t.Fatalf("PATCH connection_timeout answered connection_timeout %v, read_timeout %v", shown["connection_timeout"], shown["read_timeout"])
	}
	if code, body := api(t, c, "PATCH", "/__api__/v1/content/"+hung, alice, strings.NewReader(`{"read_timeout":-5}`)); code != http.StatusBadRequest {
		t.Errorf("read_timeout -5: %d %s; want 400", code, body)
	}
	apiJSON(t, c, "GET", "/__api__/v1/content/"+hung, alice, nil, &shown)
	if shown["connection_timeout"] != float64(3) {
		t.Errorf("GET after PATCH: connection_timeout %v, want 3", shown["connection_timeout"])
	}
	if code, body := getWithKey(t, c, "/content/"+hung+"/pid", alice); code != http.StatusOK {
		t.Fatalf("the hung app's /pid: %d %q", code, body)
	}

	// Others meanwhile: /__ping__ and bob's app, every 200 ms.
	stop := make(chan struct{})
	var checks, failed atomic.Int64
	var slowest atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		client := &http.Client{Timeout: 10 * time.Second}
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			for _, path := range []string{"/__ping__", "/content/" + other + "/secret"} {
				req, _ := http.NewRequest("GET", c.URL(path), nil)
				req.Header.Set("Authorization", "Key "+bob)
				start := time.Now()
				resp, err := client.Do(req)
				checks.Add(1)
				if err != nil || resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if d := int64(time.Since(start)); d > slowest.Load() {
					slowest.Store(d)
				}
			}
		}
	}()

	client := &http.Client{Timeout: 60 * time.Second}
	req, _ := http.NewRequest("GET", c.URL("/content/"+hung+"/hang"), nil)
	req.Header.Set("Authorization", "Key "+alice)
	start := time.Now()
	resp, err := client.Do(req)
	took := time.Since(start)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("the hung request: no answer after %s (%v); want 504 after the 3 s connection_timeout", took.Round(time.Millisecond), err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(string(body), "connection_timeout") {
		t.Errorf("the hung request: %d %q; want 504 naming connection_timeout", resp.StatusCode, body)
	}
	// Generous above (a loaded CI host), never below the setting.
	if took < 3*time.Second || took > 20*time.Second {
		t.Errorf("504 after %s; want it about 3 s after the request (connection_timeout)", took.Round(time.Millisecond))
	}
	if failed.Load() != 0 || checks.Load() == 0 {
		t.Errorf("while the app hung: %d of %d checks of /__ping__ and bob's app failed", failed.Load(), checks.Load())
	}
	logged := false
	for _, line := range strings.Split(c.LogsWith("proxied request to content timed out", 10*time.Second), "\n") {
		if strings.Contains(line, "proxied request to content timed out") && strings.Contains(line, hung) && strings.Contains(line, "connection_timeout") {
			logged = true
		}
	}
	if !logged {
		t.Errorf("no server log line naming the content and connection_timeout; log:\n%s", tail(c.Logs(), 20))
	}
	// The app's other requests still work (a new process or a free worker).
	code, _ := getWithKey(t, c, "/content/"+hung+"/pid", alice)
	r.Figure(t, "%d %s after %s with connection_timeout 3 s; logged: %v; meanwhile %d of %d checks of /__ping__ and bob's app answered 200, slowest %s; then /pid %d",
		resp.StatusCode, http.StatusText(resp.StatusCode), took.Round(100*time.Millisecond), logged,
		checks.Load()-failed.Load(), checks.Load(), time.Duration(slowest.Load()).Round(time.Millisecond), code)
}
