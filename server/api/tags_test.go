package api_test

import (
	"net/http"
	"testing"
)

type tagOut struct {
	ID       string  `json:"id"`
	Name     string  `json:"name"`
	ParentID *string `json:"parent_id"`
}

func TestTags(t *testing.T) {
	f := newFixture(t)
	f.addUser(t, "bob", "publisher")
	report := f.deployStatic(t, "publisher", "report", "<p>report</p>")
	dash := f.deployStatic(t, "publisher", "dash", "<p>dash</p>")
	hidden := f.deployStatic(t, "bob", "hidden", "<p>bob's</p>")

	var dept, sales, emea tagOut
	f.do(t, "POST", "/__api__/v1/tags", "administrator", `{"name":"Department"}`).must(t, &dept)
	// connectapi sends parent_id as a string; a number works too.
	f.do(t, "POST", "/__api__/v1/tags", "administrator", `{"name":"Sales","parent_id":"`+dept.ID+`"}`).must(t, &sales)
	f.do(t, "POST", "/__api__/v1/tags", "administrator", `{"name":"EMEA","parent_id":`+sales.ID+`}`).must(t, &emea)
	if dept.ParentID != nil || sales.ParentID == nil || *sales.ParentID != dept.ID || *emea.ParentID != sales.ID {
		t.Fatalf("tree: %+v %+v %+v", dept, sales, emea)
	}
	tp := "/__api__/v1/tags/"
	f.run(t, []apiCase{
		{"publisher cannot create", "POST", "/__api__/v1/tags", "publisher", `{"name":"x"}`, 403, "administrator"},
		{"same name among siblings", "POST", "/__api__/v1/tags", "administrator", `{"name":"Sales","parent_id":"` + dept.ID + `"}`, 409, "exists already"},
		{"unknown parent", "POST", "/__api__/v1/tags", "administrator", `{"name":"x","parent_id":"9999"}`, 400, "parent_id: no tag 9999"},
		{"bad parent", "POST", "/__api__/v1/tags", "administrator", `{"name":"x","parent_id":"abc"}`, 400, "parent_id must be a tag id"},
		{"no name", "POST", "/__api__/v1/tags", "administrator", `{}`, 400, "name is required"},
		{"list", "GET", "/__api__/v1/tags", "viewer", "", 200, `"name":"EMEA"`},
		{"top level", "GET", "/__api__/v1/tags?parent_id=", "viewer", "", 200, `"name":"Department"`},
		{"one tag", "GET", tp + emea.ID, "viewer", "", 200, `"parent_id":"` + sales.ID + `"`},
		{"unknown tag", "GET", tp + "9999", "viewer", "", 404, "no tag"},
		{"non-numeric tag", "GET", tp + "abc", "viewer", "", 404, "numbers"},
		{"below itself", "PATCH", tp + dept.ID, "administrator", `{"parent_id":"` + emea.ID + `"}`, 400, "below itself"},
		{"rename", "PATCH", tp + emea.ID, "administrator", `{"name":"Europe"}`, 200, `"name":"Europe"`},
		{"publisher cannot rename", "PATCH", tp + emea.ID, "publisher", `{"name":"x"}`, 403, "administrator"},
		// Content's tags: editors set them, viewers read them.
		{"tag content", "POST", "/__api__/v1/content/" + report + "/tags", "publisher", `{"tag_id":"` + emea.ID + `"}`, 200, `"name":"Europe"`},
		{"tag other content", "POST", "/__api__/v1/content/" + dash + "/tags", "publisher", `{"tag_id":` + sales.ID + `}`, 200, `"name":"Sales"`},
		{"bob tags his", "POST", "/__api__/v1/content/" + hidden + "/tags", "bob", `{"tag_id":"` + sales.ID + `"}`, 200, "Sales"},
		{"tag twice", "POST", "/__api__/v1/content/" + report + "/tags", "publisher", `{"tag_id":"` + emea.ID + `"}`, 409, "already"},
		{"unknown tag on content", "POST", "/__api__/v1/content/" + report + "/tags", "publisher", `{"tag_id":"9999"}`, 400, "no tag"},
		{"tag without id", "POST", "/__api__/v1/content/" + report + "/tags", "publisher", `{}`, 400, "tag_id is required"},
		{"another's content", "POST", "/__api__/v1/content/" + hidden + "/tags", "publisher", `{"tag_id":"` + dept.ID + `"}`, 404, "no content"},
		{"viewer cannot tag", "POST", "/__api__/v1/content/" + report + "/tags", "viewer", `{"tag_id":"` + dept.ID + `"}`, 404, "no content"},
		{"content's tags", "GET", "/__api__/v1/content/" + report + "/tags", "publisher", "", 200, `"name":"Europe"`},
		{"include tags and owner", "GET", "/__api__/v1/content/" + report + "?include=tags,owner", "publisher", "", 200, `"owner":{"guid":"`},
		// Content by tag, only what the user may see.
		{"by tag", "GET", tp + sales.ID + "/content", "publisher", "", 200, `"name":"dash"`},
		{"search by tag", "GET", "/__api__/v1/search/content?q=tag:Sales", "publisher", "", 200, `"total":1`},
		{"search by quoted tag and word", "GET", "/__api__/v1/search/content?q=" + "tag:%22Europe%22+REP", "publisher", "", 200, `"name":"report"`},
		{"search matches nothing", "GET", "/__api__/v1/search/content?q=tag:Sales+report", "publisher", "", 200, `"total":0`},
		{"search mine", "GET", "/__api__/v1/search/content?q=owner:@me", "bob", "", 200, `"total":1`},
		{"untag", "DELETE", "/__api__/v1/content/" + report + "/tags/" + emea.ID, "publisher", "", 200, "{}"},
		{"untag twice", "DELETE", "/__api__/v1/content/" + report + "/tags/" + emea.ID, "publisher", "", 404, "does not have tag"},
	})
	var byTag []struct{ Name string }
	f.do(t, "GET", tp+sales.ID+"/content", "publisher", "").must(t, &byTag)
	if len(byTag) != 1 || byTag[0].Name != "dash" {
		t.Fatalf("content tagged Sales for publisher = %+v (bob's must not show)", byTag)
	}
	var withTags struct {
		Tags []tagOut
	}
	f.do(t, "GET", "/__api__/v1/content/"+dash+"?include=tags", "publisher", "").must(t, &withTags)
	if len(withTags.Tags) != 1 || withTags.Tags[0].ID != sales.ID {
		t.Fatalf("include=tags = %+v", withTags)
	}

	// Deleting a tag takes the tags below it and them off content.
	f.do(t, "DELETE", tp+dept.ID, "administrator", "").must(t, nil)
	if a := f.do(t, "GET", tp+emea.ID, "viewer", ""); a.status != http.StatusNotFound {
		t.Fatalf("tag below a deleted one: %d", a.status)
	}
	var left []tagOut
	f.do(t, "GET", "/__api__/v1/content/"+dash+"/tags", "publisher", "").must(t, &left)
	if len(left) != 0 {
		t.Fatalf("tags after delete: %+v", left)
	}
}
