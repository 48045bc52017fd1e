package e2e

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func init() {
	addCase(batteryCase{Name: "a render plants a FIFO, a socket and links; anonymous GETs of them", Issue: "23.3, 23.9",
		Run: func(t *testing.T, r *row) { testPlantedFiles(t, r, sandboxMode("namespaces")) }})
	addCase(batteryCase{Name: "the same, the render in a Landlock sandbox", Issue: "23.3, 23.9",
		Run: func(t *testing.T, r *row) { testPlantedFiles(t, r, sandboxMode("landlock")) }})
	addCase(batteryCase{Name: "static content: manifest.json, a NUL in the path", Issue: "23.9", Run: testStaticMetadata})
}

// plantingDoc is an R Markdown document whose code, run by the render,
// leaves in its own output directory what a hostile publisher would: a
// FIFO (twice: as a page and as a directory's index), a Unix socket,
// links out of the directory and one to the FIFO.
func plantingDoc() string {
	fence := "```"
	r := `args <- paste(commandArgs(), collapse = " ")
out <- sub('.*output_dir[^"]*"([^"]+)".*', "\\1", args) # R writes -e's spaces as ~+~
stopifnot(dir.exists(out))
system2("mkfifo", shQuote(file.path(out, "pipe.html")))
dir.create(file.path(out, "fifodir"))
system2("mkfifo", shQuote(file.path(out, "fifodir", "index.html")))
file.symlink("/etc/passwd", file.path(out, "passwd.txt"))
file.symlink("..", file.path(out, "up"))
file.symlink("pipe.html", file.path(out, "to-pipe.html"))
system2("python3", c("-c", shQuote(sprintf("import socket; socket.socket(socket.AF_UNIX).bind('%s')", file.path(out, "sock")))))
writeLines("inside", file.path(out, "ok.txt"))
`
	return "---\ntitle: planted\noutput: html_document\n---\n\n" + fence + "{r, include=FALSE}\n" + r + fence + "\n\nplanted document\n"
}

// sandboxMode is the environment that runs content in the given sandbox
// mode ([Sandbox] Mode).
func sandboxMode(mode string) []string {
	return []string{"CONNECT_SANDBOX_MODE=" + mode}
}

// mustMode checks that the server runs content in the sandbox mode env asked for.
func mustMode(t *testing.T, c *Container, env []string) {
	t.Helper()
	for _, e := range env {
		if mode, ok := strings.CutPrefix(e, "CONNECT_SANDBOX_MODE="); ok {
			if !strings.Contains(c.Logs(), "content processes start in "+mode+" sandboxes") {
				t.Fatalf("the server does not run content in %s sandboxes; log:\n%s", mode, tail(c.Logs(), 30))
			}
		}
	}
}

// serverThreads is the number of threads of the container's dais serve.
func serverThreads(t *testing.T, c *Container) int {
	t.Helper()
	r := c.Exec("sh", "-c", "awk '/^Threads:/ {print $2}' /proc/"+strconv.Itoa(c.ServerPID())+"/status")
	n, err := strconv.Atoi(strings.TrimSpace(r.Stdout))
	if err != nil {
		t.Fatalf("threads of dais serve: %q %s: %v", r.Stdout, r.Stderr, err)
	}
	return n
}

