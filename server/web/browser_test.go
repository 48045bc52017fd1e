package web

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/dais-dev/dais/e2e/browser"
	"github.com/dais-dev/dais/server/store"
)

// TestBrowserContentList drives the login form and the content list in
// headless chromium at 1280 and 390 px: log in, search, page, and the
// automated checks (no console errors or failed requests, every input
// labelled, nothing wider than the window) on each page. A viewer's list
// holds none of the ACL-only items.
func TestBrowserContentList(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	pub := f.users["publisher"]
	for i := 0; i < 120; i++ {
		c := &store.Content{Name: fmt.Sprintf("item-%03d", i), Title: fmt.Sprintf("Quarterly sales report %d", i),
			OwnerID: pub.ID, AccessType: store.AccessLoggedIn, AppMode: "shiny"}
		if i%4 == 0 {
			c.AccessType, c.AppMode, c.Title = store.AccessACL, "api", fmt.Sprintf("Private model API %d", i)
		}
		if err := f.st.CreateContent(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	for _, width := range []int{1280, 390} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			b := browser.New(t, width)
			b.Visit(f.ts.URL+"/__login__?next=/connect/", "login")
			b.Run("log in as the viewer",
				chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), "viewer1"),
				chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "pw-viewer"),
				chromedp.Submit(chromedp.CSS(`input[name="password"]`)),
				chromedp.WaitVisible(chromedp.CSS("form.search")))
			b.Check("content-list")
			b.Screenshot("content-list")
			count := browser.Value(b, "count", chromedp.Text(chromedp.CSS("p.count")))
			if count != "1–50 of 90" {
				t.Errorf("viewer's count %q, want 1–50 of 90 (the 30 ACL-only items hidden)", count)
			}
			page := browser.Value(b, "page text", chromedp.Text(chromedp.CSS("main")))
			if strings.Contains(page, "Private model API") {
				t.Errorf("the viewer's list shows ACL-only content")
			}
			// Mark the page, so the wait is for the next one (p.count is on both).
			b.Run("search", chromedp.Evaluate[chromedp.Void](`document.body.dataset.old = "1"`),
				chromedp.SendKeys(chromedp.ID("q"), "report 11"), chromedp.Submit(chromedp.ID("q")),
				chromedp.WaitVisible(chromedp.CSS("body:not([data-old]) p.count")))
			b.Check("content-search")
			b.Screenshot("content-search")
			rows := browser.Value(b, "rows", chromedp.Evaluate[int](`document.querySelectorAll("table.content tbody tr").length`))
			want := 0
			for i := 0; i < 120; i++ {
				if i%4 != 0 && strings.Contains(fmt.Sprint(i), "11") {
					want++
				}
			}
			if rows != want {
				t.Errorf("search report 11: %d rows, want %d", rows, want)
			}
			b.Visit(f.ts.URL+"/connect/?page=1", "content-list-page1")
			b.Run("next page", chromedp.Click(chromedp.CSS(`a[rel="next"]`)), chromedp.WaitVisible(chromedp.CSS(`a[rel="prev"]`)))
			b.Check("content-list-page2")
		})
	}
}
