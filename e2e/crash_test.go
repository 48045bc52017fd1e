package e2e

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func init() {
	addCase(batteryCase{Name: "docker kill during an upload and a render, then docker start", Issue: "23.6", Run: testCrashLeftovers})
}

// findFiles lists the paths under root whose base name matches re.
func findFiles(root string, re *regexp.Regexp) []string {
	var out []string
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && re.MatchString(fi.Name()) {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// testCrashLeftovers (issue 23, defect 6): a 41 MB upload-*.tar.gz of a
// killed upload survived restarts, and a killed render left its partial
// output-N. After docker kill in the middle of both, the next start
// removes them and says so in its log (count, bytes).
func testCrashLeftovers(t *testing.T, r *row) {
	c, key := lifecycleServer(t)
	guid, tk, out := deployV1(t, c, key, "slow-doc", bundle(t, slowDoc(t, "1")))
	if tk.Code != 0 {
		t.Fatalf("deploy failed: %s\n%s", tk.Error, out)
	}
	// A render that takes minutes.
	setEnv(t, c, key, guid, "E2E_SLEEP", "600")
	var rn struct {
		TaskID string `json:"task_id"`
	}
	apiJSON(t, c, "POST", "/__api__/v1/content/"+guid+"/render", key, strings.NewReader(`{}`), &rn)
	waitOutput(t, c, key, rn.TaskID, "Rendering", 2*time.Minute)

	// An upload that announces 100 MB, sends 8 MB at once, then keeps
	// above the minimum rate until the kill.
	conn, err := net.Dial("tcp", "127.0.0.1:"+c.HostPort(ServerPort))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /__api__/v1/content/%s/bundles HTTP/1.1\r\nHost: dais\r\nAuthorization: Key %s\r\nContent-Length: %d\r\n\r\n", guid, key, 100<<20)
	chunk := make([]byte, 64<<10)
	sent := 0
	for sent < 8<<20 {
		n, err := conn.Write(chunk)
		if err != nil {
			t.Fatalf("upload: %v", err)
		}
		sent += n
	}
	go func() {
		for {
			if _, err := conn.Write(chunk); err != nil {
				return
			}
			time.Sleep(500 * time.Millisecond) // 128 KiB/s
		}
	}()
	uploads := regexp.MustCompile(`^upload-.*\.tar\.gz$`)
	outputs := regexp.MustCompile(`^output-[0-9]+$`)
	deadline := time.Now().Add(time.Minute)
	var ups []string
	for time.Now().Before(deadline) {
		ups = findFiles(filepath.Join(c.DataDir, "apps"), uploads)
		if len(ups) == 1 {
			if fi, err := os.Stat(ups[0]); err == nil && fi.Size() >= 4<<20 {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(ups) != 1 {
		t.Fatalf("no upload in progress under %s/apps: %q", c.DataDir, ups)
	}
	outsBefore := findFiles(filepath.Join(c.DataDir, "apps"), outputs)
	if len(outsBefore) != 2 {
		t.Fatalf("want the deploy's render output and the running render's, found %q", outsBefore)
	}
	fi, _ := os.Stat(ups[0])
	c.Kill("KILL")
	c.WaitExit(time.Minute)
	if _, err := os.Stat(ups[0]); err != nil {
		t.Fatalf("the killed upload's temporary file is not there after the kill: %v", err)
	}
	r.Figure(t, "killed during a %d-byte upload and a render", fi.Size())

	restart(t, c)
	if left := findFiles(filepath.Join(c.DataDir, "apps"), uploads); len(left) > 0 {
		t.Errorf("after the start the upload's temporary file is still there: %q", left)
	}
	outsAfter := findFiles(filepath.Join(c.DataDir, "apps"), outputs)
	if len(outsAfter) != 1 {
		t.Errorf("after the start, outputs %q; want only the finished render's", outsAfter)
	}
	line := regexp.MustCompile(`removed what earlier runs left behind.*count=(\d+) bytes=(\d+)`).FindStringSubmatch(c.Logs())
	if line == nil {
		t.Errorf("the start does not log what it removed; log:\n%s", tail(c.Logs(), 30))
	} else {
		r.Figure(t, "the start removed %s leftovers, %s bytes", line[1], line[2])
		if line[1] != "2" {
			t.Errorf("removed %s leftovers, want 2 (the upload, the render's output)", line[1])
		}
	}
	// The content serves its finished render; the killed one is failed.
	mustServe(t, c, guid, "lifecycle version 1 slept 0")
	if tk := task(t, c, key, rn.TaskID); !tk.Finished || tk.Code == 0 {
		t.Errorf("the killed render's task: %+v, want finished and failed", tk)
	}
	// Uploads work again.
	status, body := api(t, c, "POST", "/__api__/v1/content/"+guid+"/bundles", key, strings.NewReader(string(bundle(t, slowDoc(t, "2")))))
	if status != http.StatusOK {
		t.Errorf("upload after the start = %d %s", status, body)
	}
}
