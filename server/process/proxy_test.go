package process

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func proxyServer(t *testing.T, publicURL string) (*Proxy, *httptest.Server) {
	t.Helper()
	px := NewProxy(quietLogger(), publicURL)
	srv := httptest.NewServer(px)
	t.Cleanup(srv.Close)
	return px, srv
}

func readyPool(t *testing.T, o Options) *Pool {
	t.Helper()
	if o.Launch == nil {
		o.Launch = helperLauncher(t, "serve", nil)
	}
	if o.InitTimeout == 0 {
		o.InitTimeout = 20 * time.Second
	}
	p := newPool(t, o)
	if err := p.WaitReady(context.Background()); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestProxyRequests(t *testing.T) {
	px, srv := proxyServer(t, "")
	px.Set("abc", readyPool(t, Options{Min: 1}))
	pxPublic, srvPublic := proxyServer(t, "https://connect.example.com/")
	pxPublic.Set("abc", readyPool(t, Options{Min: 1}))
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	type echo struct {
		Path, Rawpath, Query, Host, Xff, Xfh, Xfp, Base, Rsc string
	}
	tests := []struct {
		name     string
		base     string
		path     string
		code     int
		location string
		check    func(t *testing.T, e echo)
	}{
		{"prefix stripped, query kept", srv.URL, "/content/abc/api/items?x=1&y=2", 200, "", func(t *testing.T, e echo) {
			if e.Path != "/api/items" || e.Query != "x=1&y=2" {
				t.Errorf("upstream saw %q ? %q", e.Path, e.Query)
			}
		}},
		{"root", srv.URL, "/content/abc/", 200, "", func(t *testing.T, e echo) {
			if e.Path != "/" {
				t.Errorf("upstream path %q", e.Path)
			}
		}},
		{"escaped path kept", srv.URL, "/content/abc/a%2Fb", 200, "", func(t *testing.T, e echo) {
			if e.Rawpath != "/a%2Fb" {
				t.Errorf("upstream raw path %q", e.Rawpath)
			}
		}},
		{"forwarded headers", srv.URL, "/content/abc/x", 200, "", func(t *testing.T, e echo) {
			host := strings.TrimPrefix(srv.URL, "http://")
			if e.Xff != "127.0.0.1" || e.Xfh != host || e.Xfp != "http" || e.Host != host {
				t.Errorf("X-Forwarded-For %q Host %q Proto %q, Host %q", e.Xff, e.Xfh, e.Xfp, e.Host)
			}
			if e.Base != srv.URL+"/content/abc/" {
				t.Errorf("RStudio-Connect-App-Base-URL = %q", e.Base)
			}
			if e.Rsc != srv.URL+"/content/abc/x" {
				t.Errorf("X-RSC-Request = %q", e.Rsc)
			}
		}},
		{"public URL from Server.Address", srvPublic.URL, "/content/abc/x", 200, "", func(t *testing.T, e echo) {
			if e.Base != "https://connect.example.com/content/abc/" {
				t.Errorf("RStudio-Connect-App-Base-URL = %q", e.Base)
			}
		}},
		{"no trailing slash redirects", srv.URL, "/content/abc?q=1", 301, "/content/abc/?q=1", nil},
		{"unknown content", srv.URL, "/content/nope/", 404, "", nil},
		{"outside the prefix", srv.URL, "/other", 404, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", tt.base+tt.path, nil)
			req.Header.Set("X-Forwarded-For", "6.6.6.6") // not trusted
			resp, err := noRedirect.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.code {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("status %d (%s); want %d", resp.StatusCode, b, tt.code)
			}
			if tt.location != "" && resp.Header.Get("Location") != tt.location {
				t.Errorf("Location %q; want %q", resp.Header.Get("Location"), tt.location)
			}
			if tt.check != nil {
				var e echo
				if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
					t.Fatal(err)
				}
				tt.check(t, e)
			}
		})
	}
}

