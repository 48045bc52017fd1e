package web

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/store"

	"github.com/dais-dev/dais/internal/syncbuf"
)

// fixture is a web server over a real SQLite store in a temp dir, with
// one user of each role and an API key for each.
type fixture struct {
	srv    *Server
	ts     *httptest.Server
	st     store.Store
	keys   map[string]string // role -> key
	users  map[string]*store.User
	access *syncbuf.Buffer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	cfg := config.Defaults()
	cfg.Server.DataDir = t.TempDir()
	cfg.Server.PublicWarning = "<b>public</b>"
	cfg.Server.LoggedInWarning = "<i>inside</i>"
	ctx := context.Background()
	st, err := store.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: st, keys: map[string]string{}, users: map[string]*store.User{}, access: &syncbuf.Buffer{}}
	for _, role := range []string{store.RoleViewer, store.RolePublisher, store.RoleAdministrator} {
		hash, err := HashPassword("pw-" + role)
		if err != nil {
			t.Fatal(err)
		}
		u := &store.User{Username: role + "1", Role: role, PasswordHash: hash}
		if err := st.CreateUser(ctx, u); err != nil {
			t.Fatalf("create user: %v", err)
		}
		key, rec, err := NewAPIKey()
		if err != nil {
			t.Fatal(err)
		}
		rec.UserID, rec.Name = u.ID, "test"
		if err := st.CreateAPIKey(ctx, &rec); err != nil {
			t.Fatalf("create key: %v", err)
		}
		f.keys[role], f.users[role] = key, u
	}
	f.srv, err = New(Options{
		Config: cfg, Store: st, Version: "1.2.3-test", AccessLog: f.access,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	// The account endpoints server/api adds, answering who is asking, for
	// the authentication checks.
	for _, p := range []string{"GET /__api__/me", "GET /__api__/users/current", "GET /__api__/v1/user"} {
		f.srv.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			u, ok := UserFrom(r.Context())
			if !ok {
				WriteError(w, http.StatusUnauthorized, "authentication required: send an API key as 'Authorization: Key <key>'")
				return
			}
			WriteJSON(w, http.StatusOK, map[string]string{"username": u.Username, "user_role": u.Role})
		})
	}
	// A write endpoint another package would add, for the role checks.
	f.srv.Handle("POST /__api__/v1/things", RequireRole(store.RolePublisher)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v struct {
			Name string `json:"name"`
		}
		if err := DecodeJSON(r, &v); err != nil {
			WriteRequestError(w, err)
			return
		}
		u, _ := UserFrom(r.Context())
		WriteJSON(w, http.StatusOK, map[string]string{"name": v.Name, "by": u.Username})
	})))
	f.srv.HandleFunc("GET /__api__/v1/plain-error", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "something specific went wrong", http.StatusConflict)
	})
	f.srv.HandleFunc("GET /__api__/v1/dir/", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{})
	})
	f.srv.HandleFunc("GET /__api__/v1/panic", func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	f.ts = httptest.NewServer(f.srv)
	t.Cleanup(f.ts.Close)
	return f
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (f *fixture) do(t *testing.T, method, path, key, body string, hdr map[string]string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Key "+key)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func TestAPIAuthAndErrors(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name, method, path, role, body string
		hdr                            map[string]string
		want                           int
		wantIn                         string // substring of the body
	}{
		{name: "ping", method: "GET", path: "/__ping__", want: 200, wantIn: "{}"},
		{name: "me without key", method: "GET", path: "/__api__/me", want: 401, wantIn: "Authorization: Key <key>"},
		{name: "me bad key", method: "GET", path: "/__api__/v1/user", hdr: map[string]string{"Authorization": "Key nope"}, want: 401, wantIn: "invalid API key"},
		{name: "me bad scheme", method: "GET", path: "/__api__/v1/user", hdr: map[string]string{"Authorization": "Basic eDp5"}, want: 401, wantIn: "Authorization: Key <key>"}, // Basic is not dais's: anonymous
		{name: "me viewer", method: "GET", path: "/__api__/me", role: "viewer", want: 200, wantIn: `"username":"viewer1"`},
		{name: "users/current", method: "GET", path: "/__api__/users/current", role: "publisher", want: 200, wantIn: `"user_role":"publisher"`},
		{name: "v1/user bearer", method: "GET", path: "/__api__/v1/user", hdr: map[string]string{"Authorization": "Bearer " + f.keys["administrator"]}, want: 200, wantIn: `"username":"administrator1"`},
		{name: "write without key", method: "POST", path: "/__api__/v1/things", body: `{"name":"x"}`, want: 401, wantIn: "authentication required"},
		{name: "write to unknown without key", method: "DELETE", path: "/__api__/v1/nothing", want: 401},
		{name: "viewer cannot write", method: "POST", path: "/__api__/v1/things", role: "viewer", body: `{"name":"x"}`, want: 403, wantIn: "has role viewer"},
		{name: "publisher writes", method: "POST", path: "/__api__/v1/things", role: "publisher", body: `{"name":"x"}`, want: 200, wantIn: `"by":"publisher1"`},
		{name: "bad JSON", method: "POST", path: "/__api__/v1/things", role: "publisher", body: `{"name":`, want: 400, wantIn: "malformed JSON"},
		{name: "wrong JSON type", method: "POST", path: "/__api__/v1/things", role: "publisher", body: `{"name":3}`, want: 400, wantIn: "name must be a string"},
		{name: "empty body", method: "POST", path: "/__api__/v1/things", role: "publisher", want: 400, wantIn: "empty"},
		{name: "two values", method: "POST", path: "/__api__/v1/things", role: "publisher", body: `{} {}`, want: 400, wantIn: "more than one value"},
		{name: "unknown route", method: "GET", path: "/__api__/v1/nothing", role: "viewer", want: 404, wantIn: "no API endpoint"},
		{name: "api root", method: "GET", path: "/__api__", want: 404},
		{name: "method not allowed is JSON", method: "PUT", path: "/__api__/v1/things", role: "publisher", want: 404},
		{name: "plain error becomes JSON", method: "GET", path: "/__api__/v1/plain-error", want: 409, wantIn: "something specific went wrong"},
		{name: "no trailing-slash redirect", method: "GET", path: "/__api__/v1/dir", role: "viewer", want: 404, wantIn: "/__api__/v1/dir/"},
		{name: "no clean-path redirect", method: "GET", path: "/__api__//me", role: "viewer", want: 404},
		{name: "panic is JSON 500", method: "GET", path: "/__api__/v1/panic", want: 500, wantIn: "internal error"},
		{name: "cookie write cross-site", method: "POST", path: "/__api__/v1/things", body: `{}`, want: 401},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := f.do(t, tc.method, tc.path, f.keys[tc.role], tc.body, tc.hdr)
			if a.status != tc.want {
				t.Fatalf("status %d, want %d; body %s", a.status, tc.want, a.body)
			}
			if ct := a.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			if a.header.Get("Location") != "" {
				t.Errorf("Location %q under /__api__", a.header.Get("Location"))
			}
			var v any
			if err := json.Unmarshal([]byte(a.body), &v); err != nil {
				t.Fatalf("body is not JSON: %q", a.body)
			}
			if a.status >= 400 {
				var e ErrorBody
				if err := json.Unmarshal([]byte(a.body), &e); err != nil || e.Error == "" || e.Code != a.status {
					t.Errorf("error body %q: want {\"error\": \"...\", \"code\": %d}", a.body, a.status)
				}
			}
			if !strings.Contains(a.body, tc.wantIn) {
				t.Errorf("body %q does not contain %q", a.body, tc.wantIn)
			}
		})
	}
}

