package shinytest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/dais-dev/dais/internal/shinytest"
)

// echoApp answers like the examples/shiny app over a real WebSocket: on
// init the config, then output echo from input msg and output doc as UI;
// on update the new echo; a message "close" ends the session.
func echoApp(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Key k" {
			http.Error(w, "no key", http.StatusUnauthorized)
			return
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx := r.Context()
		for {
			var m struct {
				Method string         `json:"method"`
				Data   map[string]any `json:"data"`
			}
			_, b, err := c.Read(ctx)
			if err != nil || json.Unmarshal(b, &m) != nil || m.Data["msg"] == "close" {
				return
			}
			var out []string
			if m.Method == "init" {
				out = append(out, `{"config":{"sessionId":"s"}}`, `{"values":{"doc":{"html":"<p>first</p>"}}}`)
			}
			out = append(out, fmt.Sprintf(`{"values":{"echo":"echo: %v","doc":{"html":"<p>%[1]v</p>"}}}`, m.Data["msg"]))
			for _, o := range out {
				if c.Write(ctx, websocket.MessageText, []byte(o)) != nil {
					return
				}
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/websocket/"
}

func TestSession(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := shinytest.Dial(t, ctx, echoApp(t), http.Header{"Authorization": {"Key k"}})
	s.Send(t, "init", shinytest.Init("/", map[string]any{"msg": "hello"}, "echo"))
	seen := s.Expect(t, `"echo":"echo: hello"`, `"config"`)
	if len(seen) != 3 {
		t.Errorf("Expect read %d messages, want 3: %q", len(seen), seen)
	}
	if got := s.HTML("doc"); got != "<p>hello</p>" {
		t.Errorf("HTML(doc) = %q, want the latest value <p>hello</p>", got)
	}
	s.Send(t, "update", map[string]any{"msg": "again"})
	s.Expect(t, `"echo":"echo: again"`)
	if got := s.HTML("echo"); got != "" {
		t.Errorf("HTML of a text output = %q, want none", got)
	}
	if got := s.HTML("none"); got != "" {
		t.Errorf("HTML of an output never sent = %q, want none", got)
	}
}

// fatalRecorder keeps the message of a Fatalf and ends the goroutine, as
// testing.T does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}
func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// When the session ends before the wanted text, Expect fails with what is
// missing, the messages read and the Detail.
func TestExpectFailure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s := shinytest.Dial(t, ctx, echoApp(t), http.Header{"Authorization": {"Key k"}})
	s.Detail = func() string { return "log: the server's log" }
	s.Send(t, "init", shinytest.Init("/", map[string]any{"msg": "hello"}))
	s.Expect(t, `"echo":"echo: hello"`)
	s.Send(t, "update", map[string]any{"msg": "close"})
	r := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Expect(r, `"echo":"echo: close"`, "never")
	}()
	<-done
	for _, w := range []string{`no ["\"echo\":\"echo: close\"" "never"] over the WebSocket`, "\nlog: the server's log"} {
		if !strings.Contains(r.msg, w) {
			t.Errorf("failure message %q lacks %q", r.msg, w)
		}
	}
}
