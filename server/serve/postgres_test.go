package serve

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// postgresSchemaURL makes an empty schema on DAIS_TEST_POSTGRES_URL,
// dropped after the test, and returns a URL selecting it. Without the
// variable the test is skipped, unless CI=true, where it fails.
func postgresSchemaURL(t *testing.T) string {
	t.Helper()
	base := os.Getenv("DAIS_TEST_POSTGRES_URL")
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("DAIS_TEST_POSTGRES_URL is not set; CI must provide PostgreSQL (see scripts/test-env.sh)")
		}
		t.Skip("DAIS_TEST_POSTGRES_URL not set: no PostgreSQL to test against")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "dais_serve_" + hex.EncodeToString(b)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		t.Fatalf("create schema on DAIS_TEST_POSTGRES_URL: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// TestServeOnPostgres: accounts made with the CLI on PostgreSQL work
// against the server; two servers share one database (no SQLite lock).
func TestServeOnPostgres(t *testing.T) {
	dsn := postgresSchemaURL(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.gcfg")
	text := fmt.Sprintf("[Server]\nDataDir = %s\n[HTTP]\nListen = 127.0.0.1:0\n[Database]\nProvider = postgres\n[Postgres]\nURL = %q\n", filepath.Join(dir, "data"), dsn)
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runDais(t, "pg-password\n", "users", "add", "--config", cfgPath, "--role", "publisher", "pat"); code != 0 {
		t.Fatalf("users add on PostgreSQL: %d %s%s", code, out, errOut)
	}
	code, out, errOut := runDais(t, "", "keys", "create", "--config", cfgPath, "--user", "pat")
	if code != 0 {
		t.Fatalf("keys create on PostgreSQL: %d %s%s", code, out, errOut)
	}
	key := strings.TrimSpace(out)
	a, b := startDais(t, cfgPath, "DAIS_NODE_NAME=a"), startDais(t, cfgPath, "DAIS_NODE_NAME=b")
	for _, p := range []*daisProc{a, b} {
		req, _ := http.NewRequest("GET", p.url("/__api__/v1/user"), nil)
		req.Header.Set("Authorization", "Key "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET /__api__/v1/user on %s: %d", p.addr, resp.StatusCode)
		}
	}
	for _, p := range []*daisProc{a, b} {
		p.signal(syscall.SIGTERM)
		if code := p.waitExit(10 * time.Second); code != 0 {
			t.Fatalf("exit %d after TERM", code)
		}
	}
}

// TestRevocationAcrossServers: two servers on one PostgreSQL (and one data
// directory). A viewer reaches content through a group; the group's
// membership, then the permission, are removed through one server: the
// other refuses the very next request, in the API and at /content/. Every
// access check reads the database (no cache that another node's change
// could leave stale); this test is what a cache on that path must pass.
func TestRevocationAcrossServers(t *testing.T) {
	dsn := postgresSchemaURL(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.gcfg")
	text := fmt.Sprintf("[Server]\nDataDir = %s\n[HTTP]\nListen = 127.0.0.1:0\n[Database]\nProvider = postgres\n[Postgres]\nURL = %q\n", filepath.Join(dir, "data"), dsn)
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, u := range []struct{ name, role string }{{"ada", "administrator"}, {"vic", "viewer"}} {
		if code, out, errOut := runDais(t, "pw-"+u.name+"-12345\n", "users", "add", "--config", cfgPath, "--role", u.role, u.name); code != 0 {
			t.Fatalf("users add %s: %d %s%s", u.name, code, out, errOut)
		}
		code, out, errOut := runDais(t, "", "keys", "create", "--config", cfgPath, "--user", u.name)
		if code != 0 {
			t.Fatalf("keys create %s: %d %s%s", u.name, code, out, errOut)
		}
		keys[u.name] = strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
	}
	call := func(p *daisProc, who, method, path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, p.url(path), strings.NewReader(body))
		req.Header.Set("Authorization", "Key "+keys[who])
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if strings.HasSuffix(path, "/bundles") {
			req.Header.Set("Content-Type", "application/gzip")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		var out map[string]any
		b, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(b, &out)
		return resp.StatusCode, out
	}
	must := func(p *daisProc, who, method, path, body string) map[string]any {
		t.Helper()
		code, out := call(p, who, method, path, body)
		if code != 200 {
			t.Fatalf("%s %s as %s: %d %v", method, path, who, code, out)
		}
		return out
	}

	a := startDais(t, cfgPath, "DAIS_NODE_NAME=a")
	guid := must(a, "ada", "POST", "/__api__/v1/content", `{"name": "shared", "access_type": "acl"}`)["guid"].(string)
	bundle := staticBundle(t, "<h1>shared</h1>\n")
	bid := must(a, "ada", "POST", "/__api__/v1/content/"+guid+"/bundles", string(bundle))["id"].(string)
	task := must(a, "ada", "POST", "/__api__/v1/content/"+guid+"/deploy", `{"bundle_id": "`+bid+`"}`)["task_id"].(string)
	for deadline := time.Now().Add(60 * time.Second); ; {
		out := must(a, "ada", "GET", "/__api__/v1/tasks/"+task+"?wait=5", "")
		if out["finished"] == true {
			if c, _ := out["code"].(float64); c != 0 {
				t.Fatalf("deploy failed: %v", out)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("deploy not finished after 60 s")
		}
	}
	vic := must(a, "vic", "GET", "/__api__/v1/user", "")["guid"].(string)
	group := must(a, "ada", "POST", "/__api__/v1/groups", `{"name": "readers"}`)["guid"].(string)
	must(a, "ada", "POST", "/__api__/v1/groups/"+group+"/members", `{"user_guid": "`+vic+`"}`)
	perm := must(a, "ada", "POST", "/__api__/v1/content/"+guid+"/permissions",
		`{"principal_guid": "`+group+`", "principal_type": "group", "role": "viewer"}`)["id"].(string)

	// b starts after the deploy: it serves the content from the shared
	// data directory.
	b := startDais(t, cfgPath, "DAIS_NODE_NAME=b")
	page := func() int {
		t.Helper()
		req, _ := http.NewRequest("GET", b.url("/content/"+guid+"/"), nil)
		req.Header.Set("Authorization", "Key "+keys["vic"])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	wantAccess := func(when string, api, content int) {
		t.Helper()
		// Several requests each: a cache warmed by the first must not
		// answer the later ones from what it saw.
		for range 3 {
			if code, _ := call(b, "vic", "GET", "/__api__/v1/content/"+guid, ""); code != api {
				t.Fatalf("%s: GET /__api__/v1/content/%s through the other server: %d, want %d", when, guid, code, api)
			}
			if code := page(); code != content {
				t.Fatalf("%s: GET /content/%s/ through the other server: %d, want %d", when, guid, code, content)
			}
		}
	}
	wantAccess("member of the group", 200, 200)
	must(a, "ada", "DELETE", "/__api__/v1/groups/"+group+"/members/"+vic, "")
	wantAccess("removed from the group on the first server", 404, 403)
	must(a, "ada", "POST", "/__api__/v1/groups/"+group+"/members", `{"user_guid": "`+vic+`"}`)
	wantAccess("added again", 200, 200)
	must(a, "ada", "DELETE", "/__api__/v1/content/"+guid+"/permissions/"+perm, "")
	wantAccess("the group's permission deleted on the first server", 404, 403)

	// Deploys through a, after b started: b serves each new version (it
	// activates what the content's row names when it differs from what it
	// serves), and content it never saw.
	deploy := func(guid, html string) {
		t.Helper()
		bid := must(a, "ada", "POST", "/__api__/v1/content/"+guid+"/bundles", string(staticBundle(t, html)))["id"].(string)
		task := must(a, "ada", "POST", "/__api__/v1/content/"+guid+"/deploy", `{"bundle_id": "`+bid+`"}`)["task_id"].(string)
		for deadline := time.Now().Add(60 * time.Second); ; {
			out := must(a, "ada", "GET", "/__api__/v1/tasks/"+task+"?wait=5", "")
			if out["finished"] == true {
				if c, _ := out["code"].(float64); c != 0 {
					t.Fatalf("deploy failed: %v", out)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("deploy not finished after 60 s")
			}
		}
	}
	pageOnB := func(guid, want string) {
		t.Helper()
		req, _ := http.NewRequest("GET", b.url("/content/"+guid+"/"), nil)
		req.Header.Set("Authorization", "Key "+keys["ada"])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Fatalf("GET /content/%s/ on b after a deploy on a: %d %q, want %q", guid, resp.StatusCode, body, want)
		}
	}
	deploy(guid, "<h1>second version</h1>\n")
	pageOnB(guid, "second version")
	fresh := must(a, "ada", "POST", "/__api__/v1/content", `{"name": "fresh", "access_type": "acl"}`)["guid"].(string)
	deploy(fresh, "<h1>fresh</h1>\n")
	pageOnB(fresh, "fresh")
	b.waitLog("serving the content's newest version", time.Second)
	for _, p := range []*daisProc{a, b} {
		p.signal(syscall.SIGTERM)
		p.waitExit(20 * time.Second)
	}
}

// staticBundle is a gzipped tar of a static site: index.html and its manifest.
func staticBundle(t *testing.T, html string) []byte {
	t.Helper()
	sum := md5.Sum([]byte(html))
	manifest := `{"version": 1, "metadata": {"appmode": "static", "primary_html": "index.html"}, "files": {"index.html": {"checksum": "` + hex.EncodeToString(sum[:]) + `"}}}`
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, f := range []struct{ name, body string }{{"manifest.json", manifest}, {"index.html", html}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), ModTime: time.Now()}); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, f.body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
