package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestHABench measures the ha profile for bench/ha.sh (issue 18's
// figures), which sets DAIS_HA_BENCH_OUT: requests per second through
// haproxy to a Plumber and a Flask app with two nodes and with one (the
// other stopped), and the time from docker kill of a node until every new
// request succeeds. Not a pass/fail test: it runs only for the bench.
func TestHABench(t *testing.T) {
	out := os.Getenv("DAIS_HA_BENCH_OUT")
	if out == "" {
		t.Skip("a benchmark: bench/ha.sh runs it (DAIS_HA_BENCH_OUT)")
	}
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		t.Fatal("wrk not found (scripts/test-env.sh installs it)")
	}
	h := startHA(t)
	api := haClient{base: h.lb.URL(""), key: h.key, hc: &http.Client{Timeout: 30 * time.Second}}
	plumber, err := api.deploy("bench-plumber", bundle(t, exampleDir("plumber")))
	if err != nil {
		t.Fatal(err)
	}
	flask, err := api.deploy("bench-flask", bundle(t, exampleDir("flask")))
	if err != nil {
		t.Fatal(err)
	}
	routes := map[string]string{"plumber": "/content/" + plumber + "/hello", "flask": "/content/" + flask + "/hello"}
	rate := regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	measure := func(route string) float64 {
		for _, n := range []string{"dais1", "dais2"} { // a process on each node first
			httpGetWithin(h.nodeURL(n, route), h.key, time.Minute)
		}
		return measureOne(t, wrk, h, route, rate)
	}
	var lines []string
	two := map[string]float64{}
	for _, app := range []string{"plumber", "flask"} {
		two[app] = measure(routes[app])
	}
	if o, err := exec.Command("docker", "stop", h.id("dais2")).CombinedOutput(); err != nil {
		t.Fatalf("docker stop dais2: %v %s", err, o)
	}
	time.Sleep(5 * time.Second) // out of haproxy's rotation
	for _, app := range []string{"plumber", "flask"} {
		one := measureOne(t, wrk, h, routes[app], rate)
		lines = append(lines, fmt.Sprintf("%s req/s two nodes %.0f one node %.0f two/one %.2f", app, two[app], one, two[app]/one))
	}
	if o, err := exec.Command("docker", "start", h.id("dais2")).CombinedOutput(); err != nil {
		t.Fatalf("docker start dais2: %v %s", err, o)
	}
	waitComposeHealthy(t, Docker(t), h.project, []string{"dais2"}, 2*time.Minute)
	time.Sleep(5 * time.Second)

	// docker kill of dais1 under 4 steady clients: when did the last new
	// request fail?
	url := h.lb.URL(routes["plumber"])
	httpGetWithin(h.nodeURL("dais2", routes["plumber"]), h.key, time.Minute)
	var mu sync.Mutex
	var lastFail time.Time
	fails, total := 0, 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, _, _, err := httpGetWithin(url, h.key, 10*time.Second)
				mu.Lock()
				total++
				if err != nil || code != 200 {
					fails++
					lastFail = time.Now()
				}
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	time.Sleep(3 * time.Second)
	if o, err := exec.Command("docker", "kill", h.id("dais1")).CombinedOutput(); err != nil {
		t.Fatalf("docker kill dais1: %v %s", err, o)
	}
	killed := time.Now()
	time.Sleep(20 * time.Second)
	close(stop)
	wg.Wait()
	recovered := time.Duration(0)
	if lastFail.After(killed) {
		recovered = lastFail.Sub(killed)
	}
	lines = append(lines, fmt.Sprintf("kill recovery: %d of %d requests failed; last failure %.2f s after docker kill", fails, total, recovered.Seconds()))
	t.Logf("%s", strings.Join(lines, "\n"))
	if err := os.WriteFile(out, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// measureOne is wrk's requests per second through haproxy (no cookie
// jar: round-robin over the live nodes).
func measureOne(t *testing.T, wrk string, h *haStack, route string, rate *regexp.Regexp) float64 {
	t.Helper()
	o, err := exec.Command(wrk, "-t2", "-c8", "-d15s", "--timeout", "30s", "-H", "Authorization: Key "+h.key, h.lb.URL(route)).CombinedOutput()
	m := rate.FindStringSubmatch(string(o))
	if err != nil || m == nil || strings.Contains(string(o), "Non-2xx") {
		t.Fatalf("wrk %s: %v\n%s", route, err, o)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}
