package process

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// peerProxy is nginx or haproxy in front of one app, for the proxy
// benchmark: the same request path as dais's proxy (/content/<name>/...
// with the prefix stripped), the headers a reverse proxy usually adds
// (X-Forwarded-For, -Proto, -Host), keep-alive connections to the app, one
// worker process or thread, and no logging.
type peerProxy struct {
	name string
	url  string // where to send /content/<name>/... requests
	pid  int    // the process that serves (for its CPU time)
}

// startPeerProxy starts name ("nginx" or "haproxy") in front of the app at
// upstream ("127.0.0.1:port"); it stops with the test.
func startPeerProxy(t *testing.T, name, app, upstream string) peerProxy {
	t.Helper()
	exe, err := exec.LookPath(name)
	if err != nil {
		for _, d := range []string{"/usr/sbin", "/sbin"} {
			if p := filepath.Join(d, name); isExec(p) {
				exe, err = p, nil
			}
		}
	}
	if err != nil {
		t.Fatalf("%s is needed for the proxy benchmark's peers (Debian package %s)", name, name)
	}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	listen := "127.0.0.1:" + strconv.Itoa(port)
	dir := t.TempDir()
	conf := filepath.Join(dir, name+".conf")
	var args []string
	prefix := "/content/" + app
	switch name {
	case "nginx":
		// master_process off: the one process is the worker.
		for _, d := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
			os.Mkdir(filepath.Join(dir, d), 0o700)
		}
		cfg := `daemon off;
master_process off;
worker_processes 1;
pid ` + dir + `/nginx.pid;
error_log ` + dir + `/error.log crit;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path ` + dir + `/client_body;
	proxy_temp_path ` + dir + `/proxy;
	fastcgi_temp_path ` + dir + `/fastcgi;
	uwsgi_temp_path ` + dir + `/uwsgi;
	scgi_temp_path ` + dir + `/scgi;
	upstream app { server ` + upstream + `; keepalive 64; }
	server {
		listen ` + listen + `;
		location ` + prefix + `/ {
			proxy_pass http://app/;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host $host;
			proxy_set_header X-Forwarded-For $remote_addr;
			proxy_set_header X-Forwarded-Proto $scheme;
			proxy_set_header X-Forwarded-Host $host;
		}
	}
}
`
		args = []string{"-e", dir + "/error.log", "-p", dir, "-c", conf}
		if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	case "haproxy":
		cfg := `global
	nbthread 1
	maxconn 8192
defaults
	mode http
	timeout connect 5s
	timeout client 60s
	timeout server 60s
	option forwardfor
	http-reuse always
frontend bench
	bind ` + listen + `
	http-request set-header X-Forwarded-Proto http
	http-request set-header X-Forwarded-Host %[req.hdr(host)]
	http-request replace-path ` + prefix + `(/.*) \1
	default_backend app
backend app
	server app ` + upstream + `
`
		args = []string{"-db", "-f", conf}
		if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("unknown peer proxy %s", name)
	}
	cmd := exec.Command(exe, args...)
	out, err := os.Create(filepath.Join(dir, "output"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); out.Close() })
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", listen); err == nil {
			c.Close()
			break
		}
		if time.Since(start) > 20*time.Second {
			b, _ := os.ReadFile(out.Name())
			t.Fatalf("%s did not listen on %s: %s", name, listen, b)
		}
	}
	return peerProxy{name: name, url: "http://" + listen + prefix, pid: cmd.Process.Pid}
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// procCPU is the CPU time (user and system) process pid has used, from
// /proc/<pid>/stat (in clock ticks of 10 ms on Linux).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+2:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * 10 * time.Millisecond
}
