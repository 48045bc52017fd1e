// Package shinytest speaks Shiny's WebSocket protocol to a running app, as
// a browser's shiny.js does, for tests of dais's proxy and deployments.
//
// A Shiny session is one WebSocket at <app>/websocket/ carrying JSON text
// messages. The client sends {"method": "init", "data": {...}} first, with
// every input's value and the ".clientdata_*" values a browser reports (the
// page's URL, the pixel ratio, and for each output whether it is hidden:
// Shiny does not compute an output until the client says it is shown), then
// {"method": "update", "data": {input: value}} whenever inputs change. The
// server answers with messages such as {"config": {...}} (the session),
// {"busy": "busy"|"idle"}, {"recalculating": {...}} and
// {"values": {output: value}, "errors": {...}, "inputMessages": [...]},
// where a text output's value is a string and a UI output's (renderUI, and
// the rendered document of R Markdown with runtime: shiny, output
// "__reactivedoc__") is {"html": ..., "deps": [...]}.
package shinytest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/coder/websocket"
)

// readLimit is the largest message read: an R Markdown document arrives
// rendered in one message.
const readLimit = 8 << 20

// Session is one Shiny session over a WebSocket.
type Session struct {
	// Detail, when set, is called on a failure and its text added to the
	// message (a server's log, say).
	Detail func() string

	conn   *websocket.Conn
	ctx    context.Context
	url    string
	values map[string]json.RawMessage // each output's latest value
}

// Dial opens the session's WebSocket at url (ws://.../websocket/) with
// header on the handshake (nil for none), failing t when it cannot. ctx
// bounds the dial and every later Send and Expect. The connection is
// dropped when t ends.
func Dial(t testing.TB, ctx context.Context, url string, header http.Header) *Session {
	t.Helper()
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		t.Fatalf("WebSocket %s: %v", url, err)
	}
	t.Cleanup(func() { c.CloseNow() })
	c.SetReadLimit(readLimit)
	return &Session{conn: c, ctx: ctx, url: url, values: map[string]json.RawMessage{}}
}

// TryDial is Dial that returns the error instead of failing a test (for
// a caller that retries); the caller closes the session.
func TryDial(ctx context.Context, url string, header http.Header) (*Session, error) {
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: header})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(readLimit)
	return &Session{conn: c, ctx: ctx, url: url, values: map[string]json.RawMessage{}}, nil
}

// Close ends the session as a browser leaving the page does (a normal
// WebSocket closure).
func (s *Session) Close() {
	s.conn.Close(websocket.StatusNormalClosure, "")
}

// Init is the data of the "init" message a browser sends for the page at
// pathname: inputs, each of outputs shown, and the client data of a page
// at http://127.0.0.1<pathname>.
func Init(pathname string, inputs map[string]any, outputs ...string) map[string]any {
	d := map[string]any{
		".clientdata_url_protocol":       "http:",
		".clientdata_url_hostname":       "127.0.0.1",
		".clientdata_url_pathname":       pathname,
		".clientdata_url_search":         "",
		".clientdata_url_hash_initial":   "",
		".clientdata_url_hash":           "",
		".clientdata_pixelratio":         1,
		".clientdata_singletons":         "",
		".clientdata_allowDataUriScheme": true,
	}
	for _, o := range outputs {
		d[".clientdata_output_"+o+"_hidden"] = false
	}
	for k, v := range inputs {
		d[k] = v
	}
	return d
}

// Send sends {"method": method, "data": data}, failing t when it cannot.
func (s *Session) Send(t testing.TB, method string, data map[string]any) {
	t.Helper()
	if err := s.TrySend(method, data); err != nil {
		t.Fatalf("%v", err)
	}
}

// TrySend is Send returning the error.
func (s *Session) TrySend(method string, data map[string]any) error {
	b, err := json.Marshal(map[string]any{"method": method, "data": data})
	if err != nil {
		return fmt.Errorf("shiny %s message: %w", method, err)
	}
	if err := s.conn.Write(s.ctx, websocket.MessageText, b); err != nil {
		return fmt.Errorf("send %s over the WebSocket %s: %w%s", method, s.url, err, s.detail())
	}
	return nil
}

// Expect reads messages until each of wants has been seen in one of them
// (in any order), and returns the messages read. It fails t when the
// connection ends or the context is done first, showing the messages read.
func (s *Session) Expect(t testing.TB, wants ...string) []string {
	t.Helper()
	seen, err := s.TryExpect(wants...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return seen
}

// TryExpect is Expect returning the error.
func (s *Session) TryExpect(wants ...string) ([]string, error) {
	var seen []string
	for missing := slices.Clone(wants); len(missing) > 0; {
		_, b, err := s.conn.Read(s.ctx)
		if err != nil {
			return seen, fmt.Errorf("no %q over the WebSocket: %w; messages:\n%s%s", missing, err, quote(seen), s.detail())
		}
		var m struct {
			Values map[string]json.RawMessage `json:"values"`
		}
		if json.Unmarshal(b, &m) == nil {
			for id, v := range m.Values {
				s.values[id] = v
			}
		}
		msg := string(b)
		missing = slices.DeleteFunc(missing, func(w string) bool { return strings.Contains(msg, w) })
		seen = append(seen, msg)
	}
	return seen, nil
}

// Value is output id's latest value in the messages Expect read (nil
// when none came): a JSON string for a text output or a download link's
// URL.
func (s *Session) Value(id string) json.RawMessage { return s.values[id] }

// HTML is the html of UI output id's latest value in the messages Expect
// read, "" when none came.
func (s *Session) HTML(id string) string {
	var v struct {
		HTML string `json:"html"`
	}
	json.Unmarshal(s.values[id], &v)
	return v.HTML
}

func (s *Session) detail() string {
	if s.Detail == nil {
		return ""
	}
	return "\n" + s.Detail()
}

// quote shows messages one a line, each cut to 500 bytes: a rendered
// document would bury the rest.
func quote(msgs []string) string {
	var b strings.Builder
	for _, m := range msgs {
		fmt.Fprintf(&b, "%.500s\n", m)
	}
	return b.String()
}