func TestLockedUserRefused(t *testing.T) {
	f := newFixture(t)
	u := f.users["publisher"]
	u.Locked = true
	if err := f.st.UpdateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	a := f.do(t, "GET", "/__api__/me", f.keys["publisher"], "", nil)
	if a.status != 401 || !strings.Contains(a.body, "locked") {
		t.Fatalf("locked user: %d %s", a.status, a.body)
	}
}

func TestPagesLoginDashboardLogout(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := &store.Content{Name: "sales-app", Title: "Sales <dashboard>", OwnerID: f.users["publisher"].ID, AccessType: store.AccessACL, AppMode: "shiny"}
	if err := f.st.CreateContent(ctx, c); err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	get := func(path string) (int, string, *http.Response) {
		t.Helper()
		resp, err := client.Get(f.ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp
	}

	// Welcome: the admin's HTML as is.
	code, body, _ := get("/")
	if code != 200 || !strings.Contains(body, "<b>public</b>") {
		t.Fatalf("welcome: %d, PublicWarning not rendered as HTML:\n%s", code, body)
	}
	// Dashboard before login: to the login form.
	code, body, resp := get("/connect/")
	if code != 200 || resp.Request.URL.Path != "/__login__" || !strings.Contains(body, `name="password"`) {
		t.Fatalf("dashboard without login: %d at %s", code, resp.Request.URL)
	}
	// Wrong password.
	resp, err := client.PostForm(f.ts.URL+"/__login__", url.Values{"username": {"viewer1"}, "password": {"nope"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("wrong password: %d, want 401", resp.StatusCode)
	}
	// Right password, as the viewer: the ACL content is not theirs.
	login := func(user, pw string) {
		t.Helper()
		noFollow := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noFollow.PostForm(f.ts.URL+"/connect/login", url.Values{"username": {user}, "password": {pw}, "next": {"/connect/"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/connect/" {
			t.Fatalf("login %s: %d to %q", user, resp.StatusCode, resp.Header.Get("Location"))
		}
		sc := resp.Header.Get("Set-Cookie")
		for _, want := range []string{SessionCookie + "=", "HttpOnly", "SameSite=Lax", "Path=/"} {
			if !strings.Contains(sc, want) {
				t.Errorf("Set-Cookie %q lacks %s", sc, want)
			}
		}
	}
	login("viewer1", "pw-viewer")
	code, body, _ = get("/connect/")
	if code != 200 || !strings.Contains(body, "<i>inside</i>") || !strings.Contains(body, "dais 1.2.3-test") || !strings.Contains(body, "viewer1") {
		t.Fatalf("dashboard: %d, want LoggedInWarning, version and user:\n%s", code, body)
	}
	if strings.Contains(body, "sales-app") || strings.Contains(body, "Sales") {
		t.Errorf("viewer sees ACL content of another user:\n%s", body)
	}
	// The session authenticates API reads too.
	code, body, _ = get("/__api__/me")
	if code != 200 || !strings.Contains(body, `"username":"viewer1"`) {
		t.Fatalf("API with session: %d %s", code, body)
	}
	// Logout ends the session.
	resp, err = client.Post(f.ts.URL+"/__logout__", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code, _, _ = get("/__api__/me"); code != 401 {
		t.Fatalf("after logout: %d, want 401", code)
	}
	// The owner sees it, title escaped.
	login("publisher1", "pw-publisher")
	_, body, _ = get("/connect/")
	if !strings.Contains(body, "Sales &lt;dashboard&gt;") || !strings.Contains(body, "/connect/apps/"+c.GUID) {
		t.Fatalf("owner's dashboard lacks the content:\n%s", body)
	}
	// Cross-site write with the cookie only is refused.
	req, _ := http.NewRequest("POST", f.ts.URL+"/__api__/v1/things", strings.NewReader(`{}`))
	req.Header.Set("Origin", "http://evil.example")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("cross-site cookie write: %d, want 403", resp.StatusCode)
	}
	// Same-origin write with the cookie goes through.
	req, _ = http.NewRequest("POST", f.ts.URL+"/__api__/v1/things", strings.NewReader(`{"name":"n"}`))
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("same-origin cookie write: %d, want 200", resp.StatusCode)
	}
}

func TestLoginRedirectStaysLocal(t *testing.T) {
	for in, want := range map[string]string{
		"":                   "/connect/",
		"/connect/":          "/connect/",
		"/content/abc/?x=1":  "/content/abc/?x=1",
		"//evil.example/":    "/connect/",
		"https://evil/":      "/connect/",
		"/\\evil.example":    "/connect/",
		"/ok\r\nSet-Cookie:": "/connect/",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGate(t *testing.T) {
	f := newFixture(t)
	f.srv.HandleFunc("/content/{guid}/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "content") })
	if a := f.do(t, "GET", "/content/abc/", "", "", nil); a.status != 200 {
		t.Fatalf("open gate: content %d", a.status)
	}
	if a := f.do(t, "GET", "/content/abc?x=1", "", "", nil); a.status/100 != 3 || a.header.Get("Location") != "/content/abc/?x=1" {
		t.Fatalf("/content/abc: %d to %q, want a redirect to /content/abc/?x=1", a.status, a.header.Get("Location"))
	}
	if a := f.do(t, "GET", "/content/", "", "", nil); a.status != 404 {
		t.Fatalf("/content/: %d, want 404", a.status)
	}
	f.srv.SetGate(func() (bool, string) { return false, "no license lease: start the license server" })
	a := f.do(t, "GET", "/__ping__", "", "", nil)
	if a.status != 402 || !strings.Contains(a.body, "no license lease") || a.header.Get("Content-Type") != "application/json" {
		t.Fatalf("closed gate ping: %d %q", a.status, a.body)
	}
	if a := f.do(t, "GET", "/content/abc/", "", "", nil); a.status != 402 {
		t.Fatalf("closed gate content: %d", a.status)
	}
	if ok, reason := f.srv.Licensed(); ok || !strings.Contains(reason, "no license lease") {
		t.Fatalf("Licensed() = %v, %q with the gate closed", ok, reason)
	}
	f.srv.SetGate(nil)
	if a := f.do(t, "GET", "/__ping__", "", "", nil); a.status != 200 {
		t.Fatalf("gate removed: ping %d", a.status)
	}
}

func TestMetricsAndAccessLog(t *testing.T) {
	f := newFixture(t)
	f.do(t, "GET", "/__ping__", "", "", nil)
	f.do(t, "GET", "/__api__/me", f.keys["viewer"], "", nil)
	f.do(t, "GET", "/__api__/no/such/thing", "", "", nil)
	a := f.do(t, "GET", "/metrics", "", "", nil)
	for _, want := range []string{
		`dais_http_requests_total{code="200",method="GET",route="GET /__ping__"} 1`,
		`dais_http_requests_total{code="200",method="GET",route="GET /__api__/me"} 1`,
		`dais_http_requests_total{code="404",method="GET",route="/__api__/"} 1`,
		`dais_http_request_duration_seconds_bucket{method="GET",route="GET /__ping__"`,
		`go_goroutines`,
	} {
		if !strings.Contains(a.body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	log := f.access.String()
	if !strings.Contains(log, `127.0.0.1 - viewer1 [`) || !strings.Contains(log, `"GET /__api__/me HTTP/1.1" 200 `) {
		t.Errorf("access log lacks the user's request:\n%s", log)
	}
	// Turned off by the (reloadable) setting.
	cfg := *f.srv.Config()
	cfg.Logging.AccessLog = false
	f.srv.SetConfig(&cfg)
	before := f.access.String()
	f.do(t, "GET", "/__ping__", "", "", nil)
	if f.access.String() != before {
		t.Errorf("access log written with Logging.AccessLog off")
	}
}

func TestDecodeJSON(t *testing.T) {
	big := `{"name":"` + strings.Repeat("x", MaxJSONBody) + `"}`
	tests := []struct {
		body   string
		status int
	}{
		{`{"name":"a"}`, 0},
		{`{"name":"a","extra":[1,2]}`, 0},
		{``, 400},
		{`{`, 400},
		{`{"name":1}`, 400},
		{`null`, 0},
		{`{}x`, 400},
		{big, 413},
	}
	for _, tc := range tests {
		r := httptest.NewRequest("POST", "/", strings.NewReader(tc.body))
		var v struct{ Name string }
		err := DecodeJSON(r, &v)
		got := 0
		if err != nil {
			re, ok := err.(*RequestError)
			if !ok {
				t.Fatalf("DecodeJSON(%.20q) error %T, want *RequestError", tc.body, err)
			}
			got = re.Status
		}
		if got != tc.status {
			t.Errorf("DecodeJSON(%.20q): status %d, want %d (%v)", tc.body, got, tc.status, err)
		}
	}
}

func TestPasswordsAndKeys(t *testing.T) {
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$2") || !CheckPassword(h, "correct horse") || CheckPassword(h, "wrong") || CheckPassword("", "") {
		t.Fatalf("bcrypt round trip failed: %q", h)
	}
	if _, err := HashPassword(""); err == nil {
		t.Fatal("empty password hashed")
	}
	k1, r1, _ := NewAPIKey()
	k2, _, _ := NewAPIKey()
	if len(k1) != 32 || k1 == k2 || r1.Hash != HashToken(k1) || strings.Contains(r1.Hash, k1) || !strings.HasPrefix(k1, r1.Prefix) {
		t.Fatalf("API keys: %q %q %+v", k1, k2, r1)
	}
}

func TestPingHead(t *testing.T) {
	f := newFixture(t)
	a := f.do(t, "HEAD", "/__ping__", "", "", nil)
	if a.status != 200 || a.header.Get("Content-Type") != "application/json" || a.body != "" {
		t.Fatalf("HEAD /__ping__: %d %q %q", a.status, a.header.Get("Content-Type"), a.body)
	}
}
