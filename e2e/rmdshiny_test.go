package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dais-dev/dais/internal/shinytest"
)

// TestRmdShinyDeployV1 deploys examples/rmd-shiny (R Markdown with
// runtime: shiny) through the v1 API into the container and uses it at
// /content/<guid>/ as a browser would: the page, the WebSocket session in
// which the document is rendered and its input echoed (twice), and the
// figure the session's render wrote; the R process runs as uid 999.
func TestRmdShinyDeployV1(t *testing.T) {
	c, key := deployServer(t)
	start := time.Now()
	guid, tk, out := deployV1(t, c, key, "rmd-shiny", bundle(t, exampleDir("rmd-shiny")))
	if tk.Code != 0 {
		t.Fatalf("deploy failed: %s\n%s", tk.Error, out)
	}
	t.Logf("rmd-shiny deployed in %s", time.Since(start).Round(time.Millisecond))

	// Anonymous: the content is public (access_type all).
	status, page := c.Get("/content/" + guid + "/")
	if status != http.StatusOK || !strings.Contains(page, `id="__reactivedoc__"`) || !strings.Contains(page, "rmd_resources/rmd_loader.js") {
		t.Fatalf("GET /content/%s/ = %d %.500s, want rmarkdown's page", guid, status, page)
	}
	if status, _ := c.Get("/content/" + guid + "/rmd_resources/rmd_loader.js"); status != http.StatusOK {
		t.Errorf("GET rmd_resources/rmd_loader.js = %d", status)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := "ws" + strings.TrimPrefix(c.URL("/content/"+guid), "http") + "/websocket/"
	s := shinytest.Dial(t, ctx, url, nil)
	s.Detail = func() string { return "log:\n" + tail(c.Logs(), 30) }
	s.Send(t, "init", shinytest.Init("/content/"+guid+"/", map[string]any{"msg": "hello dais"}, "__reactivedoc__", "echo"))
	s.Expect(t, `"__reactivedoc__":{"html"`, `"echo":"echo: hello dais"`)
	doc := s.HTML("__reactivedoc__")
	for _, w := range []string{"dais interactive document example", "This document runs as a Shiny app"} {
		if !strings.Contains(doc, w) {
			t.Fatalf("the rendered document lacks %q: %.1000s", w, doc)
		}
	}

	// The figure, relative to the page, while the session lives (rmarkdown
	// deletes a session's render when it ends).
	const figure = "doc_files/figure-html/dais-figure-1.png"
	if !strings.Contains(doc, `src="`+figure+`"`) {
		t.Errorf("the rendered document does not show %s", figure)
	}
	status, png := c.Get("/content/" + guid + "/" + figure)
	if status != http.StatusOK || !strings.HasPrefix(png, "\x89PNG") {
		t.Errorf("GET %s = %d %.200q, want the PNG", figure, status, png)
	}

	s.Send(t, "update", map[string]any{"msg": "again"})
	s.Expect(t, `"echo":"echo: again"`)

	// The document's R process runs in the sandbox as rstudio-connect.
	r := c.Exec("sh", "-c", `for p in /proc/[0-9]*; do tr '\0' ' ' <$p/cmdline 2>/dev/null | grep -q 'rmarkdown[:]:run(' && awk '/^Uid:/ {print $2}' $p/status; done`)
	uids := strings.Fields(r.Stdout)
	if len(uids) == 0 {
		t.Errorf("no rmarkdown::run process found: %q %s", r.Stdout, r.Stderr)
	}
	for _, u := range uids {
		if u != "999" {
			t.Errorf("an rmarkdown::run process runs as uid %s, want 999 (rstudio-connect)", u)
		}
	}
}
