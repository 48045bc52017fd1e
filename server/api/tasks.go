package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/dais-dev/dais/server/authz"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

// getTask serves a task's output from line first on, with a long poll of
// up to wait seconds. The legacy GET /__api__/tasks/{id}?first_status=N
// and the v1 GET /__api__/v1/tasks/{id}?first=N&wait=S answer alike but
// for the names of the first-line parameter and of the lines and next-line
// fields.
func (a *API) getTask(firstParam, linesField, lastField string) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		first, err := intParam(r, firstParam, 0)
		if err != nil {
			return err
		}
		wait, err := intParam(r, "wait", 0)
		if err != nil {
			return err
		}
		t, lines, err := a.pollTask(r, first, wait)
		if err != nil {
			return err
		}
		web.WriteJSON(w, http.StatusOK, map[string]any{
			"id": t.ID, "user_id": t.UserID, linesField: lines, lastField: first + len(lines),
			"finished": t.Finished, "code": t.Code, "error": t.Error, "result": rawOrNull(t.Result),
		})
		return nil
	}
}

func rawOrNull(b json.RawMessage) json.RawMessage {
	if len(b) == 0 {
		return json.RawMessage("null")
	}
	return b
}

// maxWait bounds a long poll.
const maxWait = 30

// pollTask returns the task and its lines from first on, waiting up to
// wait seconds for a new line or the end when there is none yet.
func (a *API) pollTask(r *http.Request, first, wait int) (*store.Task, []string, error) {
	u, err := needUser(r)
	if err != nil {
		return nil, nil, err
	}
	ctx := r.Context()
	id := r.PathValue("id")
	deadline := time.Now().Add(time.Duration(min(wait, maxWait)) * time.Second)
	checked := false
	for {
		// Taken before the read: a change after it closes changed.
		changed, release := a.dep.TaskChanged(id)
		t, lines, done, err := a.readTask(r, u, id, first, deadline, &checked)
		if done || err != nil {
			release()
			return t, lines, err
		}
		// This node's tasks wake the poll as they change (deploy's
		// TaskChanged); it reads them again each second in case one was
		// missed. Another node's are read every 200 ms.
		every := 200 * time.Millisecond
		if t.Node == a.dep.Node() {
			every = time.Second
		}
		select {
		case <-ctx.Done():
			release()
			return nil, nil, ctx.Err()
		case <-a.dep.Stopping().Done():
			deadline = time.Now()
		case <-changed:
		case <-time.After(every):
		}
		release()
	}
}

// readTask reads task id and its lines from first on; done says there is
// something to answer (lines, the end, or the deadline passed). checked
// says the user's access was checked already.
func (a *API) readTask(r *http.Request, u *store.User, id string, first int, deadline time.Time, checked *bool) (*store.Task, []string, bool, error) {
	ctx := r.Context()
	t, err := a.st.Task(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, true, errStatus(http.StatusNotFound, "no task "+id)
	}
	if err != nil {
		return nil, nil, true, err
	}
	if !*checked {
		if err := a.checkTaskAccess(ctx, u, t); err != nil {
			return nil, nil, true, err
		}
		*checked = true
	}
	out, err := a.st.TaskOutput(ctx, id, first)
	if err != nil {
		return nil, nil, true, err
	}
	if len(out) > 0 || t.Finished || !time.Now().Before(deadline) {
		lines := make([]string, len(out))
		for i, l := range out {
			lines[i] = l.Line
		}
		return t, lines, true, nil
	}
	return t, nil, false, nil
}

// checkTaskAccess lets the task's starter, administrators and the
// content's editors read a task.
func (a *API) checkTaskAccess(ctx context.Context, u *store.User, t *store.Task) error {
	if u.Role == store.RoleAdministrator || u.ID == t.UserID {
		return nil
	}
	if t.ContentID != 0 {
		if c, err := a.st.Content(ctx, t.ContentID); err == nil {
			if a, err := authz.Content(ctx, a.st, u, c); err == nil && a == authz.Editor {
				return nil
			}
		}
	}
	return errStatus(http.StatusNotFound, "no task "+t.ID)
}