// The public URL of a request behind a reverse proxy, as Posit Connect
// finds it: X-RSC-Request (with path rewriting too), else X-Forwarded-Proto,
// -Host and -Port, else Server.Address, else the request; what does not
// parse or does not match the request is ignored.
func TestProxyPublicURL(t *testing.T) {
	px, srv := proxyServer(t, "")
	px.Set("abc", readyPool(t, Options{Min: 1}))
	pxPublic, srvPublic := proxyServer(t, "https://connect.example.com/")
	pxPublic.Set("abc", readyPool(t, Options{Min: 1}))
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, tt := range []struct {
		name      string
		base      string
		hdr       map[string]string
		wantBase  string
		wantProto string
		wantHost  string
	}{
		{"X-RSC-Request from a path-rewriting proxy", srv.URL,
			map[string]string{"X-RSC-Request": "https://proxy.example.org/rsc/content/abc/x?q=1"},
			"https://proxy.example.org/rsc/content/abc/", "https", "proxy.example.org"},
		{"X-RSC-Request wins over X-Forwarded-* and Server.Address", srvPublic.URL,
			map[string]string{"X-RSC-Request": "https://a.example.org/content/abc/x", "X-Forwarded-Host": "b.example.org"},
			"https://a.example.org/content/abc/", "https", "a.example.org"},
		{"X-Forwarded-Proto, -Host and -Port", srv.URL,
			map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "dais.example.org", "X-Forwarded-Port": "8443"},
			"https://dais.example.org:8443/content/abc/", "https", "dais.example.org:8443"},
		{"default port left out, first of a chain", srv.URL,
			map[string]string{"X-Forwarded-Proto": "https, http", "X-Forwarded-Host": "dais.example.org, inner", "X-Forwarded-Port": "443"},
			"https://dais.example.org/content/abc/", "https", "dais.example.org"},
		{"X-Forwarded-Proto alone keeps the Host", srv.URL,
			map[string]string{"X-Forwarded-Proto": "https"},
			"https://" + host + "/content/abc/", "https", host},
		{"X-RSC-Request of another path is ignored", srvPublic.URL,
			map[string]string{"X-RSC-Request": "https://proxy.example.org/elsewhere"},
			"https://connect.example.com/content/abc/", "https", "connect.example.com"},
		{"a bad scheme or host is ignored", srv.URL,
			map[string]string{"X-Forwarded-Proto": "javascript", "X-Forwarded-Host": "evil.example/x"},
			srv.URL + "/content/abc/", "http", host},
		{"Server.Address without proxy headers", srvPublic.URL, nil,
			"https://connect.example.com/content/abc/", "https", "connect.example.com"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", tt.base+"/content/abc/x?q=1", nil)
			for k, v := range tt.hdr {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct{ Base, Rsc, Xfp, Xfh string }
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
				t.Fatal(err)
			}
			if e.Base != tt.wantBase || e.Rsc != tt.wantBase+"x?q=1" || e.Xfp != tt.wantProto || e.Xfh != tt.wantHost {
				t.Errorf("the app saw base %q, X-RSC-Request %q, X-Forwarded-Proto %q, -Host %q; want %q, %q, %q, %q",
					e.Base, e.Rsc, e.Xfp, e.Xfh, tt.wantBase, tt.wantBase+"x?q=1", tt.wantProto, tt.wantHost)
			}
		})
	}
}

func TestProxyWebSocket(t *testing.T) {
	px, srv := proxyServer(t, "")
	px.Set("ws", readyPool(t, Options{Min: 1}))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/content/ws/ws"
	const conns = 20
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _, err := websocket.Dial(ctx, url, nil)
			if err != nil {
				errs <- err
				return
			}
			defer c.CloseNow()
			for j := range 5 {
				msg := fmt.Sprintf("conn %d msg %d", i, j)
				if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
					errs <- err
					return
				}
				_, b, err := c.Read(ctx)
				if err != nil {
					errs <- err
					return
				}
				if string(b) != "echo: "+msg {
					errs <- fmt.Errorf("got %q for %q", b, msg)
					return
				}
			}
			c.Close(websocket.StatusNormalClosure, "")
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Each open WebSocket counted as in flight, and released after.
	eventually(t, 5*time.Second, "WebSocket leases released", func() bool {
		for _, p := range px.Pool("ws").Stats().Processes {
			if p.Active != 0 {
				return false
			}
		}
		return true
	})
}

// twoParts is an app that answers first, flushes it, and sends rest once
// the test closes next (or after 10 s): a proxy holding the first part
// until the end shows as a 10 s wait, and no loaded machine's delay passes
// for one. length, when not 0, is its Content-Length.
func twoParts(length int, first, rest string) (http.HandlerFunc, chan struct{}) {
	next := make(chan struct{})
	return func(w http.ResponseWriter, r *http.Request) {
		if length > 0 {
			w.Header().Set("Content-Length", strconv.Itoa(length))
		}
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, first)
		w.(http.Flusher).Flush()
		select {
		case <-next:
		case <-time.After(10 * time.Second):
		}
		io.WriteString(w, rest)
	}, next
}

