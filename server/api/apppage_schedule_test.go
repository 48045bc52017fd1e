package api_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	db "github.com/dais-dev/dais/e2e/browser"
	"github.com/dais-dev/dais/server/web"
)

// TestAppPageSchedule: a document's page shows its schedule to its
// editors (when, time zone, next run), sets and removes it, runs it now,
// and lists each render with its result and links to its output and log;
// a viewer sees no schedule and their crafted forms are refused by the
// API's rule; a form without its CSRF token is refused.
func TestAppPageSchedule(t *testing.T) {
	f := newFixture(t)
	guid := f.deployBundle(t, "publisher", "report", exampleBundle(t, "rmarkdown"))
	f.do(t, "PATCH", "/__api__/v1/content/"+guid, "publisher", `{"access_type":"acl"}`).must(t, nil)
	var viewerPerm struct{ ID string }
	f.do(t, "POST", "/__api__/v1/content/"+guid+"/permissions", "publisher", `{"principal_guid":"`+f.users["viewer"].GUID+`","principal_type":"user","role":"viewer"}`).must(t, &viewerPerm)
	f.addUser(t, "outsider", "viewer")
	page := "/connect/apps/" + guid

	pub := f.login(t, "publisher")
	st, body := pub.get(t, page)
	if st != 200 {
		t.Fatalf("owner's page: %d %s", st, body)
	}
	contains(t, "owner's page", body, `id="schedule"`, "Not scheduled", `action="/connect/apps/`+guid+`/render"`,
		`<table class="content renders">`, "succeeded", "(served)", `href="/content/`+guid+`/"`, page+"/logs?task=")
	csrf := csrfOf(body)

	if st, _ := pub.post(t, page+"/schedule", url.Values{"cron": {"0 6 * * *"}}); st != http.StatusForbidden {
		t.Errorf("schedule form without CSRF token: %d, want 403", st)
	}
	// Mistakes are said in words, the API's own where it is the API's.
	st, body = pub.post(t, page+"/schedule", url.Values{"csrf": {csrf}, "cron": {"0 6 * * *"}, "every_minutes": {"5"}})
	contains(t, "both", body, "not both")
	st, body = pub.post(t, page+"/schedule", url.Values{"csrf": {csrf}, "cron": {"0 6 * * *"}, "timezone": {"Nowhere/City"}, "enabled": {"1"}})
	contains(t, "bad zone", body, "IANA")

	st, body = pub.post(t, page+"/schedule", url.Values{"csrf": {csrf}, "cron": {"0 6 * * *"}, "timezone": {"Europe/Berlin"}, "enabled": {"1"}})
	if st != 200 {
		t.Fatalf("schedule: %d %s", st, body)
	}
	contains(t, "after saving", body, "Schedule saved", "cron 0 6 * * *", "Europe/Berlin", `value="0 6 * * *"`,
		`<select name="timezone">`, "<option selected>Europe/Berlin</option>", "<option>America/New_York</option>", "<option>UTC</option>")
	if !regexp.MustCompile(`Next run</dt><dd>\d{4}-\d\d-\d\d 06:00 CES?T`).MatchString(body) {
		t.Errorf("next run not shown at 06:00 Berlin time: %s", body)
	}
	var sc struct {
		Cron     string `json:"cron"`
		Timezone string `json:"timezone"`
		Enabled  bool   `json:"enabled"`
	}
	f.do(t, "GET", "/__api__/v1/content/"+guid+"/schedule", "publisher", "").must(t, &sc)
	if sc.Cron != "0 6 * * *" || sc.Timezone != "Europe/Berlin" || !sc.Enabled {
		t.Fatalf("schedule through the API: %+v", sc)
	}
	st, body = pub.post(t, page+"/schedule", url.Values{"csrf": {csrf}, "every_minutes": {"90"}, "timezone": {"UTC"}})
	contains(t, "interval, paused", body, "Schedule saved", "every 90 min (paused)", `name="every_minutes" type="number" min="1" value="90"`)

	// Run now: a second render, listed first and served once it succeeds.
	st, body = pub.post(t, page+"/render", url.Values{"csrf": {csrf}})
	m := regexp.MustCompile(`Rendering now \(task ([^)]+)\)`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("run now: %d %s", st, body)
	}
	f.waitTask(t, "publisher", m[1])
	_, body = pub.get(t, page)
	if n := strings.Count(body, "<td class=\"state-succeeded\">"); n != 2 {
		t.Errorf("%d succeeded renders listed, want 2", n)
	}
	if !strings.Contains(body, page+"/logs?task="+url.QueryEscape(m[1])) {
		t.Errorf("the new render's log is not linked")
	}
	// The earlier rendering's output, at /content/<guid>/_rev<id>/.
	rev := regexp.MustCompile(`href="(/content/` + guid + `/_rev(\d+)/)"`).FindStringSubmatch(body)
	if rev == nil {
		t.Fatalf("no link to the earlier rendering's output: %s", body)
	}
	if st, out := pub.get(t, rev[1]); st != 200 || !strings.Contains(out, "sum is 6") {
		t.Errorf("the earlier rendering %s: %d %.300s", rev[1], st, out)
	}
	if st, _ := pub.get(t, strings.TrimSuffix(rev[1], "/")); st != http.StatusMovedPermanently {
		t.Errorf("%s without its slash: %d, want a redirect", rev[1], st)
	}
	other := f.deployBundle(t, "publisher", "other-report", offlineRmd(t))
	for _, p := range []string{"/content/" + other + "/_rev" + rev[2] + "/", "/content/" + guid + "/_rev999999/", "/content/" + guid + "/_rev" + rev[2] + "/manifest.json"} {
		if st, _ := pub.get(t, p); st != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", p, st)
		}
	}
	if st, _ := f.login(t, "outsider").get(t, rev[1]); st != http.StatusForbidden {
		t.Errorf("an outsider's %s: %d, want 403", rev[1], st)
	}

	// The viewer: no schedule section; crafted forms refused by the API.
	viewer := f.login(t, "viewer")
	st, body = viewer.get(t, page)
	if st != 200 || strings.Contains(body, `id="schedule"`) || strings.Contains(body, "Run now") {
		t.Errorf("viewer's page: %d, shows the schedule", st)
	}
	vu, _ := url.Parse(f.ts.URL)
	vreq := &http.Request{Header: http.Header{}}
	for _, c := range viewer.client.Jar.Cookies(vu) {
		vreq.AddCookie(c)
	}
	vtok := web.CSRFToken(vreq, "app "+guid)
	for _, action := range []string{"render", "schedule", "schedule-remove"} {
		st, body = viewer.post(t, page+"/"+action, url.Values{"csrf": {vtok}, "cron": {"* * * * *"}})
		if st != 200 || !strings.Contains(body, "may view but not change") {
			t.Errorf("viewer's %s form: %d, want the API's refusal: %s", action, st, body)
		}
	}

	st, body = pub.post(t, page+"/schedule-remove", url.Values{"csrf": {csrf}})
	contains(t, "removed", body, "Schedule removed", "Not scheduled")
}

