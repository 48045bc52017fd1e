package deploy_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/api"
	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/deploy"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

// fixture is a dais web server with the deploy service (content run
// without the sandbox) and its API (server/api), over SQLite, with users
// and their API keys.
type fixture struct {
	ts    *httptest.Server
	st    store.Store
	web   *web.Server
	svc   *deploy.Service
	cfg   *config.Config
	keys  map[string]string // username -> key
	users map[string]*store.User
}

func newFixture(t *testing.T, o deploy.Options) *fixture {
	t.Helper()
	cfg := config.Defaults()
	cfg.Server.DataDir = t.TempDir()
	if py, err := exec.LookPath("python3"); err == nil {
		cfg.Python.Executable = []string{py}
	}
	if r, err := exec.LookPath("R"); err == nil {
		cfg.R.Executable = []string{r}
	}
	ctx := context.Background()
	st, err := store.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: st, cfg: cfg, keys: map[string]string{}, users: map[string]*store.User{}}
	for _, u := range []struct{ name, role string }{
		{"viewer1", store.RoleViewer}, {"pub1", store.RolePublisher}, {"pub2", store.RolePublisher}, {"admin1", store.RoleAdministrator},
	} {
		usr := &store.User{Username: u.name, Role: u.role}
		if err := st.CreateUser(ctx, usr); err != nil {
			t.Fatal(err)
		}
		key, rec, err := web.NewAPIKey()
		if err != nil {
			t.Fatal(err)
		}
		rec.UserID, rec.Name = usr.ID, "test"
		if err := st.CreateAPIKey(ctx, &rec); err != nil {
			t.Fatal(err)
		}
		f.keys[u.name], f.users[u.name] = key, usr
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	srv, err := web.New(web.Options{Config: cfg, Store: st, Logger: logger, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	o.Config, o.Store, o.Logger, o.NoSandbox, o.Disk = srv.Config, st, logger, true, srv.Disk()
	f.web = srv
	f.svc, err = deploy.New(o)
	if err != nil {
		t.Fatal(err)
	}
	api.Register(api.Options{Web: srv, Store: st, Deploy: f.svc, Logger: logger})
	if err := f.svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	f.ts = httptest.NewServer(srv)
	t.Cleanup(func() {
		f.ts.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		f.svc.Stop(ctx)
	})
	return f
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("answer %d is not the JSON expected: %v: %s", a.status, err, a.body)
	}
}

// do sends a request as user ("" anonymous); body may be a string, []byte
// or an io.Reader (sent chunked, without Content-Type).
func (f *fixture) do(t *testing.T, method, path, user string, body any) answer {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	case io.Reader:
		rd = b
	}
	req, err := http.NewRequest(method, f.ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := body.(io.Reader); ok {
		req.ContentLength = -1 // chunked, as some clients send bundles
	}
	if user != "" {
		req.Header.Set("Authorization", "Key "+f.keys[user])
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

func (f *fixture) must(t *testing.T, method, path, user string, body any, v any) {
	t.Helper()
	a := f.do(t, method, path, user, body)
	if a.status != http.StatusOK {
		t.Fatalf("%s %s = %d %s, want 200", method, path, a.status, a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	if v != nil {
		a.json(t, v)
	}
}

// entry is one member of a test archive.
type entry struct {
	name     string
	body     string
	typeflag byte
	link     string
	size     int64 // for a zero body bigger than body (tar bomb)
}

// tarGz writes entries, then every file of dir (if any) as "./name", as
// rsconnect does.
func tarGz(t *testing.T, dir string, extra ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	write := func(e entry) {
		h := &tar.Header{Name: e.name, Mode: 0o644, Typeflag: e.typeflag, Linkname: e.link, Size: int64(len(e.body))}
		if e.typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if e.size > 0 {
			h.Size = e.size
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.size > 0 {
			if _, err := io.CopyN(tw, zeros{}, e.size); err != nil {
				t.Fatal(err)
			}
		} else if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	for _, e := range extra {
		write(e)
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
			write(entry{name: "./" + filepath.ToSlash(rel), body: string(b)})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func example(name string) string { return filepath.Join("..", "..", "examples", name) }

type taskJSON struct {
	ID         string   `json:"id"`
	Status     []string `json:"status"`
	Output     []string `json:"output"`
	LastStatus int      `json:"last_status"`
	Last       int      `json:"last"`
	Finished   bool     `json:"finished"`
	Code       int      `json:"code"`
	Error      string   `json:"error"`
}

// waitLegacy polls the task as rsconnect 0.8.x does and returns all lines.
func (f *fixture) waitLegacy(t *testing.T, user, id string) (taskJSON, []string) {
	t.Helper()
	var lines []string
	first := 0
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		var tj taskJSON
		f.must(t, "GET", "/__api__/tasks/"+id+"?first_status="+itoa(first), user, nil, &tj)
		lines = append(lines, tj.Status...)
		if tj.LastStatus != first+len(tj.Status) {
			t.Fatalf("last_status %d after first_status %d and %d lines", tj.LastStatus, first, len(tj.Status))
		}
		first = tj.LastStatus
		if tj.Finished {
			return tj, lines
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("task %s not finished in time; output so far:\n%s", id, strings.Join(lines, "\n"))
	return taskJSON{}, nil
}

// waitV1 long-polls the v1 task.
func (f *fixture) waitV1(t *testing.T, user, id string) (taskJSON, []string) {
	t.Helper()
	var lines []string
	first := 0
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		var tj taskJSON
		f.must(t, "GET", "/__api__/v1/tasks/"+id+"?wait=5&first="+itoa(first), user, nil, &tj)
		lines = append(lines, tj.Output...)
		first = tj.Last
		if tj.Finished {
			return tj, lines
		}
	}
	t.Fatalf("task %s not finished in time; output so far:\n%s", id, strings.Join(lines, "\n"))
	return taskJSON{}, nil
}

func itoa(n int) string { return jsonNum(n) }

func jsonNum(n int) string { b, _ := json.Marshal(n); return string(b) }

type appRec struct {
	ID            int64  `json:"id"`
	GUID          string `json:"guid"`
	Name          string `json:"name"`
	Title         string `json:"title"`
	URL           string `json:"url"`
	OwnerUsername string `json:"owner_username"`
}

type listRec struct {
	Applications []appRec `json:"applications"`
	Count        int      `json:"count"`
	Total        int      `json:"total"`
}

// TestLegacyDeployStatic walks the calls rsconnect 0.8.29's deployApp makes.
func TestLegacyDeployStatic(t *testing.T) {
	f := newFixture(t, deploy.Options{})
	var app appRec
	f.must(t, "POST", "/__api__/applications", "pub1", `{"name":"site","title":"My site"}`, &app)
	if app.ID == 0 || app.GUID == "" || app.Name != "site" || app.Title != "My site" || app.OwnerUsername != "pub1" ||
		app.URL != f.ts.URL+"/content/"+app.GUID+"/" {
		t.Fatalf("created application = %+v", app)
	}
	// Another publisher's content of the same name must not match the filter.
	var other appRec
	f.must(t, "POST", "/__api__/applications", "pub2", `{"name":"site"}`, &other)
	f.must(t, "POST", "/__api__/applications", "pub1", `{"name":"other"}`, nil)
	if a := f.do(t, "POST", "/__api__/applications", "pub1", `{"name":"site"}`); a.status != http.StatusConflict {
		t.Errorf("duplicate name: %d %s, want 409", a.status, a.body)
	}

	tests := []struct {
		query string
		user  string
		want  []int64
		total int
	}{
		{"?filter=name:site&filter=account_id:" + jsonNum(int(f.users["pub1"].ID)) + "&count=100&offset=0", "pub1", []int64{app.ID}, 1},
		{"?filter=name:nothing&count=100&offset=0", "pub1", nil, 0},
		{"?filter=name:site", "admin1", []int64{app.ID, other.ID}, 2},
		{"?filter=name:site", "pub2", []int64{other.ID}, 1},
		{"?search=sit&count=1", "admin1", []int64{app.ID}, 2},
		{"?search=sit&count=1&start=1", "admin1", []int64{other.ID}, 2},
	}
	for _, tt := range tests {
		t.Run("list"+tt.query, func(t *testing.T) {
			var l listRec
			f.must(t, "GET", "/__api__/applications"+tt.query, tt.user, nil, &l)
			var got []int64
			for _, a := range l.Applications {
				got = append(got, a.ID)
			}
			if len(got) != len(tt.want) || l.Count != len(got) || l.Total != tt.total {
				t.Fatalf("got ids %v count %d total %d, want %v total %d", got, l.Count, l.Total, tt.want, tt.total)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("got ids %v, want %v", got, tt.want)
				}
			}
		})
	}

	// Upload: chunked, no Content-Type.
	var up struct {
		ID int64 `json:"id"`
	}
	f.must(t, "POST", "/__api__/applications/"+jsonNum(int(app.ID))+"/upload", "pub1",
		io.Reader(bytes.NewReader(tarGz(t, example("static")))), &up)
	if up.ID == 0 {
		t.Fatal("upload gave no bundle id")
	}
	if _, err := os.Stat(filepath.Join(f.cfg.Server.DataDir, "apps", jsonNum(int(app.ID)), jsonNum(int(up.ID)), "bundle.tar.gz")); err != nil {
		t.Fatalf("bundle not stored under DataDir/apps/<id>/<bundle>: %v", err)
	}
	var dep struct {
		TaskID string `json:"task_id"`
		ID     string `json:"id"`
	}
	f.must(t, "POST", "/__api__/applications/"+jsonNum(int(app.ID))+"/deploy", "pub1", `{"bundle":`+jsonNum(int(up.ID))+`}`, &dep)
	if dep.TaskID == "" || dep.ID != dep.TaskID {
		t.Fatalf("deploy answer %+v: want task_id and id, the same", dep)
	}
	tj, lines := f.waitLegacy(t, "pub1", dep.TaskID)
	if tj.Code != 0 || tj.Error != "" {
		t.Fatalf("deploy failed: %d %s\n%s", tj.Code, tj.Error, strings.Join(lines, "\n"))
	}
	if !strings.Contains(strings.Join(lines, "\n"), "Content is live") {
		t.Errorf("task output lacks the final line:\n%s", strings.Join(lines, "\n"))
	}
	index, _ := os.ReadFile(filepath.Join(example("static"), "index.html"))

	// Access: acl by default; the owner sees it, anonymous is sent to log in.
	if a := f.do(t, "GET", "/content/"+app.GUID+"/", "pub1", nil); a.status != 200 || !bytes.Equal(a.body, index) {
		t.Fatalf("owner GET content = %d %q", a.status, a.body)
	}
	if a := f.do(t, "GET", "/content/"+app.GUID+"/", "", nil); a.status != http.StatusFound || !strings.HasPrefix(a.header.Get("Location"), "/__login__?next=") {
		t.Errorf("anonymous GET acl content = %d %s, want a redirect to the login", a.status, a.header.Get("Location"))
	}
	if a := f.do(t, "GET", "/content/"+app.GUID+"/", "pub2", nil); a.status != http.StatusForbidden {
		t.Errorf("other user GET acl content = %d, want 403", a.status)
	}
	// logged_in: any user, not anonymous.
	f.must(t, "PATCH", "/__api__/v1/content/"+app.GUID, "pub1", `{"access_type":"logged_in"}`, nil)
	if a := f.do(t, "GET", "/content/"+app.GUID+"/", "viewer1", nil); a.status != 200 || !bytes.Equal(a.body, index) {
		t.Errorf("logged-in viewer GET logged_in content = %d", a.status)
	}
	if a := f.do(t, "GET", "/content/"+app.GUID+"/", "", nil); a.status != http.StatusFound {
		t.Errorf("anonymous GET logged_in content = %d, want 302", a.status)
	}
	f.must(t, "PATCH", "/__api__/v1/content/"+app.GUID, "pub1", `{"access_type":"all"}`, nil)
	if a := f.do(t, "GET", "/content/"+app.GUID+"/", "", nil); a.status != 200 || !bytes.Equal(a.body, index) {
		t.Errorf("anonymous GET public content = %d %q", a.status, a.body)
	}
	var cfgURL struct {
		ConfigURL string `json:"config_url"`
		LogsURL   string `json:"logs_url"`
	}
	f.must(t, "GET", "/__api__/applications/"+jsonNum(int(app.ID))+"/config", "pub1", nil, &cfgURL)
	if !strings.Contains(cfgURL.ConfigURL, app.GUID) || cfgURL.LogsURL == "" {
		t.Errorf("config = %+v", cfgURL)
	}
	// POST /applications/{id} updates the title.
	var upd appRec
	f.must(t, "POST", "/__api__/applications/"+jsonNum(int(app.ID)), "pub1", `{"title":"New title"}`, &upd)
	if upd.Title != "New title" || upd.Name != "site" {
		t.Errorf("updated application = %+v", upd)
	}

	// A restart serves the deployed content again.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.svc.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	svc2, err := deploy.New(deploy.Options{Config: f.web.Config, Store: f.st, NoSandbox: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer svc2.Stop(ctx)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/content/"+app.GUID+"/", nil)
	mux := http.NewServeMux()
	mux.HandleFunc("/content/{guid}/", svc2.ServeContent)
	mux.ServeHTTP(rec, req)
	if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), index) {
		t.Errorf("after restart GET content = %d %q", rec.Code, rec.Body.String())
	}
}

// TestAuthorization checks who may do what.
func TestAuthorization(t *testing.T) {
	f := newFixture(t, deploy.Options{})
	var c struct {
		GUID string `json:"guid"`
		ID   string `json:"id"`
	}
	f.must(t, "POST", "/__api__/v1/content", "pub1", `{"name":"owned"}`, &c)
	bundle := tarGz(t, example("static"))
	tests := []struct {
		name, method, path, user string
		body                     any
		want                     int
	}{
		{"anonymous create", "POST", "/__api__/v1/content", "", `{"name":"x"}`, 401},
		{"anonymous legacy create", "POST", "/__api__/applications", "", `{"name":"x"}`, 401},
		{"anonymous list", "GET", "/__api__/applications", "", nil, 401},
		{"viewer create", "POST", "/__api__/v1/content", "viewer1", `{"name":"x"}`, 403},
		{"viewer legacy create", "POST", "/__api__/applications", "viewer1", `{"name":"x"}`, 403},
		{"other publisher reads", "GET", "/__api__/v1/content/" + c.GUID, "pub2", nil, 404},
		{"other publisher uploads", "POST", "/__api__/v1/content/" + c.GUID + "/bundles", "pub2", bundle, 404},
		{"admin reads", "GET", "/__api__/v1/content/" + c.GUID, "admin1", nil, 200},
		{"bad name", "POST", "/__api__/v1/content", "pub1", `{"name":"a b/c"}`, 400},
		{"bad access type", "PATCH", "/__api__/v1/content/" + c.GUID, "pub1", `{"access_type":"everyone"}`, 400},
		{"run_as by publisher", "PATCH", "/__api__/v1/content/" + c.GUID, "pub1", `{"run_as":"root"}`, 403},
		{"min above max", "PATCH", "/__api__/v1/content/" + c.GUID, "pub1", `{"min_processes":3,"max_processes":2}`, 400},
		{"empty bundle", "POST", "/__api__/v1/content/" + c.GUID + "/bundles", "pub1", "", 400},
		{"deploy without bundle", "POST", "/__api__/v1/content/" + c.GUID + "/deploy", "pub1", `{}`, 400},
		{"unknown task", "GET", "/__api__/v1/tasks/nope", "pub1", nil, 404},
		{"unknown content", "GET", "/__api__/v1/content/nope", "pub1", nil, 404},
		{"legacy id not a number", "GET", "/__api__/applications/abc", "pub1", nil, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := f.do(t, tt.method, tt.path, tt.user, tt.body)
			if a.status != tt.want {
				t.Fatalf("%s %s as %q = %d %s, want %d", tt.method, tt.path, tt.user, a.status, a.body, tt.want)
			}
			var e struct {
				Error string `json:"error"`
				Code  int    `json:"code"`
			}
			if tt.want != 200 {
				a.json(t, &e)
				if e.Error == "" || e.Code != tt.want {
					t.Errorf("error body %s, want {error, code %d}", a.body, tt.want)
				}
			}
		})
	}

	// A viewer in the ACL may see but not change; an owner in the ACL may change.
	var perm struct {
		ID string `json:"id"`
	}
	f.must(t, "POST", "/__api__/v1/content/"+c.GUID+"/permissions", "pub1",
		`{"principal_guid":"`+f.users["pub2"].GUID+`","principal_type":"user","role":"viewer"}`, &perm)
	f.must(t, "GET", "/__api__/v1/content/"+c.GUID, "pub2", nil, nil)
	if a := f.do(t, "PATCH", "/__api__/v1/content/"+c.GUID, "pub2", `{"title":"mine"}`); a.status != 403 {
		t.Errorf("ACL viewer PATCH = %d, want 403", a.status)
	}
	f.must(t, "PUT", "/__api__/v1/content/"+c.GUID+"/permissions/"+perm.ID, "pub1", `{"role":"owner"}`, nil)
	f.must(t, "PATCH", "/__api__/v1/content/"+c.GUID, "pub2", `{"title":"shared"}`, nil)
	var perms []struct {
		PrincipalGUID string `json:"principal_guid"`
		Role          string `json:"role"`
	}
	f.must(t, "GET", "/__api__/v1/content/"+c.GUID+"/permissions", "pub1", nil, &perms)
	if len(perms) != 1 || perms[0].PrincipalGUID != f.users["pub2"].GUID || perms[0].Role != "owner" {
		t.Errorf("permissions = %+v", perms)
	}
	f.must(t, "DELETE", "/__api__/v1/content/"+c.GUID+"/permissions/"+perm.ID, "pub1", nil, nil)
	if a := f.do(t, "GET", "/__api__/v1/content/"+c.GUID, "pub2", nil); a.status != 404 {
		t.Errorf("after removing the permission GET = %d, want 404", a.status)
	}

	// Environment: names only, never values.
	var names []string
	f.must(t, "PATCH", "/__api__/v1/content/"+c.GUID+"/environment", "pub1",
		`[{"name":"SECRET","value":"s3cret-value"},{"name":"OTHER","value":"x"}]`, &names)
	if strings.Join(names, ",") != "OTHER,SECRET" {
		t.Errorf("environment names = %v", names)
	}
	a := f.do(t, "GET", "/__api__/v1/content/"+c.GUID+"/environment", "pub1", nil)
	if strings.Contains(string(a.body), "s3cret") {
		t.Errorf("environment answer shows a value: %s", a.body)
	}
	f.must(t, "PATCH", "/__api__/v1/content/"+c.GUID+"/environment", "pub1", `[{"name":"OTHER","value":null}]`, &names)
	if strings.Join(names, ",") != "SECRET" {
		t.Errorf("after delete, names = %v", names)
	}
	if a := f.do(t, "PATCH", "/__api__/v1/content/"+c.GUID+"/environment", "pub1", `[{"name":"1BAD","value":"x"}]`); a.status != 400 {
		t.Errorf("bad variable name = %d, want 400", a.status)
	}
	// PUT replaces the whole list: SECRET, not named, goes.
	f.must(t, "PUT", "/__api__/v1/content/"+c.GUID+"/environment", "pub1", `[{"name":"NEW","value":"n"}]`, &names)
	if strings.Join(names, ",") != "NEW" {
		t.Errorf("after PUT, names = %v, want NEW only", names)
	}

	// Delete removes the content and its files.
	f.must(t, "POST", "/__api__/v1/content/"+c.GUID+"/bundles", "pub1", bundle, nil)
	dir := filepath.Join(f.cfg.Server.DataDir, "apps", c.ID)
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	f.must(t, "DELETE", "/__api__/v1/content/"+c.GUID, "pub1", nil, nil)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("content directory left after delete: %v", err)
	}
	if a := f.do(t, "GET", "/__api__/v1/content/"+c.GUID, "pub1", nil); a.status != 404 {
		t.Errorf("after delete GET = %d, want 404", a.status)
	}
}

// deployV1 creates content, uploads the archive and deploys it through
// the v1 API; it returns the content's guid and the finished task.
func (f *fixture) deployV1(t *testing.T, user, name string, archive []byte) (string, taskJSON, []string) {
	t.Helper()
	var c struct {
		GUID string `json:"guid"`
	}
	var list []struct {
		GUID string `json:"guid"`
	}
	f.must(t, "GET", "/__api__/v1/content?name="+name, user, nil, &list)
	if len(list) == 1 {
		c.GUID = list[0].GUID
	} else {
		f.must(t, "POST", "/__api__/v1/content", user, `{"name":"`+name+`","access_type":"all"}`, &c)
	}
	var b struct {
		ID string `json:"id"`
	}
	f.must(t, "POST", "/__api__/v1/content/"+c.GUID+"/bundles", user, archive, &b)
	var d struct {
		TaskID string `json:"task_id"`
	}
	f.must(t, "POST", "/__api__/v1/content/"+c.GUID+"/deploy", user, `{"bundle_id":"`+b.ID+`"}`, &d)
	tj, lines := f.waitV1(t, user, d.TaskID)
	return c.GUID, tj, lines
}

// TestMaliciousBundles: each refusal is a failed task naming the cause,
// and nothing is written outside the bundle's directory.
func TestMaliciousBundles(t *testing.T) {
	f := newFixture(t, deploy.Options{})
	// Smaller limits, set as a reload does: each deploy reads them anew.
	small := *f.cfg
	small.Applications.BundleMaxSize, small.Applications.BundleMaxFiles = 1<<20, 50
	f.web.SetConfig(&small)
	outside := filepath.Join(f.cfg.Server.DataDir, "escaped")
	var many []entry
	for i := range 60 {
		many = append(many, entry{name: "f" + jsonNum(i), body: "x"})
	}
	tests := []struct {
		name    string
		entries []entry
		want    string
	}{
		{"path traversal", []entry{{name: "../../../escaped", body: "x"}}, "escapes"},
		{"absolute path", []entry{{name: outside, body: "x"}}, "escapes"},
		{"escaping link", []entry{{name: "link", typeflag: tar.TypeSymlink, link: "../../../"}, {name: "link/escaped", body: "x"}}, "link"},
		{"absolute link", []entry{{name: "abs", typeflag: tar.TypeSymlink, link: f.cfg.Server.DataDir}}, "link"},
		{"device file", []entry{{name: "dev", typeflag: tar.TypeChar}}, "special"},
		{"tar bomb", []entry{{name: "bomb", size: 64 << 20}}, "too large"},
		{"too many files", many, "too many files"},
		{"unknown app mode", []entry{{name: "manifest.json", body: `{"version":1,"metadata":{"appmode":"cobol-app"},"files":{}}`}}, "unknown appmode"},
		{"no manifest", []entry{{name: "index.html", body: "hi"}}, "manifest.json"},
		{"checksum mismatch", []entry{
			{name: "manifest.json", body: `{"version":1,"metadata":{"appmode":"static","primary_html":"index.html"},"files":{"index.html":{"checksum":"00000000000000000000000000000000"}}}`},
			{name: "index.html", body: "changed"}}, "checksum"},
		{"not an archive", nil, "archive"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			archive := tarGz(t, "", tt.entries...)
			if tt.entries == nil {
				archive = []byte("this is not a tar.gz file at all")
			}
			codeDirs := func() int {
				m, _ := filepath.Glob(filepath.Join(f.cfg.Server.DataDir, "apps", "*", "*", "code"))
				return len(m)
			}
			before := codeDirs()
			_, tj, lines := f.deployV1(t, "pub1", "bad"+jsonNum(i), archive)
			if !tj.Finished || tj.Code == 0 {
				t.Fatalf("malicious bundle deployed: %+v\n%s", tj, strings.Join(lines, "\n"))
			}
			if !strings.Contains(strings.ToLower(tj.Error), tt.want) {
				t.Errorf("task error %q does not mention %q", tj.Error, tt.want)
			}
			if !strings.Contains(strings.Join(lines, "\n"), "Deployment failed") {
				t.Errorf("output lacks the failure line:\n%s", strings.Join(lines, "\n"))
			}
			// Nothing outside the bundle directories: no "escaped" anywhere
			// in DataDir or its parent; a refused archive leaves no code dir.
			filepath.WalkDir(filepath.Dir(f.cfg.Server.DataDir), func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.Name() == "escaped" {
					t.Errorf("a file escaped the bundle: %s", p)
				}
				return nil
			})
			if extracted := tt.want == "unknown appmode" || tt.want == "manifest.json" || tt.want == "checksum"; !extracted && codeDirs() != before {
				t.Errorf("refused bundle left its code directory")
			}
		})
	}
}

// needCommand skips the test when the command fails (what is missing), or
// fails it when CI=true, naming the Debian packages to install.
func needCommand(t *testing.T, what, packages, name string, args ...string) {
	t.Helper()
	if err := exec.Command(name, args...).Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is needed (apt-get install %s): %v", what, packages, err)
		}
		t.Skipf("%s not installed: %v", what, err)
	}
}

