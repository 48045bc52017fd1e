package web

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/store"
)

// bodyFixture is the web fixture with a body timeout of 1s and a minimum
// upload rate of 20 KB/s, an upload route (a publisher's, 1 GiB at most)
// and a content route that reads its body and then takes its time.
func bodyFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t)
	cfg := *f.srv.Config()
	cfg.HTTP.BodyTimeout = config.Duration(time.Second)
	cfg.HTTP.UploadMinRate = 20_000
	f.srv.SetConfig(&cfg)
	readAll := func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if status, msg, ok := BodyError(err); ok {
			WriteError(w, status, msg)
			return
		}
		if err != nil {
			WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		WriteJSON(w, http.StatusOK, map[string]int64{"bytes": n})
	}
	f.srv.Handle("POST /__api__/v1/test-upload", Upload(1<<30, "bundle", RequireRole(store.RolePublisher)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		AllowUpload(r)
		readAll(w, r)
	}))))
	f.srv.HandleFunc("/content/{guid}/", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		// An app answering after the body has come: longer than
		// HTTP.BodyTimeout, which must not end the request.
		time.Sleep(1500 * time.Millisecond)
		if err := r.Context().Err(); err != nil {
			http.Error(w, "request context ended: "+err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "%d bytes", n)
	})
	return f
}

// rawRequest writes head (a request without its body) to the server,
// then the body's bytes one every gap (gap 0: all at once), and returns
// the status line of the answer, or why there was none, and how long
// after the head it came.
func rawRequest(t *testing.T, f *fixture, head string, body []byte, gap time.Duration) (string, time.Duration) {
	t.Helper()
	u, _ := url.Parse(f.ts.URL)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	go func() {
		if gap == 0 {
			conn.Write(body)
			return
		}
		for i := range body {
			if _, err := conn.Write(body[i : i+1]); err != nil {
				return
			}
			time.Sleep(gap)
		}
	}()
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "no answer: " + err.Error(), time.Since(start)
	}
	return strings.TrimSpace(line), time.Since(start)
}

func head(method, path, auth string, length int64, extra string) string {
	h := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: dais\r\nContent-Length: %d\r\n", method, path, length)
	if auth != "" {
		h += "Authorization: Key " + auth + "\r\n"
	}
	return h + extra + "\r\n"
}

// TestBodyDeadlines (issue 23, defect 4): a client sending a body one
// byte every 300 ms no longer holds the server: small bodies (login,
// JSON) are cut at HTTP.BodyTimeout, large ones below HTTP.UploadMinRate;
// a Content-Length over the limit answers 413 before any byte is read.
func TestBodyDeadlines(t *testing.T) {
	f := bodyFixture(t)
	key := f.keys[store.RolePublisher]
	slow := bytes.Repeat([]byte(" "), 200) // 60 s at 1 byte every 300 ms; blanks, so JSON waits for more
	tests := []struct {
		name   string
		head   string
		body   []byte
		gap    time.Duration
		want   string // in the status line, or "no answer" for a cut connection
		within time.Duration
	}{
		{"slow login, unauthenticated", head("POST", "/__login__", "", int64(len(slow)), "Content-Type: application/x-www-form-urlencoded\r\n"), slow, 300 * time.Millisecond, "408", 10 * time.Second},
		{"slow JSON", head("POST", "/__api__/v1/things", key, int64(len(slow)), "Content-Type: application/json\r\n"), slow, 300 * time.Millisecond, "408", 10 * time.Second},
		{"slow upload", head("POST", "/__api__/v1/test-upload", key, int64(len(slow)), ""), slow, 300 * time.Millisecond, "408", 10 * time.Second},
		{"slow body to content", head("POST", "/content/g/form", "", int64(len(slow)), ""), slow, 300 * time.Millisecond, "400", 10 * time.Second},
		{"3 GB upload announced", head("POST", "/__api__/v1/test-upload", key, 3<<30, ""), nil, 0, "413", 5 * time.Second},
		{"3 GB upload announced, anonymous", head("POST", "/__api__/v1/test-upload", "", 3<<30, ""), nil, 0, "413", 5 * time.Second},
		{"3 GB login form", head("POST", "/__login__", "", 3<<30, "Content-Type: application/x-www-form-urlencoded\r\n"), nil, 0, "413", 5 * time.Second},
		{"5 MB of JSON", head("POST", "/__api__/v1/things", key, 5<<20, "Content-Type: application/json\r\n"), nil, 0, "413", 5 * time.Second},
		{"anonymous upload, slow: refused unread", head("POST", "/__api__/v1/test-upload", "", int64(len(slow)), ""), slow, 300 * time.Millisecond, "401", 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line, took := rawRequest(t, f, tt.head, tt.body, tt.gap)
			t.Logf("%s after %s", line, took.Round(time.Millisecond))
			if !strings.Contains(line, tt.want) {
				t.Errorf("answer %q, want %s", line, tt.want)
			}
			if took > tt.within {
				t.Errorf("answered after %s, want within %s", took, tt.within)
			}
		})
	}
}