// TestBrowserAppPageSchedule: in chromium at 1280 and 390 px, the owner
// of a document schedules it with the page's form and runs it now; the
// automated checks run on each page.
func TestBrowserAppPageSchedule(t *testing.T) {
	f := newFixture(t)
	guid := f.deployBundle(t, "publisher", "report", offlineRmd(t))
	f.login(t, "publisher") // sets the password
	for _, width := range []int{1280, 390} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			br := db.New(t, width)
			mark := chromedp.Evaluate[chromedp.Void](`document.body.dataset.old = "1"`)
			br.Run("log in", chromedp.Navigate(f.ts.URL+"/__login__?next=/connect/apps/"+guid),
				chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), "publisher1"),
				chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "pw-publisher"),
				chromedp.Submit(chromedp.CSS(`input[name="password"]`)),
				chromedp.WaitVisible(chromedp.ID("h-schedule")))
			br.Run("schedule", mark,
				chromedp.Evaluate[chromedp.Void](`document.querySelector('#schedule input[name="cron"]').value = ""`),
				chromedp.SendKeys(chromedp.CSS(`#schedule input[name="cron"]`), "30 7 * * 1-5"),
				chromedp.SetValue(chromedp.CSS(`#schedule select[name="timezone"]`), "America/New_York"),
				chromedp.Click(chromedp.CSS(`form[action$="/schedule"] button`)),
				chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) p.banner.ok`)))
			if txt := db.Value(br, "schedule", chromedp.Text(chromedp.CSS(`#schedule dl`))); !strings.Contains(txt, "cron 30 7 * * 1-5") || !strings.Contains(txt, "America/New_York") {
				t.Fatalf("schedule shown: %q", txt)
			}
			br.Run("run now", mark, chromedp.Click(chromedp.CSS(`form[action$="/render"] button`)),
				chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) p.banner.ok`)))
			if msg := db.Value(br, "message", chromedp.Text(chromedp.CSS(`p.banner.ok`))); !strings.Contains(msg, "Rendering now") {
				t.Fatalf("after run now: %q", msg)
			}
			br.Run("to the schedule", chromedp.ScrollIntoView(chromedp.ID("h-schedule")))
			br.Check("content-page-schedule")
			br.Screenshot("content-page-schedule")
		})
	}
}

// offlineRmd is an R Markdown document whose output loads nothing from
// elsewhere (html_document's default MathJax comes from the internet,
// which the browser checks would count as a failed request).
func offlineRmd(t *testing.T) []byte {
	t.Helper()
	doc := "---\ntitle: \"Weekly report\"\noutput:\n  html_document:\n    mathjax: null\n---\n\nRendered by dais.\n\n```{r}\ncat(\"sum is\", sum(1:3), \"\\n\")\n```\n"
	sum := md5.Sum([]byte(doc))
	manifest := `{"version":1,"metadata":{"appmode":"rmd-static","primary_rmd":"doc.Rmd"},"files":{"doc.Rmd":{"checksum":"` + hex.EncodeToString(sum[:]) + `"}}}`
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, file := range []struct{ name, body string }{{"manifest.json", manifest}, {"doc.Rmd", doc}} {
		if err := tw.WriteHeader(&tar.Header{Name: file.name, Mode: 0o644, Size: int64(len(file.body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(file.body))
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}
