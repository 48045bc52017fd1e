package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/dais-dev/dais/server/store"
)

// TestAdminGroupsPage: an administrator makes a group on the groups page,
// finds a user by the start of their name and adds them, removes a
// member and deletes the group (only once its name is typed); the API
// sees each change. A group the identity provider brings says so and
// offers no form, and the API refuses a crafted one. A publisher or a
// viewer gets 403 for the page, and the API refuses their crafted forms
// on the administrator's group; a form without its CSRF token is refused.
func TestAdminGroupsPage(t *testing.T) {
	f := newFixture(t)
	viewer, publisher := f.users["viewer"].GUID, f.users["publisher"].GUID
	admin := f.login(t, "administrator")
	_, body := admin.get(t, "/connect/admin/groups")
	contains(t, "groups", body, `action="/connect/admin/groups/create"`, "<label>Name <input name=\"name\"")
	csrf := csrfOf(body)
	if st, _ := admin.post(t, "/connect/admin/groups/create", url.Values{"name": {"analysts"}}); st != http.StatusForbidden {
		t.Errorf("create without CSRF token: %d, want 403", st)
	}
	st, body := admin.post(t, "/connect/admin/groups/create", url.Values{"csrf": {csrf}, "name": {"analysts"}})
	contains(t, "made analysts", body, "Made the group analysts.", "Members of analysts", "Owner: administrator1", "No members.", `id="find"`)
	if st != 200 {
		t.Fatalf("create: %d", st)
	}
	var groups struct {
		Results []struct{ GUID, Name string }
	}
	f.do(t, "GET", "/__api__/v1/groups?prefix=analysts", "administrator", "").must(t, &groups)
	if len(groups.Results) != 1 {
		t.Fatalf("analysts through the API: %+v", groups)
	}
	g := groups.Results[0].GUID
	page := "/connect/admin/groups?group=" + g

	// Find users starting with "v" or "p": the search lists them with an
	// Add button each; adding one takes them out of the next search.
	_, body = admin.get(t, page+"&find=vie")
	contains(t, "find vie", body, `aria-label="Add viewer1 to analysts"`)
	if strings.Contains(body, "Add publisher1") {
		t.Error("the search for vie offers publisher1")
	}
	for _, m := range []struct{ guid, name string }{{viewer, "viewer1"}, {publisher, "publisher1"}} {
		_, body = admin.post(t, "/connect/admin/groups/add", url.Values{"csrf": {csrf}, "guid": {g}, "name": {"analysts"},
			"user": {m.guid}, "username": {m.name}, "back": {page + "#members"}})
		contains(t, "add "+m.name, body, "Added "+m.name+" to analysts.", "<strong>"+m.name+"</strong>", `aria-label="Remove `+m.name+` from analysts"`)
	}
	_, body = admin.get(t, page+"&find=vie")
	if strings.Contains(body, "Add viewer1") {
		t.Error("the search offers viewer1, a member already")
	}
	_, body = admin.post(t, "/connect/admin/groups/add", url.Values{"csrf": {csrf}, "guid": {g}, "name": {"analysts"}, "user": {viewer}, "username": {"viewer1"}, "back": {page}})
	contains(t, "add viewer1 again", body, "is a member of group analysts already")
	_, body = admin.post(t, "/connect/admin/groups/remove", url.Values{"csrf": {csrf}, "guid": {g}, "name": {"analysts"}, "user": {publisher}, "username": {"publisher1"}, "back": {page + "#members"}})
	contains(t, "remove publisher1", body, "Removed publisher1 from analysts.")
	members := func() []string { return groupMembers(t, f, g) }
	if got := members(); len(got) != 1 || got[0] != "viewer1" {
		t.Fatalf("members through the API after the forms: %v", got)
	}

	// The audit log names the group and the users, linked to their pages.
	_, body = admin.get(t, "/connect/admin/audit")
	groupLink := `<a href="/connect/admin/groups?group=` + g + `#members">analysts</a>`
	contains(t, "audit", body, "Added a member to group "+groupLink,
		`Removed user <a href="/connect/admin/users?q=publisher1">publisher1</a> from group `+groupLink)

	// A provider's group: said so, no form, and a crafted one refused.
	pg := &store.Group{Name: "ldap-staff", Provider: "ldap", UniqueID: "cn=staff"}
	if err := f.st.CreateGroup(context.Background(), pg); err != nil {
		t.Fatal(err)
	}
	if err := f.st.AddGroupMember(context.Background(), pg.ID, f.users["viewer"].ID); err != nil {
		t.Fatal(err)
	}
	_, body = admin.get(t, "/connect/admin/groups?group="+pg.GUID+"&find=pub")
	contains(t, "provider group", body, "Members of ldap-staff", "The identity provider manages this group", "<strong>viewer1</strong>")
	for _, form := range []string{`/connect/admin/groups/add"`, `/connect/admin/groups/remove"`, `/connect/admin/groups/delete"`, `id="find"`} {
		if strings.Contains(body, form) {
			t.Errorf("the provider's group offers %s", form)
		}
	}
	_, body = admin.post(t, "/connect/admin/groups/add", url.Values{"csrf": {csrf}, "guid": {pg.GUID}, "name": {"ldap-staff"}, "user": {publisher}, "username": {"publisher1"}})
	contains(t, "crafted add to the provider's group", body, "comes from the ldap authentication provider")

	// A local group without an owner (its owner's account was deleted) is
	// not a provider's: the administrator manages it on the page, as the
	// API lets them.
	orphan := &store.Group{Name: "orphans"}
	if err := f.st.CreateGroup(context.Background(), orphan); err != nil {
		t.Fatal(err)
	}
	_, body = admin.get(t, "/connect/admin/groups?group="+orphan.GUID+"&find=vie")
	contains(t, "a local group without an owner", body, "Members of orphans", "Owner: none", `aria-label="Add viewer1 to orphans"`, `action="/connect/admin/groups/delete"`)
	if strings.Contains(body, "The identity provider manages this group") {
		t.Error("a local group without an owner is said to be the identity provider's")
	}
	_, body = admin.post(t, "/connect/admin/groups/add", url.Values{"csrf": {csrf}, "guid": {orphan.GUID}, "name": {"orphans"}, "user": {viewer}, "username": {"viewer1"},
		"back": {"/connect/admin/groups?group=" + orphan.GUID + "#members"}})
	contains(t, "add to orphans", body, "Added viewer1 to orphans.", `aria-label="Remove viewer1 from orphans"`)
	_, body = admin.post(t, "/connect/admin/groups/delete", url.Values{"csrf": {csrf}, "guid": {orphan.GUID}, "name": {"orphans"}, "confirm": {"orphans"}})
	contains(t, "delete orphans", body, "Deleted the group orphans.")

	// Publishers and viewers: 403 for the page; their crafted forms on
	// the administrator's group are refused by the API's rule.
	for _, role := range []string{"viewer", "publisher"} {
		s := f.login(t, role)
		if st, _ := s.get(t, "/connect/admin/groups"); st != http.StatusForbidden {
			t.Errorf("%s: the groups page answered %d, want 403", role, st)
		}
		tok := sessionToken(t, s, "admin")
		for _, form := range []struct {
			action string
			v      url.Values
		}{
			{"add", url.Values{"user": {f.users[role].GUID}}},
			{"remove", url.Values{"user": {viewer}}},
			{"delete", url.Values{"confirm": {"analysts"}}},
		} {
			form.v.Set("csrf", tok)
			form.v.Set("guid", g)
			form.v.Set("name", "analysts")
			if st, body := s.post(t, "/connect/admin/groups/"+form.action, form.v); st != http.StatusForbidden {
				t.Errorf("%s's crafted %s form: %d, want 403 (%s)", role, form.action, st, body)
			}
		}
	}
	if got := members(); len(got) != 1 || got[0] != "viewer1" {
		t.Fatalf("members after the others' forms: %v", got)
	}

	// Delete: refused until the name is typed.
	_, body = admin.post(t, "/connect/admin/groups/delete", url.Values{"csrf": {csrf}, "guid": {g}, "name": {"analysts"}, "confirm": {"analyst"}, "back": {page}})
	contains(t, "delete unconfirmed", body, "type the group&#39;s name, analysts, to delete it", "Members of analysts")
	_, body = admin.post(t, "/connect/admin/groups/delete", url.Values{"csrf": {csrf}, "guid": {g}, "name": {"analysts"}, "confirm": {"analysts"}, "back": {page}})
	contains(t, "delete", body, "Deleted the group analysts.")
	if a := f.do(t, "GET", "/__api__/v1/groups/"+g, "administrator", ""); a.status != http.StatusNotFound {
		t.Errorf("analysts after the delete: %d, want 404", a.status)
	}
	// Deleted, the group keeps its GUID in the audit log, unlinked.
	_, body = admin.get(t, "/connect/admin/audit")
	contains(t, "audit after the delete", body, "Removed group "+g+"</td>", "Added a member to group "+g+"</td>")

	// 120 groups: 100 a page, the next page linked; a group beyond the
	// first page (as the audit log links it) is shown with its members.
	for i := range 120 {
		f.do(t, "POST", "/__api__/v1/groups", "administrator", fmt.Sprintf(`{"name":"zz-%03d"}`, i)).must(t, nil)
	}
	_, body = admin.get(t, "/connect/admin/groups")
	contains(t, "first page of groups", body, "1–100 of 121", `href="/connect/admin/groups?page=2"`)
	_, body = admin.get(t, "/connect/admin/groups?page=2")
	contains(t, "second page of groups", body, "101–121 of 121", ">zz-119</a>", `href="/connect/admin/groups"`)
	var last struct{ Results []struct{ GUID string } }
	f.do(t, "GET", "/__api__/v1/groups?prefix=zz-119", "administrator", "").must(t, &last)
	_, body = admin.get(t, "/connect/admin/groups?group="+last.Results[0].GUID)
	contains(t, "a group of the second page", body, "Members of zz-119", "No members.")
}
