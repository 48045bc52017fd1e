package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dais-dev/dais/internal/shinytest"
)

// What issue 23 found holding before its fixes, kept in the battery so a
// later change cannot make it worse unseen: SQLite intact after kills, a
// killed deploy's recovery, 20 concurrent deploys, 300 Shiny WebSockets
// without an fd leak.
func init() {
	addCase(batteryCase{Name: "docker kill during a deploy: recovery, the previous version served, SQLite intact", Issue: "23", Heavy: true, Run: testKilledDeploy})
	addCase(batteryCase{Name: "20 concurrent deploys", Issue: "23", Heavy: true, Run: testConcurrentDeploys})
	addCase(batteryCase{Name: "300 Shiny WebSockets at once, then closed: no fd leak", Issue: "23", Heavy: true, Run: testShinyWebSockets})
}

// integrity runs SQLite's integrity_check on the database of a stopped
// container.
func integrity(t *testing.T, c *Container) error {
	t.Helper()
	st := openStore(t, c)
	defer st.Close()
	return st.(interface{ IntegrityCheck(context.Context) error }).IntegrityCheck(context.Background())
}

// testKilledDeploy: a deploy killed mid-way (during its render) leaves the
// previous version serving after the next start, its task failed, and the
// database intact.
func testKilledDeploy(t *testing.T, r *row) {
	c, key := lifecycleServer(t)
	guid, tk, out := deployV1(t, c, key, "doc", bundle(t, slowDoc(t, "1")))
	if tk.Code != 0 {
		t.Fatalf("deploy v1 failed: %s\n%s", tk.Error, out)
	}
	mustServe(t, c, guid, "lifecycle version 1 slept 0")
	setEnv(t, c, key, guid, "E2E_SLEEP", "600")
	var b struct {
		ID string `json:"id"`
	}
	apiJSON(t, c, "POST", "/__api__/v1/content/"+guid+"/bundles", key, bytes.NewReader(bundle(t, slowDoc(t, "2"))), &b)
	var d struct {
		TaskID string `json:"task_id"`
	}
	apiJSON(t, c, "POST", "/__api__/v1/content/"+guid+"/deploy", key, strings.NewReader(`{"bundle_id":"`+b.ID+`"}`), &d)
	waitOutput(t, c, key, d.TaskID, "Rendering", 3*time.Minute)
	c.Kill("KILL")
	c.WaitExit(time.Minute)
	err := integrity(t, c)
	if err != nil {
		t.Errorf("SQLite integrity after the kill: %v", err)
	}
	start := time.Now()
	c.Start()
	ready := c.WaitHTTP("/__ping__", http.StatusOK, startBound)
	mustServe(t, c, guid, "lifecycle version 1 slept 0")
	served := time.Since(start)
	tk = task(t, c, key, d.TaskID)
	if !tk.Finished || tk.Code == 0 {
		t.Errorf("the killed deploy's task: %+v, want finished and failed", tk)
	}
	r.Figure(t, "integrity_check after the kill: %s", okOr(err))
	r.Figure(t, "docker start -> /__ping__ 200 in %s, version 1 served %s after docker start; the killed deploy's task: %q",
		ready.Round(10*time.Millisecond), served.Round(10*time.Millisecond), tk.Error)
}

func okOr(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// deployNoFatal is deployV1 for goroutines: it returns an error instead of
// failing the test.
func deployNoFatal(c *Container, base, key, name string, archive []byte) (string, v1Task, error) {
	cl := &http.Client{Timeout: 5 * time.Minute}
	call := func(method, path string, body io.Reader, v any) error {
		req, _ := http.NewRequest(method, base+path, body)
		req.Header.Set("Authorization", "Key "+key)
		resp, err := cl.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s %s = %d %s", method, path, resp.StatusCode, b)
		}
		return json.Unmarshal(b, v)
	}
	var content struct {
		GUID string `json:"guid"`
	}
	if err := call("POST", "/__api__/v1/content", strings.NewReader(`{"name":"`+name+`","access_type":"all"}`), &content); err != nil {
		return "", v1Task{}, err
	}
	var b struct {
		ID string `json:"id"`
	}
	if err := call("POST", "/__api__/v1/content/"+content.GUID+"/bundles", bytes.NewReader(archive), &b); err != nil {
		return content.GUID, v1Task{}, err
	}
	var d struct {
		TaskID string `json:"task_id"`
	}
	if err := call("POST", "/__api__/v1/content/"+content.GUID+"/deploy", strings.NewReader(`{"bundle_id":"`+b.ID+`"}`), &d); err != nil {
		return content.GUID, v1Task{}, err
	}
	first := 0
	for deadline := time.Now().Add(8 * time.Minute); time.Now().Before(deadline); {
		var tk v1Task
		if err := call("GET", "/__api__/v1/tasks/"+d.TaskID+"?wait=10&first="+strconv.Itoa(first), nil, &tk); err != nil {
			return content.GUID, v1Task{}, err
		}
		first = tk.Last
		if tk.Finished {
			return content.GUID, tk, nil
		}
	}
	return content.GUID, v1Task{}, fmt.Errorf("deploy of %s not finished in time", name)
}

