package process

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/dais-dev/dais/internal/syncbuf"
)

// timeoutProxy is a proxy whose log the test reads, with content "mute"
// (a process that accepts connections and never answers) and "ok" (the
// helper app) behind it.
func timeoutProxy(t *testing.T, to Timeouts) (*Proxy, string, *syncbuf.Buffer) {
	t.Helper()
	logs := &syncbuf.Buffer{}
	px := NewProxy(slog.New(slog.NewTextHandler(logs, nil)), "")
	px.SetTimeouts(to)
	srv := newServer(t, px)
	px.Set("mute", readyPool(t, Options{Launch: helperLauncher(t, "mute", nil), Min: 1, Max: 1}))
	px.Set("ok", readyPool(t, Options{Min: 1, Max: 1}))
	return px, srv, logs
}

func newServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// A request to a process that accepts it and never answers gets 504
// within connection_timeout, whatever way the proxy sends it (plain GET:
// serveDirect; POST with a body: httputil.ReverseProxy), the server log
// names the content, and other content is answered meanwhile.
func TestProxyConnectionTimeoutHungApp(t *testing.T) {
	_, srv, logs := timeoutProxy(t, Timeouts{Connection: time.Second})
	client := &http.Client{Timeout: 15 * time.Second}
	for _, tc := range []struct {
		name string
		req  func() (*http.Response, error)
	}{
		{"GET", func() (*http.Response, error) { return client.Get(srv + "/content/mute/") }},
		{"POST", func() (*http.Response, error) {
			return client.Post(srv+"/content/mute/api", "application/json", strings.NewReader(`{"x":1}`))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			other := make(chan int, 1)
			go func() {
				time.Sleep(200 * time.Millisecond)
				resp, err := client.Get(srv + "/content/ok/")
				if err != nil {
					other <- 0
					return
				}
				resp.Body.Close()
				other <- resp.StatusCode
			}()
			start := time.Now()
			resp, err := tc.req()
			took := time.Since(start)
			if err != nil {
				t.Fatalf("after %v: %v (want 504 after 1s)", took, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusGatewayTimeout || !strings.Contains(string(body), "connection_timeout") {
				t.Errorf("hung app: %d %q; want 504 naming connection_timeout", resp.StatusCode, body)
			}
			if took < 900*time.Millisecond || took > 5*time.Second {
				t.Errorf("504 after %v; want about the 1s connection_timeout", took)
			}
			if code := <-other; code != http.StatusOK {
				t.Errorf("other content while one hangs: %d, want 200", code)
			}
		})
	}
	if l := logs.String(); !strings.Contains(l, "timed out") || !strings.Contains(l, "content=mute") || !strings.Contains(l, "setting=connection_timeout") {
		t.Errorf("server log does not name the content and the timeout:\n%s", l)
	}
}

// The timeouts are idle times, not durations: an answer that keeps
// coming is not cut; one that stops is, after its first bytes went out.
func TestProxyConnectionTimeoutIsIdle(t *testing.T) {
	_, srv, _ := timeoutProxy(t, Timeouts{Connection: time.Second, Read: time.Second})
	code, body := get(t, srv+"/content/ok/drip")
	if code != http.StatusOK || body != "........done" {
		t.Errorf("answer dripping for 2.4 s with 1 s timeouts: %d %q; want it whole", code, body)
	}
	start := time.Now()
	resp, err := (&http.Client{Timeout: 15 * time.Second}).Get(srv + "/content/ok/stall")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || string(b) != "first\n" || time.Since(start) > 5*time.Second {
		t.Errorf("answer stalled after its first line: %q, %v after %v; want it cut after about 1s", b, err, time.Since(start))
	}
}

// A request body that stops arriving is ended after read_timeout with
// 408 (the client's fault), not the app's 504.
func TestProxyReadTimeoutStalledBody(t *testing.T) {
	for _, tc := range []struct {
		to      Timeouts
		setting string
	}{
		{Timeouts{Connection: 30 * time.Second, Read: time.Second}, "read_timeout"},
		{Timeouts{Connection: time.Second}, "connection_timeout"},
	} {
		t.Run(tc.setting, func(t *testing.T) { testStalledBody(t, tc.to, tc.setting) })
	}
}

func testStalledBody(t *testing.T, to Timeouts, setting string) {
	_, srv, logs := timeoutProxy(t, to)
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// 100 bytes announced, 10 sent, then nothing.
	fmt.Fprintf(conn, "POST /content/ok/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
	conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	start := time.Now()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("stalled body: no answer after %v: %v", time.Since(start), err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), setting) || time.Since(start) > 5*time.Second {
		t.Errorf("stalled body: %d %q after %v; want 408 naming %s after about 1s", resp.StatusCode, body, time.Since(start), setting)
	}
	if !strings.Contains(logs.String(), "setting="+setting) {
		t.Errorf("no log line for the read timeout:\n%s", logs.String())
	}
}

// Both 0 (never, as in Connect): a hung app's request is bounded by its
// client: when the client goes away, the request ends and its process
// lease is released.
func TestProxyTimeoutsZeroEndWithClient(t *testing.T) {
	px, srv, _ := timeoutProxy(t, Timeouts{})
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv+"/content/mute/", nil)
	start := time.Now()
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("hung app answered %d with timeouts 0", resp.StatusCode)
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("gave up after %v; the proxy must not time out with both 0", took)
	}
	eventually(t, 5*time.Second, "the request ended with its client", func() bool {
		for _, p := range px.Pool("mute").Stats().Processes {
			if p.Active != 0 {
				return false
			}
		}
		return true
	})
}

