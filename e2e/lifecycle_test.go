package e2e

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/store"
)

// The lifecycle tests check what Posit Connect's server-management guide
// promises, through the container: on stop, renders run to completion and
// deployments in progress fail; on start, apps with MinProcesses are
// started before the server is ready and scheduled renders missed while
// the server was down run once; several servers on one PostgreSQL run a
// scheduled render once.

// lifecycleStopTimeout is the `docker stop -t` of these tests: above
// Server.StopTimeout (set to 150s: renders are slow on a busy machine) +
// dais-init's 10s.
const lifecycleStopTimeout = 200

// lifecycleServer is deployServer with a Server.StopTimeout of 150s.
func lifecycleServer(t *testing.T) (*Container, string) {
	t.Helper()
	c := Run(t, Options{Env: []string{"CONNECT_SERVER_STOPTIMEOUT=150s"}})
	c.WaitHTTP("/__ping__", http.StatusOK, startBound)
	key := publisherKey(t, c, "alice", "alice-password-e2e")
	return c, key
}

// openStore opens the SQLite database of a stopped container.
func openStore(t *testing.T, c *Container) store.Store {
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), filepath.Join(c.DataDir, "db", store.SQLiteFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// slowDoc writes an R Markdown document that sleeps E2E_SLEEP seconds (a
// content environment variable; 0 when unset) and prints the version and
// how long it slept.
func slowDoc(t *testing.T, version string) string {
	t.Helper()
	return rmdDir(t, "---\ntitle: \"dais lifecycle\"\noutput: html_document\n---\n\n```{r}\n"+
		"s <- as.numeric(Sys.getenv(\"E2E_SLEEP\", \"0\"))\nSys.sleep(s)\n"+
		"cat(\"lifecycle version "+version+" slept\", s, \"\\n\")\n```\n")
}

// rmdDir writes the R Markdown document rmd as doc.Rmd into a new
// directory, with the example's manifest (checksum updated), and returns
// the directory.
func rmdDir(t *testing.T, rmd string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "doc.Rmd"), []byte(rmd), 0o644); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(exampleDir("rmarkdown"), "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum([]byte(rmd))
	m["files"] = map[string]any{"doc.Rmd": map[string]string{"checksum": hex.EncodeToString(sum[:])}}
	raw, _ = json.Marshal(m)
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// setNextRun moves the next run of guid's one schedule to at, in the
// database, and returns the content and the schedule's id.
func setNextRun(t *testing.T, st store.Store, guid string, at time.Time) (*store.Content, int64) {
	t.Helper()
	ctx := context.Background()
	content, err := st.ContentByGUID(ctx, guid)
	if err != nil {
		t.Fatal(err)
	}
	scheds, err := st.ListSchedules(ctx, content.ID)
	if err != nil || len(scheds) != 1 {
		t.Fatalf("schedules: %v %+v", err, scheds)
	}
	scheds[0].NextRunAt = at
	if err := st.UpdateSchedule(ctx, &scheds[0]); err != nil {
		t.Fatal(err)
	}
	return content, scheds[0].ID
}

// setEnv sets one content environment variable.
func setEnv(t *testing.T, c *Container, key, guid, name, value string) {
	t.Helper()
	apiJSON(t, c, "PATCH", "/__api__/v1/content/"+guid+"/environment", key,
		strings.NewReader(`[{"name":"`+name+`","value":"`+value+`"}]`), nil)
}

// waitOutput long-polls a task until a line contains want (or it finishes).
func waitOutput(t *testing.T, c *Container, key, taskID, want string, timeout time.Duration) {
	t.Helper()
	var out []string
	first := 0
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var tk v1Task
		apiJSON(t, c, "GET", "/__api__/v1/tasks/"+taskID+"?wait=2&first="+strconv.Itoa(first), key, nil, &tk)
		out = append(out, tk.Output...)
		first = tk.Last
		for _, l := range tk.Output {
			if strings.Contains(l, want) {
				return
			}
		}
		if tk.Finished {
			t.Fatalf("task %s finished (code %d, %s) without a line %q:\n%s", taskID, tk.Code, tk.Error, want, strings.Join(out, "\n"))
		}
	}
	t.Fatalf("no line %q in task %s within %s:\n%s", want, taskID, timeout, strings.Join(out, "\n"))
}

// task reads a task once.
func task(t *testing.T, c *Container, key, id string) v1Task {
	t.Helper()
	var tk v1Task
	apiJSON(t, c, "GET", "/__api__/v1/tasks/"+id, key, nil, &tk)
	return tk
}

