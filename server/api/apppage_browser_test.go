package api_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	db "github.com/dais-dev/dais/e2e/browser"
)

// TestBrowserAppPage drives the content page in headless chromium at 1280
// and 390 px: open the link clients print (/connect/#/apps/<guid>) logged
// out, log in, land on the content's page (the fragment kept across the
// login), see the content in its frame, roll back to the older bundle and
// set an environment variable with the page's forms; the automated checks
// run on every page.
func TestBrowserAppPage(t *testing.T) {
	f := newFixture(t)
	guid := f.deployStatic(t, "publisher", "browsersite", "<p>version one</p>")
	var b struct{ ID string }
	f.raw(t, "POST", "/__api__/v1/content/"+guid+"/bundles", "publisher", staticBundle(t, "<p>version two</p>")).must(t, &b)
	var task struct {
		TaskID string `json:"task_id"`
	}
	f.do(t, "POST", "/__api__/v1/content/"+guid+"/deploy", "publisher", `{"bundle_id":"`+b.ID+`"}`).must(t, &task)
	f.waitTask(t, "publisher", task.TaskID)
	f.login(t, "publisher") // sets the password
	for _, width := range []int{1280, 390} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			br := db.New(t, width)
			br.Run("open the printed link", chromedp.Navigate(f.ts.URL+"/connect/#/apps/"+guid),
				chromedp.WaitVisible(chromedp.CSS(`input[name="password"]`)))
			br.Check("login")
			br.Run("log in",
				chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), "publisher1"),
				chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "pw-publisher"),
				chromedp.Submit(chromedp.CSS(`input[name="password"]`)),
				chromedp.WaitVisible(chromedp.ID("h-info")))
			loc := db.Value(br, "location", chromedp.Evaluate[string](`location.pathname`))
			if loc != "/connect/apps/"+guid {
				t.Fatalf("the printed link led to %s", loc)
			}
			br.Run("the frame loads", chromedp.Poll[chromedp.Void](`(function(){var f=document.querySelector("iframe.content-frame");return f&&f.contentDocument&&f.contentDocument.body&&f.contentDocument.body.textContent.indexOf("version ")>=0})()`))
			br.Check("content-page")
			br.Screenshot("content-page")
			rows := db.Value(br, "bundle rows", chromedp.Evaluate[int](`document.querySelectorAll("table.bundles tbody tr").length`))
			if rows != 2 {
				t.Fatalf("%d bundle rows, want 2", rows)
			}
			br.Run("roll back", chromedp.Evaluate[chromedp.Void](`document.body.dataset.old = "1"`),
				chromedp.Click(chromedp.CSS(`table.bundles button`)),
				chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) p.banner.ok`)))
			msg := db.Value(br, "message", chromedp.Text(chromedp.CSS(`p.banner.ok`)))
			if !strings.Contains(msg, "Activating bundle") {
				t.Fatalf("after the rollback the page says %q", msg)
			}
			br.Check("content-page-rollback")
			name := fmt.Sprintf("BROWSER_VAR_%d", width)
			br.Run("type a name", chromedp.SendKeys(chromedp.CSS(`#environment form.row input[name="name"]`), name))
			br.Run("type a value", chromedp.SendKeys(chromedp.CSS(`#environment form.row input[name="value"]`), "s3cret"))
			br.Run("set a variable", chromedp.Evaluate[chromedp.Void](`document.body.dataset.old = "1"`),
				chromedp.Click(chromedp.CSS(`#environment form.row button`)),
				chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) p.banner.ok`)))
			env := db.Value(br, "env", chromedp.Text(chromedp.CSS(`ul.env`)))
			if !strings.Contains(env, name) {
				t.Fatalf("environment list %q lacks %s", env, name)
			}
			if html := db.Value(br, "html", chromedp.Evaluate[string](`document.documentElement.outerHTML`)); strings.Contains(html, "s3cret") {
				t.Fatal("the page shows a variable's value")
			}
			br.Check("content-page-env")
			br.Screenshot("content-page-env")
		})
	}
}
