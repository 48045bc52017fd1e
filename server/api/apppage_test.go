package api_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/web"
)

// session is a browser-like client logged in with a password.
type session struct {
	f      *fixture
	client *http.Client
}

// login gives user a password and logs in with the form.
func (f *fixture) login(t *testing.T, user string) *session {
	t.Helper()
	u := f.users[user]
	hash, err := web.HashPassword("pw-" + user)
	if err != nil {
		t.Fatal(err)
	}
	u.PasswordHash = hash
	if err := f.st.UpdateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	s := &session{f: f, client: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	resp, err := s.client.PostForm(f.ts.URL+"/__login__", url.Values{"username": {u.Username}, "password": {"pw-" + user}, "next": {"/connect/"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login %s: %d", user, resp.StatusCode)
	}
	return s
}

// get fetches a page, following no redirect.
func (s *session) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := s.client.Get(s.f.ts.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// post submits a form as the page does (same origin) and follows the
// redirect back to the page, returning the page's status and body.
func (s *session) post(t *testing.T, path string, form url.Values) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.f.ts.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", s.f.ts.URL)
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	return s.get(t, strings.TrimPrefix(resp.Header.Get("Location"), s.f.ts.URL))
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrfOf is the CSRF token on a page ("" when it has no form).
func csrfOf(page string) string {
	if m := csrfRe.FindStringSubmatch(page); m != nil {
		return m[1]
	}
	return ""
}

// TestAppPage: the page of one content shows its info, bundles and
// settings to its owner, and each form does what the API does for that
// user: roll back to an older bundle, set an environment variable (the
// value never shown), change runtime, access, title, delete (confirmed).
// A viewer sees the info only and the same forms are refused them by the
// API's rule; a user with no access gets a 404; a form without its CSRF
// token is refused.
func TestAppPage(t *testing.T) {
	f := newFixture(t)
	guid := f.deployStatic(t, "publisher", "pagesite", "<p>version one</p>")
	var b struct{ ID string }
	f.raw(t, "POST", "/__api__/v1/content/"+guid+"/bundles", "publisher", staticBundle(t, "<p>version two</p>")).must(t, &b)
	var task struct {
		TaskID string `json:"task_id"`
	}
	f.do(t, "POST", "/__api__/v1/content/"+guid+"/deploy", "publisher", `{"bundle_id":"`+b.ID+`"}`).must(t, &task)
	f.waitTask(t, "publisher", task.TaskID)
	var bundles []struct {
		ID     string
		Active bool
	}
	f.do(t, "GET", "/__api__/v1/content/"+guid+"/bundles", "publisher", "").must(t, &bundles)
	if len(bundles) != 2 {
		t.Fatalf("bundles %+v", bundles)
	}
	old := bundles[0].ID
	if old == b.ID {
		old = bundles[1].ID
	}
	page := "/connect/apps/" + guid

	pub := f.login(t, "publisher")
	status, body := pub.get(t, page)
	if status != 200 {
		t.Fatalf("owner's page: %d %s", status, body)
	}
	contains(t, "owner's page", body, `<iframe class="content-frame" src="/content/`+guid+`/"`, "publisher1", "static",
		`name="bundle_id" value="`+old+`"`, `id="environment"`, `id="runtime"`, `id="access"`, `id="delete"`,
		"/__api__/v1/content/"+guid+"/bundles/"+b.ID+"/download")
	csrf := csrfOf(body)
	if csrf == "" {
		t.Fatal("no CSRF token on the owner's page")
	}

	// No token, a wrong token: refused, nothing changed.
	if st, _ := pub.post(t, page+"/env", url.Values{"name": {"SECRET"}, "value": {"x"}}); st != http.StatusForbidden {
		t.Errorf("env form without CSRF token: %d, want 403", st)
	}
	if st, _ := pub.post(t, page+"/env", url.Values{"csrf": {csrf + "x"}, "name": {"SECRET"}, "value": {"x"}}); st != http.StatusForbidden {
		t.Errorf("env form with a wrong CSRF token: %d, want 403", st)
	}

	// Environment: set, listed by name, the value never on the page.
	st, body := pub.post(t, page+"/env", url.Values{"csrf": {csrf}, "name": {"SECRET_TOKEN"}, "value": {"hunter2-value"}})
	if st != 200 {
		t.Fatalf("set env: %d %s", st, body)
	}
	contains(t, "page after set env", body, "Set SECRET_TOKEN", "<code>SECRET_TOKEN</code>")
	if strings.Contains(body, "hunter2-value") {
		t.Fatal("the page shows an environment variable's value")
	}
	var names []string
	f.do(t, "GET", "/__api__/v1/content/"+guid+"/environment", "publisher", "").must(t, &names)
	if len(names) != 1 || names[0] != "SECRET_TOKEN" {
		t.Fatalf("environment after the form: %v", names)
	}

	// Rollback: activate the older bundle; the content serves it.
	st, body = pub.post(t, page+"/activate", url.Values{"csrf": {csrf}, "bundle_id": {old}})
	if st != 200 || !strings.Contains(body, "Activating bundle "+old) {
		t.Fatalf("activate: %d %s", st, body)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var c struct {
			BundleID string `json:"bundle_id"`
		}
		f.do(t, "GET", "/__api__/v1/content/"+guid, "publisher", "").must(t, &c)
		if c.BundleID == old {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bundle %s not active a minute after the form (active %s)", old, c.BundleID)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, served := pub.get(t, "/content/"+guid+"/"); !strings.Contains(served, "version one") {
		t.Fatalf("after the rollback the content serves %q", served)
	}

	// Runtime: a bad number is said in words; a good one is saved.
	st, body = pub.post(t, page+"/runtime", url.Values{"csrf": {csrf}, "max_processes": {"many"}})
	if st != 200 || !strings.Contains(body, "max_processes must be a whole number") {
		t.Fatalf("bad runtime: %d %s", st, body)
	}
	st, body = pub.post(t, page+"/runtime", url.Values{"csrf": {csrf}, "max_processes": {"3"}, "idle_timeout": {"120"},
		"connection_timeout": {"45"}, "read_timeout": {"0"}})
	if st != 200 || !strings.Contains(body, "Runtime settings saved") || !strings.Contains(body, `name="max_processes" type="number" min="0" value="3"`) ||
		!strings.Contains(body, `name="connection_timeout" type="number" min="0" value="45"`) || !strings.Contains(body, `name="read_timeout" type="number" min="0" value="0"`) {
		t.Fatalf("runtime: %d %s", st, body)
	}
	// Over the API's bound: its 400 is said on the page, nothing saved.
	st, body = pub.post(t, page+"/runtime", url.Values{"csrf": {csrf}, "connection_timeout": {"9999999"}})
	if st != 200 || !strings.Contains(body, "connection_timeout must be an integer from 0 to 604800") {
		t.Fatalf("runtime, absurd connection_timeout: %d %s", st, body)
	}

	// Title, access and a viewer.
	if st, body = pub.post(t, page+"/settings", url.Values{"csrf": {csrf}, "title": {"Sales site"}, "description": {"Numbers"}}); st != 200 || !strings.Contains(body, "<h1>Sales site</h1>") {
		t.Fatalf("settings: %d %s", st, body)
	}
	if st, body = pub.post(t, page+"/access", url.Values{"csrf": {csrf}, "access_type": {"acl"}}); st != 200 || !strings.Contains(body, "Access saved") {
		t.Fatalf("access: %d %s", st, body)
	}
	f.addUser(t, "outsider", "publisher")
	if st, body = pub.post(t, page+"/permission-add", url.Values{"csrf": {csrf}, "principal": {"viewer1"}, "role": {"viewer"}}); st != 200 || !strings.Contains(body, "Added viewer1") {
		t.Fatalf("add viewer: %d %s", st, body)
	}

	// The viewer: info and bundles, no setting, no form; the same forms
	// posted with their own valid token are refused by the API's rule.
	viewer := f.login(t, "viewer")
	st, body = viewer.get(t, page)
	if st != 200 {
		t.Fatalf("viewer's page: %d %s", st, body)
	}
	contains(t, "viewer's page", body, "Sales site", "publisher1")
	for _, hidden := range []string{`id="environment"`, `id="runtime"`, `id="access"`, `id="delete"`, "SECRET_TOKEN", "Activate", `method="post" action="/connect/apps/`} {
		if strings.Contains(body, hidden) {
			t.Errorf("viewer's page shows %q", hidden)
		}
	}
	viewerCSRF := csrfOf(body) // the layout's logout form has none; the page has none
	if viewerCSRF != "" {
		t.Errorf("viewer's page has a form with a CSRF token")
	}
	// A crafted form with a valid token of the viewer's own session gets
	// past the CSRF check and is refused by the API's rule.
	vu, _ := url.Parse(f.ts.URL)
	vreq := &http.Request{Header: http.Header{}}
	for _, c := range viewer.client.Jar.Cookies(vu) {
		vreq.AddCookie(c)
	}
	vtok := web.CSRFToken(vreq, "app "+guid)
	st, body = viewer.post(t, page+"/env", url.Values{"csrf": {vtok}, "name": {"EVIL"}, "value": {"x"}})
	if st != 200 || !strings.Contains(body, "may view but not change") {
		t.Errorf("viewer's env form: %d, want the page with the API's refusal: %s", st, body)
	}
	st, body = viewer.post(t, page+"/delete", url.Values{"csrf": {vtok}, "confirm": {"pagesite"}})
	if st != 200 || !strings.Contains(body, "may view but not change") {
		t.Errorf("viewer's delete form: %d, want the page with the API's refusal: %s", st, body)
	}
	f.do(t, "GET", "/__api__/v1/content/"+guid+"/environment", "publisher", "").must(t, &names)
	if len(names) != 1 {
		t.Fatalf("environment after the viewer's form: %v", names)
	}
	// The outsider sees no such content.
	outsider := f.login(t, "outsider")
	if st, _ := outsider.get(t, page); st != http.StatusNotFound {
		t.Errorf("outsider's page: %d, want 404", st)
	}

	// Delete: the wrong name is refused; the right one deletes.
	st, body = pub.post(t, page+"/delete", url.Values{"csrf": {csrf}, "confirm": {"nope"}})
	if st != 200 || !strings.Contains(body, "to delete it, type its name: pagesite") {
		t.Fatalf("delete with the wrong name: %d %s", st, body)
	}
	st, body = pub.post(t, page+"/delete", url.Values{"csrf": {csrf}, "confirm": {"pagesite"}})
	if st != 200 || !strings.Contains(body, "Deleted pagesite.") {
		t.Fatalf("delete: %d %s", st, body)
	}
	if a := f.do(t, "GET", "/__api__/v1/content/"+guid, "publisher", ""); a.status != http.StatusNotFound {
		t.Fatalf("content after delete: %d", a.status)
	}
}