// mustServe checks /content/<guid>/ answers 200 with want in it.
func mustServe(t *testing.T, c *Container, guid, want string) {
	t.Helper()
	status, body := c.Get("/content/" + guid + "/")
	if status != http.StatusOK || !strings.Contains(body, want) {
		t.Fatalf("GET /content/%s/ = %d, want 200 with %q; body: %.400s", guid, status, want, body)
	}
}

// restart starts the stopped container and waits until it is ready.
func restart(t *testing.T, c *Container) time.Time {
	t.Helper()
	c.Start()
	c.WaitHTTP("/__ping__", http.StatusOK, startBound+30*time.Second)
	return c.Started
}

type scheduleView struct {
	Cron     string     `json:"cron"`
	NextRun  *time.Time `json:"next_run"`
	LastRun  *time.Time `json:"last_run"`
	LastNode string     `json:"last_node"`
}

// TestLifecycleStopStart: one SQLite server through several docker stop /
// docker start cycles.
func TestLifecycleStopStart(t *testing.T) {
	c, key := lifecycleServer(t)
	ctx := context.Background()

	guid, tk, out := deployV1(t, c, key, "lifecycle-doc", bundle(t, slowDoc(t, "1")))
	if tk.Code != 0 {
		t.Fatalf("deploy of the document failed: %s\n%s", tk.Error, out)
	}
	mustServe(t, c, guid, "lifecycle version 1 slept 0")
	app, tk, out := deployV1(t, c, key, "lifecycle-app", bundle(t, exampleDir("flask")))
	if tk.Code != 0 {
		t.Fatalf("deploy of the Flask app failed: %s\n%s", tk.Error, out)
	}
	apiJSON(t, c, "PATCH", "/__api__/v1/content/"+app, key, strings.NewReader(`{"min_processes":1}`), nil)

	t.Run("render running at stop completes", func(t *testing.T) {
		const sleep = 12
		setEnv(t, c, key, guid, "E2E_SLEEP", strconv.Itoa(sleep))
		var r struct {
			TaskID string `json:"task_id"`
		}
		apiJSON(t, c, "POST", "/__api__/v1/content/"+guid+"/render", key, strings.NewReader(`{}`), &r)
		waitOutput(t, c, key, r.TaskID, "Rendering", 2*time.Minute)
		began := time.Now()
		code, took := c.Stop(lifecycleStopTimeout)
		exited := c.ExitedAfter(began)
		t.Logf("docker stop during a %ds render: exit %d, process exited after %s (stop call %s)", sleep, code, exited.Round(time.Millisecond), took.Round(time.Millisecond))
		if code != 0 {
			t.Errorf("exit code %d after docker stop, want 0", code)
		}
		if !strings.Contains(c.Logs(), "dais stopped") {
			t.Errorf("no 'dais stopped' in the log")
		}
		// The render ran on after TERM, and the server exited right after it.
		st := openStore(t, c)
		content, err := st.ContentByGUID(ctx, guid)
		if err != nil {
			t.Fatal(err)
		}
		rs, err := st.ListRenders(ctx, content.ID, 1)
		st.Close()
		if err != nil || len(rs) != 1 {
			t.Fatalf("renders: %v %+v", err, rs)
		}
		rn := rs[0]
		exitAt := began.Add(exited)
		t.Logf("render: started %s before TERM, finished %s after; the server exited %s after the render",
			began.Sub(rn.StartedAt).Round(time.Millisecond), rn.FinishedAt.Sub(began).Round(time.Millisecond), exitAt.Sub(rn.FinishedAt).Round(time.Millisecond))
		if rn.Status != store.RenderSucceeded {
			t.Errorf("render status %s (%s), want succeeded", rn.Status, rn.Error)
		}
		if !rn.StartedAt.Before(began) || rn.FinishedAt.Before(began.Add((sleep-4)*time.Second)) {
			t.Errorf("render from %s to %s, TERM at %s: want it running at TERM with most of its %ds sleep ahead", rn.StartedAt, rn.FinishedAt, began, sleep)
		}
		if d := exitAt.Sub(rn.FinishedAt); d < 0 || d > 15*time.Second {
			t.Errorf("the server exited %s after the render finished, want shortly after (stop took about as long as the render)", d)
		}

		t0 := restart(t, c)
		t.Run("app with MinProcesses runs before any request", func(t *testing.T) {
			var jobs []struct {
				Status    int       `json:"status"`
				Tag       string    `json:"tag"`
				StartTime time.Time `json:"start_time"`
			}
			apiJSON(t, c, "GET", "/__api__/v1/content/"+app+"/jobs", key, nil, &jobs)
			if len(jobs) == 0 || jobs[0].Status != 0 || jobs[0].StartTime.Before(t0.Add(-2*time.Second)) {
				t.Fatalf("jobs of the MinProcesses=1 app right after start = %+v, want one running, started after %s", jobs, t0.Format(time.RFC3339))
			}
			r := c.Exec("sh", "-c", `for p in /proc/[0-9]*; do tr '\0' ' ' <$p/cmdline 2>/dev/null | grep -q 'python-api' && echo $p; done; exit 0`)
			if len(strings.Fields(r.Stdout)) == 0 {
				t.Errorf("no Flask process in the container right after start: %q %s", r.Stdout, r.Stderr)
			}
		})
		if tk := task(t, c, key, r.TaskID); !tk.Finished || tk.Code != 0 {
			t.Errorf("render task after restart: finished %v code %d error %q, want a success", tk.Finished, tk.Code, tk.Error)
		}
		mustServe(t, c, guid, "lifecycle version 1 slept "+strconv.Itoa(sleep))
	})

	t.Run("deployment in progress at stop fails", func(t *testing.T) {
		setEnv(t, c, key, guid, "E2E_SLEEP", "120")
		var b struct {
			ID string `json:"id"`
		}
		apiJSON(t, c, "POST", "/__api__/v1/content/"+guid+"/bundles", key, strings.NewReader(string(bundle(t, slowDoc(t, "2")))), &b)
		var d struct {
			TaskID string `json:"task_id"`
		}
		apiJSON(t, c, "POST", "/__api__/v1/content/"+guid+"/deploy", key, strings.NewReader(`{"bundle_id":"`+b.ID+`"}`), &d)
		waitOutput(t, c, key, d.TaskID, "Rendering", 3*time.Minute)
		began := time.Now()
		code, _ := c.Stop(lifecycleStopTimeout)
		exited := c.ExitedAfter(began)
		t.Logf("docker stop during a deploy: exit %d after %s", code, exited.Round(time.Millisecond))
		if code != 0 {
			t.Errorf("exit code %d, want 0", code)
		}
		if exited > 30*time.Second {
			t.Errorf("stop took %s: a deploy in progress must fail, not be waited for (its render sleeps 120s)", exited)
		}
		restart(t, c)
		tk := task(t, c, key, d.TaskID)
		if !tk.Finished || tk.Code == 0 || !strings.Contains(tk.Error, "the server stopped") {
			t.Errorf("deploy task after restart: finished %v code %d error %q, want a failure saying the server stopped", tk.Finished, tk.Code, tk.Error)
		}
		mustServe(t, c, guid, "lifecycle version 1 slept")
	})

	t.Run("missed schedule runs once", func(t *testing.T) {
		setEnv(t, c, key, guid, "E2E_SLEEP", "0")
		var sv scheduleView
		sent := time.Now() // the server's next run is after its now, which a minute may have passed since
		apiJSON(t, c, "PUT", "/__api__/v1/content/"+guid+"/schedule", key, strings.NewReader(`{"cron":"* * * * *","timezone":"Europe/Berlin"}`), &sv)
		if sv.NextRun == nil || !sv.NextRun.After(sent) {
			t.Fatalf("schedule after PUT = %+v, want a next run in the future", sv)
		}
		c.Stop(lifecycleStopTimeout)

		// While stopped: the next run three hours ago (180 missed minutes).
		st := openStore(t, c)
		content, _ := setNextRun(t, st, guid, time.Now().UTC().Add(-3*time.Hour))
		before, err := st.ListTasks(ctx, store.TaskFilter{ContentID: content.ID, Kind: store.TaskRender})
		if err != nil {
			t.Fatal(err)
		}
		st.Close()

		t0 := restart(t, c)
		apiJSON(t, c, "GET", "/__api__/v1/content/"+guid+"/schedule", key, nil, &sv)
		now := time.Now()
		if sv.NextRun == nil || !sv.NextRun.After(now.Add(-time.Second)) || sv.NextRun.After(now.Add(61*time.Second)) {
			t.Errorf("next run after start = %v, want within the next minute", sv.NextRun)
		}
		if sv.LastRun == nil || sv.LastRun.Before(t0.Add(-2*time.Second)) {
			t.Errorf("last run after start = %v, want at start (%s)", sv.LastRun, t0.Format(time.RFC3339))
		}
		// Look before the next minute's run could start.
		wait := 8 * time.Second
		if sv.NextRun != nil {
			wait = min(wait, time.Until(*sv.NextRun)-time.Second)
		}
		time.Sleep(max(wait, 0))
		c.Stop(lifecycleStopTimeout)

		st = openStore(t, c)
		defer st.Close()
		after, err := st.ListTasks(ctx, store.TaskFilter{ContentID: content.ID, Kind: store.TaskRender})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(after) - len(before); n != 1 {
			t.Fatalf("scheduled renders after a start with 180 missed runs = %d, want 1", n)
		}
		if !after[0].Finished || after[0].Code != 0 {
			t.Errorf("the scheduled render: finished %v code %d error %q, want a success", after[0].Finished, after[0].Code, after[0].Error)
		}
	})
}