// TestFlaskV1DeployAndRedeploy deploys the Flask example through the v1
// API, checks it answers through the proxy, then redeploys a changed
// bundle and checks the switch; a failing redeploy keeps the old bundle.
func TestFlaskV1DeployAndRedeploy(t *testing.T) {
	needCommand(t, "python3 with flask", "python3-flask", "python3", "-c", "import flask")
	f := newFixture(t, deploy.Options{})
	guid, tj, lines := f.deployV1(t, "pub1", "flask", tarGz(t, example("flask")))
	if tj.Code != 0 {
		t.Fatalf("deploy failed: %s\n%s", tj.Error, strings.Join(lines, "\n"))
	}
	get := func(path string) answer {
		t.Helper()
		return f.do(t, "GET", "/content/"+guid+path, "", nil)
	}
	if a := get("/hello"); a.status != 200 || !strings.Contains(string(a.body), "hello from flask") {
		t.Fatalf("GET /hello = %d %s", a.status, a.body)
	}
	if a := get("/echo?msg=hi"); a.status != 200 || !strings.Contains(string(a.body), `"msg":"hi"`) ||
		!strings.Contains(string(a.body), "/content/"+guid) {
		t.Errorf("GET /echo = %d %s (want the message and the prefix as SCRIPT_NAME)", a.status, a.body)
	}
	var jobs []struct {
		Key    string `json:"key"`
		Status int    `json:"status"`
		PID    int    `json:"pid"`
	}
	f.must(t, "GET", "/__api__/v1/content/"+guid+"/jobs", "pub1", nil, &jobs)
	if len(jobs) == 0 || jobs[0].PID == 0 || jobs[0].Status != 0 {
		t.Fatalf("jobs = %+v, want one running", jobs)
	}

	// Redeploy a changed app: the new answer after the task.
	dir := t.TempDir()
	src, _ := os.ReadFile(filepath.Join(example("flask"), "app.py"))
	os.WriteFile(filepath.Join(dir, "app.py"), bytes.ReplaceAll(src, []byte("hello from flask"), []byte("hello again")), 0o644)
	req, _ := os.ReadFile(filepath.Join(example("flask"), "requirements.txt"))
	os.WriteFile(filepath.Join(dir, "requirements.txt"), req, 0o644)
	man, _ := os.ReadFile(filepath.Join(example("flask"), "manifest.json"))
	// Checksums are optional: drop app.py's.
	var m map[string]any
	json.Unmarshal(man, &m)
	m["files"].(map[string]any)["app.py"] = map[string]any{}
	man, _ = json.Marshal(m)
	os.WriteFile(filepath.Join(dir, "manifest.json"), man, 0o644)
	// Requests keep being answered while the redeploy switches processes.
	stop := make(chan struct{})
	done := make(chan []string)
	go func() {
		var bad []string
		cl := &http.Client{Timeout: 10 * time.Second}
		for {
			select {
			case <-stop:
				done <- bad
				return
			default:
			}
			resp, err := cl.Get(f.ts.URL + "/content/" + guid + "/hello")
			if err != nil {
				bad = append(bad, err.Error())
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				bad = append(bad, resp.Status)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	_, tj, lines = f.deployV1(t, "pub1", "flask", tarGz(t, dir))
	time.Sleep(500 * time.Millisecond) // and a little after the switch
	close(stop)
	if bad := <-done; len(bad) > 0 {
		t.Errorf("%d requests failed during the redeploy, first: %s", len(bad), bad[0])
	}
	if tj.Code != 0 {
		t.Fatalf("redeploy failed: %s\n%s", tj.Error, strings.Join(lines, "\n"))
	}
	if a := get("/hello"); a.status != 200 || !strings.Contains(string(a.body), "hello again") {
		t.Fatalf("after redeploy GET /hello = %d %s", a.status, a.body)
	}

	// A redeploy whose app does not start fails, and the old one serves on.
	os.WriteFile(filepath.Join(dir, "app.py"), []byte("raise SystemExit('broken on purpose')\n"), 0o644)
	_, tj, lines = f.deployV1(t, "pub1", "flask", tarGz(t, dir))
	if tj.Code == 0 {
		t.Fatalf("broken redeploy succeeded:\n%s", strings.Join(lines, "\n"))
	}
	if !strings.Contains(strings.Join(lines, "\n"), "broken on purpose") {
		t.Errorf("task output lacks the process log:\n%s", strings.Join(lines, "\n"))
	}
	if a := get("/hello"); a.status != 200 || !strings.Contains(string(a.body), "hello again") {
		t.Fatalf("after a failed redeploy GET /hello = %d %s, want the previous bundle", a.status, a.body)
	}
	// Environment variables reach the processes (restarted on change).
	os.WriteFile(filepath.Join(dir, "app.py"), append(src, []byte("\n@app.get('/env')\ndef env():\n    import os\n    return jsonify(v=os.environ.get('GREETING', ''))\n")...), 0o644)
	_, tj, lines = f.deployV1(t, "pub1", "flask", tarGz(t, dir))
	if tj.Code != 0 {
		t.Fatalf("deploy failed: %s\n%s", tj.Error, strings.Join(lines, "\n"))
	}
	f.must(t, "PATCH", "/__api__/v1/content/"+guid+"/environment", "pub1", `[{"name":"GREETING","value":"bonjour"}]`, nil)
	deadline := time.Now().Add(30 * time.Second)
	for {
		a := get("/env")
		if a.status == 200 && strings.Contains(string(a.body), "bonjour") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("environment variable not seen by the app: %d %s", a.status, a.body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestRMarkdownRenderOnDeployAndOnDemand renders the R Markdown example
// on deploy, serves the output, and renders it again on request.
func TestRMarkdownRenderOnDeployAndOnDemand(t *testing.T) {
	needCommand(t, "R with rmarkdown and pandoc", "r-cran-rmarkdown pandoc",
		"Rscript", "-e", "library(rmarkdown); stopifnot(rmarkdown::pandoc_available())")
	f := newFixture(t, deploy.Options{})
	guid, tj, lines := f.deployV1(t, "pub1", "doc", tarGz(t, example("rmarkdown")))
	if tj.Code != 0 {
		t.Fatalf("deploy failed: %s\n%s", tj.Error, strings.Join(lines, "\n"))
	}
	a := f.do(t, "GET", "/content/"+guid+"/", "", nil)
	if a.status != 200 || !strings.Contains(string(a.body), "sum is 6") {
		t.Fatalf("rendered document = %d %.300s", a.status, a.body)
	}
	var r struct {
		TaskID string `json:"task_id"`
	}
	f.must(t, "POST", "/__api__/v1/content/"+guid+"/render", "pub1", "", &r)
	tj, lines = f.waitV1(t, "pub1", r.TaskID)
	if tj.Code != 0 || !strings.Contains(strings.Join(lines, "\n"), "Rendered") {
		t.Fatalf("render on demand: %d %s\n%s", tj.Code, tj.Error, strings.Join(lines, "\n"))
	}
	renders, err := f.st.ListRenders(context.Background(), f.mustContent(t, guid).ID, 0)
	if err != nil || len(renders) != 2 || renders[0].Status != store.RenderSucceeded || renders[0].OutputDir == renders[1].OutputDir {
		t.Fatalf("renders = %+v, %v: want two succeeded, in their own directories", renders, err)
	}
	if a := f.do(t, "GET", "/content/"+guid+"/", "", nil); a.status != 200 || !strings.Contains(string(a.body), "sum is 6") {
		t.Fatalf("after the render = %d", a.status)
	}
	// Static content does not render.
	sguid, _, _ := f.deployV1(t, "pub1", "static", tarGz(t, example("static")))
	if a := f.do(t, "POST", "/__api__/v1/content/"+sguid+"/render", "pub1", ""); a.status != 400 {
		t.Errorf("render of static content = %d %s, want 400", a.status, a.body)
	}
}

func (f *fixture) mustContent(t *testing.T, guid string) *store.Content {
	t.Helper()
	c, err := f.st.ContentByGUID(context.Background(), guid)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
