package api_test

import (
	"encoding/json"
	"net/http"
	"testing"
)

func TestGroups(t *testing.T) {
	f := newFixture(t)
	pub := f.users["publisher"]
	viewer := f.users["viewer"]
	bob := f.addUser(t, "bob", "publisher")

	var g struct {
		GUID      string  `json:"guid"`
		Name      string  `json:"name"`
		OwnerGUID *string `json:"owner_guid"`
	}
	f.do(t, "POST", "/__api__/v1/groups", "publisher", `{"name":"Data Science"}`).must(t, &g)
	if g.GUID == "" || g.Name != "Data Science" || g.OwnerGUID == nil || *g.OwnerGUID != pub.GUID {
		t.Fatalf("created group %+v", g)
	}
	gp := "/__api__/v1/groups/" + g.GUID
	f.run(t, []apiCase{
		{"viewer cannot create", "POST", "/__api__/v1/groups", "viewer", `{"name":"x"}`, 403, "creating groups needs publisher"},
		{"anonymous cannot list", "GET", "/__api__/v1/groups", "", "", 401, "API key"},
		{"duplicate name", "POST", "/__api__/v1/groups", "administrator", `{"name":"Data Science"}`, 409, "exists already"},
		{"no name", "POST", "/__api__/v1/groups", "publisher", `{}`, 400, "name is required"},
		{"blank name", "POST", "/__api__/v1/groups", "publisher", `{"name":"  "}`, 400, "not blank"},
		{"name of the wrong type", "POST", "/__api__/v1/groups", "publisher", `{"name":5}`, 400, "name must be a string"},
		{"malformed body", "POST", "/__api__/v1/groups", "publisher", `{"name":`, 400, "malformed JSON"},
		{"list", "GET", "/__api__/v1/groups?prefix=data", "viewer", "", 200, `"total":1`},
		{"list by another prefix", "GET", "/__api__/v1/groups?prefix=zzz", "viewer", "", 200, `"results":[]`},
		{"bad page size", "GET", "/__api__/v1/groups?page_size=501", "viewer", "", 400, "page_size"},
		{"get", "GET", gp, "viewer", "", 200, `"name":"Data Science"`},
		{"unknown group", "GET", "/__api__/v1/groups/nope", "viewer", "", 404, "no group"},
		{"another publisher cannot rename", "PATCH", gp, "bob", `{"name":"Mine"}`, 403, "only its owner and administrators"},
		{"viewer cannot add members", "POST", gp + "/members", "viewer", `{"user_guid":"` + viewer.GUID + `"}`, 403, "may not change group"},
		{"another publisher cannot delete", "DELETE", gp, "bob", "", 403, "may not change"},
		{"rename", "PATCH", gp, "publisher", `{"name":"DS"}`, 200, `"name":"DS"`},
		{"add member", "POST", gp + "/members", "publisher", `{"user_guid":"` + viewer.GUID + `"}`, 200, "{}"},
		{"add member twice", "POST", gp + "/members", "publisher", `{"user_guid":"` + viewer.GUID + `"}`, 409, "already"},
		{"add unknown user", "POST", gp + "/members", "publisher", `{"user_guid":"nope"}`, 400, "no user"},
		{"add without user", "POST", gp + "/members", "publisher", `{}`, 400, "user_guid is required"},
		{"admin adds a member", "POST", gp + "/members", "administrator", `{"user_guid":"` + bob.GUID + `"}`, 200, "{}"},
		{"members", "GET", gp + "/members", "viewer", "", 200, `"username":"bob"`},
		{"remove member", "DELETE", gp + "/members/" + bob.GUID, "publisher", "", 200, "{}"},
		{"remove a non-member", "DELETE", gp + "/members/" + bob.GUID, "publisher", "", 404, "not a member"},
		{"transfer to bob", "PATCH", gp, "publisher", `{"owner_guid":"` + bob.GUID + `"}`, 200, `"owner_guid":"` + bob.GUID},
		{"the old owner may no longer change it", "PATCH", gp, "publisher", `{"name":"back"}`, 403, "only its owner"},
	})

	var members struct {
		Results []struct{ Username string }
		Total   int
	}
	f.do(t, "GET", gp+"/members", "viewer", "").must(t, &members)
	if members.Total != 1 || len(members.Results) != 1 || members.Results[0].Username != viewer.Username {
		t.Fatalf("members = %+v, want just %s", members, viewer.Username)
	}

	// Paging as connectapi's page_offset reads it: results, current_page, total.
	for _, n := range []string{"a1", "a2", "a3"} {
		f.do(t, "POST", "/__api__/v1/groups", "administrator", `{"name":"`+n+`"}`).must(t, nil)
	}
	var page struct {
		Results     []struct{ Name string }
		CurrentPage int `json:"current_page"`
		Total       int
	}
	f.do(t, "GET", "/__api__/v1/groups?page_size=2&page_number=2", "viewer", "").must(t, &page)
	if page.CurrentPage != 2 || page.Total != 4 || len(page.Results) != 2 || page.Results[0].Name != "a3" || page.Results[1].Name != "DS" {
		t.Fatalf("page 2 = %+v", page)
	}

	f.do(t, "DELETE", gp, "bob", "").must(t, nil)
	if a := f.do(t, "GET", gp, "viewer", ""); a.status != http.StatusNotFound {
		t.Fatalf("deleted group answers %d", a.status)
	}
}

