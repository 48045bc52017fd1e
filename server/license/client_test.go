package license

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/config"

	"github.com/dais-dev/dais/internal/syncbuf"
)

// newTestClient is a client of s with short retries, logging to its own buffer.
func newTestClient(t *testing.T, s *testServer, node string) (*Client, *syncbuf.Buffer) {
	t.Helper()
	buf := &syncbuf.Buffer{}
	c, err := NewClient(ClientOptions{
		Server: s.addr, Node: node,
		Logger:   slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
		RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond, FullPoll: 100 * time.Millisecond,
		StartWait: 2 * time.Second, ReleaseTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, buf
}

func start(t *testing.T, c *Client) {
	t.Helper()
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(context.Background()) })
}

// waitLicensed polls c.Licensed until it is want, failing after timeout;
// it returns how long that took.
func waitLicensed(t *testing.T, c *Client, want bool, timeout time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, reason := c.Licensed()
		if ok == want {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("licensed = %v after %s, want %v (reason %q)", ok, timeout, want, reason)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServerURL(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"lic:8989", "http://lic:8989", ""},
		{"lic", "http://lic:8989", ""},
		{" http://lic:1234/ ", "http://lic:1234", ""},
		{"https://lic.example.com", "https://lic.example.com", ""},
		{"http://10.0.0.1:99/base/", "http://10.0.0.1:99/base", ""},
		{"", "", "RSC_LICENSE_SERVER"},
		{"ftp://lic", "", "Licensing.LicenseServer"},
		{"http://", "", "neither"},
	} {
		got, err := ServerURL(tc.in)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("ServerURL(%q) = %q, %v; want %q, error with %q", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestForConfig(t *testing.T) {
	for _, tc := range []struct {
		l       config.Licensing
		client  bool
		wantErr string
	}{
		{config.Licensing{LicenseType: "none"}, false, ""},
		{config.Licensing{}, false, ""},
		{config.Licensing{LicenseType: "none", LicenseServer: "x:1"}, false, ""},
		{config.Licensing{LicenseType: "remote", LicenseServer: "x:1"}, true, ""},
		{config.Licensing{LicenseType: "remote"}, false, "Licensing.LicenseServer"},
		{config.Licensing{LicenseType: "local"}, false, "none or remote"},
	} {
		c, err := ForConfig(tc.l, "n", nil)
		if (c != nil) != tc.client || (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("ForConfig(%+v) = %v, %v; want client %v, error %q", tc.l, c, err, tc.client, tc.wantErr)
		}
	}
}

func TestClientAcquireRenewRelease(t *testing.T) {
	s := newTestServer(t, 1, 900*time.Millisecond)
	c, log := newTestClient(t, s, "node-a")
	if ok, reason := c.Licensed(); ok || !strings.Contains(reason, "waiting") {
		t.Errorf("before Start: %v %q", ok, reason)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Start returns once licensed.
	if ok, reason := c.Licensed(); !ok {
		t.Fatalf("after Start: not licensed: %s", reason)
	}
	st := status(t, s)
	if len(st.Leases) != 1 || st.Leases[0].Node != "node-a" {
		t.Fatalf("status after Start: %+v", st)
	}
	id := st.Leases[0].ID
	// Three TTLs later it still holds the same lease, renewed.
	time.Sleep(2700 * time.Millisecond)
	if ok, reason := c.Licensed(); !ok {
		t.Fatalf("after 3 TTLs: not licensed: %s", reason)
	}
	st = status(t, s)
	if len(st.Leases) != 1 || st.Leases[0].ID != id || !st.Leases[0].RenewedAt.After(st.Leases[0].GrantedAt.Add(1500*time.Millisecond)) {
		t.Fatalf("after 3 TTLs: %+v", st.Leases)
	}
	if n := strings.Count(s.log.String(), `msg="license lease renewed"`); n < 4 {
		t.Errorf("%d renewals in 2.7 s with a 0.9 s TTL, want about 9 (every TTL/3)", n)
	}
	if err := c.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	st = status(t, s)
	if st.InUse != 0 || eventKinds(st) != "grant:node-a release:node-a" {
		t.Errorf("after Stop: %+v", st)
	}
	if !strings.Contains(log.String(), `msg="license lease released"`) || !strings.Contains(log.String(), "lease="+id) {
		t.Errorf("client log lacks the release:\n%s", log)
	}
	if ok, _ := c.Licensed(); ok {
		t.Error("licensed after Stop")
	}
}

func TestClientWaitsForSeat(t *testing.T) {
	s := newTestServer(t, 1, 30*time.Second)
	a, _ := newTestClient(t, s, "a")
	start(t, a)
	b, blog := newTestClient(t, s, "b")
	b.o.StartWait = 300 * time.Millisecond
	t0 := time.Now()
	start(t, b)
	if took := time.Since(t0); took > 1500*time.Millisecond {
		t.Errorf("Start of b blocked %s: it must give up after StartWait (300 ms)", took)
	}
	ok, reason := b.Licensed()
	if ok || !strings.Contains(reason, "all 1 license seats are taken (by a)") {
		t.Fatalf("b: %v %q", ok, reason)
	}
	if !strings.Contains(blog.String(), "starting without a license lease") {
		t.Errorf("b's log:\n%s", blog)
	}
	// a stops gracefully: b gets the seat within its poll interval, not a's TTL.
	a.Stop(context.Background())
	if took := waitLicensed(t, b, true, 3*time.Second); took > 1500*time.Millisecond {
		t.Errorf("b licensed %s after a released (FullPoll 100 ms)", took)
	}
	if got := eventKinds(status(t, s)); got != "grant:a release:a grant:b" {
		t.Errorf("events %q", got)
	}
}

func TestClientOutageShorterThanTTL(t *testing.T) {
	s := newTestServer(t, 1, 2*time.Second)
	c, log := newTestClient(t, s, "a")
	start(t, c)
	id := status(t, s).Leases[0].ID
	s.stop()
	// Down for about half the TTL (plus the renewal that was due).
	deadline := time.Now().Add(1200 * time.Millisecond)
	for time.Now().Before(deadline) {
		if ok, reason := c.Licensed(); !ok {
			t.Fatalf("unlicensed during a short outage: %s", reason)
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.start()
	// The same lease goes on, renewed once the server is back.
	time.Sleep(1500 * time.Millisecond)
	if ok, reason := c.Licensed(); !ok {
		t.Fatalf("after the outage: %s", reason)
	}
	st := status(t, s)
	if len(st.Leases) != 1 || st.Leases[0].ID != id {
		t.Errorf("after the outage: %+v, want lease %s kept", st.Leases, id)
	}
	if !strings.Contains(log.String(), "renew license lease failed; still licensed") {
		t.Errorf("no log of the failed renewal:\n%s", log)
	}
}

func TestClientOutageLongerThanTTL(t *testing.T) {
	s := newTestServer(t, 1, time.Second)
	c, log := newTestClient(t, s, "a")
	start(t, c)
	s.stop()
	down := time.Now()
	took := waitLicensed(t, c, false, 3*time.Second)
	// Unlicensed when the lease runs out: not before 2/3 TTL (the last
	// renewal was at most TTL/3 before the outage), not much after a TTL.
	if took < 600*time.Millisecond || took > 1300*time.Millisecond {
		t.Errorf("unlicensed %s into the outage, TTL 1 s", took)
	}
	if _, reason := c.Licensed(); !strings.Contains(reason, "license lease expired") {
		t.Errorf("reason %q", reason)
	}
	time.Sleep(time.Until(down.Add(1500 * time.Millisecond)))
	if ok, _ := c.Licensed(); ok {
		t.Fatal("licensed while the server is down past the TTL")
	}
	s.start()
	if took := waitLicensed(t, c, true, 3*time.Second); took > time.Second {
		t.Errorf("licensed again %s after the server came back (RetryMax 200 ms)", took)
	}
	st := status(t, s)
	if got := eventKinds(st); got != "grant:a expire:a grant:a" {
		t.Errorf("events %q", got)
	}
	if !strings.Contains(log.String(), "license lease expired without a renewal") {
		t.Errorf("client log:\n%s", log)
	}
}

func TestClientLeaseLost(t *testing.T) {
	// The server forgets the lease (database replaced): the next renewal
	// gets 404 and the client asks for a new lease at once.
	s := newTestServer(t, 1, 900*time.Millisecond)
	c, log := newTestClient(t, s, "a")
	start(t, c)
	old := status(t, s).Leases[0].ID
	if code := do(t, "DELETE", s.url()+"/leases/"+old, nil, nil); code != 200 {
		t.Fatal(code)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		st := status(t, s)
		if len(st.Leases) == 1 && st.Leases[0].ID != old {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new lease after the old one vanished: %+v\n%s", st, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(log.String(), "license lease lost") {
		t.Errorf("client log:\n%s", log)
	}
}

func TestClientStopWhileServerDown(t *testing.T) {
	s := newTestServer(t, 1, 30*time.Second)
	c, log := newTestClient(t, s, "a")
	start(t, c)
	s.stop()
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	c.Stop(ctx)
	if took := time.Since(t0); took < 600*time.Millisecond || took > 1500*time.Millisecond {
		t.Errorf("Stop took %s: it must retry until its deadline (700 ms), not longer", took)
	}
	if !strings.Contains(log.String(), "license lease NOT released") || !strings.Contains(log.String(), "it frees itself at") {
		t.Errorf("client log:\n%s", log)
	}
}

func TestClientStartsWithoutServer(t *testing.T) {
	// No license server yet: Start returns after StartWait, unlicensed,
	// and the client keeps trying until one appears.
	s := newTestServer(t, 1, 5*time.Second)
	s.stop()
	c, _ := newTestClient(t, s, "a")
	c.o.StartWait = 300 * time.Millisecond
	t0 := time.Now()
	start(t, c)
	if took := time.Since(t0); took > time.Second {
		t.Errorf("Start took %s with no license server", took)
	}
	if ok, reason := c.Licensed(); ok || !strings.Contains(reason, "cannot get a license lease from http://"+s.addr) {
		t.Errorf("no server: %v %q", ok, reason)
	}
	s.start()
	waitLicensed(t, c, true, 3*time.Second)
}
