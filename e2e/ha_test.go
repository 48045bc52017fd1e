package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dais-dev/dais/internal/shinytest"
)

// haStack is the compose profile ha brought up for a test: PostgreSQL,
// nodes dais1 and dais2 on one data volume, haproxy in front.
type haStack struct {
	t       *testing.T
	project string
	env     []string
	port    string // haproxy's published port on 127.0.0.1
	lb      *Container
	key     string // an administrator's API key
	plumber string // the guid of the Plumber API test 1 deployed
}

// Cluster timings of the ha tests: a node is dead 5 s after its last
// heartbeat (30 s in production), so the tests stay short.
const (
	haHeartbeat = "1s"
	haDeadAfter = 5 * time.Second
)

func startHA(t *testing.T) *haStack {
	t.Helper()
	img := Image(t)
	cli := Docker(t)
	images := map[string]string{"DAIS_PG_IMAGE": "dais-postgres:latest", "DAIS_HAPROXY_IMAGE": "dais-haproxy:latest"}
	for k := range images {
		if v := os.Getenv(k); v != "" {
			images[k] = v
		}
		if _, err := cli.ImageInspect(context.Background(), images[k]); err != nil {
			requireOrSkip(t, "image %s not found: %v (run `make image`, or set %s)", images[k], err, k)
		}
	}
	h := &haStack{t: t, project: ProjectName(t), port: freePort(t)}
	h.env = []string{
		"DAIS_IMAGE=" + img, "DAIS_PG_IMAGE=" + images["DAIS_PG_IMAGE"], "DAIS_HAPROXY_IMAGE=" + images["DAIS_HAPROXY_IMAGE"],
		"DAIS_BIND=127.0.0.1", "DAIS_HA_PORT=" + h.port, "DAIS_PORT=" + freePort(t),
		"POSTGRES_PASSWORD=pw-" + randomSuffix(),
		"DAIS_HEARTBEAT=" + haHeartbeat, "DAIS_DEAD_AFTER=" + haDeadAfter.String(),
	}
	ComposeDown(t, h.project, h.env, "ha")
	start := time.Now()
	services := []string{"ha-postgres", "dais1", "dais2", "haproxy"}
	if out, err := Compose(t, h.project, h.env, append([]string{"--profile", "ha", "up", "-d", "--no-build"}, services...)...); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	waitComposeHealthy(t, cli, h.project, []string{"ha-postgres", "dais1", "dais2"}, 3*time.Minute)
	h.lb = &Container{t: t, cli: cli, ID: h.id("haproxy"), Name: "haproxy", ports: map[string]string{ServerPort: h.port}}
	h.lb.WaitHTTP("/__ping__", http.StatusOK, time.Minute)
	t.Logf("ha profile: healthy and answering through haproxy %s after up", time.Since(start).Round(time.Millisecond))

	node := &Container{t: t, cli: cli, ID: h.id("dais1"), Name: "dais1"}
	if r := node.Exec("sh", "-c", "echo admin-password-e2e | dais users add --admin admin"); r.Code != 0 {
		t.Fatalf("dais users add: %d %s%s", r.Code, r.Stdout, r.Stderr)
	}
	r := node.Exec("dais", "keys", "create", "--user", "admin")
	if r.Code != 0 {
		t.Fatalf("dais keys create: %d %s%s", r.Code, r.Stdout, r.Stderr)
	}
	h.key = strings.TrimSpace(strings.SplitN(r.Stdout, "\n", 2)[0])
	return h
}

// id is the container id of a service.
func (h *haStack) id(service string) string {
	h.t.Helper()
	out, err := Compose(h.t, h.project, h.env, "--profile", "ha", "ps", "-q", service)
	id := strings.TrimSpace(out)
	if err != nil || id == "" || strings.Contains(id, "\n") {
		h.t.Fatalf("compose ps -q %s: %v %q", service, err, out)
	}
	return id
}

// network is the compose network name (ha-front, ha-db) of the project.
func (h *haStack) network(name string) string {
	h.t.Helper()
	out, err := exec.Command("docker", "network", "ls", "-q", "--filter", "label=com.docker.compose.project="+h.project,
		"--filter", "label=com.docker.compose.network="+name, "--format", "{{.Name}}").Output()
	n := strings.TrimSpace(string(out))
	if err != nil || n == "" {
		h.t.Fatalf("network %s of %s: %v %q", name, h.project, err, out)
	}
	return n
}

