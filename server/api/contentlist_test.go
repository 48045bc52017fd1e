package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	db "github.com/dais-dev/dais/e2e/browser"
)

// flaskBundle is a Python API that answers "ok".
func flaskBundle(t *testing.T) []byte {
	t.Helper()
	app := "from flask import Flask\napp = Flask(__name__)\n\n@app.route(\"/\")\ndef index():\n    return \"ok\"\n"
	return bundleOf(t, "python-api", `"python":{"version":"3","package_manager":{"name":"pip","package_file":"requirements.txt"}},`,
		map[string]string{"app.py": app, "requirements.txt": "flask\n"})
}

// TestContentListAndTags: the content list filters by tag and sorts, and
// each row says its state (running processes, a document's last render);
// the content page adds and removes tags through the API (a viewer's
// crafted form is refused); the profile page shows the user and saves
// their e-mail; the breadcrumb ends with the content's title.
func TestContentListAndTags(t *testing.T) {
	f := newFixture(t)
	app := f.deployBundle(t, "publisher", "zeta-app", flaskBundle(t))
	f.raw(t, "GET", "/content/"+app+"/", "publisher", nil).must(t, nil)
	doc := f.deployBundle(t, "publisher", "alpha-report", offlineRmd(t))
	site := f.deployStatic(t, "publisher", "mid-site", "<p>site</p>")
	var region, europe struct{ ID string }
	f.do(t, "POST", "/__api__/v1/tags", "administrator", `{"name":"Region"}`).must(t, &region)
	f.do(t, "POST", "/__api__/v1/tags", "administrator", `{"name":"Europe","parent_id":"`+region.ID+`"}`).must(t, &europe)

	pub := f.login(t, "publisher")
	_, body := pub.get(t, "/connect/?sort=name")
	order := regexp.MustCompile(`<a href="/connect/apps/[^"]+">([^<]+)</a>`).FindAllStringSubmatch(body, -1)
	var names []string
	for _, m := range order {
		names = append(names, m[1])
	}
	if strings.Join(names, ",") != "alpha-report,mid-site,zeta-app" {
		t.Errorf("sorted by name: %v", names)
	}
	contains(t, "list", body, `<option value="`+europe.ID+`">Region / Europe</option>`, `<option value="name" selected>name</option>`,
		`<span class="running">1 running</span>`, `<span class="render-succeeded">render succeeded</span>`)

	// Tag the site on its page, find it by the tag.
	page := "/connect/apps/" + site
	_, body = pub.get(t, page)
	contains(t, "content page", body, `id="tags"`, `<option value="`+europe.ID+`">Region / Europe</option>`,
		`<span aria-current="page">mid-site</span>`)
	csrf := csrfOf(body)
	if st, _ := pub.post(t, page+"/tag-add", url.Values{"tag_id": {europe.ID}}); st != http.StatusForbidden {
		t.Errorf("tag form without CSRF token: %d, want 403", st)
	}
	st, body := pub.post(t, page+"/tag-add", url.Values{"csrf": {csrf}, "tag_id": {europe.ID}})
	contains(t, "tag added", body, "Tag added.", `aria-label="Remove tag Europe"`)
	var tags []struct{ ID, Name string }
	f.do(t, "GET", "/__api__/v1/content/"+site+"/tags", "publisher", "").must(t, &tags)
	if len(tags) != 1 || tags[0].ID != europe.ID {
		t.Fatalf("tags through the API: %+v", tags)
	}
	_, body = pub.get(t, "/connect/?tag="+europe.ID)
	if !strings.Contains(body, "/connect/apps/"+site) || strings.Contains(body, "/connect/apps/"+app) || strings.Contains(body, "/connect/apps/"+doc) {
		t.Errorf("filtered by tag Europe: %s", body)
	}
	contains(t, "tag filter kept", body, `<option value="`+europe.ID+`" selected>Region / Europe</option>`)

	// A viewer's crafted form, with their own valid token: the API refuses.
	f.do(t, "PATCH", "/__api__/v1/content/"+site, "publisher", `{"access_type":"logged_in"}`).must(t, nil)
	viewer := f.login(t, "viewer")
	st, body = viewer.post(t, page+"/tag-remove", url.Values{"csrf": {sessionToken(t, viewer, "app "+site)}, "tag_id": {europe.ID}})
	if st != 200 || !strings.Contains(body, "may view but not change") {
		t.Errorf("viewer's tag form: %d %s", st, body)
	}
	_, body = pub.post(t, page+"/tag-remove", url.Values{"csrf": {csrf}, "tag_id": {europe.ID}})
	contains(t, "tag removed", body, "Tag removed.")
	f.do(t, "GET", "/__api__/v1/content/"+site+"/tags", "publisher", "").must(t, &tags)
	if len(tags) != 0 {
		t.Fatalf("tags after removal: %+v", tags)
	}

	// Render now is offered to who may render (the API's rule) only.
	f.do(t, "PATCH", "/__api__/v1/content/"+doc, "publisher", `{"access_type":"logged_in"}`).must(t, nil)
	_, body = pub.get(t, "/connect/")
	contains(t, "the owner's list", body, `class="render" data-guid="`+doc+`"`)
	_, body = viewer.get(t, "/connect/")
	contains(t, "the viewer's list", body, "alpha-report", "render succeeded")
	if strings.Contains(body, `class="render"`) {
		t.Error("the viewer's list offers Render now")
	}

	// Profile.
	_, body = viewer.get(t, "/connect/profile")
	contains(t, "profile", body, "<dd>viewer1</dd>", "<dd>viewer", `action="/__logout__"`)
	if st, _ := viewer.post(t, "/connect/profile", url.Values{"email": {"v@example.org"}}); st != http.StatusForbidden {
		t.Errorf("profile form without CSRF token: %d, want 403", st)
	}
	_, body = viewer.post(t, "/connect/profile", url.Values{"csrf": {csrfOf(body)}, "first_name": {"Vera"}, "email": {"v@example.org"}})
	contains(t, "profile saved", body, "Saved.", "<dd>v@example.org</dd>", "Vera")
	var me struct {
		Email    string `json:"email"`
		UserRole string `json:"user_role"`
	}
	f.do(t, "GET", "/__api__/v1/user", "viewer", "").must(t, &me)
	if me.Email != "v@example.org" || me.UserRole != "viewer" {
		t.Fatalf("viewer after the profile form: %+v", me)
	}
}