func TestProxyStreams(t *testing.T) {
	px, srv := proxyServer(t, "")
	// A stream (no Content-Length) whose second line comes once the
	// client has the first.
	app, secondNow := twoParts(0, "first\n", "second\n")
	px.Set("s", readyPool(t, Options{Launch: handlerLauncher(app), Min: 1}))
	start := time.Now()
	resp, err := http.Get(srv.URL + "/content/s/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	line, err := r.ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("first chunk after %s; the proxy buffered the stream (the app sends the second once the client has the first)", d)
	}
	close(secondNow)
	if rest, _ := io.ReadAll(r); string(rest) != "second\n" {
		t.Errorf("rest %q", rest)
	}
}

func TestProxySwitchKeepsRequestsInFlight(t *testing.T) {
	px, srv := proxyServer(t, "")
	oldPool := readyPool(t, Options{Min: 1})
	px.Set("app", oldPool)
	pidOf := func() int {
		var e struct{ Pid int }
		resp, err := http.Get(srv.URL + "/content/app/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&e)
		return e.Pid
	}
	oldPid := pidOf()
	served := oldPool.Stats().Served

	// A slow request in flight on the old pool, and a steady stream of
	// requests during the switch: none may fail.
	var wg sync.WaitGroup
	var slowCode int
	var slowBody string
	wg.Add(1)
	go func() {
		defer wg.Done()
		slowCode, slowBody = get(t, srv.URL+"/content/app/slow?ms=1500")
	}()
	// It has its process before the switch, however loaded the machine.
	eventually(t, 10*time.Second, "the slow request has a process of the old pool", func() bool { return oldPool.Stats().Served > served })
	stop := make(chan struct{})
	failures := make(chan string, 1000)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := http.Get(srv.URL + "/content/app/")
				if err != nil {
					failures <- err.Error()
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures <- resp.Status
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	newPool := newPool(t, Options{Launch: helperLauncher(t, "serve", nil), Min: 1, InitTimeout: 20 * time.Second})
	start := time.Now()
	if err := px.Switch(context.Background(), "app", newPool); err != nil {
		t.Fatal(err)
	}
	switchTook := time.Since(start)
	close(stop)
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Errorf("request failed during the switch: %s", f)
	}
	if slowCode != 200 || !strings.Contains(slowBody, fmt.Sprint("pid ", oldPid)) {
		t.Errorf("slow request on the old pool: %d %q", slowCode, slowBody)
	}
	if switchTook < 500*time.Millisecond {
		t.Errorf("Switch returned after %s, before the old pool's request in flight finished", switchTook)
	}
	if newPid := pidOf(); newPid == oldPid || newPid == 0 {
		t.Errorf("after the switch, pid %d answered; want the new pool's process", newPid)
	}
	if n := len(oldPool.Stats().Processes); n != 0 {
		t.Errorf("old pool still has %d processes after the switch", n)
	}
}

func TestProxyUnavailable(t *testing.T) {
	px, srv := proxyServer(t, "")
	px.Set("bad", newPool(t, Options{Launch: helperLauncher(t, "crash", nil), Max: 1, InitTimeout: 5 * time.Second, BackoffInitial: time.Minute}))
	code, body := get(t, srv.URL+"/content/bad/")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "exit status 3") {
		t.Errorf("crashing app: %d %q; want 503 naming the exit", code, body)
	}
}

// handlerLauncher is a Launcher serving h in this process.
func handlerLauncher(h http.Handler) Launcher {
	return func(ctx context.Context, port int, log io.Writer) (Process, error) {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			return nil, err
		}
		srv := &http.Server{Handler: h}
		done := make(chan struct{})
		go func() { srv.Serve(l); close(done) }()
		return funcProcess{wait: func() error { <-done; return nil }, signal: func(os.Signal) error { return srv.Close() },
			dial: LoopbackDial(port)}, nil
	}
}