// testConcurrentDeploys: 20 deploys at once (10 Flask apps, 10 static
// sites) all succeed and serve.
func testConcurrentDeploys(t *testing.T, r *row) {
	c, key := deployServer(t)
	flask, static := bundle(t, exampleDir("flask")), bundle(t, exampleDir("static"))
	type result struct {
		guid, kind string
		tk         v1Task
		err        error
	}
	results := make([]result, 20)
	base := c.URL("")
	start := time.Now()
	var wg sync.WaitGroup
	for i := range results {
		kind, archive := "flask", flask
		if i%2 == 1 {
			kind, archive = "static", static
		}
		wg.Go(func() {
			guid, tk, err := deployNoFatal(c, base, key, fmt.Sprintf("concurrent-%d", i), archive)
			results[i] = result{guid, kind, tk, err}
		})
	}
	wg.Wait()
	took := time.Since(start)
	ok := 0
	for _, res := range results {
		switch {
		case res.err != nil:
			t.Errorf("%s deploy: %v", res.kind, res.err)
		case res.tk.Code != 0:
			t.Errorf("%s deploy failed: %s", res.kind, res.tk.Error)
		default:
			path, want := "/content/"+res.guid+"/", "dais"
			if res.kind == "flask" {
				path, want = "/content/"+res.guid+"/hello", "hello from flask"
			}
			if status, body := c.Get(path); status != 200 || !strings.Contains(body, want) {
				t.Errorf("%s at %s = %d %.200s", res.kind, path, status, body)
			} else {
				ok++
			}
		}
	}
	r.Figure(t, "%d of 20 deploys (10 Flask, 10 static) succeeded and serve; all 20 in %s", ok, took.Round(time.Second))
}

// openFDs is the number of open descriptors of the container's dais serve.
func openFDs(t *testing.T, c *Container) int {
	t.Helper()
	res := c.Exec("sh", "-c", "ls /proc/"+strconv.Itoa(c.ServerPID())+"/fd | wc -l")
	n, err := strconv.Atoi(strings.TrimSpace(res.Stdout))
	if err != nil {
		t.Fatalf("fds of dais serve: %q %s", res.Stdout, res.Stderr)
	}
	return n
}

// testShinyWebSockets: 300 Shiny sessions open at once through the proxy,
// each answering its input; once they close, dais serve's open
// descriptors come back to what they were.
func testShinyWebSockets(t *testing.T, r *row) {
	c, key := deployServer(t)
	guid, tk, out := deployV1(t, c, key, "shiny", bundle(t, exampleDir("shiny")))
	if tk.Code != 0 {
		t.Fatalf("deploy failed: %s\n%s", tk.Error, out)
	}
	url := "ws://127.0.0.1:" + c.HostPort(ServerPort) + "/content/" + guid + "/websocket/"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// A first session starts the app's processes; then the baseline.
	warm := shinytest.Dial(t, ctx, url, nil)
	warm.Send(t, "init", shinytest.Init("/content/"+guid+"/", map[string]any{"msg": "warm"}, "echo"))
	warm.Expect(t, `"echo":"echo: warm"`)
	warm.Close()
	time.Sleep(2 * time.Second)
	before := openFDs(t, c)
	const n = 300
	sessions := make([]*shinytest.Session, n)
	start := time.Now()
	for i := range sessions {
		s := shinytest.Dial(t, ctx, url, nil)
		s.Send(t, "init", shinytest.Init("/content/"+guid+"/", map[string]any{"msg": "s" + strconv.Itoa(i)}, "echo"))
		s.Expect(t, `"echo":"echo: s`+strconv.Itoa(i)+`"`)
		sessions[i] = s
	}
	opened := time.Since(start)
	during := openFDs(t, c)
	for i, s := range sessions {
		s.Send(t, "update", map[string]any{"msg": "again" + strconv.Itoa(i)})
	}
	for i, s := range sessions {
		s.Expect(t, `"echo":"echo: again`+strconv.Itoa(i)+`"`)
	}
	for _, s := range sessions {
		s.Close()
	}
	after := during
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		if after = openFDs(t, c); after <= before+10 {
			break
		}
	}
	r.Figure(t, "300 sessions opened in %s, each answered twice; dais serve fds: %d before, %d with 300 open, %d after closing", opened.Round(time.Second), before, during, after)
	if after > before+10 {
		t.Errorf("dais serve holds %d descriptors after the 300 sessions closed, %d before: a leak", after, before)
	}
	if during < before+n {
		t.Errorf("only %d descriptors with 300 sessions open (%d before): were they proxied?", during, before)
	}
}
