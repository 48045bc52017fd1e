package process

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The proxy's own path for plain requests (serveDirect) and
// httputil.ReverseProxy's (a request with a body) must give the app the
// same headers and the client the same answer: hop-by-hop headers dropped
// both ways (those a Connection header names too), X-Forwarded-* and the
// base URL set by the proxy whatever the client sent, headers a handler in
// front set (the content credentials) passed on, Te: trailers kept.
func TestProxyHeadersBothPaths(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Connection", "X-App-Hop")
		w.Header().Set("X-App-Hop", "1")
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("X-Kept", "yes")
		h := r.Header.Clone()
		h.Set("Host", r.Host)
		json.NewEncoder(w).Encode(h)
	})
	px := NewProxy(quietLogger(), "")
	px.Set("h", readyPool(t, Options{Launch: handlerLauncher(mux), Min: 1}))
	// What the content service does in front of the proxy (deploy.Service):
	// the credentials header is set on the request.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("RStudio-Connect-Credentials", `{"user":"bob","groups":[]}`)
		px.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	for _, method := range []string{"GET", "POST"} {
		t.Run(method, func(t *testing.T) {
			var body io.Reader
			if method == "POST" {
				body = strings.NewReader("a body: httputil.ReverseProxy's path")
			}
			req, _ := http.NewRequest(method, srv.URL+"/content/h/headers?a=1", body)
			for k, v := range map[string]string{
				"Connection": "X-Client-Hop", "X-Client-Hop": "1", "Keep-Alive": "300", "Proxy-Authorization": "Basic eA==",
				"Te": "trailers", "X-Forwarded-For": "6.6.6.6", "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "gopher",
				"Forwarded": "for=6.6.6.6", ForwardedByHeader: "node-x", BaseURLHeader: "http://evil.example/",
				"X-RSC-Request": "http://evil.example/elsewhere", "RStudio-Connect-Credentials": `{"user":"admin"}`,
				"User-Agent": "the-client/1",
			} {
				req.Header.Set(k, v)
			}
			req.Header.Add("X-Twice", "one")
			req.Header.Add("X-Twice", "two")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var seen http.Header
			if err := json.NewDecoder(resp.Body).Decode(&seen); err != nil {
				t.Fatal(err)
			}
			for _, k := range []string{"Connection", "X-Client-Hop", "Keep-Alive", "Proxy-Authorization", "Forwarded", ForwardedByHeader} {
				if v, ok := seen[http.CanonicalHeaderKey(k)]; ok {
					t.Errorf("the app got %s: %q; a proxy does not pass it on", k, v)
				}
			}
			want := map[string]string{
				"Host": host, "Te": "trailers", "X-Forwarded-For": "127.0.0.1", "X-Forwarded-Host": host,
				"X-Forwarded-Proto": "http", BaseURLHeader: srv.URL + "/content/h/", "X-RSC-Request": srv.URL + "/content/h/headers?a=1",
				"RStudio-Connect-Credentials": `{"user":"bob","groups":[]}`, "User-Agent": "the-client/1",
			}
			for k, v := range want {
				if got := seen.Values(k); len(got) != 1 || got[0] != v {
					t.Errorf("the app got %s: %q; want %q", k, got, v)
				}
			}
			if got := seen.Values("X-Twice"); len(got) != 2 || got[0] != "one" || got[1] != "two" {
				t.Errorf("the app got X-Twice: %q; want both values in order", got)
			}
			for _, k := range []string{"Connection", "X-App-Hop", "Keep-Alive"} {
				if v := resp.Header.Get(k); v != "" {
					t.Errorf("the client got %s: %q from the app", k, v)
				}
			}
			if resp.Header.Get("X-Kept") != "yes" {
				t.Errorf("the client got X-Kept %q; want yes", resp.Header.Get("X-Kept"))
			}
		})
	}
}

