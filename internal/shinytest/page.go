package shinytest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// Page is a Shiny app's page as a browser loaded it: where its relative
// URLs lead and where shiny.js opens the session's WebSocket.
type Page struct {
	URL  *url.URL // the page's own URL
	Base *url.URL // what its relative URLs resolve against: its <base href>, else URL
	HTML string
}

var baseHref = regexp.MustCompile(`(?i)<base\s[^>]*href="([^"]*)"`)

// LoadPage GETs the page at pageURL with client and header (nil for
// none), as a browser's first visit does.
func LoadPage(ctx context.Context, client *http.Client, pageURL string, header http.Header) (*Page, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", pageURL, nil)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s %.300s", pageURL, resp.Status, b)
	}
	p := &Page{URL: resp.Request.URL, HTML: string(b)}
	p.Base = p.URL
	if m := baseHref.FindStringSubmatch(p.HTML); m != nil {
		ref, err := url.Parse(m[1])
		if err != nil {
			return nil, fmt.Errorf("page %s: <base href=%q>: %w", pageURL, m[1], err)
		}
		p.Base = p.URL.ResolveReference(ref)
	}
	return p, nil
}

// Resolve is ref (a relative URL of the page, such as a download link's)
// made absolute as the browser does.
func (p *Page) Resolve(ref string) string {
	u, err := url.Parse(ref)
	if err != nil {
		return ref
	}
	return p.Base.ResolveReference(u).String()
}

// WebSocket is the ws:// URL shiny.js opens for the page's session: at the
// page's own path plus "websocket/", unless the page sets
// Shiny.createSocket to open it below its base, as dais does for an app
// whose sessions are pinned to a process.
func (p *Page) WebSocket() string {
	u := *p.URL
	if strings.Contains(p.HTML, "createSocket=function(){var u=new URL(\"websocket/\",document.baseURI)") {
		u = *p.Base
	}
	u.RawQuery, u.Fragment = "", ""
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		u.RawPath = ""
	}
	u.Path += "websocket/"
	if u.RawPath != "" {
		u.RawPath += "websocket/"
	}
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	return u.String()
}
