package license

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dais-dev/dais/internal/syncbuf"
)

// testServer is a real lease server on 127.0.0.1 with a real SQLite file,
// which can be stopped and started again on the same address and database.
type testServer struct {
	t      *testing.T
	db     string
	addr   string
	seats  int
	ttl    time.Duration
	log    *syncbuf.Buffer
	cancel context.CancelFunc
	done   chan error
	store  *Store
}

func newTestServer(t *testing.T, seats int, ttl time.Duration) *testServer {
	t.Helper()
	s := &testServer{t: t, db: filepath.Join(t.TempDir(), "sub", "leases.db"), addr: "127.0.0.1:0", seats: seats, ttl: ttl, log: &syncbuf.Buffer{}}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *testServer) start() {
	s.t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the old socket may linger a moment
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("listen %s: %v", s.addr, err)
	}
	s.addr = ln.Addr().String()
	st, err := OpenStore(context.Background(), s.db)
	if err != nil {
		s.t.Fatal(err)
	}
	srv, err := NewServer(ServerOptions{Store: st, Seats: s.seats, TTL: s.ttl,
		Logger: slog.New(slog.NewTextHandler(s.log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done, s.store = cancel, make(chan error, 1), st
	go func() { s.done <- srv.Serve(ctx, ln) }()
}

func (s *testServer) stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	if err := <-s.done; err != nil {
		s.t.Errorf("license server: %v", err)
	}
	s.store.Close()
	s.cancel = nil
}

func (s *testServer) url() string { return "http://" + s.addr }

// do sends one request and decodes the JSON answer into out (if not nil).
func do(t *testing.T, method, url string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, url, ct)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: answer %q: %v", method, url, b, err)
		}
	}
	return resp.StatusCode
}

func acquire(t *testing.T, s *testServer, node string) (int, leaseJSON) {
	t.Helper()
	var l leaseJSON
	code := do(t, "POST", s.url()+"/leases", acquireRequest{Node: node}, &l)
	return code, l
}

func status(t *testing.T, s *testServer) Status {
	t.Helper()
	var st Status
	if code := do(t, "GET", s.url()+"/status", nil, &st); code != 200 {
		t.Fatalf("GET /status: %d", code)
	}
	return st
}

func eventKinds(st Status) string {
	var k []string
	for _, e := range st.Events {
		k = append(k, e.Kind+":"+e.Node)
	}
	return strings.Join(k, " ")
}

func TestSeatsRespected(t *testing.T) {
	for _, tc := range []struct {
		name  string
		seats int
		nodes []string
		want  []int
	}{
		{"one seat", 1, []string{"a", "b"}, []int{200, 409}},
		{"two seats", 2, []string{"a", "b", "c", "d"}, []int{200, 200, 409, 409}},
		{"same node twice takes two seats", 2, []string{"a", "a", "a"}, []int{200, 200, 409}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, tc.seats, time.Minute)
			for i, n := range tc.nodes {
				if code, _ := acquire(t, s, n); code != tc.want[i] {
					t.Errorf("acquire %d (%s): %d, want %d", i, n, code, tc.want[i])
				}
			}
			st := status(t, s)
			if st.InUse != tc.seats || st.Free != 0 || len(st.Leases) != tc.seats || st.Seats != tc.seats {
				t.Errorf("status: %+v", st)
			}
		})
	}
}

func TestFullAnswer(t *testing.T) {
	s := newTestServer(t, 1, 10*time.Second)
	acquire(t, s, "first")
	var e errorJSON
	code := do(t, "POST", s.url()+"/leases", acquireRequest{Node: "second"}, &e)
	if code != http.StatusConflict || e.Code != 409 || !strings.Contains(e.Error, "by first") ||
		e.RetryAfterMS <= 0 || e.RetryAfterMS > 10000 {
		t.Errorf("full: %d %+v", code, e)
	}
}

