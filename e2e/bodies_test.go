package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func init() {
	addCase(batteryCase{Name: "slow clients (1 byte every 3 s) and a 3 GB Content-Length", Issue: "23.4", Run: testSlowBodies})
}

// slowRequest writes head, then body one byte every 3 s, and returns the
// answer's status line (or why none came) and when it came.
func slowRequest(t *testing.T, c *Container, head, body string) (string, time.Duration) {
	t.Helper()
	conn, err := net.Dial("tcp", "127.0.0.1:"+c.HostPort(ServerPort))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := range len(body) {
			if _, err := conn.Write([]byte{body[i]}); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(3 * time.Second):
			}
		}
	}()
	conn.SetReadDeadline(time.Now().Add(90 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return "no answer (" + err.Error() + ")", time.Since(start)
	}
	return strings.TrimSpace(line), time.Since(start)
}

// testSlowBodies (issue 23, defect 4): an unauthenticated POST /__login__
// sending 1 byte every 3 s held its connection for 45 s and more; a 3 GB
// upload was not refused up front. With the defaults (HTTP.BodyTimeout
// 10s, HTTP.UploadMinRate 16 KiB/s) each slow body is cut after about
// 10 s, and the 3 GB one answers 413 before a byte is sent.
func testSlowBodies(t *testing.T, r *row) {
	c, key := deployServer(t)
	guid, tk, out := deployV1(t, c, key, "probe", bundle(t, flaskDir(t, probeApp)))
	if tk.Code != 0 {
		t.Fatalf("deploy failed: %s\n%s", tk.Error, out)
	}
	body := strings.Repeat(" ", 100) // 300 s at 1 byte every 3 s
	hd := func(method, path, auth, extra string, length int64) string {
		h := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: dais\r\nContent-Length: %d\r\n", method, path, length)
		if auth != "" {
			h += "Authorization: Key " + auth + "\r\n"
		}
		return h + extra + "\r\n"
	}
	form := "Content-Type: application/x-www-form-urlencoded\r\n"
	cases := []struct {
		name, head string
		body       string
		want       string
		within     time.Duration
	}{
		{"login 1", hd("POST", "/__login__", "", form, 100), body, "408", 40 * time.Second},
		{"login 2", hd("POST", "/__login__", "", form, 100), body, "408", 40 * time.Second},
		{"login 3", hd("POST", "/__login__", "", form, 100), body, "408", 40 * time.Second},
		{"login 4", hd("POST", "/connect/login", "", form, 100), body, "408", 40 * time.Second},
		{"login 5", hd("POST", "/connect/login", "", form, 100), body, "408", 40 * time.Second},
		{"JSON", hd("POST", "/__api__/v1/content", key, "Content-Type: application/json\r\n", 100), body, "408", 40 * time.Second},
		{"upload", hd("POST", "/__api__/v1/content/"+guid+"/bundles", key, "", 100), body, "408", 40 * time.Second},
		{"to an app", hd("POST", "/content/"+guid+"/body", "", "", 100), body, "408", 40 * time.Second},
		{"3 GB upload", hd("POST", "/__api__/v1/content/"+guid+"/bundles", key, "", 3<<30), "", "413", 5 * time.Second},
		{"3 GB upload, anonymous", hd("POST", "/__api__/v1/content/"+guid+"/bundles", "", "", 3<<30), "", "413", 5 * time.Second},
	}
	type result struct {
		line string
		took time.Duration
	}
	results := make([]result, len(cases))
	var wg sync.WaitGroup
	for i, cs := range cases {
		wg.Go(func() {
			line, took := slowRequest(t, c, cs.head, cs.body)
			results[i] = result{line, took}
		})
	}
	wg.Wait()
	var figs []string
	for i, cs := range cases {
		res := results[i]
		figs = append(figs, fmt.Sprintf("%s: %s after %s", cs.name, strings.TrimPrefix(res.line, "HTTP/1.1 "), res.took.Round(100*time.Millisecond)))
		if !strings.Contains(res.line, cs.want) {
			t.Errorf("%s: %q after %s, want %s", cs.name, res.line, res.took, cs.want)
		}
		if res.took > cs.within {
			t.Errorf("%s: answered after %s, want within %s", cs.name, res.took, cs.within)
		}
	}
	r.Figure(t, "%s", strings.Join(figs, "; "))
	// The app still answers, the server too.
	if status, _ := c.Get("/content/" + guid + "/headers"); status != 200 {
		t.Errorf("GET headers after = %d", status)
	}
}
