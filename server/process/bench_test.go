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
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/dais-dev/dais/server/content"
	"github.com/dais-dev/dais/server/content/manifest"
	"github.com/dais-dev/dais/server/content/runtime"
)

// TestProxyBenchmark is run by bench/proxy.sh (DAIS_BENCH=1): the proxy
// against the same app process hit directly, in the same run. It prints
// "RESULT <name> <value>" lines for the script's table.
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

	apps := map[string]Launcher{"go": helperLauncher(t, "serve", nil)}
	if fl := flaskLauncher(t); fl != nil {
		apps["flask"] = fl
	}
	for _, name := range []string{"go", "flask"} {
		launch, ok := apps[name]
		if !ok {
			fmt.Printf("RESULT %s_skipped 1\n", name)
			continue
		}
		pool := readyPool(t, Options{Name: name, Launch: launch, Min: 1, Max: 1, InitTimeout: 60 * time.Second})
		px.Set(name, pool)
		direct := "http://" + pool.Stats().Processes[0].Addr + "/hello"
		proxied := srv.URL + "/content/" + name + "/hello"
		for _, target := range []struct{ label, url string }{{"direct", direct}, {"proxy", proxied}} {
			rps, p99 := runWrk(t, wrk, dur, target.url)
			result(name+"_"+target.label+"_rps", rps)
			result(name+"_"+target.label+"_p99_ms", p99)
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

func flaskLauncher(t *testing.T) Launcher {
	py := "/usr/bin/python3"
	if exec.Command(py, "-c", "import flask, gunicorn").Run() != nil {
		return nil
	}
	f := &runtime.Finder{Executables: map[manifest.Language][]string{manifest.LangPython: {py}}, Roots: map[manifest.Language][]string{manifest.LangPython: {}}}
	in, err := f.Find(context.Background(), manifest.LangPython, "")
	if err != nil {
		t.Fatal(err)
	}
	code, _ := filepath.Abs("../../examples/flask")
	m, err := manifest.Read(code)
	if err != nil {
		t.Fatal(err)
	}
	return CommandLauncher(func(port int) (*exec.Cmd, error) {
		c, err := content.LaunchArgs(m, content.Runtimes{Python: in}, port, content.Dirs{Code: code, Work: t.TempDir(), BasePath: "/content/flask/"})
		if err != nil {
			return nil, err
		}
		return c.Plain(context.Background()), nil
	})
}

var (
	rpsRE = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	p99RE = regexp.MustCompile(`99%\s+([\d.]+)(us|ms|s)`)
)

func runWrk(t *testing.T, wrk, dur, url string) (rps, p99ms float64) {
	t.Helper()
	out, err := exec.Command(wrk, "-t2", "-c32", "-d"+dur, "--latency", url).CombinedOutput()
	if err != nil {
		t.Fatalf("wrk %s: %v\n%s", url, err, out)
	}
	m := rpsRE.FindSubmatch(out)
	l := p99RE.FindSubmatch(out)
	if m == nil || l == nil || strings.Contains(string(out), "Non-2xx") {
		t.Fatalf("wrk %s: unexpected output\n%s", url, out)
	}
	rps, _ = strconv.ParseFloat(string(m[1]), 64)
	p99ms, _ = strconv.ParseFloat(string(l[1]), 64)
	switch string(l[2]) {
	case "us":
		p99ms /= 1000
	case "s":
		p99ms *= 1000
	}
	return rps, p99ms
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
