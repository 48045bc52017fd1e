package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dais-dev/dais/server/authz"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

// Logs, live: server-sent events (text/event-stream) of a task's output
// and of a process's output, for the dashboard's logs page (dais
// extensions). Each event's id is where the stream stands (the task's
// next line, the log's byte offset), so a browser's EventSource that
// reconnects (it does by itself, with Last-Event-ID) goes on where it was.
// A stream lasts at most streamLifetime (every request has a deadline),
// then the browser reconnects; it ends with an "end" event when the task
// or the process has finished and everything was sent.

// streamLifetime bounds one event stream; the client reconnects after it.
var streamLifetime = 10 * time.Minute

// streamPoll is how often a stream looks for new output.
const streamPoll = 300 * time.Millisecond

// taskJSON is one of a content's tasks in its list.
type taskJSON struct {
	ID           string     `json:"id"`
	Kind         string     `json:"kind"`
	Finished     bool       `json:"finished"`
	Code         int        `json:"code"`
	Error        string     `json:"error"`
	CreatedTime  time.Time  `json:"created_time"`
	FinishedTime *time.Time `json:"finished_time"`
}

// listContentTasks is GET .../tasks: the content's deploy and render
// tasks, newest first (at most 50), for its editors.
func (a *API) listContentTasks(w http.ResponseWriter, r *http.Request) error {
	c, _, err := a.contentFor(r, authz.Editor)
	if err != nil {
		return err
	}
	tasks, err := a.st.ListTasks(r.Context(), store.TaskFilter{ContentID: c.ID, Count: 50})
	if err != nil {
		return err
	}
	out := make([]taskJSON, 0, len(tasks))
	for _, t := range tasks {
		tj := taskJSON{ID: t.ID, Kind: t.Kind, Finished: t.Finished, Code: t.Code, Error: t.Error, CreatedTime: t.CreatedAt.UTC()}
		if !t.FinishedAt.IsZero() {
			ft := t.FinishedAt.UTC()
			tj.FinishedTime = &ft
		}
		out = append(out, tj)
	}
	web.WriteJSON(w, http.StatusOK, out)
	return nil
}

// sse writes server-sent events.
type sse struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func startSSE(w http.ResponseWriter) *sse {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	s := &sse{w: w, rc: http.NewResponseController(w)}
	_, _ = fmt.Fprint(w, "retry: 2000\n\n")
	_ = s.rc.Flush()
	return s
}

// send writes one event; data may hold several lines.
func (s *sse) send(event, id, data string) error {
	var b strings.Builder
	if event != "" {
		b.WriteString("event: " + event + "\n")
	}
	if id != "" {
		b.WriteString("id: " + id + "\n")
	}
	for _, l := range strings.Split(data, "\n") {
		b.WriteString("data: " + strings.TrimSuffix(l, "\r") + "\n")
	}
	b.WriteString("\n")
	if _, err := s.w.Write([]byte(b.String())); err != nil {
		return err
	}
	return s.rc.Flush()
}

func (s *sse) ping() error {
	if _, err := s.w.Write([]byte(": ping\n\n")); err != nil {
		return err
	}
	return s.rc.Flush()
}

// resumeFrom is where a stream starts: Last-Event-ID (a reconnect), else
// ?from=, else def.
func resumeFrom(r *http.Request, def int64) int64 {
	for _, v := range []string{r.Header.Get("Last-Event-ID"), r.URL.Query().Get("from")} {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			return n
		}
	}
	return def
}

// streamLoop calls step every streamPoll until it says done, the client
// goes, the server stops or the stream's lifetime ends; it pings quiet
// streams so that proxies keep them open.
func (a *API) streamLoop(ctx context.Context, s *sse, step func() (done bool, err error)) {
	ctx, cancel := context.WithTimeout(ctx, streamLifetime)
	defer cancel()
	lastWrite := time.Now()
	for {
		done, err := step()
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				_ = s.send("error", "", err.Error())
			}
			return
		}
		if done {
			return
		}
		if time.Since(lastWrite) > 15*time.Second {
			if s.ping() != nil {
				return
			}
			lastWrite = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-a.dep.Stopping().Done():
			return
		case <-time.After(streamPoll):
		}
	}
}

// streamTask is GET /__api__/v1/tasks/{id}/stream: the task's output
// lines as "line" events (id: the next line's index), then an "end" event
// with {code, error} when it has finished.
func (a *API) streamTask(w http.ResponseWriter, r *http.Request) error {
	u, err := needUser(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	id := r.PathValue("id")
	t, err := a.st.Task(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return errStatus(http.StatusNotFound, "no task "+id)
	}
	if err != nil {
		return err
	}
	if err := a.checkTaskAccess(ctx, u, t); err != nil {
		return err
	}
	next := int(resumeFrom(r, 0))
	s := startSSE(w)
	a.streamLoop(ctx, s, func() (bool, error) {
		t, err := a.st.Task(ctx, id)
		if err != nil {
			return false, err
		}
		out, err := a.st.TaskOutput(ctx, id, next)
		if err != nil {
			return false, err
		}
		for _, l := range out {
			next = l.Index + 1
			if err := s.send("line", strconv.Itoa(next), l.Line); err != nil {
				return false, err
			}
		}
		if t.Finished && len(out) == 0 {
			b, _ := json.Marshal(map[string]any{"code": t.Code, "error": t.Error})
			return true, s.send("end", strconv.Itoa(next), string(b))
		}
		return false, nil
	})
	return nil
}

// streamJobLog is GET .../jobs/{key}/log/stream: a process's output, the
// last 64 KB first (or from the byte offset of Last-Event-ID or ?from=),
// as "line" events (id: the byte offset after them), then an "end" event
// once the process has ended and its log is read to the end.
func (a *API) streamJobLog(w http.ResponseWriter, r *http.Request) error {
	c, _, err := a.contentFor(r, authz.Editor)
	if err != nil {
		return err
	}
	ctx := r.Context()
	key := r.PathValue("key")
	j, err := a.st.Job(ctx, key)
	if errors.Is(err, store.ErrNotFound) || (err == nil && j.ContentID != c.ID) {
		return errStatus(http.StatusNotFound, "no job "+key+" of "+c.Name)
	}
	if err != nil {
		return err
	}
	offset := resumeFrom(r, -1)
	s := startSSE(w)
	a.streamLoop(ctx, s, func() (bool, error) {
		ended := !j.EndedAt.IsZero()
		if !ended {
			if jj, err := a.st.Job(ctx, key); err == nil {
				j = jj
				ended = !j.EndedAt.IsZero()
			}
		}
		for {
			b, next, err := a.dep.JobLogFrom(c, j, offset, 64<<10, 64<<10, ended)
			if err != nil {
				if ended {
					return true, s.send("end", strconv.FormatInt(max(offset, 0), 10), "{}")
				}
				return false, nil // not written yet
			}
			if len(b) > 0 {
				offset = next
				if err := s.send("line", strconv.FormatInt(offset, 10), strings.TrimSuffix(string(b), "\n")); err != nil {
					return false, err
				}
			} else if offset < 0 {
				offset = next
			}
			if len(b) < 64<<10 {
				break
			}
		}
		if ended {
			return true, s.send("end", strconv.FormatInt(offset, 10), "{}")
		}
		return false, nil
	})
	return nil
}