// TestGroupAccess: a group's members get exactly the group's access to
// content, in the API and at /content/, and lose it the moment they leave.
func TestGroupAccess(t *testing.T) {
	f := newFixture(t)
	carol := f.addUser(t, "carol", "publisher") // a publisher in the group
	dave := f.addUser(t, "dave", "viewer")      // a viewer in the group
	f.addUser(t, "erin", "publisher")           // in no group
	guid := f.deployStatic(t, "publisher", "team-site", "<h1>team site</h1>")
	cp := "/__api__/v1/content/" + guid

	var g struct{ GUID string }
	f.do(t, "POST", "/__api__/v1/groups", "publisher", `{"name":"team"}`).must(t, &g)
	for _, u := range []string{carol.GUID, dave.GUID} {
		f.do(t, "POST", "/__api__/v1/groups/"+g.GUID+"/members", "publisher", `{"user_guid":"`+u+`"}`).must(t, nil)
	}

	// Before any permission: the content is hidden from all three.
	for _, who := range []string{"carol", "dave", "erin"} {
		if a := f.do(t, "GET", cp, who, ""); a.status != http.StatusNotFound {
			t.Fatalf("%s sees content of another user before any permission: %d %s", who, a.status, a.body)
		}
		if a := f.raw(t, "GET", "/content/"+guid+"/", who, nil); a.status != http.StatusForbidden {
			t.Fatalf("%s at /content/: %d, want 403", who, a.status)
		}
	}

	// The group as a viewer: members may view, not change.
	var perm struct {
		ID            string `json:"id"`
		PrincipalGUID string `json:"principal_guid"`
		PrincipalType string `json:"principal_type"`
		Role          string
	}
	f.do(t, "POST", cp+"/permissions", "publisher", `{"principal_guid":"`+g.GUID+`","principal_type":"group","role":"viewer"}`).must(t, &perm)
	if perm.PrincipalType != "group" || perm.PrincipalGUID != g.GUID || perm.Role != "viewer" {
		t.Fatalf("group permission = %+v", perm)
	}
	var list []struct {
		PrincipalType string `json:"principal_type"`
	}
	f.do(t, "GET", cp+"/permissions", "publisher", "").must(t, &list)
	if len(list) != 1 || list[0].PrincipalType != "group" {
		t.Fatalf("permissions = %+v", list)
	}
	f.run(t, []apiCase{
		{"member views", "GET", cp, "carol", "", 200, `"app_role":"viewer"`},
		{"member cannot change", "PATCH", cp, "carol", `{"title":"mine"}`, 403, "may view but not change"},
		{"member cannot grant", "POST", cp + "/permissions", "dave", `{"principal_guid":"` + dave.GUID + `","role":"owner"}`, 403, "may view but not change"},
		{"outsider still refused", "GET", cp, "erin", "", 404, "no content"},
		{"unknown group", "POST", cp + "/permissions", "publisher", `{"principal_guid":"nope","principal_type":"group","role":"viewer"}`, 400, "no group"},
		{"unknown principal type", "POST", cp + "/permissions", "publisher", `{"principal_guid":"` + g.GUID + `","principal_type":"team","role":"viewer"}`, 400, "principal_type"},
		{"group listed with its content", "GET", "/__api__/v1/experimental/groups/" + g.GUID + "/content", "carol", "", 200, `"content_guid":"` + guid},
	})
	if a := f.raw(t, "GET", "/content/"+guid+"/", "dave", nil); a.status != http.StatusOK || a.body != "<h1>team site</h1>" {
		t.Fatalf("member at /content/: %d %q", a.status, a.body)
	}
	var before struct{ Title string }
	f.do(t, "GET", cp, "publisher", "").must(t, &before)

	// The group as collaborators: the publisher member may change the
	// content, the viewer member still only view (a role caps a group's).
	f.do(t, "PUT", cp+"/permissions/"+perm.ID, "publisher", `{"principal_guid":"`+g.GUID+`","principal_type":"group","role":"owner"}`).must(t, nil)
	f.run(t, []apiCase{
		{"publisher member changes", "PATCH", cp, "carol", `{"title":"by carol"}`, 200, `"app_role":"editor"`},
		{"viewer member cannot change", "PATCH", cp, "dave", `{"title":"by dave"}`, 403, "may view but not change"},
	})

	// Out of the group: refused at once, in the API and at /content/.
	f.do(t, "DELETE", "/__api__/v1/groups/"+g.GUID+"/members/"+carol.GUID, "publisher", "").must(t, nil)
	if a := f.do(t, "PATCH", cp, "carol", `{"title":"again"}`); a.status != http.StatusNotFound {
		t.Fatalf("PATCH after leaving the group: %d %s", a.status, a.body)
	}
	if a := f.raw(t, "GET", "/content/"+guid+"/", "carol", nil); a.status != http.StatusForbidden {
		t.Fatalf("/content/ after leaving the group: %d", a.status)
	}
	var after struct{ Title string }
	f.do(t, "GET", cp, "publisher", "").must(t, &after)
	if after.Title != "by carol" {
		t.Fatalf("title = %q: a refused write changed something, or the allowed one did not", after.Title)
	}

	// Deleting the group takes its permission with it.
	f.do(t, "DELETE", "/__api__/v1/groups/"+g.GUID, "publisher", "").must(t, nil)
	var left []json.RawMessage
	f.do(t, "GET", cp+"/permissions", "publisher", "").must(t, &left)
	if len(left) != 0 {
		t.Fatalf("permissions after group delete: %s", left)
	}
	if a := f.raw(t, "GET", "/content/"+guid+"/", "dave", nil); a.status != http.StatusForbidden {
		t.Fatalf("/content/ after the group was deleted: %d", a.status)
	}
}
