package process

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"
)

// inProcess is a Launcher serving a trivial handler in this process: the
// proxy's own cost, without a process start.
func inProcess(ctx context.Context, port int, log io.Writer) (Process, error) {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"message":"hello"}`)
	})}
	done := make(chan struct{})
	go func() { srv.Serve(l); close(done) }()
	return funcProcess{wait: func() error { <-done; return nil }, signal: func(os.Signal) error { return srv.Close() },
		dial: LoopbackDial(port)}, nil
}

type funcProcess struct {
	wait   func() error
	signal func(os.Signal) error
	dial   DialFunc
}

func (f funcProcess) Wait() error                                { return f.wait() }
func (f funcProcess) Signal(s os.Signal) error                   { return f.signal(s) }
func (f funcProcess) Dial(ctx context.Context) (net.Conn, error) { return f.dial(ctx) }

// BenchmarkProxyOverhead compares one GET through the proxy with the same
// GET to the app directly (go test -bench ProxyOverhead ./server/process):
// with GOMAXPROCS requests at once (direct, proxy), and one at a time
// (serial/direct, serial/proxy: the latency a request sees on an idle
// server, where waking goroutines costs more than at full load).
func BenchmarkProxyOverhead(b *testing.B) {
	p, err := New(Options{Name: "b", Launch: inProcess, Min: 1, Max: 1, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Stop(context.Background())
	if err := p.WaitReady(context.Background()); err != nil {
		b.Fatal(err)
	}
	px := NewProxy(quietLogger(), "")
	px.Set("b", p)
	srv := httptest.NewServer(px)
	defer srv.Close()
	// The same proxy with Connect's default idle timeouts (1 h) watched
	// on every request, as dais serves content.
	pxT := NewProxy(quietLogger(), "")
	pxT.Set("b", p)
	pxT.SetTimeouts(Timeouts{Connection: time.Hour, Read: time.Hour})
	srvT := httptest.NewServer(pxT)
	defer srvT.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	get := func(b *testing.B, url string) {
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %s", url, resp.Status)
		}
	}
	targets := []struct{ name, url string }{
		{"direct", "http://" + p.Stats().Processes[0].Addr + "/hello"},
		{"proxy", srv.URL + "/content/b/hello"},
		{"proxy-timeouts", srvT.URL + "/content/b/hello"},
	}
	for _, target := range targets {
		b.Run(target.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					get(b, target.url)
				}
			})
		})
	}
	for _, target := range targets {
		b.Run("serial/"+target.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				get(b, target.url)
			}
		})
	}
}
