package api_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

// staticBundle is a tar.gz of a static site whose index.html says body.
func staticBundle(t *testing.T, body string) []byte {
	t.Helper()
	sum := md5.Sum([]byte(body))
	manifest := `{"version":1,"metadata":{"appmode":"static","primary_html":"index.html"},"files":{"index.html":{"checksum":"` +
		hex.EncodeToString(sum[:]) + `"}}}`
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range []struct{ name, body string }{{"manifest.json", manifest}, {"index.html", body}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(f.body))
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// raw sends a request with a raw body and the API key of role ("" anonymous).
func (f *fixture) raw(t *testing.T, method, path, role string, body []byte) answer {
	t.Helper()
	req, err := http.NewRequest(method, f.ts.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if role != "" {
		req.Header.Set("Authorization", "Key "+f.keys[role])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// must decodes a 200 answer into v, failing the test on anything else.
func (a answer) must(t *testing.T, v any) {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", a.status, a.body)
	}
	if v != nil {
		if err := json.Unmarshal([]byte(a.body), v); err != nil {
			t.Fatalf("decode %s: %v", a.body, err)
		}
	}
}

// deployStatic creates content named name as role, deploys a static site
// saying body and waits for the deploy; it returns the content's guid.
func (f *fixture) deployStatic(t *testing.T, role, name, body string) string {
	t.Helper()
	return f.deployBundle(t, role, name, staticBundle(t, body))
}

// contains fails the test unless s has every one of wants.
func contains(t *testing.T, what, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Fatalf("%s %q does not contain %q", what, s, w)
		}
	}
}

// addUser adds a user with role and an API key, used as f.do(..., name, ...).
func (f *fixture) addUser(t *testing.T, name, role string) *store.User {
	t.Helper()
	u := &store.User{Username: name, Role: role}
	if err := f.st.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	key, rec, err := web.NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	rec.UserID = u.ID
	if err := f.st.CreateAPIKey(context.Background(), &rec); err != nil {
		t.Fatal(err)
	}
	f.keys[name], f.users[name] = key, u
	return u
}

// bundleOf is a tar.gz of files with a manifest.json of appmode (and
// extra top-level manifest JSON, e.g. a "python" section) listing them.
func bundleOf(t *testing.T, appmode, extra string, files map[string]string) []byte {
	t.Helper()
	var listed []string
	for name, body := range files {
		sum := md5.Sum([]byte(body))
		listed = append(listed, `"`+name+`":{"checksum":"`+hex.EncodeToString(sum[:])+`"}`)
	}
	manifest := `{"version":1,"metadata":{"appmode":"` + appmode + `","entrypoint":"app"},` + extra + `"files":{` + strings.Join(listed, ",") + `}}`
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	all := map[string]string{"manifest.json": manifest}
	for k, v := range files {
		all[k] = v
	}
	for name, body := range all {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// deployBundle creates content named name as role and deploys bundle;
// it returns the content's guid.
func (f *fixture) deployBundle(t *testing.T, role, name string, bundle []byte) string {
	t.Helper()
	var c struct{ GUID string }
	f.do(t, "POST", "/__api__/v1/content", role, `{"name":"`+name+`"}`).must(t, &c)
	var b struct{ ID string }
	f.raw(t, "POST", "/__api__/v1/content/"+c.GUID+"/bundles", role, bundle).must(t, &b)
	var task struct {
		TaskID string `json:"task_id"`
	}
	f.do(t, "POST", "/__api__/v1/content/"+c.GUID+"/deploy", role, `{"bundle_id":"`+b.ID+`"}`).must(t, &task)
	f.waitTask(t, role, task.TaskID)
	return c.GUID
}

// waitTask polls a task until it finishes, failing the test if it fails.
func (f *fixture) waitTask(t *testing.T, role, id string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var st struct {
			Finished bool
			Code     int
			Error    string
			Output   []string
		}
		f.do(t, "GET", "/__api__/v1/tasks/"+id+"?wait=1", role, "").must(t, &st)
		if st.Finished {
			if st.Code != 0 {
				t.Fatalf("task %s failed: %s\n%s", id, st.Error, strings.Join(st.Output, "\n"))
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s did not finish in 3 minutes", id)
		}
	}
}

// exampleBundle is a tar.gz of the repository's examples/<name>.
func exampleBundle(t *testing.T, name string) []byte {
	t.Helper()
	dir := filepath.Join("..", "..", "examples", name)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		tw.WriteHeader(&tar.Header{Name: e.Name(), Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg})
		tw.Write(b)
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}
