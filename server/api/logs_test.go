package api_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	db "github.com/dais-dev/dais/e2e/browser"
)

// sseEvent is one server-sent event.
type sseEvent struct{ event, id, data string }

// openStream opens an event stream as s and sends its events on a channel
// until ctx ends.
func (s *session) openStream(t *testing.T, ctx context.Context, path, lastID string) (<-chan sseEvent, int) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", s.f.ts.URL+path, nil)
	req.Header.Set("Accept", "text/event-stream")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	client := &http.Client{Jar: s.client.Jar}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan sseEvent, 100)
	if resp.StatusCode != 200 {
		resp.Body.Close()
		close(ch)
		return ch, resp.StatusCode
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("stream %s: Content-Type %q", path, ct)
	}
	go func() {
		defer resp.Body.Close()
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		var e sseEvent
		var data []string
		for sc.Scan() {
			l := sc.Text()
			switch {
			case l == "":
				if e.event != "" || len(data) > 0 {
					e.data = strings.Join(data, "\n")
					ch <- e
				}
				e, data = sseEvent{}, nil
			case strings.HasPrefix(l, "event: "):
				e.event = l[7:]
			case strings.HasPrefix(l, "id: "):
				e.id = l[4:]
			case strings.HasPrefix(l, "data: "):
				data = append(data, l[6:])
			}
		}
	}()
	return ch, 200
}

// waitEvent waits for an event whose data holds want, returning it.
func waitEvent(t *testing.T, ch <-chan sseEvent, want string) sseEvent {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				t.Fatalf("the stream ended before %q", want)
			}
			if strings.Contains(e.data, want) || e.event == want {
				return e
			}
		case <-timeout:
			t.Fatalf("no event with %q in 30 s", want)
		}
	}
}

