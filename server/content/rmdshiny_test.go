package content_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

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
	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
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
	c, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("WebSocket %s: %v", url, err)
	}
	defer c.CloseNow()
	c.SetReadLimit(8 << 20) // the rendered document is one message
	send := func(method string, data map[string]any) {
		t.Helper()
		b, _ := json.Marshal(map[string]any{"method": method, "data": data})
		if err := c.Write(ctx, websocket.MessageText, b); err != nil {
			t.Fatal(err)
		}
	}
	var doc string
	// expect reads until every want has been seen, in any message, and
	// keeps the document when it comes.
	expect := func(wants ...string) {
		t.Helper()
		var seen []string
		for len(wants) > 0 {
			_, b, err := c.Read(ctx)
			if err != nil {
				t.Fatalf("no %q over the WebSocket: %v; messages: %.2000s", wants, err, strings.Join(seen, "\n"))
			}
			var m struct {
				Values map[string]json.RawMessage `json:"values"`
			}
			json.Unmarshal(b, &m)
			var out struct {
				HTML string `json:"html"`
			}
			if raw, ok := m.Values["__reactivedoc__"]; ok && json.Unmarshal(raw, &out) == nil {
				doc = out.HTML
			}
			wants = slices.DeleteFunc(wants, func(w string) bool { return strings.Contains(string(b), w) })
			seen = append(seen, string(b))
		}
	}
	send("init", map[string]any{
		"msg": "hello dais", ".clientdata_output___reactivedoc___hidden": false, ".clientdata_output_echo_hidden": false,
		".clientdata_url_protocol": "http:", ".clientdata_url_hostname": "127.0.0.1", ".clientdata_url_pathname": "/",
		".clientdata_url_search": "", ".clientdata_url_hash_initial": "", ".clientdata_url_hash": "",
		".clientdata_pixelratio": 1, ".clientdata_singletons": "", ".clientdata_allowDataUriScheme": true,
	})
	expect(`"__reactivedoc__":{"html"`, `"echo":"echo: hello dais"`)
	for _, w := range []string{"dais interactive document example", "This document runs as a Shiny app"} {
		if !strings.Contains(doc, w) {
			t.Fatalf("the rendered document lacks %q: %.1000s", w, doc)
		}
	}
	if rendered != nil {
		rendered(doc)
	}
	send("update", map[string]any{"msg": "again"})
	expect(`"echo":"echo: again"`)
}
