package main

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadyURL(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		path    string
		environ []string
		want    string
	}{
		{"default port when file missing", filepath.Join(dir, "nope.gcfg"), nil, "http://127.0.0.1:3939/__ready__"},
		{"wildcard listen", write("a.gcfg", "[HTTP]\nListen = :4000\n"), nil, "http://127.0.0.1:4000/__ready__"},
		{"explicit host", write("b.gcfg", "[HTTP]\nListen = 127.0.0.2:4001\n"), nil, "http://127.0.0.2:4001/__ready__"},
		{"ipv4 any", write("c.gcfg", "[HTTP]\nListen = 0.0.0.0:4002\n"), nil, "http://127.0.0.1:4002/__ready__"},
		{"environment wins", write("d.gcfg", "[HTTP]\nListen = :4003\n"), []string{"CONNECT_HTTP_LISTEN=:4004"}, "http://127.0.0.1:4004/__ready__"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := readyURL(tt.path, tt.environ); got != tt.want {
				t.Errorf("readyURL = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHealthCommand(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/__ready__" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
		if status == http.StatusServiceUnavailable {
			w.Write([]byte(`{"status":"degraded: data volume full","error":"the data volume /data is full: 1.0 MiB free of 10.0 GiB"}`))
			return
		}
		w.Write([]byte("{}"))
	}))
	defer srv.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String() + "/__ready__"
	l.Close()

	tests := []struct {
		name     string
		status   int
		url      string
		wantCode int
		wantOut  string
	}{
		{"200 is healthy", http.StatusOK, srv.URL + "/__ready__", 0, "healthy"},
		{"402 is unhealthy", http.StatusPaymentRequired, srv.URL + "/__ready__", 1, "402"},
		{"degraded", http.StatusServiceUnavailable, srv.URL + "/__ready__", 1, "503 Service Unavailable: degraded: data volume full: the data volume /data is full: 1.0 MiB free"},
		{"500 is unhealthy", http.StatusInternalServerError, srv.URL + "/__ready__", 1, "500"},
		{"nothing listening", http.StatusOK, closed, 1, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status = tt.status
			var out, errb bytes.Buffer
			code := run([]string{"health", "--url", tt.url, "--timeout", "2s"}, nil, &out, &errb)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d (stdout %q, stderr %q)", code, tt.wantCode, out.String(), errb.String())
			}
			if !strings.Contains(out.String()+errb.String(), tt.wantOut) {
				t.Errorf("output %q / %q lacks %q", out.String(), errb.String(), tt.wantOut)
			}
		})
	}
}