// What the proxy's own path (serveDirect) must pass on as the app framed
// it: HEAD with the length a GET would have, 204 and 304 without a body,
// trailers, a query httputil.ReverseProxy would clean, headers of a
// response whose body is slow to start (within the flush interval), an
// app that dies in the middle of a body (the client must not get a
// truncated body as whole), and one that does not answer at all.
func TestProxyDirectFraming(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/length", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1234")
		if r.Method != http.MethodHead {
			w.Write(make([]byte, 1234))
		}
	})
	mux.HandleFunc("/nocontent", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/notmodified", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"x"`)
		w.WriteHeader(http.StatusNotModified)
	})
	mux.HandleFunc("/trailers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "body\n")
		w.(http.Flusher).Flush()
		w.Header().Set("X-Sum", "42")
	})
	mux.HandleFunc("/query", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.URL.RawQuery) })
	// The body comes once the client has the headers.
	slowBody, bodyNow := twoParts(5, "", "later")
	mux.HandleFunc("/slowbody", slowBody)
	mux.HandleFunc("/dies", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		io.WriteString(w, "only a part")
		w.(http.Flusher).Flush()
		c, _, _ := http.NewResponseController(w).Hijack()
		c.Close()
	})
	mux.HandleFunc("/silent", func(w http.ResponseWriter, r *http.Request) {
		c, _, _ := http.NewResponseController(w).Hijack()
		c.Close()
	})
	px, srv := proxyServer(t, "")
	px.Set("f", readyPool(t, Options{Launch: handlerLauncher(mux), Min: 1}))
	base := srv.URL + "/content/f"

	do := func(t *testing.T, method, path string) (*http.Response, string, error) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, string(b), err
	}
	t.Run("HEAD keeps the length", func(t *testing.T) {
		resp, body, err := do(t, "HEAD", "/length")
		if err != nil || resp.StatusCode != 200 || resp.ContentLength != 1234 || body != "" {
			t.Errorf("HEAD: %d, length %d, body %q, %v", resp.StatusCode, resp.ContentLength, body, err)
		}
		if resp, body, err := do(t, "GET", "/length"); err != nil || len(body) != 1234 || resp.ContentLength != 1234 {
			t.Errorf("GET after HEAD: %d bytes, length %d, %v", len(body), resp.ContentLength, err)
		}
	})
	t.Run("204 and 304", func(t *testing.T) {
		if resp, body, err := do(t, "GET", "/nocontent"); err != nil || resp.StatusCode != 204 || body != "" {
			t.Errorf("204: %d %q %v", resp.StatusCode, body, err)
		}
		if resp, body, err := do(t, "GET", "/notmodified"); err != nil || resp.StatusCode != 304 || body != "" || resp.Header.Get("ETag") != `"x"` {
			t.Errorf("304: %d %q %v, ETag %q", resp.StatusCode, body, err, resp.Header.Get("ETag"))
		}
	})
	t.Run("trailers", func(t *testing.T) {
		req, _ := http.NewRequest("GET", base+"/trailers", nil)
		req.Header.Set("Te", "trailers")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "body\n" || resp.Trailer.Get("X-Sum") != "42" {
			t.Errorf("body %q, trailer X-Sum %q; want body and 42", b, resp.Trailer.Get("X-Sum"))
		}
	})
	t.Run("query", func(t *testing.T) {
		for query, want := range map[string]string{"a=1&b=%20": "a=1&b=%20", "a=1;b=2": "", "q=%zz&a=1": "a=1"} {
			if _, body, _ := do(t, "GET", "/query?"+query); body != want {
				t.Errorf("query %q reached the app as %q; want %q (as httputil.ReverseProxy passes it)", query, body, want)
			}
		}
	})
	t.Run("headers of a body slow to start", func(t *testing.T) {
		start := time.Now()
		resp, err := http.Get(base + "/slowbody")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("headers after %s; the app sent them at once, its body only once the client had them", d)
		}
		close(bodyNow)
		if b, _ := io.ReadAll(resp.Body); string(b) != "later" {
			t.Errorf("body %q", b)
		}
	})
	t.Run("app dies in the middle of a body", func(t *testing.T) {
		_, body, err := do(t, "GET", "/dies")
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("the client read %q, %v; want io.ErrUnexpectedEOF (1000 bytes announced, the app died)", body, err)
		}
	})
	t.Run("app closes without an answer", func(t *testing.T) {
		resp, body, _ := do(t, "GET", "/silent")
		if resp.StatusCode != http.StatusBadGateway {
			t.Errorf("%d %q; want 502", resp.StatusCode, body)
		}
		if resp, body, err := do(t, "GET", "/length"); err != nil || len(body) != 1234 {
			t.Errorf("the next request: %d, %d bytes, %v", resp.StatusCode, len(body), err)
		}
	})
}