// TestAppLogs: the deploy task's output and a running process's output as
// server-sent events: a line the app prints on a request arrives live; a
// reconnect with Last-Event-ID goes on after it without repeating it; the
// task stream ends with "end"; a viewer gets 404 for the streams and no
// logs page. In chromium, the logs page shows a line printed after it
// was opened.
func TestAppLogs(t *testing.T) {
	f := newFixture(t)
	app := `import sys
from flask import Flask, request
app = Flask(__name__)
print("app starting", flush=True)

@app.route("/", defaults={"rest": ""})
@app.route("/<path:rest>")
def hit(rest):
    print("hit " + request.path, flush=True)
    return "ok"
`
	bundle := bundleOf(t, "python-api", `"python":{"version":"3","package_manager":{"name":"pip","package_file":"requirements.txt"}},`,
		map[string]string{"app.py": app, "requirements.txt": "flask\n"})
	guid := f.deployBundle(t, "publisher", "logger", bundle)
	f.raw(t, "GET", "/content/"+guid+"/first", "publisher", nil).must(t, nil)
	var jobs []struct{ Key string }
	f.do(t, "GET", "/__api__/v1/content/"+guid+"/jobs", "publisher", "").must(t, &jobs)
	if len(jobs) == 0 {
		t.Fatal("no process after a request")
	}
	var tasks []struct {
		ID       string
		Kind     string
		Finished bool
	}
	f.do(t, "GET", "/__api__/v1/content/"+guid+"/tasks", "publisher", "").must(t, &tasks)
	if len(tasks) == 0 || !tasks[0].Finished {
		t.Fatalf("tasks %+v", tasks)
	}
	pub := f.login(t, "publisher")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// The deploy task: every line, then the end.
	tch, st := pub.openStream(t, ctx, "/__api__/v1/tasks/"+tasks[0].ID+"/stream", "")
	if st != 200 {
		t.Fatalf("task stream: %d", st)
	}
	n := 0
	for e := range tch {
		if e.event == "line" {
			n++
		}
		if e.event == "end" {
			if !strings.Contains(e.data, `"code":0`) {
				t.Errorf("task end %q", e.data)
			}
			break
		}
	}
	if n == 0 {
		t.Error("the task stream sent no line")
	}

	// The process: a line printed after the stream opened arrives.
	jpath := "/__api__/v1/content/" + guid + "/jobs/" + jobs[0].Key + "/log/stream"
	sctx, scancel := context.WithCancel(ctx)
	jch, st := pub.openStream(t, sctx, jpath, "")
	if st != 200 {
		t.Fatalf("job stream: %d", st)
	}
	waitEvent(t, jch, "hit /first")
	f.raw(t, "GET", "/content/"+guid+"/live-one", "publisher", nil).must(t, nil)
	e := waitEvent(t, jch, "hit /live-one")
	scancel()
	// Reconnect where it stood: the next line only.
	jch, _ = pub.openStream(t, ctx, jpath, e.id)
	f.raw(t, "GET", "/content/"+guid+"/live-two", "publisher", nil).must(t, nil)
	e = waitEvent(t, jch, "hit /")
	if strings.Contains(e.data, "live-one") || !strings.Contains(e.data, "live-two") {
		t.Fatalf("after a reconnect at %s: %q, want only live-two", e.id, e.data)
	}

	// A viewer (the content is open to all logged-in users) gets neither.
	f.do(t, "PATCH", "/__api__/v1/content/"+guid, "publisher", `{"access_type":"logged_in"}`).must(t, nil)
	viewer := f.login(t, "viewer")
	if _, st := viewer.openStream(t, ctx, jpath, ""); st != http.StatusForbidden {
		t.Errorf("viewer's job stream: %d, want 403", st)
	}
	if _, st := viewer.openStream(t, ctx, "/__api__/v1/tasks/"+tasks[0].ID+"/stream", ""); st != http.StatusForbidden && st != http.StatusNotFound {
		t.Errorf("viewer's task stream: %d, want 403 or 404", st)
	}
	if st, body := viewer.get(t, "/connect/apps/"+guid+"/logs"); st != http.StatusForbidden {
		t.Errorf("viewer's logs page: %d, want 403: %s", st, body)
	}
	if _, body := viewer.get(t, "/connect/apps/"+guid); strings.Contains(body, "/logs") {
		t.Errorf("the viewer's content page links to the logs")
	}

	// The logs page without JavaScript: the task's output is in it.
	st, body := pub.get(t, "/connect/apps/"+guid+"/logs")
	if st != 200 || !strings.Contains(body, `<pre id="log"`) || !strings.Contains(body, "deploy") {
		t.Fatalf("logs page: %d %s", st, body)
	}

	// In chromium: the process's page follows the output live.
	for _, width := range []int{1280, 390} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			br := db.New(t, width)
			br.Run("log in", chromedp.Navigate(f.ts.URL+"/__login__?next=/connect/apps/"+guid+"/logs"),
				chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), "publisher1"),
				chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "pw-publisher"),
				chromedp.Submit(chromedp.CSS(`input[name="password"]`)),
				chromedp.WaitVisible(chromedp.CSS(`pre#log`)))
			br.Check("logs-task")
			br.Screenshot("logs-task")
			br.Run("open the process", chromedp.Click(chromedp.CSS(`a[href*="?job="]`)), chromedp.WaitVisible(chromedp.CSS(`#log[data-stream*="/jobs/"]`)))
			br.Run("the stream is open", chromedp.Poll[chromedp.Void](`document.getElementById("log").textContent.indexOf("hit /live-two") >= 0`))
			path := fmt.Sprintf("/content/%s/browser-%d", guid, width)
			f.raw(t, "GET", path, "publisher", nil).must(t, nil)
			br.Run("the line arrives", chromedp.Poll[chromedp.Void](`document.getElementById("log").textContent.indexOf("hit `+path[len("/content/"+guid):]+`") >= 0`))
			br.Check("logs-process")
			br.Screenshot("logs-process")
		})
	}
}