// testPlantedFiles (issue 23, defects 3 and 9): every anonymous GET of a
// FIFO blocked a server thread in open(2) forever; 200 of them took dais
// from 10 to 209 threads, a few thousand made the port refuse connections.
// Now each answers 404 at once, the thread count stays flat and the
// server answers throughout; links out of the output and the socket are
// 404 too, not 500.
func testPlantedFiles(t *testing.T, r *row, env []string) {
	c, key := deployServer(t, env...)
	guid, tk, out := deployV1(t, c, key, "planted", bundle(t, rmdDir(t, plantingDoc())))
	if tk.Code != 0 {
		t.Fatalf("deploy failed: %s\n%s", tk.Error, out)
	}
	mustMode(t, c, env)
	base := "/content/" + guid + "/"
	if status, body := c.Get(base); status != 200 || !strings.Contains(body, "planted document") {
		t.Fatalf("GET %s = %d %.300s", base, status, body)
	}
	if status, body := c.Get(base + "ok.txt"); status != 200 || strings.TrimSpace(body) != "inside" {
		t.Fatalf("GET ok.txt = %d %q", status, body)
	}
	for _, p := range []string{"passwd.txt", "up/", "up/bundle.tar.gz", "sock", "index.html%00.txt"} {
		want := http.StatusNotFound
		if strings.Contains(p, "%00") {
			want = http.StatusBadRequest
		}
		if status, body := c.Get(base + p); status != want || strings.Contains(body, "root:") {
			t.Errorf("GET %s = %d %.200q, want %d", p, status, body, want)
		}
	}

	n := 300
	if batteryFull() {
		n = 5000 // the issue's port-exhaustion figure was about 4,800
	}
	before := serverThreads(t, c)
	paths := []string{"pipe.html", "to-pipe.html", "fifodir/"}
	// The server must keep answering while the GETs run.
	stop := make(chan struct{})
	var pings, pingFails atomic.Int64
	var pingWG sync.WaitGroup
	pingWG.Go(func() {
		cl := &http.Client{Timeout: 5 * time.Second}
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			resp, err := cl.Get(c.URL("/__ping__"))
			pings.Add(1)
			if err != nil || resp.StatusCode != 200 {
				pingFails.Add(1)
				continue
			}
			resp.Body.Close()
		}
	})
	cl := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 100}}
	var wg sync.WaitGroup
	var got404, other atomic.Int64
	var firstErr atomic.Value
	sem := make(chan struct{}, 300) // 300 at once, like the issue's 200 and more
	start := time.Now()
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			resp, err := cl.Get(c.URL(base + paths[i%len(paths)]))
			if err != nil {
				other.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusNotFound {
				got404.Add(1)
			} else {
				other.Add(1)
				firstErr.CompareAndSwap(nil, resp.Status)
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(stop)
	pingWG.Wait()
	after := serverThreads(t, c)
	r.Figure(t, "%d GETs of FIFOs: %d answered 404, %d otherwise, in %s", n, got404.Load(), other.Load(), took.Round(time.Millisecond))
	r.Figure(t, "dais serve threads %d before, %d after", before, after)
	r.Figure(t, "/__ping__ meanwhile: %d of %d answered", pings.Load()-pingFails.Load(), pings.Load())
	if other.Load() > 0 {
		t.Errorf("%d GETs of a FIFO did not answer 404 (first: %v)", other.Load(), firstErr.Load())
	}
	// Blocked opens cost a thread each: 300 at once took the old server
	// from 10 to 309. Go starts threads of its own for short blocking
	// system calls under load: 11 to 115 in a CI run whose 300 GETs all
	// answered 404 within 161 ms. Half of the GETs stuck is the line.
	if after > before+n/2 {
		t.Errorf("dais serve grew from %d to %d threads over %d GETs of a FIFO: requests are stuck in open(2)", before, after, n)
	}
	if pingFails.Load() > 0 {
		t.Errorf("/__ping__ failed %d of %d times while the FIFO was asked for", pingFails.Load(), pings.Load())
	}
	if status, body := c.Get(base); status != 200 || !strings.Contains(body, "planted document") {
		t.Errorf("after the GETs: GET %s = %d", base, status)
	}
}

// testStaticMetadata (issue 23, defect 9): a static bundle's manifest.json
// is deployment metadata, not content; a NUL in the path is the client's
// mistake (400), not the server's (500).
func testStaticMetadata(t *testing.T, r *row) {
	c, key := deployServer(t)
	guid, tk, out := deployV1(t, c, key, "site", bundle(t, exampleDir("static")))
	if tk.Code != 0 {
		t.Fatalf("deploy failed: %s\n%s", tk.Error, out)
	}
	base := "/content/" + guid + "/"
	checks := []struct {
		path string
		want int
	}{
		{"", 200}, {"index.html", 200}, {"manifest.json", 404}, {"./manifest.json", 404},
		{"index.html%00.txt", 400}, {"%ff.html", 400}, {"no-such-page.html", 404},
	}
	var got []string
	for _, ck := range checks {
		status, body := c.Get(base + ck.path)
		got = append(got, "/"+ck.path+" "+strconv.Itoa(status))
		if status != ck.want {
			t.Errorf("GET %s%s = %d %.200q, want %d", base, ck.path, status, body, ck.want)
		}
		if ck.want == 404 && strings.Contains(body, `"appmode"`) {
			t.Errorf("GET %s served the manifest", ck.path)
		}
	}
	r.Figure(t, "%s", strings.Join(got, ", "))
}