// A response of known length is not flushed after every write (that cost
// a syscall per request), but a slow one still reaches the client in
// parts, within the proxy's FlushInterval of each write.
func TestProxyFlushesSlowResponseOfKnownLength(t *testing.T) {
	px, srv := proxyServer(t, "")
	// The rest comes once the client has the first part.
	app, restNow := twoParts(12, "first\n", "later\n")
	px.Set("cl", readyPool(t, Options{Launch: handlerLauncher(app), Min: 1}))
	start := time.Now()
	resp, err := http.Get(srv.URL + "/content/cl/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ContentLength != 12 {
		t.Errorf("Content-Length %d; want 12", resp.ContentLength)
	}
	r := bufio.NewReader(resp.Body)
	line, err := r.ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("first part after %s; the proxy held it until the end (the app sends the rest once the client has the first part)", d)
	}
	close(restNow)
	if rest, _ := io.ReadAll(r); string(rest) != "later\n" {
		t.Errorf("rest %q", rest)
	}
}

// The proxy's own transport for bodiless GET/HEAD/OPTIONS (loopTransport):
// keep-alive reuse, connections the app closed while idle, cancellation,
// bodies read in part, responses that close the connection, and requests
// with a body going through http.Transport.
func TestProxyLoopTransport(t *testing.T) {
	cancelled := make(chan struct{}, 1)
	mux := http.NewServeMux()
	// The connections /hello was asked on (the pool's readiness probe, a
	// bare TCP connect, must not count: its StateNew may come late).
	var helloMu sync.Mutex
	var helloFrom []string
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		helloMu.Lock()
		helloFrom = append(helloFrom, r.RemoteAddr)
		helloMu.Unlock()
		io.WriteString(w, "hello "+r.Method)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(4<<20))
		w.Write(make([]byte, 4<<20))
	})
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		for i := range 3 {
			fmt.Fprintf(w, "part %d\n", i)
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "closing")
	})
	mux.HandleFunc("/hints", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, "after hints")
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			cancelled <- struct{}{}
		case <-time.After(10 * time.Second):
		}
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s", r.Method, b)
	})
	app := &http.Server{Handler: mux, IdleTimeout: 100 * time.Millisecond}
	launch := func(ctx context.Context, port int, log io.Writer) (Process, error) {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			return nil, err
		}
		done := make(chan struct{})
		go func() { app.Serve(l); close(done) }()
		return funcProcess{wait: func() error { <-done; return nil }, signal: func(os.Signal) error { return app.Close() },
			dial: LoopbackDial(port)}, nil
	}
	px, srv := proxyServer(t, "")
	px.Set("lt", readyPool(t, Options{Launch: launch, Min: 1, Max: 1}))
	base := srv.URL + "/content/lt"
	do := func(t *testing.T, method, path string, body io.Reader) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s %s: body: %v", method, path, err)
		}
		return resp.StatusCode, string(b)
	}

	t.Run("keep-alive: one connection for requests in a row", func(t *testing.T) {
		helloMu.Lock()
		before := len(helloFrom)
		helloMu.Unlock()
		for _, m := range []string{"GET", "HEAD", "OPTIONS", "GET"} {
			code, body := do(t, m, "/hello", nil)
			want := "hello " + m
			if m == "HEAD" {
				want = ""
			}
			if code != 200 || body != want {
				t.Errorf("%s = %d %q, want 200 %q", m, code, body, want)
			}
		}
		helloMu.Lock()
		n := len(slices.Compact(slices.Sorted(slices.Values(helloFrom[before:]))))
		helloMu.Unlock()
		if n != 1 {
			t.Errorf("%d connections to the app for 4 requests in a row; want 1 (kept alive)", n)
		}
	})
	t.Run("connection the app closed while idle", func(t *testing.T) {
		// The app closes idle connections after 100 ms; the proxy keeps
		// them 90 s. Each request finds a dead connection and must send
		// the request again on a new one.
		for i := range 3 {
			time.Sleep(300 * time.Millisecond)
			if code, body := do(t, "GET", "/hello", nil); code != 200 || body != "hello GET" {
				t.Fatalf("request %d after the app closed the idle connection: %d %q", i, code, body)
			}
		}
	})
	t.Run("large body, chunked body, Connection: close, 103 Early Hints", func(t *testing.T) {
		if code, body := do(t, "GET", "/big", nil); code != 200 || len(body) != 4<<20 {
			t.Errorf("big: %d, %d bytes", code, len(body))
		}
		if code, body := do(t, "GET", "/chunked", nil); code != 200 || body != "part 0\npart 1\npart 2\n" {
			t.Errorf("chunked: %d %q", code, body)
		}
		lt := px.loop
		idle := func() int {
			lt.mu.Lock()
			defer lt.mu.Unlock()
			return len(lt.idle[px.Pool("lt").Stats().Processes[0].Key])
		}
		if code, body := do(t, "GET", "/close", nil); code != 200 || body != "closing" {
			t.Errorf("close: %d %q", code, body)
		}
		if n := idle(); n != 0 {
			t.Errorf("%d idle connections after an answer with Connection: close; want 0", n)
		}
		do(t, "GET", "/hello", nil)
		if n := idle(); n != 1 {
			t.Errorf("%d idle connections after a plain answer; want 1", n)
		}
		if code, body := do(t, "GET", "/hints", nil); code != 200 || body != "after hints" {
			t.Errorf("hints: %d %q", code, body)
		}
	})
	t.Run("body closed before its end", func(t *testing.T) {
		resp, err := http.Get(base + "/big")
		if err != nil {
			t.Fatal(err)
		}
		io.ReadFull(resp.Body, make([]byte, 1000))
		resp.Body.Close()
		if code, body := do(t, "GET", "/hello", nil); code != 200 || body != "hello GET" {
			t.Errorf("after a body closed early: %d %q", code, body)
		}
	})
	t.Run("client gone: the app's request is cancelled", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", base+"/slow", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			t.Fatal("slow request answered; want the client's timeout")
		}
		select {
		case <-cancelled:
		case <-time.After(3 * time.Second):
			t.Fatal("the app's request was not cancelled within 3 s of the client going away")
		}
		eventually(t, 3*time.Second, "lease released", func() bool {
			return px.Pool("lt").Stats().Processes[0].Active == 0
		})
	})
	t.Run("body: through http.Transport", func(t *testing.T) {
		for _, m := range []string{"POST", "PUT", "GET"} {
			if code, body := do(t, m, "/echo", strings.NewReader("payload")); code != 200 || body != m+" payload" {
				t.Errorf("%s with a body: %d %q", m, code, body)
			}
		}
		if code, body := do(t, "DELETE", "/echo", nil); code != 200 || body != "DELETE " {
			t.Errorf("DELETE: %d %q", code, body)
		}
	})
}

