package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	db "github.com/dais-dev/dais/e2e/browser"
)

// TestGroupsPage: a publisher's own groups page (/connect/groups) lists
// the groups they own and no other; they make a group, find a user and
// add them, remove them and delete the group, and the API sees each
// change. Another's group is shown read-only, and the publisher's
// crafted forms for it (with their own valid token) get 403 from the
// API's rule, the group unchanged; a form without its token gets 403. A
// viewer, who may not make groups, gets 403 for the page and the form.
func TestGroupsPage(t *testing.T) {
	f := newFixture(t)
	viewer := f.users["viewer"]
	var admins struct{ GUID string }
	f.do(t, "POST", "/__api__/v1/groups", "administrator", `{"name":"analysts"}`).must(t, &admins)
	f.do(t, "POST", "/__api__/v1/groups/"+admins.GUID+"/members", "administrator", `{"user_guid":"`+viewer.GUID+`"}`).must(t, nil)
	members := func(g string) []string { return groupMembers(t, f, g) }

	pub := f.login(t, "publisher")
	st, body := pub.get(t, "/connect/groups")
	if st != http.StatusOK {
		t.Fatalf("the publisher's groups page: %d %s", st, body)
	}
	contains(t, "groups page", body, `<a href="/connect/groups">Groups</a>`, `action="/connect/groups/create"`, "No groups.")
	if strings.Contains(body, "analysts") || strings.Contains(body, "/connect/admin/") {
		t.Errorf("the publisher's page lists the administrator's group or links the admin pages:\n%s", body)
	}
	csrf := csrfOf(body)
	if st, _ := pub.post(t, "/connect/groups/create", url.Values{"name": {"pub-team"}}); st != http.StatusForbidden {
		t.Errorf("create without CSRF token: %d, want 403", st)
	}
	if st, _ := pub.post(t, "/connect/groups/create", url.Values{"csrf": {sessionToken(t, pub, "admin")}, "name": {"pub-team"}}); st != http.StatusForbidden {
		t.Errorf("create with the admin pages' token: %d, want 403", st)
	}
	st, body = pub.post(t, "/connect/groups/create", url.Values{"csrf": {csrf}, "name": {"pub-team"}})
	contains(t, "made pub-team", body, "Made the group pub-team.", "Members of pub-team", "Owner: publisher1", "No members.", `id="find"`)
	var mine struct {
		Results []struct{ GUID, Name string }
		Total   int
	}
	f.do(t, "GET", "/__api__/v1/groups?owner_guid="+f.users["publisher"].GUID, "viewer", "").must(t, &mine)
	if mine.Total != 1 || len(mine.Results) != 1 || mine.Results[0].Name != "pub-team" {
		t.Fatalf("the API's groups owned by publisher1: %+v", mine)
	}
	g := mine.Results[0].GUID
	page := "/connect/groups?group=" + g
	_, body = pub.get(t, "/connect/groups")
	contains(t, "the list", body, `href="/connect/groups?group=`+g+`#members">pub-team</a>`, "1–1 of 1")

	// Find, add, remove: the forms come back to the page.
	_, body = pub.get(t, page+"&find=vie")
	contains(t, "find vie", body, `aria-label="Add viewer1 to pub-team"`, `action="/connect/groups/add"`)
	_, body = pub.post(t, "/connect/groups/add", url.Values{"csrf": {csrf}, "guid": {g}, "name": {"pub-team"},
		"user": {viewer.GUID}, "username": {"viewer1"}, "back": {page + "#members"}})
	contains(t, "add viewer1", body, "Added viewer1 to pub-team.", `aria-label="Remove viewer1 from pub-team"`)
	if got := members(g); len(got) != 1 || got[0] != "viewer1" {
		t.Fatalf("pub-team's members after the add: %v", got)
	}
	_, body = pub.post(t, "/connect/groups/remove", url.Values{"csrf": {csrf}, "guid": {g}, "name": {"pub-team"},
		"user": {viewer.GUID}, "username": {"viewer1"}, "back": {"https://elsewhere.example/"}})
	contains(t, "remove viewer1 (a foreign back link ignored)", body, "Removed viewer1 from pub-team.", "Your groups")
	if got := members(g); len(got) != 0 {
		t.Fatalf("pub-team's members after the remove: %v", got)
	}

	// The administrator's group: shown read-only; crafted forms get 403.
	_, body = pub.get(t, "/connect/groups?group="+admins.GUID+"&find=pub")
	contains(t, "another's group", body, "Members of analysts", "<strong>viewer1</strong>", "Owner: administrator1",
		"Only the group's owner and administrators change it.")
	for _, form := range []string{`/connect/groups/add"`, `/connect/groups/remove"`, `/connect/groups/delete"`, `id="find"`} {
		if strings.Contains(body, form) {
			t.Errorf("another's group offers %s", form)
		}
	}
	for _, form := range []struct {
		action string
		v      url.Values
	}{
		{"add", url.Values{"user": {f.users["publisher"].GUID}, "username": {"publisher1"}}},
		{"remove", url.Values{"user": {viewer.GUID}, "username": {"viewer1"}}},
		{"delete", url.Values{"confirm": {"analysts"}}},
	} {
		form.v.Set("csrf", csrf)
		form.v.Set("guid", admins.GUID)
		form.v.Set("name", "analysts")
		form.v.Set("back", "/connect/groups")
		if st, body := pub.post(t, "/connect/groups/"+form.action, form.v); st != http.StatusForbidden || !strings.Contains(body, "only its owner and administrators may") {
			t.Errorf("the publisher's crafted %s form for the administrator's group: %d, want 403 naming the rule:\n%s", form.action, st, body)
		}
	}
	if got := members(admins.GUID); len(got) != 1 || got[0] != "viewer1" {
		t.Fatalf("analysts after the publisher's forms: %v", got)
	}

	// A viewer: 403 for the page, and for a crafted form.
	v := f.login(t, "viewer")
	if st, body := v.get(t, "/connect/groups"); st != http.StatusForbidden || strings.Contains(body, `action="/connect/groups/create"`) {
		t.Errorf("the viewer's groups page: %d, want 403", st)
	}
	if st, _ := v.post(t, "/connect/groups/create", url.Values{"csrf": {sessionToken(t, v, "groups")}, "name": {"viewers-own"}}); st != http.StatusForbidden {
		t.Errorf("the viewer's crafted create form: %d, want 403", st)
	}

	// Delete: refused until the name is typed.
	_, body = pub.post(t, "/connect/groups/delete", url.Values{"csrf": {csrf}, "guid": {g}, "name": {"pub-team"}, "confirm": {"pub"}, "back": {page}})
	contains(t, "delete unconfirmed", body, "type the group&#39;s name, pub-team, to delete it")
	_, body = pub.post(t, "/connect/groups/delete", url.Values{"csrf": {csrf}, "guid": {g}, "name": {"pub-team"}, "confirm": {"pub-team"}, "back": {page}})
	contains(t, "delete", body, "Deleted the group pub-team.", "No groups.")
	if a := f.do(t, "GET", "/__api__/v1/groups/"+g, "administrator", ""); a.status != http.StatusNotFound {
		t.Errorf("pub-team after the delete: %d, want 404", a.status)
	}
	var none struct{ Total int }
	f.do(t, "GET", "/__api__/v1/groups?owner_guid=00000000-0000-0000-0000-000000000000", "viewer", "").must(t, &none)
	if none.Total != 0 {
		t.Errorf("groups of an unknown owner: %d, want 0", none.Total)
	}
}