// WebSockets: one where neither side says anything is closed after
// connection_timeout; a dashboard that only pushes is closed after
// read_timeout (nothing from the client), and stays open with read_timeout 0.
func TestProxyWebSocketTimeouts(t *testing.T) {
	ws := func(srv, path string) *websocket.Conn {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv, "http")+"/content/ok"+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.CloseNow() })
		return c
	}
	// readUntilClosed dials, then reads until the WebSocket ends or d
	// passes; it returns how long it stayed open (d when it did not end),
	// counted from before the dial: the proxy's watch starts once the app
	// has answered, before the client has the connection.
	readUntilClosed := func(dial func() *websocket.Conn, d time.Duration) time.Duration {
		start := time.Now()
		c := dial()
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		for {
			if _, _, err := c.Read(ctx); err != nil {
				if ctx.Err() != nil {
					return d
				}
				return time.Since(start)
			}
		}
	}

	t.Run("silent", func(t *testing.T) {
		_, srv, logs := timeoutProxy(t, Timeouts{Connection: time.Second})
		if open := readUntilClosed(func() *websocket.Conn { return ws(srv, "/ws-silent") }, 10*time.Second); open > 5*time.Second {
			t.Errorf("silent WebSocket open after %v; want closed after about the 1s connection_timeout", open)
		}
		eventually(t, 5*time.Second, "log line", func() bool { return strings.Contains(logs.String(), "setting=connection_timeout") })
	})
	t.Run("push, read_timeout 1s", func(t *testing.T) {
		_, srv, logs := timeoutProxy(t, Timeouts{Connection: 30 * time.Second, Read: time.Second})
		if open := readUntilClosed(func() *websocket.Conn { return ws(srv, "/ws-push") }, 10*time.Second); open > 5*time.Second || open < 900*time.Millisecond {
			t.Errorf("WebSocket without client data open for %v; want closed after about the 1s read_timeout", open)
		}
		eventually(t, 5*time.Second, "log line", func() bool { return strings.Contains(logs.String(), "setting=read_timeout") })
	})
	t.Run("push, read_timeout 0", func(t *testing.T) {
		_, srv, _ := timeoutProxy(t, Timeouts{Connection: time.Second})
		if open := readUntilClosed(func() *websocket.Conn { return ws(srv, "/ws-push") }, 3*time.Second); open < 3*time.Second {
			t.Errorf("pushing WebSocket closed after %v with read_timeout 0 and data flowing", open)
		}
	})
	t.Run("echo, client talks", func(t *testing.T) {
		_, srv, _ := timeoutProxy(t, Timeouts{Connection: time.Second, Read: time.Second})
		c := ws(srv, "/ws")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for i := range 8 {
			if err := c.Write(ctx, websocket.MessageText, []byte("hi")); err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
			if _, _, err := c.Read(ctx); err != nil {
				t.Fatalf("read %d: %v", i, err)
			}
			time.Sleep(300 * time.Millisecond)
		}
	})
}