// nodeURL is http://<node's address on ha-front>:3939 + path, reached
// from the host directly, not through haproxy.
func (h *haStack) nodeURL(service, path string) string {
	h.t.Helper()
	out, err := exec.Command("docker", "inspect", "-f", `{{(index .NetworkSettings.Networks "`+h.network("ha-front")+`").IPAddress}}`, h.id(service)).Output()
	ip := strings.TrimSpace(string(out))
	if err != nil || ip == "" {
		h.t.Fatalf("address of %s: %v %q", service, err, out)
	}
	return "http://" + ip + ":3939" + path
}

// sql runs a query in the PostgreSQL container and returns its rows,
// fields separated by |.
func (h *haStack) sql(query string) string {
	h.t.Helper()
	out, err := exec.Command("docker", "exec", h.id("ha-postgres"), "psql", "-U", "dais", "-d", "dais", "-tAc", query).CombinedOutput()
	if err != nil {
		h.t.Fatalf("psql %q: %v\n%s", query, err, out)
	}
	return strings.TrimSpace(string(out))
}

// haproxyLog is haproxy's request log (stdout).
func (h *haStack) haproxyLog() string {
	out, _ := exec.Command("docker", "logs", h.id("haproxy")).CombinedOutput()
	return string(out)
}

func httpGet(u, key string) (int, string, http.Header, error) {
	return httpGetWithin(u, key, 5*time.Second)
}

// httpGetWithin is httpGet with its own timeout: a first request to an
// app on a node waits for its process to start.
func httpGetWithin(u, key string, timeout time.Duration) (int, string, http.Header, error) {
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		return 0, "", nil, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Key "+key)
	}
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header, nil
}

// TestHAProfile runs the Docker tests that exist, on one ha stack,
// in an order that leaves the stack usable for the next:
//
//  1. rsconnect (R) deploys through haproxy, round-robin with no
//     stickiness: its task polls land on both nodes; the content answers
//     through either node.
//  5. wrk against a Plumber route through haproxy while a node is
//     stopped (docker stop) and started again: no failed request.
//  7. a node loses the database (docker network disconnect): its
//     /__ping__ answers 503 within 10 s and haproxy sends everything to the
//     other; reconnected, it serves again.
//  4. 50 due schedules with both nodes up: exactly 50 renders, each
//     document's once, on both nodes.
//  2. a Shiny app, two browsers' sessions through haproxy, docker kill of
//     the node holding the first: the other goes on, and a new session
//     from the first browser works on the survivor within 10 s.
//  8. a bounded soak (DAIS_HA_SOAK, default 10 minutes): mixed traffic
//     while the nodes stop and start in turn (ha_soak_test.go).
//  3. docker kill of the node running a 60 s scheduled render: the other
//     node fails it within the dead-node time, it is never shown running
//     again, and the schedule's next run happens once.
//  6. dais2 on a newer image (ha_upgrade_test.go): with an additive
//     migration both serve; with one that is not, dais1 drains and exits
//     with its line. Last: dais1 cannot serve after it.
func TestHAProfile(t *testing.T) {
	h := startHA(t)
	t.Run("1_rsconnect_round_robin", func(t *testing.T) { haDeployR(t, h) })
	t.Run("5_wrk_across_docker_stop", func(t *testing.T) { haWrkAcrossStop(t, h) })
	t.Run("7_database_lost", func(t *testing.T) { haDatabaseLost(t, h) })
	t.Run("4_fifty_due_schedules", func(t *testing.T) { haFiftySchedules(t, h) })
	t.Run("2_shiny_across_a_node_kill", func(t *testing.T) { haShinyAcrossKill(t, h) })
	t.Run("8_soak", func(t *testing.T) { haSoak(t, h) })
	t.Run("3_kill_mid_render", func(t *testing.T) { haKillMidRender(t, h) })
	t.Run("6_newer_image", func(t *testing.T) { haNewerImage(t, h) })
}

