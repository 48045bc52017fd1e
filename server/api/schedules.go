package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/dais-dev/dais/server/schedule"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

// scheduleJSON is the API's view of a schedule.
type scheduleJSON struct {
	ID              int64  `json:"id"`
	ContentGUID     string `json:"content_guid"`
	Cron            string `json:"cron,omitempty"`
	IntervalSeconds int64  `json:"interval_seconds,omitempty"`
	// A schedule set through Connect's API (variants.go): its type,
	// parameters and start.
	Type      string     `json:"type,omitempty"`
	Schedule  string     `json:"schedule,omitempty"`
	StartTime *time.Time `json:"start_time,omitempty"`
	Timezone  string     `json:"timezone"`
	Enabled   bool       `json:"enabled"`
	NextRun   *time.Time `json:"next_run"`
	LastRun   *time.Time `json:"last_run"`
	LastNode  string     `json:"last_node,omitempty"`
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
		Type: s.Kind, Schedule: s.Spec, StartTime: timePtr(s.StartAt),
		Enabled: s.Enabled, NextRun: timePtr(s.NextRunAt), LastRun: timePtr(s.LastRunAt), LastNode: s.LastNode,
	}
}

// current is the content's schedule (the API keeps one per content).
func (a *API) currentSchedule(ctx context.Context, c *store.Content) (*store.Schedule, error) {
	all, err := a.st.ListSchedules(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	if len(all) == 0 {
		return nil, errStatus(http.StatusNotFound, "content "+c.Name+" has no schedule; set one with PUT")
	}
	return &all[0], nil
}

// getSchedule is GET /__api__/v1/content/{guid}/schedule.
func (a *API) getSchedule(w http.ResponseWriter, r *http.Request, c *store.Content) error {
	sc, err := a.currentSchedule(r.Context(), c)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, toJSON(c, sc))
	return nil
}

// putSchedule is PUT /__api__/v1/content/{guid}/schedule {cron | interval_seconds, timezone, enabled}.
func (a *API) putSchedule(w http.ResponseWriter, r *http.Request, c *store.Content) error {
	var req scheduleRequest
	if err := web.DecodeJSON(r, &req); err != nil {
		return err
	}
	if c.AppMode != "" && !schedule.IsDocument(c.AppMode) {
		return errStatus(http.StatusBadRequest, "content "+c.Name+" is "+c.AppMode+", not a document: only rmd-static, jupyter-static and quarto-static have schedules")
	}
	sc := &store.Schedule{ContentID: c.ID, Cron: req.Cron, IntervalSeconds: req.IntervalSeconds, Timezone: req.Timezone, Enabled: true}
	if req.Enabled != nil {
		sc.Enabled = *req.Enabled
	}
	now := a.sch.Now().UTC()
	nextRun, err := schedule.Next(sc, now)
	if err != nil {
		return errStatus(http.StatusBadRequest, err.Error())
	}
	sc.NextRunAt = nextRun
	old, err := a.currentSchedule(r.Context(), c)
	var ae *web.RequestError
	switch {
	case errors.As(err, &ae):
		err = a.st.CreateSchedule(r.Context(), sc)
	case err != nil:
		return err
	default:
		sc.ID, sc.CreatedAt, sc.LastRunAt, sc.LastNode = old.ID, old.CreatedAt, old.LastRunAt, old.LastNode
		err = a.st.UpdateSchedule(r.Context(), sc)
	}
	if err != nil {
		return fmt.Errorf("store schedule: %w", err)
	}
	a.sch.Wake()
	web.WriteJSON(w, http.StatusOK, toJSON(c, sc))
	return nil
}

// deleteSchedule is DELETE /__api__/v1/content/{guid}/schedule.
func (a *API) deleteSchedule(w http.ResponseWriter, r *http.Request, c *store.Content) error {
	all, err := a.st.ListSchedules(r.Context(), c.ID)
	if err != nil {
		return err
	}
	if len(all) == 0 {
		return errStatus(http.StatusNotFound, "content "+c.Name+" has no schedule")
	}
	for _, sc := range all {
		if err := a.st.DeleteSchedule(r.Context(), sc.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{})
	return nil
}
