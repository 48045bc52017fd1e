package content_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dais-dev/dais/internal/shinytest"
	"github.com/dais-dev/dais/server/content"
	"github.com/dais-dev/dais/server/content/manifest"
)

// TestRmdShinyThroughProxy runs examples/rmd-shiny (an R Markdown document
// with runtime: shiny) with LaunchArgs, through a pool and the proxy:
// GET / answers rmarkdown's page; over the WebSocket the document is
// rendered (its text arrives as the __reactivedoc__ output) and its input
// is echoed by its output, twice; the figure knitr wrote for the session
// is served at the relative URL the document gives.
func TestRmdShinyThroughProxy(t *testing.T) {
	t.Parallel()
	r := need(t, manifest.LangR, "/usr/bin/R", "library(shiny); library(rmarkdown); stopifnot(rmarkdown::pandoc_available(), capabilities('png'))")
	base := serveExample(t, "rmd-shiny", content.Runtimes{R: r})
	resp, page := get(t, base+"/")
	// rmarkdown::run answers a loader page; the document itself is
	// rendered per session and sent over the WebSocket.
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), `id="__reactivedoc__"`) {
		t.Fatalf("GET /: %s %.500s", resp.Status, page)
	}
	rmdShinyRoundTrip(t, "ws"+strings.TrimPrefix(base, "http")+"/websocket/", func(doc string) {
		if err := figureServed(base, doc); err != nil {
			t.Error(err)
		}
	})
	// The render went elsewhere: the bundle's directory (read-only in the
	// sandbox) is as it was.
	if ents, _ := os.ReadDir(filepath.Join("..", "..", "examples", "rmd-shiny")); len(ents) != 2 {
		t.Errorf("the session wrote into the bundle's directory: %v", ents)
	}
}

// rmdShinyFigure is the figure examples/rmd-shiny/doc.Rmd has knitr write.
const rmdShinyFigure = "doc_files/figure-html/dais-figure-1.png"

// figureServed GETs the example's figure, relative to the document as a
// browser would, and checks it is a PNG. rmarkdown deletes the figure when
// the session ends: call it while the WebSocket is open.
func figureServed(base, doc string) error {
	if !strings.Contains(doc, `src="`+rmdShinyFigure+`"`) {
		return fmt.Errorf("the rendered document does not show %s: %.1000s", rmdShinyFigure, doc)
	}
	resp, err := http.Get(base + "/" + rmdShinyFigure)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		return fmt.Errorf("GET %s: %s %q, want the PNG", rmdShinyFigure, resp.Status, b[:min(len(b), 200)])
	}
	return nil
}

// rmdShinyRoundTrip opens the document's Shiny WebSocket,
// waits for the rendered document and the echo of the input, calls
// rendered with the document's HTML while the session is open, then
// changes the input and waits for the new echo.
func rmdShinyRoundTrip(t *testing.T, url string, rendered func(doc string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	s := shinytest.Dial(t, ctx, url, nil)
	s.Send(t, "init", shinytest.Init("/", map[string]any{"msg": "hello dais"}, "__reactivedoc__", "echo"))
	s.Expect(t, `"__reactivedoc__":{"html"`, `"echo":"echo: hello dais"`)
	doc := s.HTML("__reactivedoc__")
	for _, w := range []string{"dais interactive document example", "This document runs as a Shiny app"} {
		if !strings.Contains(doc, w) {
			t.Fatalf("the rendered document lacks %q: %.1000s", w, doc)
		}
	}
	if rendered != nil {
		rendered(doc)
	}
	s.Send(t, "update", map[string]any{"msg": "again"})
	s.Expect(t, `"echo":"echo: again"`)
}

// Sessions of one document in one R process do not disturb each other's
// inputs and outputs, and the second keeps working after the first has
// gone. (Not asserted: a figure after another session ended. rmarkdown maps
// the process-wide resource path "<doc>_files" to the last session's render
// and deletes each session's render when it ends, so a figure can then 404
// for the others: rmarkdown's behaviour, documented in docs/api.md.)
func TestRmdShinyConcurrentSessions(t *testing.T) {
	t.Parallel()
	r := need(t, manifest.LangR, "/usr/bin/R", "library(shiny); library(rmarkdown); stopifnot(rmarkdown::pandoc_available(), capabilities('png'))")
	base := serveExample(t, "rmd-shiny", content.Runtimes{R: r})
	url := "ws" + strings.TrimPrefix(base, "http") + "/websocket/"
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	one := shinytest.Dial(t, ctx, url, nil)
	two := shinytest.Dial(t, ctx, url, nil)
	one.Send(t, "init", shinytest.Init("/", map[string]any{"msg": "from one"}, "__reactivedoc__", "echo"))
	two.Send(t, "init", shinytest.Init("/", map[string]any{"msg": "from two"}, "__reactivedoc__", "echo"))
	one.Expect(t, `"__reactivedoc__":{"html"`, `"echo":"echo: from one"`)
	two.Expect(t, `"__reactivedoc__":{"html"`, `"echo":"echo: from two"`)
	if err := figureServed(base, two.HTML("__reactivedoc__")); err != nil {
		t.Errorf("with two sessions open: %v", err)
	}
	one.Send(t, "update", map[string]any{"msg": "one again"})
	one.Expect(t, `"echo":"echo: one again"`)
	one.Close()
	two.Send(t, "update", map[string]any{"msg": "two again"})
	if msgs := two.Expect(t, `"echo":"echo: two again"`); strings.Contains(strings.Join(msgs, ""), "one again") {
		t.Errorf("the second session got the first one's output: %v", msgs)
	}
}