const rDeployAPIKey = rPrelude + `
addServer(Sys.getenv("DAIS_URL"), name = "dais", quiet = TRUE)
connectApiUser(account = "admin", server = "dais", apiKey = Sys.getenv("DAIS_KEY"))
ok <- deployApp(appDir = "/work/apps/plumber", appName = "plumber", server = "dais", account = "admin",
                launch.browser = FALSE, forceUpdate = TRUE, lint = FALSE)
if (!isTRUE(ok)) stop("deployApp did not succeed")
cat("DEPLOYED plumber\n")
`

func haDeployR(t *testing.T, h *haStack) {
	img := rClientImage(t)
	work := tempDir(t)
	apps := filepath.Join(work, "apps")
	if err := os.MkdirAll(filepath.Join(work, "home"), 0o755); err != nil {
		t.Fatal(err)
	}
	copyExample(t, apps, "plumber")
	if err := os.WriteFile(filepath.Join(work, "script.R"), []byte(rDeployAPIKey), 0o644); err != nil {
		t.Fatal(err)
	}
	before := len(strings.Split(h.haproxyLog(), "\n"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, "docker", "run", "--rm", "--network", "host", "--label", labelKey+"=rclient",
		"-v", work+":/work", "-e", "HOME=/work/home", "-e", "DAIS_URL=http://127.0.0.1:"+h.port+"/__api__",
		"-e", "DAIS_KEY="+h.key, img, "Rscript", "/work/script.R").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "DEPLOYED plumber") {
		t.Fatalf("rsconnect deployApp through haproxy: %v\n%s", err, tail(string(out), 60))
	}
	t.Logf("rsconnect %s deployed plumber through haproxy in %s", rsconnectRVersion, time.Since(start).Round(time.Millisecond))

	// The task polls, as haproxy logged them: "... any/dais1 ... GET /__api__/v1/tasks/...".
	lines := strings.Split(h.haproxyLog(), "\n")[before-1:]
	polls := map[string]int{}
	for _, l := range lines {
		if !strings.Contains(l, "/__api__/v1/tasks/") && !strings.Contains(l, "/__api__/tasks/") {
			continue
		}
		for _, n := range []string{"dais1", "dais2"} {
			if strings.Contains(l, " any/"+n+" ") {
				polls[n]++
			}
		}
	}
	t.Logf("task polls by node: %v", polls)
	if polls["dais1"] == 0 || polls["dais2"] == 0 {
		t.Fatalf("task polls did not land on both nodes: %v\n%s", polls, tail(strings.Join(lines, "\n"), 40))
	}

	// The content answers through either node, and through haproxy.
	var list []struct {
		GUID string `json:"guid"`
	}
	apiJSON(t, h.lb, "GET", "/__api__/v1/content?name=plumber", h.key, nil, &list)
	if len(list) != 1 {
		t.Fatalf("content named plumber: %+v", list)
	}
	h.plumber = list[0].GUID
	for _, n := range []string{"dais1", "dais2"} {
		status, body, _, err := httpGetWithin(h.nodeURL(n, "/content/"+list[0].GUID+"/hello"), h.key, time.Minute)
		if err != nil || status != http.StatusOK || !strings.Contains(body, "hello from plumber") {
			t.Fatalf("GET /content/<plumber>/hello on %s: %d %v %.300s", n, status, err, body)
		}
	}
	status, body, hdr, err := httpGetWithin("http://127.0.0.1:"+h.port+"/content/"+list[0].GUID+"/hello", h.key, time.Minute)
	if err != nil || status != http.StatusOK || !strings.Contains(body, "hello from plumber") || !strings.Contains(hdr.Get("Set-Cookie"), "DAISNODE=") {
		t.Fatalf("GET /content/<plumber>/hello through haproxy: %d %v %q %.300s", status, err, hdr.Get("Set-Cookie"), body)
	}
}