func TestBadRequests(t *testing.T) {
	s := newTestServer(t, 1, time.Minute)
	for _, tc := range []struct {
		method, path string
		body         any
		want         int
	}{
		{"POST", "/leases", map[string]string{"node": ""}, 400},
		{"POST", "/leases", map[string]string{"node": strings.Repeat("x", 300)}, 400},
		{"POST", "/leases", "not an object", 400},
		{"POST", "/leases/nope/renew", nil, 404},
		{"DELETE", "/leases/nope", nil, 404},
		{"GET", "/__ping__", nil, 200},
	} {
		var e map[string]any
		if code := do(t, tc.method, s.url()+tc.path, tc.body, &e); code != tc.want {
			t.Errorf("%s %s %v: %d %v, want %d", tc.method, tc.path, tc.body, code, e, tc.want)
		}
	}
	// A 400 did not take the seat.
	if code, _ := acquire(t, s, "a"); code != 200 {
		t.Errorf("acquire after bad requests: %d", code)
	}
}

func TestRepeatedAcquireSameInstance(t *testing.T) {
	s := newTestServer(t, 1, time.Minute)
	var l1, l2 leaseJSON
	do(t, "POST", s.url()+"/leases", acquireRequest{Node: "a", Instance: "x1"}, &l1)
	time.Sleep(20 * time.Millisecond)
	if code := do(t, "POST", s.url()+"/leases", acquireRequest{Node: "a", Instance: "x1"}, &l2); code != 200 {
		t.Fatalf("repeated acquire: %d", code)
	}
	if l1.ID != l2.ID || !l2.ExpiresAt.After(l1.ExpiresAt) {
		t.Errorf("repeated acquire gave %+v then %+v: want the same lease, extended", l1, l2)
	}
	if code := do(t, "POST", s.url()+"/leases", acquireRequest{Node: "a", Instance: "x2"}, nil); code != 409 {
		t.Errorf("another instance: %d, want 409", code)
	}
}

func TestRenewExtends(t *testing.T) {
	s := newTestServer(t, 1, time.Second)
	_, l := acquire(t, s, "a")
	if l.TTLMS != 1000 || l.ID == "" {
		t.Fatalf("lease %+v", l)
	}
	for i := 0; i < 4; i++ { // 4 x 500 ms: twice the TTL, held throughout
		time.Sleep(500 * time.Millisecond)
		var r leaseJSON
		if code := do(t, "POST", s.url()+"/leases/"+l.ID+"/renew", nil, &r); code != 200 {
			t.Fatalf("renew %d: %d", i, code)
		}
		if r.ID != l.ID || !r.ExpiresAt.After(l.ExpiresAt) {
			t.Fatalf("renew %d: %+v does not extend %+v", i, r, l)
		}
		l = r
		if code, _ := acquire(t, s, "b"); code != 409 {
			t.Fatalf("b acquired while a renews: %d", code)
		}
	}
	if st := status(t, s); len(st.Leases) != 1 || st.Leases[0].RenewedAt.Equal(st.Leases[0].GrantedAt) {
		t.Errorf("status after renewals: %+v", st.Leases)
	}
	if got := strings.Count(s.log.String(), `msg="license lease renewed"`); got != 4 {
		t.Errorf("%d renewal log lines, want 4:\n%s", got, s.log)
	}
}

func TestReleaseFrees(t *testing.T) {
	s := newTestServer(t, 1, time.Minute)
	_, a := acquire(t, s, "a")
	if code := do(t, "DELETE", s.url()+"/leases/"+a.ID, nil, nil); code != 200 {
		t.Fatalf("release: %d", code)
	}
	if code := do(t, "DELETE", s.url()+"/leases/"+a.ID, nil, nil); code != 404 {
		t.Errorf("second release: %d, want 404", code)
	}
	if code := do(t, "POST", s.url()+"/leases/"+a.ID+"/renew", nil, nil); code != 404 {
		t.Errorf("renew after release: %d, want 404", code)
	}
	if code, _ := acquire(t, s, "b"); code != 200 {
		t.Errorf("b after a's release: %d", code)
	}
	st := status(t, s)
	if got := eventKinds(st); got != "grant:a release:a grant:b" {
		t.Errorf("events %q", got)
	}
	if len(st.Leases) != 1 || st.Leases[0].Node != "b" {
		t.Errorf("leases %+v", st.Leases)
	}
	for _, want := range []string{`msg="license lease granted" lease=` + a.ID + " node=a", `msg="license lease released" lease=` + a.ID} {
		if !strings.Contains(s.log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, s.log)
		}
	}
}

