package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	db "github.com/dais-dev/dais/e2e/browser"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

var adminPages = []string{"/connect/admin/users", "/connect/admin/groups", "/connect/admin/server", "/connect/admin/audit", "/connect/admin/load"}

// TestAdminPages: an administrator's pages (users, groups, server, audit
// log, load) show what the API gives them, and their forms add a user,
// change a role, lock (the user's login is then refused) and unlock.
// Viewers and publishers get 403 for every page, and the API refuses
// their crafted forms; a form without its CSRF token is refused.
func TestAdminPages(t *testing.T) {
	f := newFixture(t)
	app := `from flask import Flask
app = Flask(__name__)

@app.route("/")
def index():
    return "ok"
`
	guid := f.deployBundle(t, "publisher", "loadapp", bundleOf(t, "python-api",
		`"python":{"version":"3","package_manager":{"name":"pip","package_file":"requirements.txt"}},`,
		map[string]string{"app.py": app, "requirements.txt": "flask\n"}))
	f.raw(t, "GET", "/content/"+guid+"/", "publisher", nil).must(t, nil)
	var g struct{ GUID string }
	f.do(t, "POST", "/__api__/v1/groups", "administrator", `{"name":"analysts"}`).must(t, &g)
	f.do(t, "POST", "/__api__/v1/groups/"+g.GUID+"/members", "administrator", `{"user_guid":"`+f.users["viewer"].GUID+`"}`).must(t, nil)

	admin := f.login(t, "administrator")
	for _, p := range adminPages {
		if st, body := admin.get(t, p); st != 200 {
			t.Fatalf("admin %s: %d %s", p, st, body)
		}
	}
	_, body := admin.get(t, "/connect/admin/users")
	contains(t, "users", body, "viewer1", "publisher1", "administrator1", `action="/connect/admin/users/create"`, `aria-label="Lock viewer1"`)
	if strings.Contains(body, `aria-label="Lock administrator1"`) {
		t.Error("the administrator may lock themselves on the page (the API refuses it)")
	}
	csrf := csrfOf(body)
	_, body = admin.get(t, "/connect/admin/users?q=pub")
	if !strings.Contains(body, "publisher1") || strings.Contains(body, "viewer1") {
		t.Errorf("search pub: %s", body)
	}
	_, body = admin.get(t, "/connect/admin/groups")
	contains(t, "groups", body, `href="/connect/admin/groups?group=`+g.GUID+`#members">analysts</a>`)
	_, body = admin.get(t, "/connect/admin/groups?group="+g.GUID)
	contains(t, "a group's members", body, "Members of analysts", "<strong>viewer1</strong>", "Owner: administrator1")
	_, body = admin.get(t, "/connect/admin/server")
	contains(t, "server", body, "1.2.3-test", "2024.08.0", "Runtimes found", "Python", "License", "none needed")
	if strings.Contains(body, "<h2>Nodes</h2>") {
		t.Error("the server page lists nodes for one server")
	}
	// Two nodes sharing the database: both listed.
	for _, n := range []string{"node-a", "node-b"} {
		if _, err := f.st.RegisterNode(context.Background(), &store.Node{Name: n, InstanceID: n + "-1", Address: n + ":3939", Version: "1.2.3-test"}, "", time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	_, body = admin.get(t, "/connect/admin/server")
	contains(t, "server with nodes", body, "<h2>Nodes</h2>", "<td>node-a:3939</td>", "<td>node-b:3939</td>")
	_, body = admin.get(t, "/connect/admin/load")
	contains(t, "load", body, `href="/connect/apps/`+guid+`"`, "loadapp", "run_app ×1")
	if !regexp.MustCompile(`<td>1</td><td>\d+(\.\d)? (MB|KB)</td>`).MatchString(body) {
		t.Errorf("load: no memory for the app's process: %s", body)
	}

	// Add a user, change the role, lock and unlock.
	if st, _ := admin.post(t, "/connect/admin/users/create", url.Values{"username": {"carol"}, "password": {"carol-pw-123"}, "role": {"viewer"}}); st != http.StatusForbidden {
		t.Errorf("create without CSRF token: %d, want 403", st)
	}
	st, body := admin.post(t, "/connect/admin/users/create", url.Values{"csrf": {csrf}, "username": {"carol"}, "email": {"carol@example.org"},
		"password": {"carol-pw-123"}, "role": {"viewer"}})
	if st != 200 || !strings.Contains(body, "Added carol as viewer") || !strings.Contains(body, "carol@example.org") {
		t.Fatalf("add carol: %d %s", st, body)
	}
	st, body = admin.post(t, "/connect/admin/users/create", url.Values{"csrf": {csrf}, "username": {"carol"}, "password": {"carol-pw-123"}, "role": {"viewer"}})
	contains(t, "add carol again", body, "already exists")
	var users struct {
		Results []struct {
			GUID, Username string
			UserRole       string `json:"user_role"`
			Locked         bool
		}
	}
	f.do(t, "GET", "/__api__/v1/users?prefix=carol", "administrator", "").must(t, &users)
	if len(users.Results) != 1 {
		t.Fatalf("carol through the API: %+v", users)
	}
	carol := users.Results[0].GUID
	st, body = admin.post(t, "/connect/admin/users/role", url.Values{"csrf": {csrf}, "guid": {carol}, "username": {"carol"}, "role": {"publisher"}})
	contains(t, "role", body, "carol is now publisher.")
	st, body = admin.post(t, "/connect/admin/users/lock", url.Values{"csrf": {csrf}, "guid": {carol}, "username": {"carol"}})
	contains(t, "lock", body, "Locked carol", `aria-label="Unlock carol"`)
	f.do(t, "GET", "/__api__/v1/users?prefix=carol", "administrator", "").must(t, &users)
	if u := users.Results[0]; u.UserRole != "publisher" || !u.Locked {
		t.Fatalf("carol after the forms: %+v", u)
	}
	if st := loginStatus(t, f, "carol", "carol-pw-123"); st != http.StatusForbidden {
		t.Errorf("locked carol's login: %d, want 403", st)
	}
	// From a search, the form comes back to the search; a back link off
	// the admin pages is not followed.
	_, body = admin.post(t, "/connect/admin/users/unlock", url.Values{"csrf": {csrf}, "guid": {carol}, "username": {"carol"}, "back": {"/connect/admin/users?q=car"}})
	contains(t, "unlock", body, "Unlocked carol", `<input id="q" name="q" type="search" value="car"`)
	if strings.Contains(body, "publisher1") {
		t.Error("after the unlock from a search, the page lists more than the search")
	}
	if st, _ := admin.post(t, "/connect/admin/users/lock", url.Values{"csrf": {csrf}, "guid": {f.users["viewer"].GUID}, "username": {"viewer1"}, "back": {"https://elsewhere.example/"}}); st != 200 {
		t.Errorf("lock with a foreign back link: %d", st)
	}
	admin.post(t, "/connect/admin/users/unlock", url.Values{"csrf": {csrf}, "guid": {f.users["viewer"].GUID}, "username": {"viewer1"}})
	if st := loginStatus(t, f, "carol", "carol-pw-123"); st != http.StatusSeeOther {
		t.Errorf("unlocked carol's login: %d, want 303", st)
	}
	_, body = admin.get(t, "/connect/admin/audit")
	contains(t, "audit", body, "add_user", "lock_user", `<a href="/connect/admin/users?q=administrator1">administrator1</a>`,
		`Locked or unlocked user <a href="/connect/admin/users?q=carol">carol</a>`, `Changed user <a href="/connect/admin/users?q=carol">carol</a>`)
	if strings.Contains(body, carol) || strings.Contains(body, "("+guid+")") {
		t.Errorf("the audit page shows carol's or loadapp's GUID: %s", body)
	}
	contains(t, "audit", body, `Deployed content <a href="/connect/apps/`+guid+`">&#34;loadapp&#34;</a>`)

	// Viewers and publishers: 403 for every page; their crafted forms
	// (with their own valid token) are refused by the API.
	for _, role := range []string{"viewer", "publisher"} {
		s := f.login(t, role)
		for _, p := range adminPages {
			if st, _ := s.get(t, p); st != http.StatusForbidden {
				t.Errorf("%s: %s answered %d, want 403", role, p, st)
			}
		}
		st, body := s.post(t, "/connect/admin/users/lock", url.Values{"csrf": {sessionToken(t, s, "admin")}, "guid": {carol}, "username": {"carol"}})
		if st != http.StatusForbidden {
			t.Errorf("%s's crafted lock form: %d, want 403 (%s)", role, st, body)
		}
		for _, api := range []struct{ method, path, body string }{
			{"POST", "/__api__/v1/users", `{"username":"mallory","password":"mallory-pw-1"}`},
			{"POST", "/__api__/v1/users/" + carol + "/lock", `{"locked":true}`},
			{"PATCH", "/__api__/v1/users/" + carol, `{"user_role":"administrator"}`},
			{"GET", "/__api__/v1/audit_logs", ""},
			{"GET", "/__api__/v1/system/load", ""},
			{"GET", "/__api__/v1/system/nodes", ""},
		} {
			if a := f.do(t, api.method, api.path, role, api.body); a.status != http.StatusForbidden {
				t.Errorf("%s: %s %s answered %d, want 403", role, api.method, api.path, a.status)
			}
		}
	}
	f.do(t, "GET", "/__api__/v1/users?prefix=carol", "administrator", "").must(t, &users)
	if u := users.Results[0]; u.UserRole != "publisher" || u.Locked {
		t.Fatalf("carol after the others' forms: %+v", u)
	}
}

// loginStatus posts the login form and returns its status.
func loginStatus(t *testing.T, f *fixture, user, password string) int {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(f.ts.URL+"/__login__", url.Values{"username": {user}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// sessionToken is the CSRF token of purpose in s's session: what a page
// of theirs would carry.
func sessionToken(t *testing.T, s *session, purpose string) string {
	t.Helper()
	u, _ := url.Parse(s.f.ts.URL)
	req := &http.Request{Header: http.Header{}}
	for _, c := range s.client.Jar.Cookies(u) {
		req.AddCookie(c)
	}
	return web.CSRFToken(req, purpose)
}

// TestBrowserAdminPages: an administrator in chromium at 1280 and 390 px
// visits every admin page (the automated checks on each), adds a user and
// locks them, makes a group and adds that user to it after finding them,
// and sees a provider's group without a form.
func TestBrowserAdminPages(t *testing.T) {
	f := newFixture(t)
	f.login(t, "administrator")
	f.login(t, "publisher")
	staff := &store.Group{Name: "ldap-staff", Provider: "ldap", UniqueID: "cn=staff"}
	if err := f.st.CreateGroup(context.Background(), staff); err != nil {
		t.Fatal(err)
	}
	if err := f.st.AddGroupMember(context.Background(), staff.ID, f.users["viewer"].ID); err != nil {
		t.Fatal(err)
	}
	for _, width := range []int{1280, 390} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			br := db.New(t, width)
			mark := chromedp.Evaluate[chromedp.Void](`document.body.dataset.old = "1"`)
			browserLogin(br, f, "administrator", "/connect/admin/users", chromedp.WaitVisible(chromedp.ID("h-add")))
			name := fmt.Sprintf("dora%d", width)
			br.Run("add a user", mark,
				chromedp.SendKeys(chromedp.CSS(`form[action$="/create"] input[name="username"]`), name),
				chromedp.SendKeys(chromedp.CSS(`form[action$="/create"] input[name="email"]`), name+"@example.org"),
				chromedp.SendKeys(chromedp.CSS(`form[action$="/create"] input[name="password"]`), "dora-password"),
				chromedp.Click(chromedp.CSS(`form[action$="/create"] button`)),
				chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) p.banner.ok`)))
			br.Run("lock them", mark, chromedp.Click(chromedp.CSS(`button[aria-label="Lock `+name+`"]`)),
				chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) button[aria-label="Unlock `+name+`"]`)))
			br.Check("admin-users")
			br.Screenshot("admin-users")
			group := fmt.Sprintf("team%d", width)
			br.Run("open groups", chromedp.Navigate(f.ts.URL+"/connect/admin/groups"), chromedp.WaitVisible(chromedp.ID("h-create")))
			browserNewGroup(br, group, "dora", name, "admin-groups")
			br.Visit(f.ts.URL+"/connect/admin/groups?group="+staff.GUID+"#members", "admin-groups-provider")
			if n := db.Value(br, "forms", chromedp.Evaluate[int](`document.querySelectorAll('#members form[method="post"]').length`)); n != 0 {
				t.Errorf("the provider's group offers %d forms", n)
			}
			for _, p := range adminPages[1:] {
				br.Visit(f.ts.URL+p, "admin-"+strings.TrimPrefix(p, "/connect/admin/"))
			}
		})
	}
}