func haWrkAcrossStop(t *testing.T, h *haStack) {
	if h.plumber == "" {
		t.Skip("test 1 did not deploy the Plumber API")
	}
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		requireOrSkip(t, "wrk not found (Debian's wrk; scripts/test-env.sh installs it)")
	}
	url := "http://127.0.0.1:" + h.port + "/content/" + h.plumber + "/hello"
	// Both nodes have a process for it before the load starts.
	for _, n := range []string{"dais1", "dais2"} {
		if status, body, _, err := httpGetWithin(h.nodeURL(n, "/content/"+h.plumber+"/hello"), h.key, time.Minute); err != nil || status != 200 {
			t.Fatalf("warm-up on %s: %d %v %.200s", n, status, err, body)
		}
	}
	const duration = 40 * time.Second
	// --timeout 30s: a request that waits for a Plumber process to start
	// on the node that came back is slow, not failed (its latency shows).
	cmd := exec.Command(wrk, "-t1", "-c4", "-d"+strconv.Itoa(int(duration.Seconds()))+"s", "--timeout", "30s", "--latency", "-H", "Authorization: Key "+h.key, url)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second)
	dais2 := h.id("dais2")
	stopAt := time.Now()
	if o, err := exec.Command("docker", "stop", "-t", "60", dais2).CombinedOutput(); err != nil {
		t.Fatalf("docker stop dais2: %v %s", err, o)
	}
	stopped := time.Since(stopAt)
	if o, err := exec.Command("docker", "start", dais2).CombinedOutput(); err != nil {
		t.Fatalf("docker start dais2: %v %s", err, o)
	}
	started := time.Now()
	for {
		_, _, hdr, err := httpGet(url, h.key)
		if err == nil && hdr.Get("X-Dais-Node") == "dais2" {
			break
		}
		if time.Since(stopAt) > duration-3*time.Second {
			t.Fatalf("dais2 not back in haproxy's rotation before the load ended (stopped in %s)", stopped.Round(time.Millisecond))
		}
		time.Sleep(200 * time.Millisecond)
	}
	back := time.Since(started)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("wrk: %v\n%s", err, out.String())
	}
	t.Logf("docker stop of dais2 took %s; back in rotation %s after docker start; wrk:\n%s", stopped.Round(time.Millisecond), back.Round(time.Millisecond), out.String())
	res := out.String()
	if strings.Contains(res, "Non-2xx or 3xx responses") || strings.Contains(res, "Socket errors") {
		t.Fatalf("requests failed while dais2 stopped and started:\n%s", res)
	}
	if !strings.Contains(res, "requests in") {
		t.Fatalf("wrk printed no result:\n%s", res)
	}
}

