package e2e

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func init() {
	addCase(batteryCase{Name: "a memory hog with memory_limit 128 MB set through the v1 API: killed, said in words, started again; other content answers",
		Issue: "23.5", Run: func(t *testing.T, r *row) { testMemoryHog(t, r, false) }})
	addCase(batteryCase{Name: "the same with no privileges (Landlock mode, rlimits: the allocation fails instead)",
		Issue: "23.5", Run: func(t *testing.T, r *row) { testMemoryHog(t, r, true) }})
	addCase(batteryCase{Name: "a fork bomb stops at the process limit; the server and other content stay responsive",
		Issue: "23.5", Run: func(t *testing.T, r *row) { testForkBomb(t, r, false) }})
	addCase(batteryCase{Name: "the same with no privileges (Landlock mode, RLIMIT_NPROC)",
		Issue: "23.5", Run: func(t *testing.T, r *row) { testForkBomb(t, r, true) }})
}

// hogApp allocates ?mb= megabytes, touching every page, and says so.
const hogApp = `from flask import Flask, request

app = Flask(__name__)
held = []


@app.get("/hog")
def hog():
    mb = int(request.args.get("mb", "1"))
    try:
        for _ in range(mb):
            held.append(bytearray(1 << 20))
    except MemoryError:
        held.clear()
        return "MemoryError after %d MB" % len(held), 507
    n = len(held)
    held.clear()
    return "allocated %d MB" % n


@app.get("/pid")
def pid():
    import os
    return str(os.getpid())
`

// bombApp forks sleeping children until a fork fails, answers how many it
// started and why it stopped, and ends them.
const bombApp = `import os, signal
from flask import Flask

app = Flask(__name__)


@app.get("/bomb")
def bomb():
    kids, err = [], ""
    for _ in range(5000):
        try:
            pid = os.fork()
        except OSError as e:
            err = str(e)
            break
        if pid == 0:
            signal.pause()
            os._exit(0)
        kids.append(pid)
    for k in kids:
        os.kill(k, signal.SIGKILL)
    for k in kids:
        os.waitpid(k, 0)
    return "%d %s" % (len(kids), err)
`

// limitsServer runs dais with SYS_ADMIN (namespaces mode, cgroups) or with
// no privilege at all (Landlock mode, rlimits).
func limitsServer(t *testing.T, unprivileged bool) (*Container, string) {
	t.Helper()
	if !unprivileged {
		c, key := deployServer(t, sandboxMode("namespaces")...)
		if !strings.Contains(c.Logs(), "content process limits: cgroup v1") {
			t.Fatalf("with SYS_ADMIN the limits should be cgroups; log:\n%s", tail(c.Logs(), 30))
		}
		return c, key
	}
	c := Run(t, Options{NoSysAdmin: true, Env: []string{"DAIS_BUNDLE_MAX_BYTES=" + strconv.Itoa(deployBundleLimit)}})
	c.WaitHTTP("/__ping__", http.StatusOK, startBound)
	if !strings.Contains(c.Logs(), "content processes start in landlock sandboxes") || !strings.Contains(c.Logs(), "content process limits: rlimits only") {
		t.Fatalf("with no privileges: want Landlock mode and rlimits; log:\n%s", tail(c.Logs(), 30))
	}
	return c, publisherKey(t, c, "alice", "alice-password-e2e")
}

// limitsPair runs a server (limitsServer), deploys alice's app app as name
// and bob's secretApp beside it, and returns the keys and both guids.
func limitsPair(t *testing.T, unprivileged bool, name, app string) (c *Container, alice, bob, guid, other string) {
	t.Helper()
	c, alice = limitsServer(t, unprivileged)
	bob = publisherKey(t, c, "bob", "bob-password-e2e")
	guid, tk, out := deployV1(t, c, alice, name, bundle(t, flaskDir(t, app)))
	if tk.Code != 0 {
		t.Fatalf("deploy of alice's %s failed: %s\n%s", name, tk.Error, out)
	}
	other, tk, out = deployV1(t, c, bob, "other", bundle(t, flaskDir(t, secretApp)))
	if tk.Code != 0 {
		t.Fatalf("deploy of bob's app failed: %s\n%s", tk.Error, out)
	}
	return c, alice, bob, guid, other
}