// TestBrowserContentList: in chromium at 1280 and 390 px, filter the
// list by tag and sort it, tag a content on its page, open the profile.
func TestBrowserContentList(t *testing.T) {
	f := newFixture(t)
	site := f.deployStatic(t, "publisher", "tagged-site", "<p>site</p>")
	f.deployStatic(t, "publisher", "other-site", "<p>other</p>")
	var tag struct{ ID string }
	f.do(t, "POST", "/__api__/v1/tags", "administrator", `{"name":"Finance"}`).must(t, &tag)
	f.login(t, "publisher")
	for _, width := range []int{1280, 390} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			br := db.New(t, width)
			mark := chromedp.Evaluate[chromedp.Void](`document.body.dataset.old = "1"`)
			br.Run("log in", chromedp.Navigate(f.ts.URL+"/__login__?next=/connect/apps/"+site),
				chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), "publisher1"),
				chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "pw-publisher"),
				chromedp.Submit(chromedp.CSS(`input[name="password"]`)),
				chromedp.WaitVisible(chromedp.ID("h-tags")))
			if n := db.Value(br, "tags", chromedp.Evaluate[int](`document.querySelectorAll("ul.tags li").length`)); n == 0 {
				br.Run("add the tag", mark, chromedp.Click(chromedp.CSS(`form[action$="/tag-add"] button`)),
					chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) ul.tags`)))
			}
			br.Run("to the tags", chromedp.ScrollIntoView(chromedp.ID("h-tags")))
			br.Check("content-page-tags")
			br.Screenshot("content-page-tags")
			br.Run("the list", chromedp.Navigate(f.ts.URL+"/connect/"), chromedp.WaitVisible(chromedp.ID("tag")))
			br.Run("filter by tag and sort", mark,
				chromedp.SetValue(chromedp.ID("tag"), tag.ID),
				chromedp.SetValue(chromedp.ID("sort"), "name"),
				chromedp.Click(chromedp.CSS(`form.search button`)),
				chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) p.count`)))
			rows := db.Value(br, "rows", chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("table.content tbody a")).map(a => a.textContent)`))
			if len(rows) != 1 || rows[0] != "tagged-site" {
				t.Fatalf("filtered by tag: %v", rows)
			}
			br.Check("content-list-tag")
			br.Screenshot("content-list-tag")
			br.Visit(f.ts.URL+"/connect/profile", "profile")
		})
	}
}