// A process is reached through its Dial, never at 127.0.0.1:port of the
// server: here two processes listen on Unix sockets only (as a sandboxed
// one listens inside its own network namespace), and the readiness probe,
// plain requests, POSTs and a WebSocket all get there. Each process answers
// with its own name: connections are cached per process, not per address.
func TestProxyDialsThroughProcess(t *testing.T) {
	dir := t.TempDir()
	n := 0
	var mu sync.Mutex
	launch := func(ctx context.Context, port int, log io.Writer) (Process, error) {
		mu.Lock()
		n++
		name := fmt.Sprintf("proc-%d", n)
		mu.Unlock()
		sock := filepath.Join(dir, name+".sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			return nil, err
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %s %s", name, r.Method, b)
		})
		mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
			c, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			defer c.CloseNow()
			typ, b, err := c.Read(r.Context())
			if err == nil {
				c.Write(r.Context(), typ, append([]byte(name+" echo: "), b...))
			}
		})
		srv := &http.Server{Handler: mux}
		done := make(chan struct{})
		go func() { srv.Serve(l); close(done) }()
		return funcProcess{wait: func() error { <-done; return nil }, signal: func(os.Signal) error { return srv.Close() },
			dial: func(ctx context.Context) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			}}, nil
	}
	px, srv := proxyServer(t, "")
	px.Set("a", readyPool(t, Options{Min: 1, Launch: launch}))
	px.Set("b", readyPool(t, Options{Min: 1, Launch: launch}))
	for range 3 {
		for _, guid := range []string{"a", "b"} {
			want := map[string]string{"a": "proc-1", "b": "proc-2"}[guid]
			if code, body := get(t, srv.URL+"/content/"+guid+"/x"); code != 200 || body != want+" GET " {
				t.Fatalf("GET %s: %d %q, want 200 %q", guid, code, body, want+" GET ")
			}
			resp, err := http.Post(srv.URL+"/content/"+guid+"/x", "text/plain", strings.NewReader("body"))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != want+" POST body" {
				t.Fatalf("POST %s: %d %q", guid, resp.StatusCode, b)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/content/b/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, b, err := c.Read(ctx); err != nil || string(b) != "proc-2 echo: hi" {
		t.Fatalf("WebSocket: %q, %v", b, err)
	}
}