// TestLifecycleTwoServersOnePostgres: two servers sharing one PostgreSQL
// and one DataDir, one due schedule: one render in total.
func TestLifecycleTwoServersOnePostgres(t *testing.T) {
	Image(t)
	pgImg := os.Getenv("DAIS_PG_IMAGE")
	if pgImg == "" {
		pgImg = "dais-postgres:latest"
	}
	if _, err := Docker(t).ImageInspect(context.Background(), pgImg); err != nil {
		requireOrSkip(t, "image %s not found: %v (run `make image`, or set DAIS_PG_IMAGE)", pgImg, err)
	}
	ctx := context.Background()
	net := NewNetwork(t)
	pw := "pw-" + randomSuffix()
	pgName := "pg-" + randomSuffix()
	pg := Run(t, Options{Image: pgImg, Name: pgName, Network: net, NoSysAdmin: true, NoData: true,
		Env: []string{"POSTGRES_PASSWORD=" + pw}, Ports: []string{"5432"}})
	pg.WaitHealthy(2 * time.Minute)

	data := tempDir(t)
	env := []string{
		"CONNECT_DATABASE_PROVIDER=postgres",
		"CONNECT_POSTGRES_URL=postgres://dais:" + pw + "@" + pgName + ":5432/dais?sslmode=disable",
	}
	a := Run(t, Options{Network: net, DataDir: data, Env: env})
	a.WaitHTTP("/__ping__", http.StatusOK, startBound+30*time.Second)
	b := Run(t, Options{Network: net, DataDir: data, Env: env})
	b.WaitHTTP("/__ping__", http.StatusOK, startBound+30*time.Second)

	key := publisherKey(t, a, "alice", "alice-password-e2e")
	guid, tk, out := deployV1(t, a, key, "scheduled", bundle(t, exampleDir("rmarkdown")))
	if tk.Code != 0 {
		t.Fatalf("deploy failed: %s\n%s", tk.Error, out)
	}
	var sv scheduleView
	apiJSON(t, b, "PUT", "/__api__/v1/content/"+guid+"/schedule", key, strings.NewReader(`{"interval_seconds":3600}`), &sv)

	st, err := store.OpenPostgres(ctx, "postgres://dais:"+pw+"@127.0.0.1:"+pg.HostPort("5432")+"/dais?sslmode=disable", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// Due now, for both servers.
	content, schedID := setNextRun(t, st, guid, time.Now().UTC().Add(-time.Minute))
	// Both poll every 10s: after 25s each has seen the due run at least twice.
	time.Sleep(25 * time.Second)
	tasks, err := st.ListTasks(ctx, store.TaskFilter{ContentID: content.ID, Kind: store.TaskRender})
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 1 {
		t.Fatalf("render tasks = %d across two servers for one due run, want 1", len(tasks))
	}
	got, _ := st.Schedule(ctx, schedID)
	t.Logf("the run was claimed by %s; next run %s", got.LastNode, got.NextRunAt.Format(time.RFC3339))
	if !got.NextRunAt.After(time.Now().Add(50 * time.Minute)) {
		t.Errorf("next run %s, want an hour after the claim", got.NextRunAt)
	}
	// The render itself succeeds on whichever node claimed it.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		tk, err := st.Task(ctx, tasks[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if tk.Finished {
			if tk.Code != 0 {
				t.Errorf("scheduled render on %s failed: %s", tk.Node, tk.Error)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("scheduled render not finished in 2 minutes")
		}
		time.Sleep(time.Second)
	}
}