func testMemoryHog(t *testing.T, r *row, unprivileged bool) {
	c, alice, bob, hog, other := limitsPair(t, unprivileged, "hog", hogApp)
	// A process of the hog runs before the limit is set.
	if code, body := getWithKey(t, c, "/content/"+hog+"/hog?mb=32", alice); code != 200 || body != "allocated 32 MB" {
		t.Fatalf("the hog before its limit: %d %q", code, body)
	}
	ready := func() int {
		return strings.Count(c.Logs(), `msg="content process ready" component=deploy content=`+hog)
	}
	before := ready()
	// The limit through the v1 API, as rsconnect and connectapi set it.
	var shown map[string]any
	apiJSON(t, c, "PATCH", "/__api__/v1/content/"+hog, alice, strings.NewReader(`{"memory_limit":134217728}`), &shown)
	if shown["memory_limit"] != float64(128<<20) {
		t.Fatalf("PATCH memory_limit answered %v", shown["memory_limit"])
	}
	// The app's processes are replaced by ones under the limit: the new
	// pool takes the traffic once its process is ready.
	deadline := time.Now().Add(time.Minute)
	for ready() == before {
		if time.Now().After(deadline) {
			t.Fatalf("no new process of the hog after the PATCH; log:\n%s", tail(c.Logs(), 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(time.Second)
	pid1 := ""
	if code, body := getWithKey(t, c, "/content/"+hog+"/hog?mb=32", alice); code != 200 || body != "allocated 32 MB" {
		t.Fatalf("the hog under its limit: %d %q", code, body)
	}
	_, pid1 = getWithKey(t, c, "/content/"+hog+"/pid", alice)
	code, body := getWithKey(t, c, "/content/"+hog+"/hog?mb=600", alice)
	if code == 200 {
		t.Fatalf("the hog allocated 600 MB under a 128 MB limit: %q", body)
	}
	// Bob's app answers all along, and the server too.
	if code, body := getWithKey(t, c, "/content/"+other+"/secret", bob); code != 200 || body != "bob-s3cret-payload" {
		t.Errorf("bob's app after the hog: %d %q", code, body)
	}
	if code, _ := c.Get("/__ping__"); code != 200 {
		t.Errorf("/__ping__ after the hog: %d", code)
	}
	if unprivileged {
		if !strings.Contains(body, "MemoryError") {
			t.Errorf("with RLIMIT_DATA the allocation should fail with MemoryError: %d %q", code, body)
		}
		r.Figure(t, "600 MB asked under 128 MB (rlimits): %d %q; bob's app answered", code, strings.TrimSpace(body))
		return
	}
	// The app's log says so in words (the worker gunicorn started it in
	// was killed; gunicorn starts another).
	const said = "killed: over its 128 MB memory limit"
	deadline = time.Now().Add(30 * time.Second)
	var logged ExecResult
	for {
		logged = c.Exec("sh", "-c", "grep -rh --include='*.log' '"+said+"' /data 2>/dev/null | head -3")
		if strings.Contains(logged.Stdout, said) {
			break
		}
		if time.Now().After(deadline) {
			dbg := c.Exec("sh", "-c", "for f in $(find /run/dais/cgroup/memory -path '*/dais/[0-9]*' -name memory.oom_control); do echo $f; cat $f; cat $(dirname $f)/memory.limit_in_bytes $(dirname $f)/memory.max_usage_in_bytes $(dirname $f)/memory.failcnt; done; tail -5 $(ls -t $(find /data -name '*.log') | head -3)")
			t.Fatalf("no process log says %q (the 600 MB request: %d %q); cgroups and logs:\n%s%s", said, code, body, dbg.Stdout, dbg.Stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The next request starts it again.
	code2, body2 := 0, ""
	deadline = time.Now().Add(time.Minute)
	for {
		code2, body2 = getWithKey(t, c, "/content/"+hog+"/hog?mb=16", alice)
		if code2 == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hog was not started again: %d %q", code2, body2)
		}
		time.Sleep(500 * time.Millisecond)
	}
	_, pid2 := getWithKey(t, c, "/content/"+hog+"/pid", alice)
	r.Figure(t, "600 MB asked under 128 MB: %d, the app's log says %q; next request %d %q (pid %s -> %s); bob's app answered", code, strings.TrimSpace(logged.Stdout), code2, body2, strings.TrimSpace(pid1), strings.TrimSpace(pid2))
}

func testForkBomb(t *testing.T, r *row, unprivileged bool) {
	c, alice, bob, bombGUID, other := limitsPair(t, unprivileged, "bomb", bombApp)
	if code, body := getWithKey(t, c, "/content/"+other+"/secret", bob); code != 200 {
		t.Fatalf("bob's app before: %d %q", code, body)
	}
	// While the bomb goes off, the server and bob's app are asked again
	// and again; each answer is timed.
	var (
		mu      sync.Mutex
		worst   time.Duration
		failed  []string
		asked   int
		stop    = make(chan struct{})
		watcher sync.WaitGroup
	)
	watcher.Add(1)
	go func() {
		defer watcher.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			t0 := time.Now()
			code, body := getWithKey(t, c, "/content/"+other+"/secret", bob)
			ping, _ := c.Get("/__ping__")
			d := time.Since(t0)
			mu.Lock()
			asked++
			worst = max(worst, d)
			if code != 200 || body != "bob-s3cret-payload" || ping != 200 {
				failed = append(failed, strconv.Itoa(code)+"/"+strconv.Itoa(ping))
			}
			mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
	}()
	code, body := getWithKey(t, c, "/content/"+bombGUID+"/bomb", alice)
	close(stop)
	watcher.Wait()
	if code != 200 {
		t.Fatalf("the bomb: %d %q", code, body)
	}
	f := strings.Fields(body)
	n, _ := strconv.Atoi(f[0])
	if n <= 0 || n >= 512 || !strings.Contains(body, "Resource temporarily unavailable") {
		t.Errorf("want a fork refused under the process limit of 512, got %q", body)
	}
	if len(failed) > 0 {
		t.Errorf("during the bomb %d of %d checks of the server and bob's app failed: %v", len(failed), asked, failed)
	}
	if worst > 5*time.Second {
		t.Errorf("during the bomb the slowest answer took %s", worst)
	}
	r.Figure(t, "the bomb started %d children before %q; %d checks of /__ping__ and bob's app during it, slowest %s, failed %d",
		n, strings.Join(f[1:], " "), asked, worst.Round(time.Millisecond), len(failed))
}

func init() {
	addCase(batteryCase{Name: "an app filling its work directory over [Sandbox] WorkDirLimit (16 MB) with no privileges: killed, said in words; one file over it refused",
		Issue: "23.5", Run: testWorkDirLimit})
}

// fillApp writes ?mb= megabytes into its HOME (the work directory) in
// 4 MB files, or one file of ?one= megabytes.
const fillApp = `import os
from flask import Flask, request

app = Flask(__name__)


@app.get("/fill")
def fill():
    home = os.environ["HOME"]
    if "one" in request.args:
        try:
            with open(os.path.join(home, "one.bin"), "wb") as f:
                for _ in range(int(request.args["one"])):
                    f.write(b"x" * (1 << 20))
        except OSError as e:
            return "refused: %s" % e.strerror, 507
        return "wrote one file"
    for i in range(int(request.args.get("mb", "4")) // 4):
        with open(os.path.join(home, "fill-%d.bin" % i), "wb") as f:
            f.write(os.urandom(4 << 20))
    return "wrote"


@app.get("/pid")
def pid():
    return str(os.getpid())
`

func testWorkDirLimit(t *testing.T, r *row) {
	c := Run(t, Options{NoSysAdmin: true, Env: []string{"CONNECT_SANDBOX_WORKDIRLIMIT=16777216"}})
	c.WaitHTTP("/__ping__", http.StatusOK, startBound)
	alice := publisherKey(t, c, "alice", "alice-password-e2e")
	bob := publisherKey(t, c, "bob", "bob-password-e2e")
	guid, tk, out := deployV1(t, c, alice, "fill", bundle(t, flaskDir(t, fillApp)))
	if tk.Code != 0 {
		t.Fatalf("deploy: %s\n%s", tk.Error, out)
	}
	other, tk, out := deployV1(t, c, bob, "other", bundle(t, flaskDir(t, secretApp)))
	if tk.Code != 0 {
		t.Fatalf("deploy of bob's app: %s\n%s", tk.Error, out)
	}
	if code, body := getWithKey(t, c, "/content/"+guid+"/fill?one=20", alice); code != 507 || !strings.Contains(body, "File too large") {
		t.Errorf("one 20 MB file under a 16 MB limit: %d %q, want 507 File too large", code, body)
	}
	getWithKey(t, c, "/content/"+guid+"/fill?one=0", alice) // empties it
	if code, body := getWithKey(t, c, "/content/"+guid+"/fill?mb=24", alice); code != 200 || body != "wrote" {
		t.Fatalf("24 MB in 4 MB files: %d %q", code, body)
	}
	const said = "over its 16 MB disk limit"
	deadline := time.Now().Add(40 * time.Second)
	var logged ExecResult
	for {
		logged = c.Exec("sh", "-c", "grep -rh --include='*.log' '"+said+"' /data 2>/dev/null | head -1")
		if strings.Contains(logged.Stdout, said) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no process log says %q; server log:\n%s", said, tail(c.Logs(), 30))
		}
		time.Sleep(250 * time.Millisecond)
	}
	if !strings.Contains(c.LogsWith(said, 10*time.Second), said) {
		t.Errorf("the server log does not say %q:\n%s", said, tail(c.Logs(), 20))
	}
	if code, body := getWithKey(t, c, "/content/"+other+"/secret", bob); code != 200 || body != "bob-s3cret-payload" {
		t.Errorf("bob's app after: %d %q", code, body)
	}
	if code, _ := c.Get("/__ping__"); code != 200 {
		t.Errorf("/__ping__ after: %d", code)
	}
	// The content's logs page in the dashboard says it too, on the process.
	cookie := loginCookie(t, c, "alice", "alice-password-e2e")
	var page string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		req, _ := http.NewRequest("GET", c.URL("/connect/apps/"+guid+"/logs"), nil)
		req.AddCookie(&http.Cookie{Name: "dais_session", Value: cookie})
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		page = string(b)
		if strings.Contains(page, said) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the content's logs page does not say %q: %d\n%s", said, resp.StatusCode, tail(page, 40))
		}
	}
	r.Figure(t, "one 20 MB file refused (File too large); 24 MB in 4 MB files: the app's log says %q; bob's app answered", strings.TrimSpace(logged.Stdout))
}
