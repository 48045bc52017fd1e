package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dais-dev/dais/internal/shinytest"
)

// soakApp is a Flask app that says its version.
const soakApp = `from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return "soak version VERSION"
`

// soakEvent is a failure seen during the soak, with when it happened.
type soakEvent struct {
	at   time.Time
	what string
}

// soakLog collects the soak's counts and failures from its workers.
type soakLog struct {
	mu       sync.Mutex
	counts   map[string]int
	failures []soakEvent
	windows  [][2]time.Time // node stops and starts: [begin, end]
}

func (l *soakLog) ok(kind string) {
	l.mu.Lock()
	l.counts[kind]++
	l.mu.Unlock()
}

func (l *soakLog) fail(kind, what string) {
	l.mu.Lock()
	l.counts[kind+" failed"]++
	l.failures = append(l.failures, soakEvent{time.Now(), kind + ": " + what})
	l.mu.Unlock()
}

func (l *soakLog) window(begin, end time.Time) {
	l.mu.Lock()
	l.windows = append(l.windows, [2]time.Time{begin, end})
	l.mu.Unlock()
}

// allowed: a Shiny session open on a node that stops is closed with it,
// so its failure during a node's stop or start (and 5 s after) is one a
// user would see and retry; nothing else may fail.
func (l *soakLog) allowed(e soakEvent) bool {
	if !strings.HasPrefix(e.what, "shiny") {
		return false
	}
	for _, w := range l.windows {
		if !e.at.Before(w[0]) && !e.at.After(w[1].Add(5*time.Second)) {
			return true
		}
	}
	return false
}