// Raw bytes after a response (an app that does not speak HTTP/1.1 as it
// should) must not be read as the answer to the next request.
func TestProxyDirectExtraBytes(t *testing.T) {
	launch := func(ctx context.Context, port int, log io.Writer) (Process, error) {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			return nil, err
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					br := bufio.NewReader(c)
					for {
						if _, err := http.ReadRequest(br); err != nil {
							return
						}
						io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"+"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale")
					}
				}()
			}
		}()
		return funcProcess{wait: func() error { <-done; return nil }, signal: func(os.Signal) error { return l.Close() },
			dial: LoopbackDial(port)}, nil
	}
	px, srv := proxyServer(t, "")
	px.Set("x", readyPool(t, Options{Launch: launch, Min: 1}))
	for i := range 3 {
		if code, body := get(t, srv.URL+"/content/x/"); code != 200 || body != "ok" {
			t.Errorf("request %d: %d %q; want 200 ok", i, code, body)
		}
	}
}

// readSimpleResponse reads what http.ReadResponse reads, or leaves the
// answer to it (nil, nothing consumed).
func TestReadSimpleResponse(t *testing.T) {
	const tail = "NEXT"
	for _, tt := range []struct {
		name, method, raw string
		simple            bool
	}{
		{"length", "GET", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello", true},
		{"repeated and lower-case keys", "GET", "HTTP/1.1 201 Created\r\nset-cookie: a=1\r\nSet-Cookie: b=2\r\ncontent-length: 2\r\nX-Empty:\r\n\r\nok", true},
		{"HTTP/1.0 closes", "GET", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", true},
		{"HTTP/1.0 keep-alive", "GET", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", true},
		{"Connection: close", "GET", "HTTP/1.1 200 OK\r\nConnection: X-Foo, close\r\nContent-Length: 2\r\n\r\nok", true},
		{"same length twice", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", true},
		{"HEAD with a length", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", true},
		{"204", "GET", "HTTP/1.1 204 No Content\r\n\r\n", true},
		{"304 with a length", "GET", "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 10\r\n\r\n", true},
		{"no reason", "GET", "HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n", true},
		{"two lengths", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", false},
		{"bad length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", false},
		{"chunked", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false},
		{"until close", "GET", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n", false},
		{"folded line", "GET", "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n", false},
		{"bare LF", "GET", "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", false},
		{"CR inside a value", "GET", "HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 0\r\n\r\n", false},
		{"NUL inside a value", "GET", "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n", false},
		{"tab inside a value", "GET", "HTTP/1.1 200 OK\r\nX-A: a\tb\r\nContent-Length: 0\r\n\r\n", true},
		{"space in a name", "GET", "HTTP/1.1 200 OK\r\nX A: a\r\nContent-Length: 0\r\n\r\n", false},
		{"1xx", "GET", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false},
		{"HTTP/2 status line", "GET", "HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", false},
		{"head not all here", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := &http.Request{Method: tt.method}
			br := bufio.NewReader(strings.NewReader(tt.raw + tail))
			br.Peek(1)
			got := readSimpleResponse(br, req)
			if (got != nil) != tt.simple {
				t.Fatalf("simple = %v, want %v", got != nil, tt.simple)
			}
			if got == nil {
				if br.Buffered() != len(tt.raw)+len(tail) {
					t.Fatalf("%d bytes left of %d: it read what it left to http.ReadResponse", br.Buffered(), len(tt.raw)+len(tail))
				}
				return
			}
			want, err := http.ReadResponse(bufio.NewReader(strings.NewReader(tt.raw+tail)), req)
			if err != nil {
				t.Fatal(err)
			}
			// http.ReadResponse drops a Connection header that says close;
			// the proxy drops every Connection header, after reading it.
			got.Header.Del("Connection")
			want.Header.Del("Connection")
			if got.StatusCode != want.StatusCode || got.Close != want.Close || fmt.Sprint(got.Header) != fmt.Sprint(want.Header) {
				t.Errorf("got %d close=%v %v; http.ReadResponse %d close=%v %v", got.StatusCode, got.Close, got.Header, want.StatusCode, want.Close, want.Header)
			}
			gb, _ := io.ReadAll(got.Body)
			wb, _ := io.ReadAll(want.Body)
			if string(gb) != string(wb) {
				t.Errorf("body %q; http.ReadResponse %q", gb, wb)
			}
			if rest, _ := io.ReadAll(br); string(rest) != tail {
				t.Errorf("after the answer: %q; want %q", rest, tail)
			}
		})
	}
}
