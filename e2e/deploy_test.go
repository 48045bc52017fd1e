package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// deployBundleLimit is the unpacked-bundle limit the deploy tests run
// dais with (DAIS_BUNDLE_MAX_BYTES), so a tar bomb stops early.
const deployBundleLimit = 64 << 20

// deployServer starts dais in the container (env: extra variables) and
// returns it with the API key of a publisher, "alice".
func deployServer(t *testing.T, env ...string) (*Container, string) {
	t.Helper()
	c := Run(t, Options{Env: append([]string{"DAIS_BUNDLE_MAX_BYTES=" + strconv.Itoa(deployBundleLimit)}, env...)})
	c.WaitHTTP("/__ping__", http.StatusOK, startBound)
	key := publisherKey(t, c, "alice", "alice-password-e2e")
	return c, key
}

// api sends one request with the key and returns status and body.
func api(t *testing.T, c *Container, method, path, key string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, c.URL(path), body)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Key "+key)
	}
	cl := &http.Client{Timeout: 60 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// apiJSON sends a request that must answer 200 with JSON, decoded into v.
func apiJSON(t *testing.T, c *Container, method, path, key string, body io.Reader, v any) {
	t.Helper()
	status, b := api(t, c, method, path, key, body)
	if status != http.StatusOK {
		t.Fatalf("%s %s = %d %s", method, path, status, b)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
}

// tarEntry is one extra member of a test archive.
type tarEntry struct {
	name     string
	body     string
	typeflag byte
	link     string
	zeros    int64 // a file of this many zero bytes (tar bomb)
}

// bundle packs dir's files as "./name" (as rsconnect does) after extra.
func bundle(t *testing.T, dir string, extra ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range extra {
		h := &tar.Header{Name: e.name, Mode: 0o644, Typeflag: e.typeflag, Linkname: e.link, Size: int64(len(e.body))}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if e.zeros > 0 {
			h.Size = e.zeros
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.zeros > 0 {
			io.CopyN(tw, zeroReader{}, e.zeros)
		} else if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	if dir != "" {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := tw.WriteHeader(&tar.Header{Name: "./" + filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
				return err
			}
			_, err = tw.Write(b)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func exampleDir(name string) string { return filepath.Join("..", "examples", name) }

// v1Task is a task as GET /__api__/v1/tasks/{id} shows it.
type v1Task struct {
	Output   []string        `json:"output"`
	Last     int             `json:"last"`
	Finished bool            `json:"finished"`
	Code     int             `json:"code"`
	Error    string          `json:"error"`
	Result   json.RawMessage `json:"result"`
}

// deployV1 creates content (access_type all), uploads the archive, deploys
// it and long-polls the task; it returns the guid, the task and its output.
func deployV1(t *testing.T, c *Container, key, name string, archive []byte) (string, v1Task, string) {
	t.Helper()
	var content struct {
		GUID       string `json:"guid"`
		ContentURL string `json:"content_url"`
	}
	apiJSON(t, c, "POST", "/__api__/v1/content", key, strings.NewReader(`{"name":"`+name+`","title":"`+name+`","access_type":"all"}`), &content)
	var b struct {
		ID string `json:"id"`
	}
	apiJSON(t, c, "POST", "/__api__/v1/content/"+content.GUID+"/bundles", key, bytes.NewReader(archive), &b)
	var d struct {
		TaskID string `json:"task_id"`
	}
	apiJSON(t, c, "POST", "/__api__/v1/content/"+content.GUID+"/deploy", key, strings.NewReader(`{"bundle_id":"`+b.ID+`"}`), &d)
	var out []string
	first := 0
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		var tk v1Task
		apiJSON(t, c, "GET", "/__api__/v1/tasks/"+d.TaskID+"?wait=10&first="+strconv.Itoa(first), key, nil, &tk)
		out = append(out, tk.Output...)
		first = tk.Last
		if tk.Finished {
			return content.GUID, tk, strings.Join(out, "\n")
		}
	}
	t.Fatalf("deploy of %s not finished in time; output:\n%s", name, strings.Join(out, "\n"))
	return "", v1Task{}, ""
}

// TestDeployV1 deploys the Python APIs and the documents through the v1
// API into the container and checks each answers at /content/<guid>/;
// then malicious bundles, each refused with nothing written outside.
func TestDeployV1(t *testing.T) {
	c, key := deployServer(t)

	apps := []struct {
		example, path, want string
	}{
		{"flask", "hello", "hello from flask"},
		{"fastapi", "hello", "hello"},
		{"rmarkdown", "", "sum is 6"},
		{"jupyter", "", "dais Jupyter example"},
	}
	for _, tt := range apps {
		t.Run(tt.example, func(t *testing.T) {
			start := time.Now()
			guid, tk, out := deployV1(t, c, key, tt.example, bundle(t, exampleDir(tt.example)))
			if tk.Code != 0 {
				t.Fatalf("deploy failed: %s\n%s", tk.Error, out)
			}
			t.Logf("%s deployed in %s", tt.example, time.Since(start).Round(time.Millisecond))
			// Anonymous: the content is public (access_type all).
			status, body := c.Get("/content/" + guid + "/" + tt.path)
			if status != http.StatusOK || !strings.Contains(body, tt.want) {
				t.Fatalf("GET /content/%s/%s = %d %.500s, want %q", guid, tt.path, status, body, tt.want)
			}
			if tt.example == "flask" || tt.example == "fastapi" {
				status, body = c.Get("/content/" + guid + "/echo?msg=e2e")
				if status != http.StatusOK || !strings.Contains(body, "e2e") {
					t.Errorf("GET echo = %d %s", status, body)
				}
				var jobs []struct {
					PID    int `json:"pid"`
					Status int `json:"status"`
				}
				apiJSON(t, c, "GET", "/__api__/v1/content/"+guid+"/jobs", key, nil, &jobs)
				if len(jobs) == 0 || jobs[0].Status != 0 {
					t.Errorf("jobs = %+v, want a running process", jobs)
				}
				if tt.example == "fastapi" {
					// The app processes (the Flask and FastAPI launchers) run as
					// rstudio-connect (uid 999), not root.
					r := c.Exec("sh", "-c", `for p in /proc/[0-9]*; do a0=$(tr '\0' '\n' <$p/cmdline 2>/dev/null | head -n 1); case "$a0" in */python*) tr '\0' ' ' <$p/cmdline | grep -qE 'python-(api|fastapi)' && awk '/^Uid:/ {print $2}' $p/status;; esac; done`)
					uids := strings.Fields(r.Stdout)
					if len(uids) < 2 {
						t.Errorf("found %d app processes, want the Flask and FastAPI ones: %q %s", len(uids), r.Stdout, r.Stderr)
					}
					for _, u := range uids {
						if u != "999" {
							t.Errorf("an app process runs as uid %s, want 999 (rstudio-connect)", u)
						}
					}
					// Their sandboxes are built by the small helper, not by
					// re-executing dais: its inits (one per app, plus one
					// pre-started and idle) are dais-sandbox-exec processes.
					if !strings.Contains(c.Logs(), "sandboxes built by /usr/local/bin/dais-sandbox-exec") {
						t.Errorf("the server does not say it uses /usr/local/bin/dais-sandbox-exec; log:\n%s", tail(c.Logs(), 30))
					}
					r = c.Exec("sh", "-c", `for p in /proc/[0-9]*; do tr '\0' '\n' <$p/cmdline 2>/dev/null | head -n 1; done | grep -c '^/usr/local/bin/dais-sandbox-exec$'`)
					if n, _ := strconv.Atoi(strings.TrimSpace(r.Stdout)); n < 3 {
						t.Errorf("%d dais-sandbox-exec processes, want at least 3 (the Flask and FastAPI inits and an idle one): %s", n, r.Stderr)
					}
				}
			}
		})
	}

	bad := []struct {
		name    string
		entries []tarEntry
		want    string
	}{
		{"path traversal", []tarEntry{{name: "../../../../tmp/escaped-traversal", body: "x"}}, "escapes"},
		{"absolute path", []tarEntry{{name: "/tmp/escaped-absolute", body: "x"}}, "escapes"},
		{"escaping link", []tarEntry{{name: "out", typeflag: tar.TypeSymlink, link: "../../../../../tmp"}, {name: "out/escaped-link", body: "x"}}, "link"},
		{"tar bomb", []tarEntry{{name: "bomb", zeros: 4 * deployBundleLimit}}, "too large"},
	}
	for i, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, tk, out := deployV1(t, c, key, "bad"+strconv.Itoa(i), bundle(t, "", tt.entries...))
			if !tk.Finished || tk.Code == 0 {
				t.Fatalf("malicious bundle deployed:\n%s", out)
			}
			if !strings.Contains(strings.ToLower(tk.Error), tt.want) {
				t.Errorf("task error %q does not mention %q", tk.Error, tt.want)
			}
		})
	}
	// Nothing written outside: not in the container, not in the volume.
	if r := c.Exec("sh", "-c", "find / -xdev -name 'escaped-*' 2>/dev/null; find /data -name bomb 2>/dev/null"); strings.TrimSpace(r.Stdout) != "" {
		t.Errorf("files written outside the bundle directories:\n%s", r.Stdout)
	}
	filepath.WalkDir(c.DataDir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && (strings.HasPrefix(d.Name(), "escaped-") || d.Name() == "bomb") {
			t.Errorf("file left in the data volume: %s", p)
		}
		return nil
	})
}
