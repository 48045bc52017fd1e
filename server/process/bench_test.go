package process

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/dais-dev/dais/server/content"
	"github.com/dais-dev/dais/server/content/manifest"
	"github.com/dais-dev/dais/server/content/runtime"
)

// TestProxyBenchmark is run by bench/proxy.sh (DAIS_BENCH=1): the proxy
// against the same app process hit directly, in the same run. It prints
// "RESULT <name> <value>" lines for the script's table, and "SKIP <app>
// <reason>" for an example whose runtime is not installed.
//
// Each app is measured twice per target: at saturation (wrk -t2 -c32:
// requests per second; its p99 is mostly queueing, since a closed loop
// at 80% of the throughput waits 25% longer by construction) and at light
// load (wrk -t1 -c1: one request at a time, so p50 and p99 are service
// time and their difference between proxy and direct is the latency the
// proxy adds). DAIS_BENCH_APPS=go,flask limits the apps (go always runs:
// the WebSocket runs use it).
func TestProxyBenchmark(t *testing.T) {
	if os.Getenv("DAIS_BENCH") != "1" {
		t.Skip("run by bench/proxy.sh (DAIS_BENCH=1)")
	}
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		t.Fatal("wrk is needed (Debian package wrk)")
	}
	dur := os.Getenv("DAIS_BENCH_DURATION")
	if dur == "" {
		dur = "5s"
	}
	result := func(name string, v float64) { fmt.Printf("RESULT %s %.3f\n", name, v) }

	px := NewProxy(quietLogger(), "")
	srv := httptest.NewServer(px)
	defer srv.Close()

	only := os.Getenv("DAIS_BENCH_APPS") // e.g. "go,flask"; "" is all
	for _, app := range benchApps(t) {
		if only != "" && app.name != "go" && !slices.Contains(strings.Split(only, ","), app.name) {
			continue
		}
		if app.skip != "" {
			fmt.Printf("SKIP %s %s\n", app.name, app.skip)
			continue
		}
		pool := readyPool(t, Options{Name: app.name, Launch: app.launch, Min: 1, Max: 1, InitTimeout: 60 * time.Second})
		px.Set(app.name, pool)
		upstream := pool.Stats().Processes[0].Addr
		type benchTarget struct {
			label, url string
			cpu        func() time.Duration // the proxy's CPU time so far; nil for none
		}
		targets := []benchTarget{
			{"direct", "http://" + upstream + "/hello", nil},
			{"proxy", srv.URL + "/content/" + app.name + "/hello", cpuTime},
		}
		if app.name == "go" {
			// The peers, on the same app: nginx and haproxy, each with one
			// worker (thread), keep-alive to the app and no logging.
			for _, name := range []string{"nginx", "haproxy"} {
				pp := startPeerProxy(t, name, app.name, upstream)
				targets = append(targets, benchTarget{name, pp.url + "/hello", func() time.Duration { return procCPU(pp.pid) }})
			}
		}
		for _, load := range []struct{ label, threads, conns string }{{"", "2", "32"}, {"light_", "1", "1"}} {
			for _, target := range targets {
				var cpu0 time.Duration
				if target.cpu != nil {
					cpu0 = target.cpu()
				}
				w := runWrk(t, wrk, dur, load.threads, load.conns, target.url)
				key := app.name + "_" + load.label + target.label
				result(key+"_rps", w.rps)
				result(key+"_p50_ms", w.p50)
				result(key+"_p99_ms", w.p99)
				if target.cpu != nil {
					// The proxy's CPU time per request.
					result(key+"_cpu_us", (target.cpu()-cpu0).Seconds()*1e6/w.requests)
				}
			}
		}
	}

	// 500 WebSockets held open at once, each echoing 5 messages.
	pool := px.Pool("go")
	wsDirect := "ws://" + pool.Stats().Processes[0].Addr + "/ws"
	wsProxy := "ws" + strings.TrimPrefix(srv.URL, "http") + "/content/go/ws"
	for _, target := range []struct{ label, url string }{{"direct", wsDirect}, {"proxy", wsProxy}} {
		ok, took := holdWebSockets(500, 5, target.url)
		result("ws_"+target.label+"_ok", float64(ok))
		result("ws_"+target.label+"_s", took.Seconds())
	}

	// Cold start: first request to an app with no process, against
	// starting the same process directly and polling its port.
	var cold, direct []float64
	for range 3 {
		p := newPool(t, Options{Name: "cold", Launch: helperLauncher(t, "serve", nil), Min: 0, Max: 1, InitTimeout: 30 * time.Second})
		px.Set("cold", p)
		start := time.Now()
		resp, err := http.Get(srv.URL + "/content/cold/")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("cold request: %v %v", err, resp)
		}
		resp.Body.Close()
		cold = append(cold, time.Since(start).Seconds()*1000)
		p.Stop(context.Background())
		direct = append(direct, directStart(t)*1000)
	}
	result("cold_proxy_ms", median(cold))
	result("cold_direct_ms", median(direct))
}

func median(v []float64) float64 {
	slices.Sort(v)
	return v[len(v)/2]
}

// benchApp is one app of the proxy benchmark; skip says why it cannot run.
type benchApp struct {
	name   string
	launch Launcher
	skip   string
}

