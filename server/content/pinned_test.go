package content_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/dais-dev/dais/internal/shinytest"
	"github.com/dais-dev/dais/server/content"
	"github.com/dais-dev/dais/server/content/manifest"
	"github.com/dais-dev/dais/server/process"
)

// servePinned runs e2e/testdata/shiny-pinned (its download link answers
// "process <id> session <token>", and only on the process holding the
// session) with two processes, pinned as the deploy code pins Shiny apps.
func servePinned(t *testing.T) string {
	t.Helper()
	r := need(t, manifest.LangR, "/usr/bin/R", "library(shiny)")
	code, err := filepath.Abs(filepath.Join("..", "..", "e2e", "testdata", "shiny-pinned"))
	if err != nil {
		t.Fatal(err)
	}
	return serveCode(t, code, content.Runtimes{R: r}, process.Options{Min: 2, Max: 2, Pin: true})
}

// TestPinnedShinySessions: a Shiny app with two processes, two sessions
// open at once. Every request of each session (the page's scripts, the
// WebSocket, its download link five times) reaches the process that
// started it. Before sessions were pinned, the proxy sent each request to
// the least busy process: the second session's downloads went to the
// first's process and answered 404.
func TestPinnedShinySessions(t *testing.T) {
	base := servePinned(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	client := &http.Client{Timeout: 30 * time.Second}
	pids := map[string]bool{}
	type session struct {
		page *shinytest.Page
		s    *shinytest.Session
		pid  string
		dl   string
	}
	var sessions []session
	for i := range 2 {
		page, err := shinytest.LoadPage(ctx, client, base+"/", nil)
		if err != nil {
			t.Fatal(err)
		}
		// The page's own scripts come through its base too.
		for _, src := range regexp.MustCompile(`<script src="([^"]+)"`).FindAllStringSubmatch(page.HTML, -1) {
			resp, err := client.Get(page.Resolve(src[1]))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("session %d: %s: %s", i, page.Resolve(src[1]), resp.Status)
			}
		}
		s := shinytest.Dial(t, ctx, page.WebSocket(), nil)
		init := shinytest.Init(page.URL.Path, nil, "pid", "dl")
		s.Send(t, "init", init)
		s.Expect(t, `"pid":"process `, `"dl":"session/`)
		var pid, dl string
		json.Unmarshal(s.Value("pid"), &pid)
		json.Unmarshal(s.Value("dl"), &dl)
		pid = strings.TrimPrefix(pid, "process ")
		t.Logf("session %d: page base %s, WebSocket %s, process %s, download %s", i, page.Base, page.WebSocket(), pid, dl)
		pids[pid] = true
		sessions = append(sessions, session{page, s, pid, dl})
	}
	if len(pids) != 2 {
		t.Fatalf("both sessions started on process %v: the test needs one on each", pids)
	}
	for i, x := range sessions {
		token := strings.Split(x.dl, "/")[1]
		for n := range 5 {
			u := x.page.Resolve(x.dl)
			resp, err := client.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got := strings.TrimSpace(string(b))
			if resp.StatusCode != http.StatusOK || got != "process "+x.pid+" session "+token {
				t.Errorf("session %d (process %s), download %d, GET %s: %s %q; want 200 %q",
					i, x.pid, n, u, resp.Status, got, "process "+x.pid+" session "+token)
			}
		}
	}
}