// haSoak (test 8): mixed traffic through haproxy (API calls, requests to
// a Flask app, Shiny sessions, deploys, renders) for DAIS_HA_SOAK (default
// 10 minutes) while dais1 and dais2 are stopped (docker stop) and started
// in turn. No request fails outside a node's stop or start (Shiny sessions
// open on the stopping node only), every deploy and render task finishes,
// none runs twice, and PostgreSQL's indexes (amcheck) and every active
// bundle's directory check out afterwards.
func haSoak(t *testing.T, h *haStack) {
	d := 10 * time.Minute
	if v := os.Getenv("DAIS_HA_SOAK"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatalf("DAIS_HA_SOAK=%q: %v", v, err)
		}
	}
	api := haClient{base: h.lb.URL(""), key: h.key, hc: &http.Client{Timeout: 30 * time.Second}}
	appDir := func(v int) []byte {
		return bundle(t, flaskDir(t, strings.ReplaceAll(soakApp, "VERSION", fmt.Sprint(v))))
	}
	flask, err := api.deploy("soak-flask", appDir(0))
	if err != nil {
		t.Fatal(err)
	}
	shiny, err := api.deploy("soak-shiny", bundle(t, exampleDir("shiny")))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := api.deploy("soak-doc", bundle(t, exampleDir("rmarkdown")))
	if err != nil {
		t.Fatal(err)
	}
	log := &soakLog{counts: map[string]int{}}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	every := func(period time.Duration, f func()) {
		wg.Go(func() {
			for ctx.Err() == nil {
				f()
				select {
				case <-ctx.Done():
				case <-time.After(period):
				}
			}
		})
	}
	every(100*time.Millisecond, func() {
		if err := api.do("GET", "/__api__/v1/content?name=soak-flask", nil, nil); err != nil {
			log.fail("api", err.Error())
		} else {
			log.ok("api")
		}
	})
	every(100*time.Millisecond, func() {
		code, body, _, err := httpGetWithin(h.lb.URL("/content/"+flask+"/"), "", 30*time.Second)
		if err != nil || code != 200 || !strings.HasPrefix(body, "soak version ") {
			log.fail("app", fmt.Sprintf("%d %q %v", code, body, err))
		} else {
			log.ok("app")
		}
	})
	sessions := 0
	every(time.Second, func() {
		sessions++
		// Not below ctx: a session still open when the soak's time is up
		// runs to its end and is judged as the others are (under ctx, the
		// soak's end cut it and it counted as a failure).
		sctx, scancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer scancel()
		b, err := haVisit(sctx, h, shiny, "", 30*time.Second)
		if err != nil {
			log.fail("shiny", err.Error())
			return
		}
		defer b.s.Close()
		msg := fmt.Sprintf("soak %d", sessions)
		if err := b.s.TrySend("init", shinytest.Init("/content/"+shiny+"/", map[string]any{"msg": msg}, "echo")); err != nil {
			log.fail("shiny", "on "+b.node+": "+err.Error())
			return
		}
		if _, err := b.s.TryExpect(`"echo":"echo: ` + msg + `"`); err != nil {
			log.fail("shiny", "on "+b.node+": "+err.Error())
			return
		}
		log.ok("shiny")
	})
	version := 0
	every(40*time.Second, func() {
		version++
		if _, err := api.redeploy(flask, appDir(version)); err != nil {
			// A deploy on a node that stops fails by design ("the server
			// stopped during the deploy; deploy again"): once more.
			if !strings.Contains(err.Error(), "stopped") {
				log.fail("deploy", err.Error())
				return
			}
			log.ok("deploy interrupted by a stop")
			if _, err := api.redeploy(flask, appDir(version)); err != nil {
				log.fail("deploy", "again: "+err.Error())
				return
			}
		}
		log.ok("deploy")
	})
	var renderTasks []string
	var rmu sync.Mutex
	every(20*time.Second, func() {
		var r struct {
			TaskID string `json:"task_id"`
		}
		if err := api.do("POST", "/__api__/v1/content/"+doc+"/render", strings.NewReader(`{}`), &r); err != nil {
			log.fail("render", err.Error())
			return
		}
		rmu.Lock()
		renderTasks = append(renderTasks, r.TaskID)
		rmu.Unlock()
		log.ok("render started")
	})
	// The nodes stop and start in turn.
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-time.After(45 * time.Second):
			}
			node := []string{"dais1", "dais2"}[i%2]
			begin := time.Now()
			if out, err := exec.Command("docker", "stop", h.id(node)).CombinedOutput(); err != nil {
				log.fail("chaos", fmt.Sprintf("docker stop %s: %v %s", node, err, out))
				return
			}
			time.Sleep(10 * time.Second)
			if out, err := exec.Command("docker", "start", h.id(node)).CombinedOutput(); err != nil {
				log.fail("chaos", fmt.Sprintf("docker start %s: %v %s", node, err, out))
				return
			}
			for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
				if code, _, _, err := httpGet(h.nodeURL(node, "/__ping__"), ""); err == nil && code == 200 {
					break
				}
				if time.Now().After(deadline) {
					log.fail("chaos", node+" not answering 2 minutes after docker start")
					return
				}
			}
			time.Sleep(5 * time.Second) // haproxy's rise: 2 checks 2 s apart
			log.window(begin, time.Now())
			log.ok("node stopped and started")
		}
	})
	wg.Wait()
	t.Logf("soak of %s: %v", d, log.counts)

	// Every task ends; none is left running, none ran twice.
	deadline := time.Now().Add(3 * time.Minute)
	for h.sql("SELECT count(*) FROM tasks WHERE NOT finished") != "0" {
		if time.Now().After(deadline) {
			t.Fatalf("tasks not finished 3 minutes after the soak:\n%s", h.sql("SELECT id, kind, node, created_at FROM tasks WHERE NOT finished"))
		}
		time.Sleep(time.Second)
	}
	rmu.Lock()
	tasks := renderTasks
	rmu.Unlock()
	lost := 0
	for _, id := range tasks {
		row := h.sql("SELECT count(*) || '|' || coalesce(max(status), '') || '|' || coalesce(max(error), '') FROM renders WHERE task_id = '" + id + "'")
		n, rest, _ := strings.Cut(row, "|")
		status, msg, _ := strings.Cut(rest, "|")
		switch {
		case n != "1":
			t.Errorf("render task %s has %s renders, want 1", id, n)
		case status == "failed" && (strings.Contains(msg, "was lost") || strings.Contains(msg, "stopped")):
			lost++ // its node stopped under it: failed in words, not lost
		case status != "succeeded":
			t.Errorf("render task %s: %s %q", id, status, msg)
		}
	}
	if n := h.sql("SELECT count(*) FROM renders WHERE status IN ('queued', 'running')"); n != "0" {
		t.Errorf("%s renders still queued or running after every task finished", n)
	}
	t.Logf("%d renders: %d succeeded, %d failed because their node stopped", len(tasks), len(tasks)-lost, lost)

	// Failures only where allowed.
	allowed := 0
	for _, e := range log.failures {
		if log.allowed(e) {
			allowed++
			continue
		}
		t.Errorf("%s: %s", e.at.Format("15:04:05.000"), e.what)
	}
	t.Logf("%d failures, %d of them Shiny sessions on a stopping node", len(log.failures), allowed)
	var first time.Time
	for _, e := range log.failures {
		if !log.allowed(e) {
			first = e.at
			break
		}
	}
	if !first.IsZero() {
		// What each node said: why a request failed is in the server's
		// log, not in the answer. At Warn and above, and every line of
		// the server's from 10 s before the first failure to 5 s after.
		for _, node := range []string{"dais1", "dais2"} {
			out, _ := exec.Command("docker", "logs", h.id(node)).CombinedOutput()
			var warn, near []string
			for _, l := range strings.Split(string(out), "\n") {
				if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
					warn = append(warn, l)
				}
				ts, _, ok := strings.Cut(strings.TrimPrefix(l, "time="), " ")
				at, err := time.Parse(time.RFC3339Nano, ts)
				if ok && err == nil && strings.HasPrefix(l, "time=") && at.After(first.Add(-10*time.Second)) && at.Before(first.Add(5*time.Second)) {
					near = append(near, l)
				}
			}
			t.Logf("%s at Warn and above (last 60 lines):\n%s", node, tail(strings.Join(warn, "\n"), 60))
			t.Logf("%s around the first failure (%s):\n%s", node, first.Format("15:04:05.000"), tail(strings.Join(near, "\n"), 80))
		}
	}
	if log.counts["node stopped and started"] < 2 || log.counts["deploy"] == 0 || log.counts["shiny"] == 0 {
		t.Errorf("the soak did too little to mean anything: %v", log.counts)
	}

	// The database and the data directory.
	h.sql("CREATE EXTENSION IF NOT EXISTS amcheck")
	indexes := h.sql(`SELECT count(bt_index_check(c.oid)) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		JOIN pg_am a ON a.oid = c.relam WHERE a.amname = 'btree' AND c.relnamespace = 'public'::regnamespace`)
	node := &Container{t: t, cli: Docker(t), ID: h.id("dais1"), Name: "dais1"}
	dirs := strings.Fields(h.sql("SELECT '/data/apps/' || id || '/' || bundle_id || '/code' FROM content WHERE bundle_id IS NOT NULL"))
	if r := node.Exec("sh", "-c", "for d in "+strings.Join(dirs, " ")+"; do test -d $d || echo missing $d; done; find /data/apps -name 'upload-*'"); r.Code != 0 || strings.TrimSpace(r.Stdout+r.Stderr) != "" {
		t.Errorf("data directory: %d %s%s", r.Code, r.Stdout, r.Stderr)
	}
	t.Logf("amcheck: %s btree indexes checked; %d active bundles' directories present; no upload left", indexes, len(dirs))
}

// redeploy uploads archive to the content guid and deploys it.
func (c haClient) redeploy(guid string, archive []byte) (string, error) {
	var b struct {
		ID string `json:"id"`
	}
	if err := c.do("POST", "/__api__/v1/content/"+guid+"/bundles", strings.NewReader(string(archive)), &b); err != nil {
		return "", err
	}
	var d struct {
		TaskID string `json:"task_id"`
	}
	if err := c.do("POST", "/__api__/v1/content/"+guid+"/deploy", strings.NewReader(`{"bundle_id":"`+b.ID+`"}`), &d); err != nil {
		return "", err
	}
	return d.TaskID, c.wait(d.TaskID)
}
