package deploy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/content/manifest"
)

// siteDir lays out what a render or a static bundle may leave in the
// directory dais serves: ordinary files, manifest.json, a FIFO, a socket,
// links inside and out. It returns the directory; beside it lies a secret
// that must never be served.
func siteDir(t *testing.T) string {
	t.Helper()
	parent := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(parent, "secret.txt"), []byte("outside"), 0o644))
	dir := filepath.Join(parent, "site")
	must(os.MkdirAll(filepath.Join(dir, "sub"), 0o755))
	must(os.MkdirAll(filepath.Join(dir, "empty"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "report.html"), []byte("<p>report</p>"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "style.css"), []byte("body{}"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(`{"version":1}`), 0o644))
	must(os.WriteFile(filepath.Join(dir, "sub", "index.htm"), []byte("<p>sub</p>"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "sub", "manifest.json"), []byte(`{"a":1}`), 0o644))
	must(syscall.Mkfifo(filepath.Join(dir, "pipe.html"), 0o644))
	must(os.Symlink("pipe.html", filepath.Join(dir, "to-pipe.html")))
	must(os.Mkdir(filepath.Join(dir, "fifodir"), 0o755))
	must(syscall.Mkfifo(filepath.Join(dir, "fifodir", "index.html"), 0o644))
	must(os.Symlink("../secret.txt", filepath.Join(dir, "escape.txt")))
	must(os.Symlink(parent, filepath.Join(dir, "escape-dir")))
	must(os.Symlink("/etc/passwd", filepath.Join(dir, "passwd")))
	must(os.Symlink("/dev/zero", filepath.Join(dir, "zero")))
	must(os.Symlink("style.css", filepath.Join(dir, "inside.css")))
	ln, err := net.Listen("unix", filepath.Join(dir, "sock"))
	must(err)
	t.Cleanup(func() { ln.Close() })
	return dir
}

func siteServer(t *testing.T, dir, index string) *httptest.Server {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	f := &fileSite{root: root, index: index}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.serve(w, r, strings.TrimPrefix(r.URL.Path, "/content/g"))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestFileSiteServesOnlyRegularFiles: a file site answers 404 for what is
// not a regular file inside its directory (FIFO, socket, links out, no
// listing), never serves manifest.json, and answers 400 for a NUL byte.
func TestFileSiteServesOnlyRegularFiles(t *testing.T) {
	srv := siteServer(t, siteDir(t), "report.html")
	cl := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	tests := []struct {
		method, path string
		code         int
		body         string
	}{
		{"GET", "/content/g/", 200, "<p>report</p>"},
		{"HEAD", "/content/g/", 200, ""},
		{"GET", "/content/g/style.css", 200, "body{}"},
		{"GET", "/content/g/inside.css", 200, "body{}"},
		{"GET", "/content/g/sub/", 200, "<p>sub</p>"},
		{"GET", "/content/g/sub", 301, ""},
		{"GET", "/content/g/empty/", 404, ""},
		{"GET", "/content/g/manifest.json", 404, ""},
		{"GET", "/content/g/./manifest.json", 404, ""},
		{"GET", "/content/g/sub/../manifest.json", 404, ""},
		{"GET", "/content/g/sub/manifest.json", 200, `{"a":1}`}, // only the bundle's own
		{"GET", "/content/g/pipe.html", 404, ""},
		{"GET", "/content/g/to-pipe.html", 404, ""},
		{"GET", "/content/g/fifodir/", 404, ""},
		{"GET", "/content/g/sock", 404, ""},
		{"GET", "/content/g/escape.txt", 404, ""},
		{"GET", "/content/g/escape-dir/secret.txt", 404, ""},
		{"GET", "/content/g/passwd", 404, ""},
		{"GET", "/content/g/zero", 404, ""},
		{"GET", "/content/g/%2e%2e/secret.txt", 404, ""},
		{"GET", "/content/g/index.html%00.txt", 400, ""},
		{"GET", "/content/g/report.html%00", 400, ""},
		{"GET", "/content/g/%ff%fe.html", 400, ""},
		{"POST", "/content/g/report.html", 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			resp, err := cl.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.code {
				t.Fatalf("status %d (%.100s); want %d", resp.StatusCode, b, tt.code)
			}
			if tt.body != "" && string(b) != tt.body {
				t.Errorf("body %q; want %q", b, tt.body)
			}
			if strings.Contains(string(b), "outside") || strings.Contains(string(b), "root:") || strings.Contains(string(b), `"version"`) {
				t.Errorf("served what it must not: %.100q", b)
			}
		})
	}
}