// TestPinnedShinySessionsInBrowser: the same in a real browser (Debian's
// chromium, headless): two tabs, each a session of the app with two
// processes; each tab fetches its download link five times, and every
// answer names the tab's own process and session. This checks what a
// Go client cannot: that shiny.js, given the page dais serves, opens its
// WebSocket and resolves its links below the worker's base.
func TestPinnedShinySessionsInBrowser(t *testing.T) {
	base := servePinned(t)
	ctx := newBrowser(t)
	// tab opens a session in a new tab and returns its process and token.
	tab := func(i int) (context.Context, string, string) {
		tab := openTab(t, ctx, base+"/", `(document.getElementById("pid")||{}).textContent && document.getElementById("dl").getAttribute("href") && window.Shiny.shinyapp.config.sessionId`)
		pid, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.getElementById("pid").textContent`))
		if err != nil {
			t.Fatal(err)
		}
		token, err := chromedp.Run(tab, chromedp.Evaluate[string](`window.Shiny.shinyapp.config.sessionId`))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("tab %d: %s, session %s", i, pid, token)
		return tab, pid, token
	}
	type session struct {
		tab        context.Context
		pid, token string
	}
	var sessions []session
	pids := map[string]bool{}
	for i := range 2 {
		c, pid, token := tab(i)
		pids[pid] = true
		sessions = append(sessions, session{c, pid, token})
	}
	if len(pids) != 2 {
		t.Fatalf("both tabs' sessions started on %v: the test needs one on each process", pids)
	}
	for i, x := range sessions {
		answers, err := chromedp.Run(x.tab, chromedp.Evaluate[[]string](`(async () => {
				const out = [];
				for (let i = 0; i < 5; i++) {
					const r = await fetch(document.getElementById("dl").href);
					out.push(r.status + " " + (await r.text()).trim());
				}
				return out;
			})()`, func(p *cdpruntime.EvaluateParams) { yes := true; p.AwaitPromise = &yes }))
		if err != nil {
			t.Fatalf("tab %d: %v", i, err)
		}
		want := "200 " + x.pid + " session " + x.token
		for n, a := range answers {
			if a != want {
				t.Errorf("tab %d, download %d: %q; want %q", i, n, a, want)
			}
		}
		t.Logf("tab %d: %d downloads: %q", i, len(answers), answers)
	}
	// A link to a place in the page stays in the page (the base would
	// send it to .../_w_<worker>/#end), and the session goes on.
	x := sessions[0]
	where, err := chromedp.Run(x.tab, chromedp.Evaluate[string](`document.getElementById("jump").click(), location.pathname + location.hash`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(where, "/content/guid-shiny-pinned/#end") {
		t.Errorf("after a click on href=\"#end\" the tab is at %q; want the page's own path with #end", where)
	}
	if err := chromedp.Do(x.tab, chromedp.Poll[chromedp.Void](`window.Shiny.shinyapp.isConnected()`, chromedp.WithPollingTimeout(5*time.Second))); err != nil {
		t.Errorf("the session ended after the in-page link: %v", err)
	}
}

// newBrowser starts headless chromium for the test and returns a context
// of it that ends within 2 minutes.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromiumPath(t)), chromedp.NoSandbox, chromedp.Flag("disable-gpu", true))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelB := chromedp.NewContext(actx)
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(bctx, 2*time.Minute)
	t.Cleanup(func() { cancel(); cancelB(); cancelA() })
	return ctx
}

// openTab opens url in a new tab and waits until the expression ready is
// true, failing t with what went wrong in the page (uncaught exceptions,
// HTTP errors) when it is not within 60 s, or when the page had an HTTP
// error on its way (but for the browser's own /favicon.ico).
func openTab(t *testing.T, ctx context.Context, url, ready string) context.Context {
	t.Helper()
	var mu sync.Mutex
	var problems []string
	tab, _ := chromedp.NewContext(ctx, chromedp.WithListener(func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *cdpruntime.EventExceptionThrown:
			problems = append(problems, "uncaught: "+e.ExceptionDetails.Exception.Description)
		case *network.EventResponseReceived:
			if e.Response.Status >= 400 && !strings.HasSuffix(e.Response.URL, "/favicon.ico") {
				problems = append(problems, fmt.Sprintf("HTTP %d from %s", e.Response.Status, e.Response.URL))
			}
		}
	}))
	err := chromedp.Do(tab, chromedp.Navigate(url), chromedp.Poll[chromedp.Void](ready, chromedp.WithPollingTimeout(60*time.Second)))
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		t.Fatalf("%s: the Shiny session did not start: %v; in the page:\n%s", url, err, strings.Join(problems, "\n"))
	}
	if len(problems) > 0 {
		t.Errorf("%s: in the page:\n%s", url, strings.Join(problems, "\n"))
	}
	return tab
}

// TestPinnedRmdShinyInBrowser: the R Markdown document with runtime:
// shiny (examples/rmd-shiny) with two processes, two tabs at once: each
// document renders through its session (the WebSocket below the worker's
// base), with its figure, which the process that rendered it serves, and
// no request of the page fails.
func TestPinnedRmdShinyInBrowser(t *testing.T) {
	r := need(t, manifest.LangR, "/usr/bin/R", "library(rmarkdown); library(shiny)")
	code, err := filepath.Abs(filepath.Join("..", "..", "examples", "rmd-shiny"))
	if err != nil {
		t.Fatal(err)
	}
	base := serveCode(t, code, content.Runtimes{R: r}, process.Options{Min: 2, Max: 2, Pin: true})
	ctx := newBrowser(t)
	ready := `(function(){var e=document.getElementById("echo"), f=document.querySelector('img[src*="dais-figure"]');` +
		`return e && e.textContent.indexOf("echo: hello")===0 && f && f.complete && f.naturalWidth>0})()`
	for i := range 2 {
		tab := openTab(t, ctx, base+"/", ready)
		src, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.querySelector('img[src*="dais-figure"]').src`))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("tab %d: the document rendered with its figure (%s)", i, src)
	}
}

// chromiumPath finds Debian's chromium: the test skips without it, or
// fails when CI=true.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"chromium", "chromium-browser"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium on PATH (CI=true: browser tests may not skip; scripts/test-env.sh installs it)")
	}
	t.Skip("no chromium on PATH")
	return ""
}
