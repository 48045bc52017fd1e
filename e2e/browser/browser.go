// Package browser drives a real browser (Debian's chromium, headless, over
// the DevTools protocol with github.com/chromedp/chromedp) for the
// dashboard's tests. Every page a test visits through Visit is checked: no
// console errors or uncaught exceptions, no failed requests (network errors
// or HTTP status 400 and above unless expected), every form control
// labelled, nothing wider than the viewport (390 px on a phone), text
// contrast of WCAG AA, and the keyboard focus visible on what Tab reaches.
// Screenshots go under one folder (DAIS_SCREENSHOTS, default
// .tmp/screenshots at the module root) for `make screenshots` and the docs.
package browser

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// Browser is one headless chromium with one tab.
type Browser struct {
	t      *testing.T
	Ctx    context.Context
	Width  int
	mu     sync.Mutex
	errors []string
}

// chromiumPath finds Debian's chromium; the test skips without it, or
// fails when CI=true.
func chromiumPath(t *testing.T) string {
	for _, p := range []string{"chromium", "chromium-browser"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no chromium on PATH (CI=true: browser tests may not skip; scripts/test-env.sh installs it)")
	}
	t.Skip("no chromium on PATH (apt-get install chromium, or run scripts/test-env.sh)")
	return ""
}

// ProxyThrough sends every request of the browser, loopback included,
// through the HTTP proxy at addr (host:port): a test maps names there
// (an OpenID provider's issuer, localhost:9998) to the ports it runs on.
func ProxyThrough(addr string) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.ProxyServer("http://" + addr),
		chromedp.Flag("proxy-bypass-list", "<-loopback>"),
	}
}

// New starts chromium headless with a window width wide (1280 or 390) and
// stops it when the test ends. Every console error, uncaught exception and
// failed request from then on is recorded for Check.
// extra are more chromium options, like a proxy (ProxyThrough).
func New(t *testing.T, width int, extra ...chromedp.ExecAllocatorOption) *Browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox, // root in the test container; the page is our own
		chromedp.WindowSize(width, 900),
		chromedp.Flag("disable-gpu", true),
	)
	opts = append(opts, extra...)
	b := &Browser{t: t, Width: width}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError {
				var args []string
				for _, a := range e.Args {
					args = append(args, string(a.Value))
				}
				b.record("console error: " + strings.Join(args, " "))
			}
		case *runtime.EventExceptionThrown:
			b.record("uncaught exception: " + e.ExceptionDetails.Text)
		case *network.EventLoadingFailed:
			if !e.Canceled {
				b.record("request failed: " + e.ErrorText)
			}
		case *network.EventResponseReceived:
			if e.Response.Status >= 400 {
				b.record(fmt.Sprintf("HTTP %d from %s", e.Response.Status, e.Response.URL))
			}
		}
	}))
	t.Cleanup(func() { cancel(); cancelA() })
	b.Ctx = ctx
	// The first Run starts the browser and lives as long as ctx: no
	// deadline on it; every later step has one (Run).
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(int64(width), 900)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return b
}

func (b *Browser) record(s string) {
	b.mu.Lock()
	b.errors = append(b.errors, s)
	b.mu.Unlock()
}