// benchApps are the trivial Go app (this test binary: the proxy's own
// cost dominates) and the Flask (gunicorn), FastAPI (uvicorn) and Plumber
// examples, launched as content.LaunchArgs launches them, without the
// sandbox (its cost is at start, not per request).
func benchApps(t *testing.T) []benchApp {
	return []benchApp{
		{name: "go", launch: helperLauncher(t, "serve", nil)},
		exampleApp(t, "flask", manifest.LangPython, "/usr/bin/python3", "-c", "import flask, gunicorn"),
		exampleApp(t, "fastapi", manifest.LangPython, "/usr/bin/python3", "-c", "import fastapi, uvicorn"),
		exampleApp(t, "plumber", manifest.LangR, "R", "--no-echo", "--no-save", "-e", "library(plumber)"),
	}
}

// exampleApp launches examples/<name> with the runtime exe (a path, or a
// name looked up in PATH), when exe with probe succeeds; otherwise it
// returns the reason to skip it. The content's base path is /content/<name>/.
func exampleApp(t *testing.T, name string, lang manifest.Language, exe string, probe ...string) benchApp {
	t.Helper()
	path, err := exec.LookPath(exe)
	if err != nil {
		return benchApp{name: name, skip: fmt.Sprintf("no %s runtime (%s not found)", lang, exe)}
	}
	if out, err := exec.Command(path, probe...).CombinedOutput(); err != nil {
		return benchApp{name: name, skip: fmt.Sprintf("%s %s failed: %v: %s", path, strings.Join(probe, " "), err, firstLine(out))}
	}
	f := &runtime.Finder{Executables: map[manifest.Language][]string{lang: {path}}, Roots: map[manifest.Language][]string{lang: {}}}
	in, err := f.Find(context.Background(), lang, "")
	if err != nil {
		t.Fatal(err)
	}
	rt := content.Runtimes{Python: in}
	if lang == manifest.LangR {
		rt = content.Runtimes{R: in}
	}
	code, _ := filepath.Abs("../../examples/" + name)
	m, err := manifest.Read(code)
	if err != nil {
		t.Fatal(err)
	}
	return benchApp{name: name, launch: CommandLauncher(func(port int) (*exec.Cmd, error) {
		c, err := content.LaunchArgs(m, rt, port, content.Dirs{Code: code, Work: t.TempDir(), BasePath: "/content/" + name + "/"})
		if err != nil {
			return nil, err
		}
		return c.Plain(context.Background()), nil
	})}
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

var (
	rpsRE = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	reqRE = regexp.MustCompile(`(\d+) requests in`)
	p50RE = regexp.MustCompile(`50%\s+([\d.]+)(us|ms|s)`)
	p99RE = regexp.MustCompile(`99%\s+([\d.]+)(us|ms|s)`)
)

type wrkResult struct{ rps, p50, p99, requests float64 }

// cpuTime is the CPU time (user and system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runWrk runs wrk with threads and conns connections for dur against url.
func runWrk(t *testing.T, wrk, dur, threads, conns, url string) wrkResult {
	t.Helper()
	out, err := exec.Command(wrk, "-t"+threads, "-c"+conns, "-d"+dur, "--latency", url).CombinedOutput()
	if err != nil {
		t.Fatalf("wrk %s: %v\n%s", url, err, out)
	}
	m := rpsRE.FindSubmatch(out)
	n := reqRE.FindSubmatch(out)
	l50 := p50RE.FindSubmatch(out)
	l99 := p99RE.FindSubmatch(out)
	if m == nil || n == nil || l50 == nil || l99 == nil || strings.Contains(string(out), "Non-2xx") || strings.Contains(string(out), "Socket errors") {
		t.Fatalf("wrk %s: unexpected output\n%s", url, out)
	}
	var r wrkResult
	r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	r.requests, _ = strconv.ParseFloat(string(n[1]), 64)
	r.p50 = wrkMillis(l50)
	r.p99 = wrkMillis(l99)
	return r
}

func wrkMillis(m [][]byte) float64 {
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	switch string(m[2]) {
	case "us":
		return v / 1000
	case "s":
		return v * 1000
	}
	return v
}

// holdWebSockets opens n connections, waits until all are open, then has
// each echo msgs messages; it returns how many did so correctly.
func holdWebSockets(n, msgs int, url string) (int, time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var opened, wg sync.WaitGroup
	opened.Add(n)
	start := time.Now()
	okCh := make(chan bool, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _, err := websocket.Dial(ctx, url, nil)
			opened.Done()
			if err != nil {
				okCh <- false
				return
			}
			defer c.CloseNow()
			opened.Wait() // all n held open at once
			for j := range msgs {
				msg := fmt.Sprintf("%d/%d", i, j)
				if c.Write(ctx, websocket.MessageText, []byte(msg)) != nil {
					okCh <- false
					return
				}
				_, b, err := c.Read(ctx)
				if err != nil || string(b) != "echo: "+msg {
					okCh <- false
					return
				}
			}
			c.Close(websocket.StatusNormalClosure, "")
			okCh <- true
		}()
	}
	wg.Wait()
	close(okCh)
	ok := 0
	for v := range okCh {
		if v {
			ok++
		}
	}
	return ok, time.Since(start)
}

// directStart starts the helper app by hand, polls its port and makes
// the first request: what the pool's cold start is measured against.
func directStart(t *testing.T) float64 {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	start := time.Now()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "DAIS_TEST_APP=serve", "DAIS_TEST_PORT="+strconv.Itoa(port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatal("helper app did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return time.Since(start).Seconds()
}