// TestBrowserGroupsPage: a publisher in chromium at 1280 and 390 px opens
// their groups page from the navigation, makes a group, finds a user and
// adds them (the automated checks on each page), and sees the
// administrator's group without a form.
func TestBrowserGroupsPage(t *testing.T) {
	f := newFixture(t)
	f.login(t, "publisher")
	f.login(t, "viewer")
	var admins struct{ GUID string }
	f.do(t, "POST", "/__api__/v1/groups", "administrator", `{"name":"analysts"}`).must(t, &admins)
	for _, width := range []int{1280, 390} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			br := db.New(t, width)
			mark := chromedp.Evaluate[chromedp.Void](`document.body.dataset.old = "1"`)
			browserLogin(br, f, "publisher", "/connect/", chromedp.WaitVisible(chromedp.CSS(`li.who`)))
			br.Run("open Groups", mark, chromedp.Click(chromedp.CSS(`nav.side a[href="/connect/groups"]`)),
				chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) #h-create`)))
			br.Check("groups")
			group := fmt.Sprintf("team%d", width)
			browserNewGroup(br, group, "view", "viewer1", "groups")
			if rows := db.Value(br, "list", chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("ul.groups a")).map(a => a.textContent)`)); !slices.Contains(rows, group) || slices.Contains(rows, "analysts") {
				t.Errorf("the publisher's list: %v, want their own groups (%s), not the administrator's", rows, group)
			}
			br.Visit(f.ts.URL+"/connect/groups?group="+admins.GUID+"#members", "groups-others")
			if n := db.Value(br, "forms", chromedp.Evaluate[int](`document.querySelectorAll('#members form[method="post"]').length`)); n != 0 {
				t.Errorf("the administrator's group offers the publisher %d forms", n)
			}
		})
	}
	var mine struct{ Results []struct{ GUID string } }
	f.do(t, "GET", "/__api__/v1/groups?prefix=team1280", "administrator", "").must(t, &mine)
	if len(mine.Results) != 1 {
		t.Fatalf("team1280 through the API: %+v", mine)
	}
	if m := groupMembers(t, f, mine.Results[0].GUID); !slices.Equal(m, []string{"viewer1"}) {
		t.Errorf("team1280's members through the API: %v", m)
	}
}

// browserLogin logs the fixture's user of role in on br's login form,
// going to next, and waits for ready.
func browserLogin(br *db.Browser, f *fixture, role, next string, ready chromedp.Action[chromedp.Void]) {
	br.Run("log in", chromedp.Navigate(f.ts.URL+"/__login__?next="+url.QueryEscape(next)),
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), role+"1"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "pw-"+role),
		chromedp.Submit(chromedp.CSS(`input[name="password"]`)),
		ready)
}

// groupMembers is the usernames of a group's members, through the API.
func groupMembers(t *testing.T, f *fixture, guid string) []string {
	t.Helper()
	var m struct{ Results []struct{ Username string } }
	f.do(t, "GET", "/__api__/v1/groups/"+guid+"/members", "administrator", "").must(t, &m)
	var names []string
	for _, u := range m.Results {
		names = append(names, u.Username)
	}
	return names
}

// browserNewGroup makes group on the groups page open in br, finds user
// by typing find and adds them, checking the pages (shots-find,
// shots-members) and taking a screenshot of the members.
func browserNewGroup(br *db.Browser, group, find, user, shots string) {
	mark := chromedp.Evaluate[chromedp.Void](`document.body.dataset.old = "1"`)
	br.Run("make a group", mark,
		chromedp.SendKeys(chromedp.CSS(`form[action$="/groups/create"] input[name="name"]`), group),
		chromedp.Click(chromedp.CSS(`form[action$="/groups/create"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) #find`)))
	br.Run("find a user", mark, chromedp.SendKeys(chromedp.ID("find"), find),
		chromedp.Submit(chromedp.ID("find")),
		chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) button[aria-label="Add `+user+` to `+group+`"]`)))
	br.Check(shots + "-find")
	br.Run("add them", mark, chromedp.Click(chromedp.CSS(`button[aria-label="Add `+user+` to `+group+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) button[aria-label="Remove `+user+` from `+group+`"]`)))
	br.Check(shots + "-members")
	br.Screenshot(shots + "-members")
}