// TestBodyRates: a large body that keeps up the minimum rate may take far
// longer than HTTP.BodyTimeout; an app answering after the body has come
// is not cut by it either.
func TestBodyRates(t *testing.T) {
	f := bodyFixture(t)
	key := f.keys[store.RolePublisher]
	// 300 KB at about 100 KB/s: 3 s, three times the body timeout, five
	// times the minimum rate.
	chunk := bytes.Repeat([]byte("y"), 10_000)
	pr, pw := io.Pipe()
	go func() {
		for range 30 {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", f.ts.URL+"/__api__/v1/test-upload", pr)
	req.Header.Set("Authorization", "Key "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"bytes":300000`) {
		t.Fatalf("upload at 100 KB/s: %d %s", resp.StatusCode, b)
	}
	a := f.do(t, "POST", "/content/g/slow-app", "", "payload", nil)
	if a.status != 200 || a.body != "7 bytes" {
		t.Fatalf("POST to content answering after 1.5 s = %d %q", a.status, a.body)
	}
	// The connection serves the next request as usual (keep-alive).
	for range 2 {
		if a := f.do(t, "POST", "/__api__/v1/things", key, `{"name":"x"}`, nil); a.status != 200 {
			t.Fatalf("JSON after: %d %s", a.status, a.body)
		}
	}
}

// TestWriteStall: a client that stops reading the answer no longer holds
// the handler: its write fails once writeStall passes without progress,
// while a quiet stream (time between writes) is not cut.
func TestWriteStall(t *testing.T) {
	old := writeStall
	writeStall = 500 * time.Millisecond
	defer func() { writeStall = old }()
	f := newFixture(t)
	writeErr := make(chan error, 1)
	f.srv.HandleFunc("GET /__api__/v1/big", func(w http.ResponseWriter, r *http.Request) {
		chunk := bytes.Repeat([]byte("z"), 64<<10)
		for range 1 << 12 { // 256 MiB, far more than the socket buffers hold
			if _, err := w.Write(chunk); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- nil
	})
	f.srv.HandleFunc("GET /__api__/v1/quiet", func(w http.ResponseWriter, r *http.Request) {
		for i := range 3 {
			fmt.Fprintf(w, "tick %d\n", i)
			http.NewResponseController(w).Flush()
			time.Sleep(800 * time.Millisecond) // longer than writeStall, between writes
		}
	})
	u, _ := url.Parse(f.ts.URL)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "GET /__api__/v1/big HTTP/1.1\r\nHost: dais\r\n\r\n")
	// ... and never read.
	select {
	case err := <-writeErr:
		if err == nil {
			t.Fatal("256 MiB written to a client that reads nothing")
		}
		t.Logf("the handler's write failed: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the handler is still blocked writing to a client that does not read")
	}
	resp, err := http.Get(f.ts.URL + "/__api__/v1/quiet")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "tick 2") {
		t.Errorf("a quiet stream was cut: %q", b)
	}
}
