package schedule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

// Access is what the API needs from the deployment side: the content of
// the request with the user's rights checked (edit: may change it), and
// the writing of its errors (which carry their HTTP status).
type Access struct {
	Content  func(r *http.Request, edit bool) (*store.Content, *store.User, error)
	WriteErr func(w http.ResponseWriter, r *http.Request, err error)
}

// scheduleJSON is the API's view of a schedule.
type scheduleJSON struct {
	ID              int64      `json:"id"`
	ContentGUID     string     `json:"content_guid"`
	Cron            string     `json:"cron,omitempty"`
	IntervalSeconds int64      `json:"interval_seconds,omitempty"`
	Timezone        string     `json:"timezone"`
	Enabled         bool       `json:"enabled"`
	NextRun         *time.Time `json:"next_run"`
	LastRun         *time.Time `json:"last_run"`
	LastNode        string     `json:"last_node,omitempty"`
}

// scheduleRequest is the body of PUT.
type scheduleRequest struct {
	Cron            string `json:"cron"`
	IntervalSeconds int64  `json:"interval_seconds"`
	Timezone        string `json:"timezone"`
	Enabled         *bool  `json:"enabled"` // default true
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func toJSON(c *store.Content, s *store.Schedule) scheduleJSON {
	tz := s.Timezone
	if tz == "" {
		tz = "UTC"
	}
	return scheduleJSON{
		ID: s.ID, ContentGUID: c.GUID, Cron: s.Cron, IntervalSeconds: s.IntervalSeconds, Timezone: tz,
		Enabled: s.Enabled, NextRun: timePtr(s.NextRunAt), LastRun: timePtr(s.LastRunAt), LastNode: s.LastNode,
	}
}

// Register adds the schedule API to w.
func (s *Scheduler) Register(w *web.Server, a Access) {
	w.Handle("GET /__api__/v1/content/{guid}/schedule", s.handler(a, false, s.get))
	w.Handle("PUT /__api__/v1/content/{guid}/schedule", s.handler(a, true, s.put))
	w.Handle("DELETE /__api__/v1/content/{guid}/schedule", s.handler(a, true, s.delete))
}

type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func (s *Scheduler) handler(a Access, edit bool, f func(http.ResponseWriter, *http.Request, *store.Content) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, err := a.Content(r, edit)
		if err == nil {
			err = f(w, r, c)
		}
		if err == nil {
			return
		}
		var ae *apiError
		if errors.As(err, &ae) {
			web.WriteError(w, ae.status, ae.msg)
			return
		}
		a.WriteErr(w, r, err)
	})
}

// current is the content's schedule (the API keeps one per content).
func (s *Scheduler) current(ctx context.Context, c *store.Content) (*store.Schedule, error) {
	all, err := s.o.Store.ListSchedules(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	if len(all) == 0 {
		return nil, &apiError{http.StatusNotFound, "content " + c.Name + " has no schedule; set one with PUT"}
	}
	return &all[0], nil
}

func (s *Scheduler) get(w http.ResponseWriter, r *http.Request, c *store.Content) error {
	sc, err := s.current(r.Context(), c)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, toJSON(c, sc))
	return nil
}

func (s *Scheduler) put(w http.ResponseWriter, r *http.Request, c *store.Content) error {
	var req scheduleRequest
	if err := web.DecodeJSON(r, &req); err != nil {
		return err
	}
	if c.AppMode != "" && !isDocument(c.AppMode) {
		return &apiError{http.StatusBadRequest, "content " + c.Name + " is " + c.AppMode + ", not a document: only rmd-static, jupyter-static and quarto-static have schedules"}
	}
	sc := &store.Schedule{ContentID: c.ID, Cron: req.Cron, IntervalSeconds: req.IntervalSeconds, Timezone: req.Timezone, Enabled: true}
	if req.Enabled != nil {
		sc.Enabled = *req.Enabled
	}
	now := s.o.Now().UTC()
	nextRun, err := Next(sc, now)
	if err != nil {
		return &apiError{http.StatusBadRequest, err.Error()}
	}
	sc.NextRunAt = nextRun
	old, err := s.current(r.Context(), c)
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		err = s.o.Store.CreateSchedule(r.Context(), sc)
	case err != nil:
		return err
	default:
		sc.ID, sc.CreatedAt, sc.LastRunAt, sc.LastNode = old.ID, old.CreatedAt, old.LastRunAt, old.LastNode
		err = s.o.Store.UpdateSchedule(r.Context(), sc)
	}
	if err != nil {
		return fmt.Errorf("store schedule: %w", err)
	}
	s.Wake()
	web.WriteJSON(w, http.StatusOK, toJSON(c, sc))
	return nil
}

func (s *Scheduler) delete(w http.ResponseWriter, r *http.Request, c *store.Content) error {
	all, err := s.o.Store.ListSchedules(r.Context(), c.ID)
	if err != nil {
		return err
	}
	if len(all) == 0 {
		return &apiError{http.StatusNotFound, "content " + c.Name + " has no schedule"}
	}
	for _, sc := range all {
		if err := s.o.Store.DeleteSchedule(r.Context(), sc.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{})
	return nil
}

func isDocument(appMode string) bool {
	switch appMode {
	case "rmd-static", "jupyter-static", "quarto-static":
		return true
	}
	return false
}
