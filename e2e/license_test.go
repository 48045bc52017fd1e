package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
)

// Floating license leases through Docker (issue 9): a license server
// container and dais containers on one user-defined network, reached
// through ports published on 127.0.0.1.

const licensePort = "8989"

// licenseStatus is GET /status of the license server.
type licenseStatus struct {
	Seats  int `json:"seats"`
	InUse  int `json:"in_use"`
	Leases []struct {
		ID        string    `json:"id"`
		Node      string    `json:"node"`
		RenewedAt time.Time `json:"renewed_at"`
	} `json:"leases"`
	Events []struct {
		At      time.Time `json:"at"`
		Kind    string    `json:"kind"`
		LeaseID string    `json:"lease_id"`
		Node    string    `json:"node"`
	} `json:"events"`
}

// licenseServer runs `dais license-server` with one seat and ttl on net,
// reachable there as license-server:8989, and waits until it is healthy.
func licenseServer(t *testing.T, net string, ttl time.Duration) *Container {
	t.Helper()
	c := Run(t, Options{
		Cmd: []string{"dais", "license-server", "--listen", ":" + licensePort, "--seats", "1",
			"--ttl", ttl.String(), "--db", "/data/license/leases.db"},
		Network: net, Aliases: []string{"license-server"},
		Ports:      []string{licensePort},
		NoSysAdmin: true,
		Health: &container.HealthConfig{
			Test:     []string{"CMD", "dais", "health", "--url", "http://127.0.0.1:" + licensePort + "/__ping__"},
			Interval: 250 * time.Millisecond, Timeout: 5 * time.Second, StartPeriod: 30 * time.Second, Retries: 3,
		},
	})
	c.WaitHealthy(60 * time.Second)
	return c
}

// licensedDais runs a dais server with Licensing.LicenseType = remote on net.
func licensedDais(t *testing.T, net string) *Container {
	t.Helper()
	return Run(t, Options{Network: net, Env: []string{
		"CONNECT_LICENSING_LICENSETYPE=remote",
		"CONNECT_LICENSING_LICENSESERVER=http://license-server:" + licensePort,
	}})
}

