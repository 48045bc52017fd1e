package e2e

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/dais-dev/dais/e2e/browser"
)

// offlineRmdDir is the R Markdown example with a document whose output
// loads nothing from elsewhere (html_document's default MathJax comes
// from the internet, which the browser checks count as a failed request).
func offlineRmdDir(t *testing.T) string {
	t.Helper()
	doc := "---\ntitle: \"Weekly report\"\noutput:\n  html_document:\n    mathjax: null\n---\n\nRendered by dais.\n\n```{r}\ncat(\"sum is\", sum(1:3), \"\\n\")\n```\n"
	b, err := os.ReadFile(filepath.Join(exampleDir("rmarkdown"), "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum([]byte(doc))
	m["files"] = map[string]any{"doc.Rmd": map[string]string{"checksum": hex.EncodeToString(sum[:])}}
	mb, _ := json.Marshal(m)
	dir := t.TempDir()
	for name, body := range map[string][]byte{"doc.Rmd": []byte(doc), "manifest.json": mb} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// login opens the login form in br and signs in, then waits for sel.
func login(br *browser.Browser, c *Container, next, user, password, sel string) {
	br.Run("log in as "+user, chromedp.Navigate(c.URL("/__login__?next="+next)),
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), user),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), password),
		chromedp.Submit(chromedp.CSS(`input[name="password"]`)),
		chromedp.WaitVisible(chromedp.CSS(sel)))
}