// threads is the number of OS threads of this process.
func threads(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no Threads line in /proc/self/status")
	return 0
}

// TestFileSiteFIFODoesNotHang: hundreds of GETs of a FIFO at once all
// answer 404, none waits for a writer, and the server does not grow a
// thread per request (issue 23: 200 requests took it from 10 to 209).
func TestFileSiteFIFODoesNotHang(t *testing.T) {
	srv := siteServer(t, siteDir(t), "")
	cl := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: 300}}
	before := threads(t)
	const n = 300
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := range n {
		wg.Go(func() {
			path := "/content/g/pipe.html"
			if i%2 == 1 {
				path = "/content/g/fifodir/"
			}
			resp, err := cl.Get(srv.URL + path)
			if err != nil {
				errs <- err.Error()
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				errs <- resp.Status
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("GET of a FIFO: %s, want 404 at once", e)
	}
	after := threads(t)
	t.Logf("threads: %d before, %d after %d GETs of a FIFO", before, after, n)
	if after > before+64 {
		t.Errorf("threads grew from %d to %d over %d GETs of a FIFO: requests are stuck in open(2)", before, after, n)
	}
	// Still serving.
	resp, err := cl.Get(srv.URL + "/content/g/style.css")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after the FIFO GETs: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestRenderIndexMustBeRegular: a render whose index.html is a FIFO or a
// link out of its output fails, rather than being served.
func TestRenderIndexMustBeRegular(t *testing.T) {
	tests := []struct {
		name  string
		setup func(out string) error
		ok    bool
	}{
		{"regular", func(out string) error { return os.WriteFile(filepath.Join(out, "index.html"), []byte("x"), 0o644) }, true},
		{"fifo", func(out string) error { return syscall.Mkfifo(filepath.Join(out, "index.html"), 0o644) }, false},
		{"link out", func(out string) error { return os.Symlink("/etc/passwd", filepath.Join(out, "index.html")) }, false},
		{"directory", func(out string) error { return os.Mkdir(filepath.Join(out, "index.html"), 0o755) }, false},
		{"missing", func(string) error { return nil }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			if err := tt.setup(out); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- checkIndex(out) }()
			select {
			case err := <-done:
				if (err == nil) != tt.ok {
					t.Fatalf("checkIndex = %v, want ok %v", err, tt.ok)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("checkIndex blocked")
			}
		})
	}
}

// TestServeStaticIndexFromManifest: a static bundle without index.html
// serves its manifest's primary document at "/".
func TestServeStaticIndexFromManifest(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "report.html"), []byte("<p>report</p>"), 0o644)
	m := &manifest.Manifest{}
	m.Metadata.AppMode = manifest.Static
	m.Metadata.PrimaryHTML = "report.html"
	s := &Service{files: map[string]*fileSite{}}
	if err := s.serveStatic("g", dir, m); err != nil {
		t.Fatal(err)
	}
	f := s.files["g"]
	defer f.root.Close()
	rec := httptest.NewRecorder()
	f.serve(rec, httptest.NewRequest("GET", "/content/g/", nil), "/")
	if rec.Code != 200 || rec.Body.String() != "<p>report</p>" {
		t.Fatalf("GET / = %d %q", rec.Code, rec.Body.String())
	}
}

// TestReadTail: a process log is read from its end, whatever its size,
// and only when it is a regular file.
func TestReadTail(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.log")
	var b strings.Builder
	for i := range 200000 {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	os.WriteFile(big, []byte(b.String()), 0o644)
	got, err := readTail(big, 1<<10)
	if err != nil || len(got) != 1<<10 || !strings.HasSuffix(string(got), "line 199999\n") {
		t.Fatalf("readTail = %d bytes ending %q, %v", len(got), got[max(0, len(got)-20):], err)
	}
	fifo := filepath.Join(dir, "fifo.log")
	syscall.Mkfifo(fifo, 0o644)
	done := make(chan error, 1)
	go func() { _, err := readTail(fifo, 1<<10); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("readTail of a FIFO succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("readTail of a FIFO blocked")
	}
	os.Symlink(big, filepath.Join(dir, "link.log"))
	if _, err := readTail(filepath.Join(dir, "link.log"), 10); err == nil {
		t.Error("readTail followed a link")
	}
}