func haDatabaseLost(t *testing.T, h *haStack) {
	db := h.network("ha-db")
	dais1 := h.id("dais1")
	ping := h.nodeURL("dais1", "/__ping__")
	if out, err := exec.Command("docker", "network", "disconnect", db, dais1).CombinedOutput(); err != nil {
		t.Fatalf("docker network disconnect: %v %s", err, out)
	}
	cut := time.Now()
	reconnected := false
	reconnect := func() {
		if !reconnected {
			reconnected = true
			if out, err := exec.Command("docker", "network", "connect", db, dais1).CombinedOutput(); err != nil {
				t.Fatalf("docker network connect: %v %s", err, out)
			}
		}
	}
	defer reconnect()
	for {
		status, body, _, err := httpGet(ping, "")
		if err == nil && status == http.StatusServiceUnavailable {
			if !strings.Contains(body, "database unreachable") {
				t.Fatalf("503 without the reason: %s", body)
			}
			break
		}
		if time.Since(cut) > 10*time.Second {
			t.Fatalf("dais1's /__ping__ = %d (%v) 10 s after it lost the database", status, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("dais1 /__ping__ 503 %s after docker network disconnect", time.Since(cut).Round(time.Millisecond))
	// haproxy's checks (2 s, fall 2) take it out: then every request
	// through haproxy reaches dais2 and succeeds.
	time.Sleep(5 * time.Second)
	for i := range 10 {
		status, _, hdr, err := httpGet("http://127.0.0.1:"+h.port+"/__api__/v1/user", h.key)
		if err != nil || status != http.StatusOK || hdr.Get("X-Dais-Node") != "dais2" {
			t.Fatalf("request %d through haproxy with dais1 cut off: %d %v node %q", i, status, err, hdr.Get("X-Dais-Node"))
		}
	}
	reconnect()
	back := time.Now()
	for {
		status, _, _, err := httpGet(ping, "")
		if err == nil && status == http.StatusOK {
			break
		}
		if time.Since(back) > 30*time.Second {
			t.Fatalf("dais1's /__ping__ = %d (%v) 30 s after the database came back", status, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("dais1 /__ping__ 200 again %s after docker network connect", time.Since(back).Round(time.Millisecond))
	// Cut off longer than DeadAfter, it was declared dead by dais2 and
	// registered again.
	logs, _ := exec.Command("docker", "logs", dais1).CombinedOutput()
	if !strings.Contains(string(logs), "the database does not answer") {
		t.Errorf("dais1 did not log the lost database:\n%s", tail(string(logs), 30))
	}
	if got := h.sql("SELECT count(*) FROM nodes WHERE name IN ('dais1', 'dais2')"); got != "2" {
		t.Errorf("registered nodes after the reconnect: %s", got)
	}
	// haproxy sends requests to dais1 again.
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, _, hdr, err := httpGet("http://127.0.0.1:"+h.port+"/__api__/v1/user", h.key)
		if err == nil && hdr.Get("X-Dais-Node") == "dais1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("haproxy sends nothing to dais1 15 s after it came back")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// sleepyRmd renders in a moment, or sleeps DAIS_SLEEP seconds first.
const sleepyRmd = "---\ntitle: \"sleepy\"\noutput: html_document\n---\n\n```{r}\nSys.sleep(as.numeric(Sys.getenv(\"DAIS_SLEEP\", \"0\")))\ncat(\"slept\", Sys.getenv(\"DAIS_SLEEP\", \"0\"), \"\\n\")\n```\n"

func haKillMidRender(t *testing.T, h *haStack) {
	dir := tempDir(t)
	man, err := os.ReadFile(filepath.Join(exampleDir("rmarkdown"), "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	// The example's manifest, its checksum of doc.Rmd dropped (the file differs).
	var m map[string]any
	if err := json.Unmarshal(man, &m); err != nil {
		t.Fatal(err)
	}
	m["files"] = map[string]any{"doc.Rmd": map[string]any{}}
	man, _ = json.Marshal(m)
	for name, body := range map[string][]byte{"doc.Rmd": []byte(sleepyRmd), "manifest.json": man} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	begin := time.Now()
	guid, tk, out := deployV1(t, h.lb, h.key, "sleepy", bundle(t, dir))
	if tk.Code != 0 {
		t.Fatalf("deploy: %s\n%s", tk.Error, out)
	}
	t.Logf("sleepy document deployed in %s", time.Since(begin).Round(time.Millisecond))
	setEnv(t, h.lb, h.key, guid, "DAIS_SLEEP", "60")
	apiJSON(t, h.lb, "PUT", "/__api__/v1/content/"+guid+"/schedule", h.key, strings.NewReader(`{"interval_seconds":3600}`), nil)
	cid := h.sql("SELECT id FROM content WHERE guid = '" + guid + "'")
	due := func() {
		h.sql(fmt.Sprintf("UPDATE schedules SET next_run_at = %d WHERE content_id = %s", time.Now().Add(-time.Minute).UnixMicro(), cid))
	}
	due()
	begin = time.Now()
	// A node claims the run (both poll every 10 s) and renders: 60 s.
	var taskID, node string
	deadline := time.Now().Add(40 * time.Second)
	for {
		row := h.sql("SELECT r.task_id || '|' || r.node FROM renders r WHERE r.content_id = " + cid + " AND r.status = 'running' ORDER BY r.id DESC LIMIT 1")
		if row != "" {
			taskID, node, _ = strings.Cut(row, "|")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no render running 40 s after the schedule came due; renders:\n%s", h.sql("SELECT id, status, node, error FROM renders WHERE content_id = "+cid))
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("scheduled render running on %s %s after the schedule came due", node, time.Since(begin).Round(time.Millisecond))
	other := map[string]string{"dais1": "dais2", "dais2": "dais1"}[node]
	if other == "" {
		t.Fatalf("render on node %q", node)
	}
	time.Sleep(2 * time.Second) // well into its 60 s
	if out, err := exec.Command("docker", "kill", h.id(node)).CombinedOutput(); err != nil {
		t.Fatalf("docker kill %s: %v %s", node, err, out)
	}
	killed := time.Now()
	for {
		row := h.sql("SELECT status || '|' || error FROM renders WHERE task_id = '" + taskID + "'")
		status, msg, _ := strings.Cut(row, "|")
		if status == "failed" {
			if !strings.Contains(msg, "node "+node+" was lost") {
				t.Fatalf("render failed with %q", msg)
			}
			break
		}
		if time.Since(killed) > haDeadAfter+15*time.Second {
			t.Fatalf("render still %q %s after docker kill of %s", status, time.Since(killed).Round(time.Second), node)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("render on %s failed by %s %s after docker kill (DeadAfter %s)", node, other, time.Since(killed).Round(time.Millisecond), haDeadAfter)
	var task v1Task
	apiJSON(t, h.lb, "GET", "/__api__/v1/tasks/"+taskID, h.key, nil, &task)
	if !task.Finished || task.Code == 0 || !strings.Contains(task.Error, "was lost") {
		t.Fatalf("the API shows the lost render's task as %+v", task)
	}

	// The next run: once, on the survivor, not the lost run again.
	setEnv(t, h.lb, h.key, guid, "DAIS_SLEEP", "0")
	due()
	dueAgain := time.Now()
	deadline = time.Now().Add(45 * time.Second)
	for {
		rows := h.sql("SELECT status || '|' || node FROM renders WHERE content_id = " + cid + " AND task_id <> '" + taskID + "' AND task_id IN (SELECT id FROM tasks WHERE kind = 'render')")
		if rows == "succeeded|"+other {
			break
		}
		if strings.Count(rows, "\n") > 0 {
			t.Fatalf("more than one render after the schedule came due again:\n%s", rows)
		}
		if time.Now().After(deadline) {
			t.Fatalf("next scheduled run not done on %s 45 s after it came due: %q", other, rows)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("the next run rendered on %s %s after it came due", other, time.Since(dueAgain).Round(time.Millisecond))
	// Both nodes poll every 10 s: after 12 s more, still one run, and the
	// lost render never shown running again.
	time.Sleep(12 * time.Second)
	if n := h.sql("SELECT count(*) FROM tasks WHERE kind = 'render' AND content_id = " + cid); n != "2" {
		t.Fatalf("render tasks = %s, want 2 (the lost one and the next run)", n)
	}
	if s := h.sql("SELECT status FROM renders WHERE task_id = '" + taskID + "'"); s != "failed" {
		t.Fatalf("the lost render is %q again", s)
	}
	if n := h.sql("SELECT count(*) FROM nodes WHERE name = '" + node + "'"); n != "0" {
		t.Errorf("killed %s still registered", node)
	}
}

// haClient is a small API client for goroutines (no t.Fatal): JSON in and
// out with an API key, through base.
type haClient struct {
	base, key string
	hc        *http.Client
}

func (c haClient) do(method, path string, body io.Reader, v any) error {
	return keyRequest(c.hc, method, c.base+path, c.key, body, v)
}

// deploy creates content name, uploads archive and deploys it, waiting for
// the task; it returns the content's guid.
func (c haClient) deploy(name string, archive []byte) (string, error) {
	var content struct {
		GUID string `json:"guid"`
	}
	if err := c.do("POST", "/__api__/v1/content", strings.NewReader(`{"name":"`+name+`","access_type":"all"}`), &content); err != nil {
		return "", err
	}
	var b struct {
		ID string `json:"id"`
	}
	if err := c.do("POST", "/__api__/v1/content/"+content.GUID+"/bundles", bytes.NewReader(archive), &b); err != nil {
		return "", err
	}
	var d struct {
		TaskID string `json:"task_id"`
	}
	if err := c.do("POST", "/__api__/v1/content/"+content.GUID+"/deploy", strings.NewReader(`{"bundle_id":"`+b.ID+`"}`), &d); err != nil {
		return "", err
	}
	if err := c.wait(d.TaskID); err != nil {
		return "", fmt.Errorf("deploy of %s: %w", name, err)
	}
	return content.GUID, nil
}

// wait follows a task until it finishes (3 minutes at most); a task that
// failed is an error with its message.
func (c haClient) wait(task string) error {
	first := 0
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); {
		var tk v1Task
		if err := c.do("GET", "/__api__/v1/tasks/"+task+"?wait=5&first="+strconv.Itoa(first), nil, &tk); err != nil {
			return err
		}
		first = tk.Last
		if tk.Finished {
			if tk.Code != 0 {
				return fmt.Errorf("task %s failed: %s", task, tk.Error)
			}
			return nil
		}
	}
	return fmt.Errorf("task %s not finished in 3 minutes", task)
}

// haFiftySchedules: 50 documents, each with a schedule, all due at once
// with both nodes up: exactly 50 renders, each document's once, and both
// nodes rendered some.
func haFiftySchedules(t *testing.T, h *haStack) {
	const n = 50
	archive := bundle(t, exampleDir("rmarkdown"))
	client := haClient{base: h.lb.URL(""), key: h.key, hc: &http.Client{Timeout: 30 * time.Second}}
	guids := make([]string, n)
	errs := make([]error, n)
	begin := time.Now()
	var wg sync.WaitGroup
	next := make(chan int)
	for range 4 {
		wg.Go(func() {
			for i := range next {
				guids[i], errs[i] = client.deploy(fmt.Sprintf("scheduled-%02d", i), archive)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d documents deployed through haproxy in %s (4 at a time)", n, time.Since(begin).Round(time.Millisecond))
	for _, g := range guids {
		apiJSON(t, h.lb, "PUT", "/__api__/v1/content/"+g+"/schedule", h.key, strings.NewReader(`{"interval_seconds":3600}`), nil)
	}
	last := h.sql("SELECT coalesce(max(id), 0) FROM renders")
	ids := "(SELECT id FROM content WHERE name LIKE 'scheduled-%')"
	h.sql(fmt.Sprintf("UPDATE schedules SET next_run_at = %d WHERE content_id IN %s", time.Now().Add(-time.Minute).UnixMicro(), ids))
	due := time.Now()
	count := func() (done, running int) {
		row := h.sql("SELECT count(*) FILTER (WHERE status = 'succeeded') || '|' || count(*) FILTER (WHERE status = 'running') FROM renders WHERE id > " + last + " AND content_id IN " + ids)
		d, r, _ := strings.Cut(row, "|")
		done, _ = strconv.Atoi(d)
		running, _ = strconv.Atoi(r)
		return done, running
	}
	deadline := time.Now().Add(4 * time.Minute)
	for {
		done, _ := count()
		if done >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d scheduled renders done 4 minutes after they came due; by status:\n%s", done, n,
				h.sql("SELECT status, node, count(*) FROM renders WHERE id > "+last+" GROUP BY 1, 2"))
		}
		time.Sleep(time.Second)
	}
	took := time.Since(due)
	// Both nodes poll every 10 s: 12 s more, and still one run each.
	time.Sleep(12 * time.Second)
	perContent := h.sql("SELECT count(*) FROM renders WHERE id > " + last + " AND content_id IN " + ids + " GROUP BY content_id HAVING count(*) <> 1")
	if perContent != "" {
		t.Errorf("documents rendered other than once: %q", perContent)
	}
	if total := h.sql("SELECT count(*) FROM renders WHERE id > " + last + " AND content_id IN " + ids); total != strconv.Itoa(n) {
		t.Errorf("%s renders, want exactly %d", total, n)
	}
	byNode := h.sql("SELECT node || ' ' || count(*) FROM renders WHERE id > " + last + " AND content_id IN " + ids + " GROUP BY node ORDER BY node")
	if !strings.Contains(byNode, "dais1 ") || !strings.Contains(byNode, "dais2 ") {
		t.Errorf("renders by node: %q, want both nodes", byNode)
	}
	t.Logf("%d due schedules: %d renders in %s, by node %q", n, n, took.Round(time.Millisecond), strings.ReplaceAll(byNode, "\n", ", "))
}

// haBrowser is one browser's visit of a Shiny app through haproxy: the
// page (which sets haproxy's DAISNODE cookie), then the session's
// WebSocket with that cookie, as a browser sends it.
type haBrowser struct {
	cookie string // DAISNODE=<node>
	node   string
	s      *shinytest.Session
}

// haVisit loads the app's page through haproxy with cookie (may be "")
// within wait, and opens its session for ctx; it returns an error where a
// browser would show one.
func haVisit(ctx context.Context, h *haStack, guid, cookie string, wait time.Duration) (*haBrowser, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", h.lb.URL("/content/"+guid+"/"), nil)
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := (&http.Client{Timeout: wait}).Do(req)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("page: %d", resp.StatusCode)
	}
	b := &haBrowser{cookie: cookie, node: resp.Header.Get("X-Dais-Node")}
	for _, c := range resp.Cookies() {
		if c.Name == "DAISNODE" {
			b.cookie = "DAISNODE=" + c.Value
		}
	}
	ws := "ws://127.0.0.1:" + h.port + "/content/" + guid + "/websocket/"
	if b.s, err = shinytest.TryDial(ctx, ws, http.Header{"Cookie": {b.cookie}}); err != nil {
		return nil, fmt.Errorf("WebSocket: %w", err)
	}
	return b, nil
}

// haShinyAcrossKill (test 2): a Shiny app with up to two processes a
// node, two browsers' sessions through haproxy: each session's round
// trips succeed; docker kill of the node holding the first: the other
// session goes on, and a new session, from the first browser with its
// cookie naming the dead node, works on the survivor within 10 s. The
// killed node is started again for the tests after.
func haShinyAcrossKill(t *testing.T, h *haStack) {
	guid, tk, out := deployV1(t, h.lb, h.key, "shiny-ha", bundle(t, exampleDir("shiny")))
	if tk.Code != 0 {
		t.Fatalf("deploy: %s\n%s", tk.Error, out)
	}
	apiJSON(t, h.lb, "PATCH", "/__api__/v1/content/"+guid, h.key, strings.NewReader(`{"max_processes":2,"max_conns_per_process":1}`), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var browsers []*haBrowser
	for i := 0; len(browsers) < 2 || browsers[0].node == browsers[len(browsers)-1].node; i++ {
		if i == 6 {
			t.Fatalf("6 visits without haproxy ever choosing both nodes: %v", browsers)
		}
		b, err := haVisit(ctx, h, guid, "", 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		msg := fmt.Sprintf("browser %d", i)
		b.s.Send(t, "init", shinytest.Init("/content/"+guid+"/", map[string]any{"msg": msg}, "echo"))
		b.s.Expect(t, `"echo":"echo: `+msg+`"`)
		b.s.Send(t, "update", map[string]any{"msg": msg + " again"})
		b.s.Expect(t, `"echo":"echo: `+msg+` again"`)
		if b.cookie == "" || b.node == "" {
			t.Fatalf("haproxy set no DAISNODE cookie or X-Dais-Node: %+v", b)
		}
		browsers = append(browsers, b)
	}
	first, second := browsers[0], browsers[len(browsers)-1]
	t.Logf("%d sessions opened, each answered twice; the first on %s (%s), the last on %s", len(browsers), first.node, first.cookie, second.node)
	if out, err := exec.Command("docker", "kill", h.id(first.node)).CombinedOutput(); err != nil {
		t.Fatalf("docker kill %s: %v %s", first.node, err, out)
	}
	killed := time.Now()
	defer func() {
		// The killed node again, for the tests after, also when this one
		// failed.
		if out, err := exec.Command("docker", "start", h.id(first.node)).CombinedOutput(); err != nil {
			t.Fatalf("docker start %s: %v %s", first.node, err, out)
		}
		waitComposeHealthy(t, Docker(t), h.project, []string{first.node}, 2*time.Minute)
	}()
	second.s.Send(t, "update", map[string]any{"msg": "after the kill"})
	second.s.Expect(t, `"echo":"echo: after the kill"`)
	var again *haBrowser
	var tries []string
	for again == nil {
		if time.Since(killed) > 10*time.Second {
			t.Fatalf("no new session within 10 s of docker kill %s; tries: %q", first.node, tries)
		}
		b, err := haVisit(ctx, h, guid, first.cookie, 5*time.Second)
		if err != nil {
			tries = append(tries, err.Error())
			time.Sleep(200 * time.Millisecond)
			continue
		}
		again = b
	}
	again.s.Send(t, "init", shinytest.Init("/content/"+guid+"/", map[string]any{"msg": "back"}, "echo"))
	again.s.Expect(t, `"echo":"echo: back"`)
	took := time.Since(killed)
	if again.node == first.node {
		t.Fatalf("the new session is on the killed node %s", first.node)
	}
	t.Logf("docker kill %s: the session on %s went on; a new session from the first browser (cookie %s) answered on %s %s after the kill (%d failed tries before)",
		first.node, second.node, first.cookie, again.node, took.Round(time.Millisecond), len(tries))
}