// TestDashboardAdminJourneys drives the container's dashboard in chromium
// as a publisher, an administrator and a viewer would:
//
//   - the publisher (alice) schedules a document on its page, runs it now
//     and sees the new render in the output history (its output and log
//     open, and the earlier rendering's), tags it and finds it in the content list by the tag, sorted,
//     with its state, opens her profile, and is refused the admin pages;
//   - the administrator (root) searches the users, locks the viewer (bob),
//     whose open session and API key are then refused and whose login
//     says the account is locked, unlocks him, and reads the server page
//     (dais's version, the Connect API level), the audit log (the lock,
//     bob named), the load (alice's running app with its memory) and a
//     group's members, then makes a group and adds alice to it after
//     finding her;
//   - the viewer (bob) gets 403 for the admin pages in the browser and
//     through the API.
//
// Every page gets the automated checks at 1280 px, the main ones again at
// 390 px, and screenshots e2e-*.
func TestDashboardAdminJourneys(t *testing.T) {
	c, key := deployServer(t)
	doc, tk, out := deployV1(t, c, key, "weekly-report", bundle(t, offlineRmdDir(t)))
	if tk.Code != 0 {
		t.Fatalf("deploy the document: %s\n%s", tk.Error, out)
	}
	app, tk, out := deployV1(t, c, key, "busy-app", bundle(t, flaskDir(t, journeyApp("one"))))
	if tk.Code != 0 {
		t.Fatalf("deploy the app: %s\n%s", tk.Error, out)
	}
	waitContent(t, c, "/content/"+app+"/", "hello one", 3*time.Minute)
	for _, u := range []struct{ name, role string }{{"root", "administrator"}, {"bob", "viewer"}} {
		if r := c.Exec("sh", "-c", "echo "+u.name+"-password-e2e | dais users add --role "+u.role+" "+u.name); r.Code != 0 {
			t.Fatalf("dais users add %s: %d %s%s", u.name, r.Code, r.Stdout, r.Stderr)
		}
	}
	keyOf := func(user string) string {
		r := c.Exec("dais", "keys", "create", "--user", user)
		if r.Code != 0 {
			t.Fatalf("dais keys create %s: %d %s", user, r.Code, r.Stderr)
		}
		return strings.TrimSpace(r.Stdout)
	}
	rootKey, bobKey := keyOf("root"), keyOf("bob")
	var tag struct {
		ID string `json:"id"`
	}
	apiJSON(t, c, "POST", "/__api__/v1/tags", rootKey, strings.NewReader(`{"name":"Finance"}`), &tag)
	var group, bobUser struct {
		GUID string `json:"guid"`
	}
	apiJSON(t, c, "POST", "/__api__/v1/groups", rootKey, strings.NewReader(`{"name":"analysts"}`), &group)
	apiJSON(t, c, "GET", "/__api__/v1/user", bobKey, nil, &bobUser)
	apiJSON(t, c, "POST", "/__api__/v1/groups/"+group.GUID+"/members", rootKey, strings.NewReader(`{"user_guid":"`+bobUser.GUID+`"}`), nil)
	mark := chromedp.Evaluate[chromedp.Void](`document.body.dataset.old = "1"`)

	// The publisher.
	alice := browser.New(t, 1280)
	shot := func(br *browser.Browser, name string) { br.Check(name); br.Screenshot(name) }
	login(alice, c, "/connect/apps/"+doc, "alice", "alice-password-e2e", "#h-schedule")
	if crumb := browser.Value(alice, "crumbs", chromedp.Text(chromedp.CSS(`nav.crumbs`))); strings.TrimSpace(crumb) != "Content / weekly-report" {
		t.Errorf("breadcrumb %q", crumb)
	}
	alice.Run("schedule", mark,
		chromedp.SendKeys(chromedp.CSS(`#schedule input[name="cron"]`), "0 6 * * 1-5"),
		chromedp.SetValue(chromedp.CSS(`#schedule select[name="timezone"]`), "Europe/Paris"),
		chromedp.Click(chromedp.CSS(`form[action$="/schedule"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) p.banner.ok`)))
	if dl := browser.Value(alice, "schedule", chromedp.Text(chromedp.CSS(`#schedule dl`))); !strings.Contains(dl, "cron 0 6 * * 1-5") ||
		!strings.Contains(dl, "Europe/Paris") || !strings.Contains(dl, "06:00 CE") {
		t.Fatalf("the schedule shown: %q", dl)
	}
	alice.Run("run now", mark, chromedp.Click(chromedp.CSS(`form[action$="/render"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) p.banner.ok`)))
	// The history shows the new render once it succeeded (reload to see).
	deadline := time.Now().Add(3 * time.Minute)
	for {
		alice.Run("reload", chromedp.Navigate(c.URL("/connect/apps/"+doc)), chromedp.WaitVisible(chromedp.ID("h-schedule")))
		n := browser.Value(alice, "renders", chromedp.Evaluate[int](`document.querySelectorAll("table.renders td.state-succeeded").length`))
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d succeeded renders after run now, want 2", n)
		}
		time.Sleep(time.Second)
	}
	alice.Run("to the schedule", chromedp.ScrollIntoView(chromedp.ID("h-schedule")))
	shot(alice, "e2e-schedule")
	output := browser.Value(alice, "output link", chromedp.Evaluate[string](`document.querySelector("table.renders tr.active a").getAttribute("href")`))
	if st, body := api(t, c, "GET", output, key, nil); st != 200 || !strings.Contains(string(body), "sum is 6") {
		t.Fatalf("the served output %s: %d %.200s", output, st, body)
	}
	// The earlier rendering's output, from its link in the history.
	earlier := browser.Value(alice, "earlier output", chromedp.Evaluate[string](`(function(){var a=document.querySelector("table.renders tbody tr:not(.active) a[href*='/_rev']");return a?a.getAttribute("href"):""})()`))
	if !strings.Contains(earlier, "/content/"+doc+"/_rev") {
		t.Fatalf("no link to the earlier rendering's output (%q)", earlier)
	}
	// (Fetched as alice: the content's own page is not the dashboard's to
	// check, and the browser would ask it for a favicon it has not.)
	if st, body := api(t, c, "GET", earlier, key, nil); st != 200 || !strings.Contains(string(body), "sum is 6") {
		t.Fatalf("the earlier rendering %s: %d %.200s", earlier, st, body)
	}
	logLink := browser.Value(alice, "log link", chromedp.Evaluate[string](`document.querySelector("table.renders tbody tr a[href*='logs?task=']").getAttribute("href")`))
	alice.Run("the render's log", chromedp.Navigate(c.URL(logLink)),
		chromedp.Poll[chromedp.Void](`document.getElementById("log") && document.getElementById("log").textContent.length > 0`))
	if crumb := browser.Value(alice, "crumbs", chromedp.Text(chromedp.CSS(`nav.crumbs`))); strings.TrimSpace(crumb) != "Content / weekly-report / Logs" {
		t.Errorf("the logs page's breadcrumb %q", crumb)
	}
	shot(alice, "e2e-render-log")

	// Tag it, then find it in the list by the tag, sorted by name.
	alice.Run("back", chromedp.Navigate(c.URL("/connect/apps/"+doc)), chromedp.WaitVisible(chromedp.ID("h-tags")))
	alice.Run("tag", mark, chromedp.SetValue(chromedp.CSS(`#tags select[name="tag_id"]`), tag.ID),
		chromedp.Click(chromedp.CSS(`form[action$="/tag-add"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) ul.tags`)))
	alice.Run("the list", chromedp.Navigate(c.URL("/connect/")), chromedp.WaitVisible(chromedp.ID("tag")))
	if state := browser.Value(alice, "state", chromedp.Evaluate[string](`Array.from(document.querySelectorAll("table.content tbody tr")).map(r => r.textContent.replace(/\s+/g, " ")).join("|")`)); !strings.Contains(state, "busy-app") || !strings.Contains(state, "1 running") || !strings.Contains(state, "render succeeded") {
		t.Errorf("the list's states: %q", state)
	}
	shot(alice, "e2e-content-list-state")
	alice.Run("filter by tag", mark, chromedp.SetValue(chromedp.ID("tag"), tag.ID), chromedp.SetValue(chromedp.ID("sort"), "name"),
		chromedp.Click(chromedp.CSS(`form.search button`)), chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) p.count`)))
	if rows := browser.Value(alice, "rows", chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("table.content tbody a")).map(a => a.textContent)`)); len(rows) != 1 || rows[0] != "weekly-report" {
		t.Fatalf("the list filtered by the tag: %v", rows)
	}
	shot(alice, "e2e-content-list-tag")
	alice.Run("profile", chromedp.Navigate(c.URL("/connect/profile")), chromedp.WaitVisible(chromedp.ID("h-edit")))
	if facts := browser.Value(alice, "facts", chromedp.Text(chromedp.CSS(`dl.facts`))); !strings.Contains(facts, "alice") || !strings.Contains(facts, "publisher") {
		t.Errorf("profile: %q", facts)
	}
	shot(alice, "e2e-profile")
	alice.Run("an admin page", chromedp.Navigate(c.URL("/connect/admin/users")), chromedp.WaitVisible(chromedp.CSS(`p.banner.gate`)))
	alice.Expect("HTTP 403 from " + c.URL("/connect/admin/users"))
	alice.Check("e2e-publisher-refused")

	// The viewer, logged in before the lock.
	bob := browser.New(t, 1280)
	login(bob, c, "/connect/", "bob", "bob-password-e2e", "form.search")
	for _, p := range []string{"users", "groups", "server", "audit", "load"} {
		bob.Run("admin "+p, chromedp.Navigate(c.URL("/connect/admin/"+p)), chromedp.WaitVisible(chromedp.CSS(`p.banner.gate`)))
		bob.Expect("HTTP 403 from " + c.URL("/connect/admin/"+p))
	}
	if n := browser.Value(bob, "admin link", chromedp.Evaluate[int](`document.querySelectorAll('a[href^="/connect/admin"]').length`)); n != 0 {
		t.Errorf("the viewer's navigation links to the admin pages (%d links)", n)
	}
	bob.Check("e2e-viewer-refused")
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/__api__/v1/audit_logs", ""}, {"GET", "/__api__/v1/system/load", ""}, {"GET", "/__api__/v1/system/nodes", ""},
		{"POST", "/__api__/v1/users", `{"username":"mallory","password":"mallory-pw-1"}`},
	} {
		if st, _ := api(t, c, r.method, r.path, bobKey, strings.NewReader(r.body)); st != http.StatusForbidden {
			t.Errorf("bob: %s %s answered %d, want 403", r.method, r.path, st)
		}
	}

	// The administrator locks bob.
	root := browser.New(t, 1280)
	login(root, c, "/connect/admin/users", "root", "root-password-e2e", "#h-add")
	root.Run("search bob", mark, chromedp.SendKeys(chromedp.ID("q"), "bo"), chromedp.Submit(chromedp.ID("q")),
		chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) button[aria-label="Lock bob"]`)))
	if rows := browser.Value(root, "rows", chromedp.Evaluate[int](`document.querySelectorAll("table.users tbody tr").length`)); rows != 1 {
		t.Errorf("search bo: %d rows, want 1", rows)
	}
	root.Run("lock bob", mark, chromedp.Click(chromedp.CSS(`button[aria-label="Lock bob"]`)),
		chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) button[aria-label="Unlock bob"]`)))
	shot(root, "e2e-admin-users-locked")
	if st, _ := api(t, c, "GET", "/__api__/v1/user", bobKey, nil); st != http.StatusUnauthorized {
		t.Errorf("bob's key after the lock: %d, want 401", st)
	}
	bob.Run("bob's session", chromedp.Navigate(c.URL("/connect/")), chromedp.WaitVisible(chromedp.CSS(`input[name="password"]`)))
	bob.Check("e2e-locked-session")
	login(bob, c, "/connect/", "bob", "bob-password-e2e", ".error")
	if msg := browser.Value(bob, "login", chromedp.Text(chromedp.CSS(`.error`))); !strings.Contains(msg, "locked") {
		t.Errorf("bob's login after the lock says %q", msg)
	}
	bob.Expect("HTTP 403 from " + c.URL("/__login__"))
	bob.Check("e2e-locked-login")
	bob.Screenshot("e2e-locked-login")
	root.Run("unlock bob", mark, chromedp.Click(chromedp.CSS(`button[aria-label="Unlock bob"]`)),
		chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) button[aria-label="Lock bob"]`)))
	if st, _ := api(t, c, "GET", "/__api__/v1/user", bobKey, nil); st != http.StatusOK {
		t.Errorf("bob's key after the unlock: %d, want 200", st)
	}

	// The other admin pages.
	root.Visit(c.URL("/connect/admin/server"), "e2e-admin-server")
	if facts := browser.Value(root, "server", chromedp.Text(chromedp.CSS(`main`))); !strings.Contains(facts, "2024.08.0") || !strings.Contains(facts, "Python") {
		t.Errorf("server page: %q", facts)
	}
	root.Visit(c.URL("/connect/admin/audit"), "e2e-admin-audit")
	if audit := browser.Value(root, "audit", chromedp.Text(chromedp.CSS(`table.audit`))); !strings.Contains(audit, "lock_user") || !strings.Contains(audit, "root") ||
		!strings.Contains(audit, "Locked or unlocked user bob") {
		t.Errorf("audit log: %q", audit)
	}
	root.Visit(c.URL("/connect/admin/load"), "e2e-admin-load")
	if load := browser.Value(root, "load", chromedp.Text(chromedp.CSS(`table.load`))); !strings.Contains(load, "busy-app") || !strings.Contains(load, "MB") {
		t.Errorf("load page: %q", load)
	}
	root.Run("groups", chromedp.Navigate(c.URL("/connect/admin/groups")), chromedp.WaitVisible(chromedp.CSS(`ul.groups`)))
	root.Run("analysts", mark, chromedp.Click(chromedp.CSS(`ul.groups a`)), chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) #h-members`)))
	if members := browser.Value(root, "members", chromedp.Text(chromedp.CSS(`table.members`))); !strings.Contains(members, "bob") {
		t.Errorf("members of analysts: %q", members)
	}
	shot(root, "e2e-admin-groups")
	// A group made on the page, alice found by the start of her name and
	// added: the API lists her.
	root.Run("make reviewers", mark, chromedp.SendKeys(chromedp.CSS(`form[action$="/groups/create"] input[name="name"]`), "reviewers"),
		chromedp.Click(chromedp.CSS(`form[action$="/groups/create"] button`)), chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) #find`)))
	root.Run("find alice", mark, chromedp.SendKeys(chromedp.ID("find"), "ali"), chromedp.Submit(chromedp.ID("find")),
		chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) button[aria-label="Add alice to reviewers"]`)))
	root.Run("add alice", mark, chromedp.Click(chromedp.CSS(`button[aria-label="Add alice to reviewers"]`)),
		chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) button[aria-label="Remove alice from reviewers"]`)))
	shot(root, "e2e-admin-group-made")
	var reviewers struct{ Results []struct{ GUID string } }
	apiJSON(t, c, "GET", "/__api__/v1/groups?prefix=reviewers", rootKey, nil, &reviewers)
	if len(reviewers.Results) != 1 {
		t.Fatalf("reviewers through the API: %+v", reviewers)
	}
	var members struct{ Results []struct{ Username string } }
	apiJSON(t, c, "GET", "/__api__/v1/groups/"+reviewers.Results[0].GUID+"/members", rootKey, nil, &members)
	if len(members.Results) != 1 || members.Results[0].Username != "alice" {
		t.Errorf("members of reviewers through the API: %+v", members)
	}

	// The viewer on a phone: his list (what he may open), his profile, and
	// an admin page refused.
	bobPhone := browser.New(t, 390)
	login(bobPhone, c, "/connect/", "bob", "bob-password-e2e", "form.search")
	bobPhone.Check("e2e-viewer-list")
	bobPhone.Screenshot("e2e-viewer-list")
	bobPhone.Visit(c.URL("/connect/profile"), "e2e-viewer-profile")
	bobPhone.Run("an admin page", chromedp.Navigate(c.URL("/connect/admin/load")), chromedp.WaitVisible(chromedp.CSS(`p.banner.gate`)))
	bobPhone.Expect("HTTP 403 from " + c.URL("/connect/admin/load"))
	bobPhone.Check("e2e-viewer-refused")
	bobPhone.Screenshot("e2e-viewer-refused")

	// The same pages on a phone.
	phone := browser.New(t, 390)
	login(phone, c, "/connect/admin/users", "root", "root-password-e2e", "#h-add")
	phone.Check("e2e-admin-users")
	phone.Screenshot("e2e-admin-users")
	for _, p := range []struct{ path, name string }{
		{"/connect/admin/server", "e2e-admin-server"}, {"/connect/admin/audit", "e2e-admin-audit"}, {"/connect/admin/load", "e2e-admin-load"},
		{"/connect/apps/" + doc + "#schedule", "e2e-schedule"}, {"/connect/?sort=name", "e2e-content-list-state"}, {"/connect/profile", "e2e-profile"},
	} {
		phone.Visit(c.URL(p.path), p.name)
	}
}