// Run runs chromedp actions within 30 s, failing the test on an error.
func (b *Browser) Run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// Value runs one action that returns a value, within 30 s.
func Value[T any](b *Browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// Expect takes the recorded problems that contain what (say "HTTP 403
// from http://.../connect/admin/users") off the list Check reports, and
// fails the test when there is none: a refusal the test meant to see.
func (b *Browser) Expect(what string) {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	kept, found := b.errors[:0], false
	for _, e := range b.errors {
		if strings.Contains(e, what) {
			found = true
			continue
		}
		kept = append(kept, e)
	}
	b.errors = kept
	if !found {
		b.t.Errorf("at %d px: expected %q among the recorded problems, got %q", b.Width, what, kept)
	}
}

// Allow takes the recorded problems that contain what off the list Check
// reports, if there are any: for what may or may not happen, like the
// /favicon.ico chromium asks of a page without an icon link (an
// identity provider's, a plain-text error page).
func (b *Browser) Allow(what string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	kept := b.errors[:0]
	for _, e := range b.errors {
		if !strings.Contains(e, what) {
			kept = append(kept, e)
		}
	}
	b.errors = kept
}

// Check runs the automated checks on the page shown now and fails the test
// for every problem: console errors and failed requests since the last
// Check, form controls without a label, and an element wider than the
// viewport.
func (b *Browser) Check(page string) {
	b.t.Helper()
	b.mu.Lock()
	errs := b.errors
	b.errors = nil
	b.mu.Unlock()
	for _, e := range errs {
		b.t.Errorf("%s at %d px: %s", page, b.Width, e)
	}
	unlabelled := Value(b, page+": labels", chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("input, select, textarea"))
		.filter(e => e.type !== "hidden" && e.type !== "submit" && e.type !== "button")
		.filter(e => !(e.labels && e.labels.length) && !e.getAttribute("aria-label") && !e.getAttribute("aria-labelledby"))
		.map(e => e.outerHTML)`))
	for _, u := range unlabelled {
		b.t.Errorf("%s: a form control without a label: %s", page, u)
	}
	wide := Value(b, page+": widths", chromedp.Evaluate[[]string](`(function () {
		const vw = document.documentElement.clientWidth, out = [];
		if (document.documentElement.scrollWidth > vw) out.push("the page scrolls sideways: " + document.documentElement.scrollWidth + " px in " + vw);
		document.querySelectorAll("body *").forEach(function (e) {
			const r = e.getBoundingClientRect();
			if (r.width > 0 && r.right > vw + 1 && !e.closest(".scroll")) out.push(e.tagName.toLowerCase() + (e.className ? "." + e.className : "") + " reaches " + Math.round(r.right) + " px");
		});
		return out.slice(0, 5);
	})()`))
	for _, w := range wide {
		b.t.Errorf("%s at %d px: %s", page, b.Width, w)
	}
	// Contrast and keyboard focus are judged on dais's own pages (those
	// with its stylesheet), not on an identity provider's login form or a
	// content's page a test passes through.
	if !Value(b, page+": dais page", chromedp.Evaluate[bool](`!!document.querySelector('link[href="/__static__/dais.css"]')`)) {
		return
	}
	lowContrast := Value(b, page+": contrast", chromedp.Evaluate[[]string](contrastJS))
	for _, c := range lowContrast {
		b.t.Errorf("%s at %d px: text below WCAG AA contrast: %s", page, b.Width, c)
	}
	for _, f := range b.unfocused() {
		b.t.Errorf("%s at %d px: keyboard focus not visible on %s", page, b.Width, f)
	}
}

// contrastJS lists the visible text of the page whose contrast with what
// is behind it is below WCAG AA: 4.5:1, or 3:1 for large text (24 px, or
// 18.7 px bold). The background is the first one not transparent among
// the element and its ancestors (white at the top); opacity dims the text
// toward it.
const contrastJS = `(function () {
	function rgba(s) { var m = s.match(/[\d.]+/g) || [0, 0, 0, 0]; return [+m[0], +m[1], +m[2], m.length > 3 ? +m[3] : 1]; }
	function lum(c) { var v = c.slice(0, 3).map(function (x) { x /= 255; return x <= 0.03928 ? x / 12.92 : Math.pow((x + 0.055) / 1.055, 2.4); });
		return 0.2126 * v[0] + 0.7152 * v[1] + 0.0722 * v[2]; }
	function bg(e) { for (; e && e.nodeType === 1; e = e.parentElement) { var c = rgba(getComputedStyle(e).backgroundColor); if (c[3] > 0) return c; } return [255, 255, 255, 1]; }
	function opacity(e) { var o = 1; for (; e && e.nodeType === 1; e = e.parentElement) o *= +getComputedStyle(e).opacity; return o; }
	var out = [], seen = new Set();
	var walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
	for (var n = walk.nextNode(); n; n = walk.nextNode()) {
		var e = n.parentElement;
		if (!n.textContent.trim() || seen.has(e) || e.closest("script, style, .sr, option")) continue;
		seen.add(e);
		var r = e.getBoundingClientRect(), cs = getComputedStyle(e);
		if (r.width === 0 || r.height === 0 || cs.visibility === "hidden" || r.right < 0) continue;
		var fg = rgba(cs.color), b = bg(e), a = fg[3] * opacity(e);
		var mixed = [0, 1, 2].map(function (i) { return fg[i] * a + b[i] * (1 - a); });
		var l1 = lum(mixed), l2 = lum(b), ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
		var size = parseFloat(cs.fontSize), bold = +cs.fontWeight >= 700;
		var need = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5;
		if (ratio < need) out.push(e.tagName.toLowerCase() + (e.className ? "." + e.className : "") + " " + JSON.stringify(n.textContent.trim().slice(0, 40)) + ": " + ratio.toFixed(2) + ":1, needs " + need);
	}
	return out.slice(0, 10);
})()`

// focusTabs is how many Tab presses the keyboard check makes per page.
const focusTabs = 40

// unfocused presses Tab from the top of the page up to focusTabs times,
// as a keyboard user would, and returns the elements that took the focus
// without showing it (no outline, no box shadow). A frame's content is
// the content's own and is not judged.
func (b *Browser) unfocused() []string {
	b.t.Helper()
	b.Run("keyboard: start", chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur(); window.getSelection().removeAllRanges()`))
	var out []string
	for range focusTabs {
		b.Run("keyboard: tab", chromedp.KeyEvent(kb.Tab))
		r := Value(b, "keyboard: focus", chromedp.Evaluate[string](`(function () {
			var e = document.activeElement;
			if (!e || e === document.body) return "end";
			if (e.tagName === "IFRAME") return "";
			var cs = getComputedStyle(e);
			var shown = (cs.outlineStyle !== "none" && parseFloat(cs.outlineWidth) > 0) || (cs.boxShadow && cs.boxShadow !== "none");
			return shown ? "" : e.outerHTML.slice(0, 160);
		})()`))
		if r == "end" {
			break
		}
		if r != "" {
			out = append(out, r)
		}
	}
	b.Run("keyboard: done", chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur()`))
	return out
}

// Visit opens url, waits for the page to load, checks it and writes a
// screenshot named name (e.g. "content-list") for this width.
func (b *Browser) Visit(url, name string) {
	b.t.Helper()
	b.Run("open "+url, chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS("body")))
	b.Check(name)
	b.Screenshot(name)
}

// ScreenshotDir is where screenshots go: DAIS_SCREENSHOTS, or .tmp/screenshots
// at the module root.
func ScreenshotDir() string {
	if d := os.Getenv("DAIS_SCREENSHOTS"); d != "" {
		return d
	}
	dir, _ := os.Getwd()
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, ".tmp", "screenshots")
		}
	}
	return filepath.Join(dir, "screenshots")
}

// Screenshot writes the whole page as <dir>/<name>-<width>.png.
func (b *Browser) Screenshot(name string) {
	b.t.Helper()
	png := Value(b, "screenshot "+name, chromedp.FullScreenshot(100))
	dir := ScreenshotDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%d.png", name, b.Width))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}