func getLicenseStatus(t *testing.T, lic *Container) licenseStatus {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://127.0.0.1:" + lic.HostPort(licensePort) + "/status")
	if err != nil {
		t.Fatalf("GET license server /status: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var st licenseStatus
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("license server /status %s: %q: %v", resp.Status, b, err)
	}
	return st
}

// events is the status's event log as "kind:who" with who the names given
// to node names (container host names).
func (st licenseStatus) events(names map[string]string) string {
	var out []string
	for _, e := range st.Events {
		who := names[e.Node]
		if who == "" {
			who = e.Node
		}
		out = append(out, e.Kind+":"+who)
	}
	return strings.Join(out, " ")
}

// node is the name a dais container gives itself: its host name, which
// Docker makes the first 12 digits of its ID.
func nodeName(c *Container) string { return c.ID[:12] }

// status polls path once and returns the status code (0 when unreachable).
func pingStatus(c *Container, path string) int {
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(c.URL(path))
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// holdStatus fails unless path answers want on every poll for d.
func holdStatus(t *testing.T, c *Container, path string, want int, d time.Duration, why string) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if got := pingStatus(c, path); got != want {
			t.Fatalf("%s: GET %s answered %d, want %d throughout %s", why, path, got, want, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// twoServersOneSeat starts the license server and two dais servers: a
// holds the seat, b waits with 402.
func twoServersOneSeat(t *testing.T, ttl time.Duration) (lic, a, b *Container) {
	t.Helper()
	net := NewNetwork(t)
	lic = licenseServer(t, net, ttl)
	a = licensedDais(t, net)
	a.WaitHTTP("/__ping__", http.StatusOK, 2*time.Minute)
	b = licensedDais(t, net)
	b.WaitHTTP("/__ping__", http.StatusPaymentRequired, 2*time.Minute)
	code, body := b.Get("/__ping__")
	if code != http.StatusPaymentRequired || !strings.Contains(body, "license seats are taken") {
		t.Fatalf("b's /__ping__: %d %s", code, body)
	}
	if code, body := b.Get("/content/0a1b2c3d-0000-4000-8000-000000000000/"); code != http.StatusPaymentRequired {
		t.Errorf("b's /content/: %d %s, want 402", code, body)
	}
	if code, body := b.Get("/__api__/server_settings"); code != http.StatusOK ||
		!strings.Contains(body, `"ok":false`) || !strings.Contains(body, "license seats are taken") {
		t.Errorf("b's server_settings: %d %s, want license ok false with the reason", code, body)
	}
	st := getLicenseStatus(t, lic)
	if st.InUse != 1 || len(st.Leases) != 1 || st.Leases[0].Node != nodeName(a) {
		t.Fatalf("license status with a licensed: %+v (a is %s)", st, nodeName(a))
	}
	return lic, a, b
}

func TestLicenseDockerStopReleases(t *testing.T) {
	// A long TTL: only a release frees the seat within seconds.
	lic, a, b := twoServersOneSeat(t, 2*time.Minute)
	code, took := a.Stop(30)
	if code != 0 {
		t.Errorf("docker stop of a: exit %d", code)
	}
	wait := b.WaitHTTP("/__ping__", http.StatusOK, 20*time.Second)
	t.Logf("docker stop a took %s; b licensed %s later", took.Round(time.Millisecond), wait.Round(time.Millisecond))
	if wait > 5*time.Second {
		t.Errorf("b licensed %s after a stopped, want within a few seconds", wait)
	}
	if logs := a.Logs(); !strings.Contains(logs, "license lease released") {
		t.Errorf("a's log does not say the lease was released:\n%s", tail(logs, 30))
	}
	names := map[string]string{nodeName(a): "a", nodeName(b): "b"}
	if got := getLicenseStatus(t, lic).events(names); got != "grant:a release:a grant:b" {
		t.Errorf("license events %q, want grant:a release:a grant:b", got)
	}
}

func TestLicenseDockerKillWaitsForTTL(t *testing.T) {
	// Long enough that a busy host's delays (a late renewal, a slow docker
	// kill) stay well inside the window checked below.
	const ttl = 20 * time.Second
	lic, a, b := twoServersOneSeat(t, ttl)
	// The kill comes at most TTL/3 after a's last renewal (plus scheduling
	// delays): the seat frees between 2/3 TTL and a TTL later, not before.
	// Half the TTL, counted from before the kill request, leaves that slack.
	killed := time.Now()
	a.Kill("KILL")
	holdStatus(t, b, "/__ping__", http.StatusPaymentRequired, ttl/2-time.Since(killed), "b before a's lease can have expired")
	b.WaitHTTP("/__ping__", http.StatusOK, ttl+10*time.Second)
	after := time.Since(killed)
	t.Logf("b licensed %s after docker kill of a (TTL %s)", after.Round(time.Millisecond), ttl)
	if after > ttl+5*time.Second {
		t.Errorf("b licensed %s after the kill: want soon after the TTL (%s)", after, ttl)
	}
	st := getLicenseStatus(t, lic)
	names := map[string]string{nodeName(a): "a", nodeName(b): "b"}
	if got := st.events(names); got != "grant:a expire:a grant:b" {
		t.Errorf("license events %q, want grant:a expire:a grant:b", got)
	}
	if len(st.Events) == 3 && st.Events[1].At.Sub(st.Events[0].At) < ttl {
		t.Errorf("a's lease expired %s after its grant, before the TTL", st.Events[1].At.Sub(st.Events[0].At))
	}
}

func TestLicenseServerOutage(t *testing.T) {
	// A TTL long enough for a container restart on a slow, busy host.
	const ttl = 30 * time.Second
	net := NewNetwork(t)
	lic := licenseServer(t, net, ttl)
	a := licensedDais(t, net)
	a.WaitHTTP("/__ping__", http.StatusOK, 2*time.Minute)
	first := getLicenseStatus(t, lic).Leases[0].ID

	// Shorter than the TTL: a keeps serving throughout; the restarted
	// license server still knows a's lease (SQLite on its /data) and
	// renews it.
	down := time.Now()
	lic.Stop(10)
	holdStatus(t, a, "/__ping__", http.StatusOK, 2*time.Second, "license server down for less than a TTL")
	started := make(chan struct{})
	go func() { defer close(started); lic.Start() }()
	for healthy := false; !healthy; {
		if got := pingStatus(a, "/__ping__"); got != http.StatusOK {
			t.Fatalf("GET /__ping__ answered %d %s into a license server outage shorter than the TTL (%s)", got, time.Since(down), ttl)
		}
		select {
		case <-started:
			in := lic.Inspect()
			healthy = in.State != nil && in.State.Health != nil && in.State.Health.Status == container.Healthy
		default:
		}
		if time.Since(down) > ttl*2/3 {
			t.Fatalf("the license server took over %s to come back: too slow a host for this test (TTL %s)", ttl*2/3, ttl)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("short outage: the license server was back after %s", time.Since(down).Round(time.Millisecond))
	// The renewal, due within TTL/3, goes to the restarted server.
	holdStatus(t, a, "/__ping__", http.StatusOK, ttl/3+time.Second, "license server back")
	st := getLicenseStatus(t, lic)
	if len(st.Leases) != 1 || st.Leases[0].ID != first || !st.Leases[0].RenewedAt.After(down) {
		t.Fatalf("after a short outage: leases %+v, want a's lease %s kept and renewed", st.Leases, first)
	}

	// Longer than the TTL: 402 once the lease runs out, licensed again
	// when the license server returns.
	down = time.Now() // before the stop: the lease can have been renewed until then, not after
	lic.Stop(10)
	a.WaitHTTP("/__ping__", http.StatusPaymentRequired, ttl+5*time.Second)
	unlicensed := time.Since(down)
	if unlicensed < ttl*2/3-500*time.Millisecond {
		t.Errorf("402 %s into the outage: the lease (TTL %s) cannot have expired yet", unlicensed, ttl)
	}
	if code, body := a.Get("/__ping__"); code != http.StatusPaymentRequired || !strings.Contains(body, "license lease expired") {
		t.Errorf("a's /__ping__ during a long outage: %d %s", code, body)
	}
	time.Sleep(time.Until(down.Add(ttl + 2*time.Second)))
	lic.Start()
	back := time.Now()
	a.WaitHTTP("/__ping__", http.StatusOK, 30*time.Second)
	t.Logf("402 %s into the outage; licensed again %s after the license server was started", unlicensed.Round(time.Millisecond), time.Since(back).Round(time.Millisecond))
	names := map[string]string{nodeName(a): "a"}
	if got := getLicenseStatus(t, lic).events(names); got != "grant:a expire:a grant:a" {
		t.Errorf("license events %q, want grant:a expire:a grant:a", got)
	}
	logs := a.Logs()
	for _, want := range []string{"renew license lease failed; still licensed", "license lease expired without a renewal", "license lease acquired"} {
		if !strings.Contains(logs, want) {
			t.Errorf("a's log lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("a's log:\n%s", tail(logs, 40))
	}
}

// TestComposeLicenseProfile brings up the compose file's license profile:
// the license server becomes healthy (its own health check), the dais
// beside it holds a lease (healthy: /__ping__ 200), and `compose stop`
// releases the lease.
func TestComposeLicenseProfile(t *testing.T) {
	img := Image(t)
	cli := Docker(t)
	project := ProjectName(t)
	port := freePort(t)
	env := []string{"DAIS_IMAGE=" + img, "DAIS_BIND=127.0.0.1", "DAIS_PORT=" + freePort(t),
		"DAIS_LICENSED_PORT=" + port, "DAIS_LICENSE_TTL=20s", "DAIS_LICENSE_SEATS=1"}
	ComposeDown(t, project, env, "license")
	start := time.Now()
	if out, err := Compose(t, project, env, "--profile", "license", "up", "-d", "--no-build", "license-server", "dais-licensed"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	waitComposeHealthy(t, cli, project, []string{"license-server", "dais-licensed"}, 3*time.Minute)
	t.Logf("license profile healthy %s after up", time.Since(start).Round(time.Millisecond))

	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://127.0.0.1:" + port + "/__api__/server_settings")
	if err != nil {
		t.Fatal(err)
	}
	var settings struct {
		License struct {
			Type   string `json:"type"`
			OK     bool   `json:"ok"`
			Reason string `json:"reason"`
		} `json:"license"`
	}
	err = json.NewDecoder(resp.Body).Decode(&settings)
	resp.Body.Close()
	if err != nil || settings.License.Type != "remote" || !settings.License.OK {
		t.Errorf("server_settings license: %+v (%v)", settings.License, err)
	}

	if out, err := Compose(t, project, env, "--profile", "license", "stop", "-t", "60", "dais-licensed"); err != nil {
		t.Fatalf("compose stop: %v\n%s", err, out)
	}
	logs, err := Compose(t, project, env, "--profile", "license", "logs", "--no-color", "license-server")
	if err != nil {
		t.Fatalf("compose logs: %v\n%s", err, logs)
	}
	for _, want := range []string{"license server ready", "license lease granted", "license lease released"} {
		if !strings.Contains(logs, want) {
			t.Errorf("license server log lacks %q:\n%s", want, logs)
		}
	}
}