func TestExpiryFreesAfterTTL(t *testing.T) {
	s := newTestServer(t, 1, time.Second)
	start := time.Now() // before the grant, which is at most this much later
	_, a := acquire(t, s, "a")
	granted := time.Now()
	// Before the TTL: still taken.
	time.Sleep(700 * time.Millisecond)
	if code, _ := acquire(t, s, "b"); code != 409 {
		t.Fatalf("b before a's TTL: %d", code)
	}
	// The sweeper frees it without any request asking (every TTL/4).
	for status(t, s).InUse != 0 {
		if time.Since(start) > 3*time.Second {
			t.Fatalf("a's lease not swept 3 s after grant (TTL 1 s): %+v", status(t, s))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if took := time.Since(granted); took < time.Second {
		t.Errorf("freed after %s, before the TTL", took)
	}
	if code := do(t, "POST", s.url()+"/leases/"+a.ID+"/renew", nil, nil); code != 404 {
		t.Errorf("renew of an expired lease: %d, want 404", code)
	}
	if code, _ := acquire(t, s, "b"); code != 200 {
		t.Errorf("b after a expired: %d", code)
	}
	if got := eventKinds(status(t, s)); got != "grant:a expire:a grant:b" {
		t.Errorf("events %q", got)
	}
	if !strings.Contains(s.log.String(), `msg="license lease expired" lease=`+a.ID) {
		t.Errorf("no expiry log line:\n%s", s.log)
	}
}

func TestLazyExpiryOnAcquire(t *testing.T) {
	// The store frees expired leases itself, whether or not a sweeper runs.
	st, err := OpenStore(context.Background(), filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	ctx := context.Background()
	a, _, _, _, err := st.Acquire(ctx, "a", "", 1, time.Second, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, _, err := st.Acquire(ctx, "b", "", 1, time.Second, now.Add(999*time.Millisecond)); err != ErrFull {
		t.Fatalf("b 1 ms before expiry: %v, want ErrFull", err)
	}
	b, _, expired, _, err := st.Acquire(ctx, "b", "", 1, time.Second, now.Add(time.Second))
	if err != nil || len(expired) != 1 || expired[0].ID != a.ID || b.Node != "b" {
		t.Fatalf("b at expiry: %+v %+v %v", b, expired, err)
	}
}

func TestRestartKeepsLeases(t *testing.T) {
	s := newTestServer(t, 1, 10*time.Second)
	_, a := acquire(t, s, "a")
	s.stop()
	s.start()
	st := status(t, s)
	if len(st.Leases) != 1 || st.Leases[0].ID != a.ID || st.Leases[0].Node != "a" {
		t.Fatalf("after restart: %+v", st)
	}
	if code, _ := acquire(t, s, "b"); code != 409 {
		t.Errorf("b after restart: %d, want 409 (a still holds the seat)", code)
	}
	if code := do(t, "POST", s.url()+"/leases/"+a.ID+"/renew", nil, nil); code != 200 {
		t.Errorf("a renews after restart: %d", code)
	}
	if code := do(t, "DELETE", s.url()+"/leases/"+a.ID, nil, nil); code != 200 {
		t.Errorf("a releases after restart: %d", code)
	}
	if got := eventKinds(status(t, s)); got != "grant:a release:a" {
		t.Errorf("events across the restart %q", got)
	}
}

func TestNewServerChecks(t *testing.T) {
	st, err := OpenStore(context.Background(), filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, tc := range []struct {
		o    ServerOptions
		want string
	}{
		{ServerOptions{Seats: 1, TTL: time.Second}, "no lease store"},
		{ServerOptions{Store: st, Seats: 0, TTL: time.Second}, "--seats"},
		{ServerOptions{Store: st, Seats: 1}, "--ttl"},
	} {
		if _, err := NewServer(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.o, err, tc.want)
		}
	}
}
