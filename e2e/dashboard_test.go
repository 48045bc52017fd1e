package e2e

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/dais-dev/dais/e2e/browser"
)

// journeyApp is a Flask app that says which version it is and the value
// of GREETING in its environment.
func journeyApp(version string) string {
	return `import os
from flask import Flask
app = Flask(__name__)

@app.route("/")
def index():
    return "<p>hello ` + version + `</p>"

@app.route("/greeting")
def greeting():
    return "greeting=" + os.environ.get("GREETING", "unset")

@app.route("/say/<word>")
def say(word):
    print("said " + word, flush=True)
    return "ok"
`
}

// waitContent polls an anonymous GET of path until its body holds want.
func waitContent(t *testing.T, c *Container, path, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var body string
	for time.Now().Before(deadline) {
		var status int
		status, body = c.Get(path)
		if status == http.StatusOK && strings.Contains(body, want) {
			return
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("GET %s: no %q within %s; last body %q", path, want, within, body)
}

// TestDashboardJourneys drives the dashboard of the container in headless
// chromium as a publisher would: log in, find the content by search, open
// it from the link clients print (/connect/#/apps/<guid>), roll back to
// the older bundle (the app answers with it), set an environment variable
// (the app restarts and answers with it), make it private and add a
// viewer who opens it in a second browser without any setting, create
// an API key (it works)
// and delete it (it is refused). Every page is checked (console errors,
// failed requests, labels, width) and saved as a screenshot (e2e-*).
func TestDashboardJourneys(t *testing.T) {
	c, key := deployServer(t)
	name := "journey-" + strconv.FormatInt(time.Now().UnixNano()%100000, 10)
	guid, tk, out := deployV1(t, c, key, name, bundle(t, flaskDir(t, journeyApp("one"))))
	if tk.Code != 0 {
		t.Fatalf("deploy one: %s\n%s", tk.Error, out)
	}
	// A second bundle of the same content.
	var b struct {
		ID string `json:"id"`
	}
	apiJSON(t, c, "POST", "/__api__/v1/content/"+guid+"/bundles", key, bytes.NewReader(bundle(t, flaskDir(t, journeyApp("two")))), &b)
	var d struct {
		TaskID string `json:"task_id"`
	}
	apiJSON(t, c, "POST", "/__api__/v1/content/"+guid+"/deploy", key, strings.NewReader(`{"bundle_id":"`+b.ID+`"}`), &d)
	waitContent(t, c, "/content/"+guid+"/", "hello two", 3*time.Minute)

	br := browser.New(t, 1280)
	shot := func(name string) { br.Check(name); br.Screenshot(name) }
	// Waits for the page that follows an action (the old one is marked).
	mark := chromedp.Evaluate[chromedp.Void](`document.body.dataset.old = "1"`)

	// Log in.
	br.Run("log in", chromedp.Navigate(c.URL("/__login__")),
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), "alice"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "alice-password-e2e"),
		chromedp.Submit(chromedp.CSS(`input[name="password"]`)),
		chromedp.WaitVisible(chromedp.CSS(`form.search`)))
	shot("e2e-content-list")

	// Search.
	br.Run("search", mark, chromedp.SendKeys(chromedp.ID("q"), name), chromedp.Submit(chromedp.ID("q")),
		chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) p.count`)))
	if href := browser.Value(br, "result", chromedp.Evaluate[string](`(document.querySelector("table.content tbody a")||{}).getAttribute ? document.querySelector("table.content tbody a").getAttribute("href") : ""`)); href != "/connect/apps/"+guid {
		t.Fatalf("search for %s: first result %q, want /connect/apps/%s", name, href, guid)
	}
	shot("e2e-content-search")

	// Open the content from the link clients print.
	br.Run("open the printed link", chromedp.Navigate(c.URL("/connect/#/apps/"+guid)),
		chromedp.WaitVisible(chromedp.ID("h-info")))
	if loc := browser.Value(br, "location", chromedp.Evaluate[string](`location.pathname`)); loc != "/connect/apps/"+guid {
		t.Fatalf("the printed link led to %s", loc)
	}
	br.Run("the frame shows the app", chromedp.Poll[chromedp.Void](`(function(){var f=document.querySelector("iframe.content-frame");return f&&f.contentDocument&&f.contentDocument.body&&f.contentDocument.body.textContent.indexOf("hello two")>=0})()`))
	shot("e2e-content-page")

	// Roll back to the older bundle.
	br.Run("roll back", mark, chromedp.Click(chromedp.CSS(`table.bundles button`)),
		chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) p.banner.ok`)))
	if msg := browser.Value(br, "message", chromedp.Text(chromedp.CSS(`p.banner.ok`))); !strings.Contains(msg, "Activating bundle") {
		t.Fatalf("after the rollback the page says %q", msg)
	}
	waitContent(t, c, "/content/"+guid+"/", "hello one", 3*time.Minute)
	shot("e2e-content-rollback")

	// Set an environment variable: the app restarts with it.
	waitContent(t, c, "/content/"+guid+"/greeting", "greeting=unset", time.Minute)
	br.Run("set GREETING", mark,
		chromedp.SendKeys(chromedp.CSS(`#environment form.row input[name="name"]`), "GREETING"),
		chromedp.SendKeys(chromedp.CSS(`#environment form.row input[name="value"]`), "bonjour"),
		chromedp.Click(chromedp.CSS(`#environment form.row button`)),
		chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) ul.env`)))
	if env := browser.Value(br, "env", chromedp.Text(chromedp.CSS(`ul.env`))); !strings.Contains(env, "GREETING") {
		t.Fatalf("environment list %q", env)
	}
	waitContent(t, c, "/content/"+guid+"/greeting", "greeting=bonjour", 2*time.Minute)
	shot("e2e-content-env")

	// Access: only specific users, then a viewer added by name, who opens
	// it in a second browser and sees no setting.
	if r := c.Exec("sh", "-c", "echo bob-password-e2e | dais users add --role viewer bob"); r.Code != 0 {
		t.Fatalf("dais users add bob: %d %s%s", r.Code, r.Stdout, r.Stderr)
	}
	br.Run("access: specific users", mark,
		chromedp.SetValue(chromedp.CSS(`#access select[name="access_type"]`), "acl"),
		chromedp.Click(chromedp.CSS(`form[action$="/access"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) p.banner.ok`)))
	second := browser.New(t, 1280)
	second.Run("bob logs in", chromedp.Navigate(c.URL("/__login__")),
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), "bob"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "bob-password-e2e"),
		chromedp.Submit(chromedp.CSS(`input[name="password"]`)),
		chromedp.WaitVisible(chromedp.CSS(`form.search`)))
	if n := browser.Value(second, "bob's list", chromedp.Evaluate[int](`document.querySelectorAll("table.content tbody tr").length`)); n != 0 {
		t.Fatalf("bob's list before he is added: %d rows, want 0", n)
	}
	second.Check("e2e-viewer-list-empty")
	br.Run("add bob", mark,
		chromedp.SendKeys(chromedp.CSS(`form[action$="/permission-add"] input[name="principal"]`), "bob"),
		chromedp.Click(chromedp.CSS(`form[action$="/permission-add"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) p.banner.ok`)))
	if perms := browser.Value(br, "perms", chromedp.Text(chromedp.CSS(`ul.perms`))); !strings.Contains(perms, "bob") {
		t.Fatalf("viewers list %q lacks bob", perms)
	}
	shot("e2e-content-access")
	second.Run("bob opens it", chromedp.Navigate(c.URL("/connect/#/apps/"+guid)), chromedp.WaitVisible(chromedp.ID("h-info")),
		chromedp.Poll[chromedp.Void](`(function(){var f=document.querySelector("iframe.content-frame");return f&&f.contentDocument&&f.contentDocument.body&&f.contentDocument.body.textContent.indexOf("hello one")>=0})()`))
	if n := browser.Value(second, "bob's forms", chromedp.Evaluate[int](`document.querySelectorAll("main form, #environment, #runtime, #access, #delete").length`)); n != 0 {
		t.Fatalf("the viewer's page has %d forms or settings sections", n)
	}
	second.Check("e2e-viewer-content-page")
	second.Screenshot("e2e-viewer-content-page")

	// Logs: the deploy's output, then a running process's output live.
	br.Run("logs", chromedp.Navigate(c.URL("/connect/apps/"+guid+"/logs")), chromedp.WaitVisible(chromedp.CSS(`pre#log`)))
	shot("e2e-logs")
	br.Run("open the running process", mark,
		chromedp.Evaluate[chromedp.Void](`(function(){var li=Array.from(document.querySelectorAll(".loglist li")).find(function(l){return l.querySelector("a[href*='?job=']")&&l.querySelector(".state").textContent==="running"});li.querySelector("a").click()})()`),
		chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) #log[data-stream*="/jobs/"]`)))
	word := "live" + strconv.FormatInt(time.Now().UnixNano()%100000, 10)
	// Give the page's stream a moment to open, so the line comes as a live
	// event (were it later, the stream's first read, the log's end, would
	// hold it too).
	time.Sleep(time.Second)
	// The content is private now: ask as its owner.
	if st, body := api(t, c, "GET", "/content/"+guid+"/say/"+word, key, nil); st != 200 || string(body) != "ok" {
		t.Fatalf("say: %d %s", st, body)
	}
	br.Run("the line arrives", chromedp.Poll[chromedp.Void](`document.getElementById("log").textContent.indexOf("said `+word+`") >= 0`))
	shot("e2e-logs-live")

	// Create an API key, use it, delete it.
	br.Run("keys page", chromedp.Navigate(c.URL("/connect/keys")), chromedp.WaitVisible(chromedp.CSS(`form[action="/connect/keys/create"]`)))
	br.Run("create a key", mark,
		chromedp.SendKeys(chromedp.CSS(`form[action="/connect/keys/create"] input[name="name"]`), "journey"),
		chromedp.Click(chromedp.CSS(`form[action="/connect/keys/create"] button`)),
		chromedp.WaitVisible(chromedp.ID("newkey")))
	newKey := browser.Value(br, "key", chromedp.Evaluate[string](`document.getElementById("newkey").value`))
	shot("e2e-key-created")
	if st, body := api(t, c, "GET", "/__api__/v1/user", newKey, nil); st != 200 || !strings.Contains(string(body), `"alice"`) {
		t.Fatalf("the new key: %d %s", st, body)
	}
	br.Run("delete the key", mark, chromedp.Click(chromedp.CSS(`button[aria-label="Delete key journey"]`)),
		chromedp.WaitVisible(chromedp.CSS(`body:not([data-old]) p.banner.ok`)))
	if st, _ := api(t, c, "GET", "/__api__/v1/user", newKey, nil); st != http.StatusUnauthorized {
		t.Fatalf("the deleted key: %d, want 401", st)
	}
	shot("e2e-key-deleted")

	// The same pages on a phone.
	phone := browser.New(t, 390)
	phone.Run("log in", chromedp.Navigate(c.URL("/__login__?next=/connect/apps/"+guid)),
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), "alice"),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "alice-password-e2e"),
		chromedp.Submit(chromedp.CSS(`input[name="password"]`)),
		chromedp.WaitVisible(chromedp.ID("h-info")))
	phone.Check("e2e-content-page")
	phone.Screenshot("e2e-content-page")
	for _, p := range []struct{ path, name string }{{"/connect/", "e2e-content-list"}, {"/connect/apps/" + guid + "/logs", "e2e-logs"}, {"/connect/keys", "e2e-keys"}} {
		phone.Visit(c.URL(p.path), p.name)
	}
}
