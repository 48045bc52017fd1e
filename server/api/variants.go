package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dais-dev/dais/server/authz"
	"github.com/dais-dev/dais/server/schedule"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

// Connect's legacy variants and schedules API, as connectapi calls it,
// over dais's one schedule model (server/schedule; the same schedules
// /__api__/v1/content/{guid}/schedule shows). A document has exactly one
// variant, its default: its id is the content's numeric id and its key
// the start of the content's guid. dais has no parameterised variants.

// variantJSON is a variant as Connect's legacy API shows it.
type variantJSON struct {
	ID                 int64      `json:"id"`
	AppID              int64      `json:"app_id"`
	Key                string     `json:"key"`
	BundleID           *int64     `json:"bundle_id"`
	IsDefault          bool       `json:"is_default"`
	Name               string     `json:"name"`
	EmailCollaborators bool       `json:"email_collaborators"`
	EmailViewers       bool       `json:"email_viewers"`
	CreatedTime        time.Time  `json:"created_time"`
	RenderingID        *int64     `json:"rendering_id"`
	RenderTime         *time.Time `json:"render_time"`
	RenderDuration     *int64     `json:"render_duration"`
	Visibility         string     `json:"visibility"`
	OwnerID            int64      `json:"owner_id"`
}

// variantKey is the key of a content's default variant.
func variantKey(c *store.Content) string {
	return strings.ReplaceAll(c.GUID, "-", "")[:8]
}

// isDocument: content that renders (or is not deployed yet, so may).
func isDocument(c *store.Content) bool {
	return c.AppMode == "" || schedule.IsDocument(c.AppMode)
}

func (a *API) variantJSON(ctx context.Context, c *store.Content) (variantJSON, error) {
	v := variantJSON{
		ID: c.ID, AppID: c.ID, Key: variantKey(c), BundleID: c.BundleID, IsDefault: true, Name: "default",
		CreatedTime: c.CreatedAt.UTC(), Visibility: "public", OwnerID: c.OwnerID,
	}
	r, err := a.st.LatestRender(ctx, c.ID, store.RenderSucceeded)
	if errors.Is(err, store.ErrNotFound) {
		return v, nil
	}
	if err != nil {
		return v, err
	}
	v.RenderingID, v.RenderTime, v.RenderDuration = &r.ID, renderTime(r), renderDuration(r)
	return v, nil
}

func renderTime(r *store.Render) *time.Time {
	t := r.StartedAt
	if t.IsZero() {
		t = r.CreatedAt
	}
	return timePtr(t)
}

// renderDuration is in nanoseconds, as Connect's (a Go time.Duration).
func renderDuration(r *store.Render) *int64 {
	if r.StartedAt.IsZero() || r.FinishedAt.IsZero() {
		return nil
	}
	d := int64(r.FinishedAt.Sub(r.StartedAt))
	return &d
}

// variantContent is the content of the request's variant {vid}, which
// the user must have want on.
func (a *API) variantContent(r *http.Request, want authz.Access) (*store.Content, *store.User, error) {
	u, err := needUser(r)
	if err != nil {
		return nil, nil, err
	}
	ref := r.PathValue("vid")
	id, err := strconv.ParseInt(ref, 10, 64)
	if err != nil {
		return nil, u, errStatus(http.StatusNotFound, "no variant "+ref+": variant ids are numbers")
	}
	c, err := a.st.Content(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, u, errStatus(http.StatusNotFound, "no variant "+ref)
	}
	if err != nil {
		return nil, u, err
	}
	have, err := authz.Content(r.Context(), a.st, u, c)
	if err != nil {
		return nil, u, err
	}
	if have == authz.None || !isDocument(c) {
		return nil, u, errStatus(http.StatusNotFound, "no variant "+ref)
	}
	if have < want {
		return nil, u, errStatus(http.StatusForbidden, "user "+u.Username+" may view but not change content "+c.Name+"; ask its owner to add them as a collaborator")
	}
	return c, u, nil
}

// listVariants is GET /__api__/applications/{guid}/variants: a document's
// one variant; other content has none.
func (a *API) listVariants(w http.ResponseWriter, r *http.Request) error {
	c, _, err := a.contentFor(r, authz.Viewer)
	if err != nil {
		return err
	}
	out := []variantJSON{}
	if isDocument(c) {
		v, err := a.variantJSON(r.Context(), c)
		if err != nil {
			return err
		}
		out = append(out, v)
	}
	web.WriteJSON(w, http.StatusOK, out)
	return nil
}

// getVariant is GET /__api__/variants/{vid}.
func (a *API) getVariant(w http.ResponseWriter, r *http.Request) error {
	c, _, err := a.variantContent(r, authz.Viewer)
	if err != nil {
		return err
	}
	v, err := a.variantJSON(r.Context(), c)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, v)
	return nil
}

// renderVariant is POST /__api__/variants/{vid}/render: the task of a new
// rendering, polled at /__api__/v1/tasks/{id}.
func (a *API) renderVariant(w http.ResponseWriter, r *http.Request) error {
	c, u, err := a.variantContent(r, authz.Editor)
	if err != nil {
		return err
	}
	t, err := a.dep.StartRenderBy(r.Context(), c, u)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{
		"id": t.ID, "task_id": t.ID, "user_id": u.ID, "finished": false, "code": 0, "error": "",
	})
	return nil
}

// renderingJSON is one rendering of a variant, as Connect shows it.
type renderingJSON struct {
	ID             int64      `json:"id"`
	AppID          int64      `json:"app_id"`
	VariantID      int64      `json:"variant_id"`
	BundleID       int64      `json:"bundle_id"`
	JobKey         *string    `json:"job_key"`
	RenderTime     *time.Time `json:"render_time"`
	RenderDuration *int64     `json:"render_duration"`
	Active         bool       `json:"active"`
	// dais's own: how the rendering went, and its task (its log).
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	TaskID string `json:"task_id,omitempty"`
}

// listRenderings is GET /__api__/variants/{vid}/renderings: newest first;
// active is the one being served.
func (a *API) listRenderings(w http.ResponseWriter, r *http.Request) error {
	c, _, err := a.variantContent(r, authz.Viewer)
	if err != nil {
		return err
	}
	rs, err := a.st.ListRenders(r.Context(), c.ID, 0)
	if err != nil {
		return err
	}
	var active int64
	if lr, err := a.st.LatestRender(r.Context(), c.ID, store.RenderSucceeded); err == nil {
		active = lr.ID
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	out := make([]renderingJSON, 0, len(rs))
	for i := range rs {
		x := &rs[i]
		out = append(out, renderingJSON{
			ID: x.ID, AppID: c.ID, VariantID: c.ID, BundleID: x.BundleID, RenderTime: renderTime(x),
			RenderDuration: renderDuration(x), Active: x.ID == active, Status: x.Status, Error: x.Error, TaskID: x.TaskID,
		})
	}
	web.WriteJSON(w, http.StatusOK, out)
	return nil
}

// connectScheduleJSON is a schedule as Connect's legacy API shows it;
// schedule is a JSON document in a string.
type connectScheduleJSON struct {
	ID        int64      `json:"id"`
	AppID     int64      `json:"app_id"`
	VariantID int64      `json:"variant_id"`
	Type      string     `json:"type"`
	Schedule  string     `json:"schedule"`
	StartTime time.Time  `json:"start_time"`
	NextRun   *time.Time `json:"next_run"`
	Timezone  string     `json:"timezone"`
	Email     bool       `json:"email"`
	Activate  bool       `json:"activate"`
}

// connectSchedule shows s as Connect does. One of dais's own schedules
// (a cron expression or an interval) shows as type "cron" with
// {"cron": ...}, or as minutes or hours.
func connectSchedule(s *store.Schedule) connectScheduleJSON {
	j := connectScheduleJSON{
		ID: s.ID, AppID: s.ContentID, VariantID: s.ContentID, Type: s.Kind, Schedule: s.Spec,
		StartTime: s.StartAt.UTC(), NextRun: timePtr(s.NextRunAt), Timezone: s.Timezone, Email: s.Email, Activate: s.Enabled,
	}
	if j.Timezone == "" {
		j.Timezone = "UTC"
	}
	if s.StartAt.IsZero() {
		j.StartTime = s.CreatedAt.UTC()
	}
	switch {
	case s.Kind != "":
	case s.Cron != "":
		b, _ := json.Marshal(map[string]string{"cron": s.Cron})
		j.Type, j.Schedule = "cron", string(b)
	case s.IntervalSeconds%3600 == 0:
		j.Type, j.Schedule = "hour", fmt.Sprintf(`{"N":%d}`, s.IntervalSeconds/3600)
	default:
		j.Type, j.Schedule = "minute", fmt.Sprintf(`{"N":%d}`, max(s.IntervalSeconds/60, 1))
	}
	return j
}

// connectScheduleRequest is the body of POST /__api__/schedules[/{id}].
// connectapi sends back what it read, plus its own fields: unknown ones
// (id, next_run, app_guid, variant_key) are ignored.
type connectScheduleRequest struct {
	AppID     json.RawMessage `json:"app_id"`
	VariantID json.RawMessage `json:"variant_id"`
	Type      *string         `json:"type"`
	Schedule  json.RawMessage `json:"schedule"` // a JSON string holding the object, or the object
	StartTime *string         `json:"start_time"`
	Timezone  *string         `json:"timezone"`
	Email     *bool           `json:"email"`
	Activate  *bool           `json:"activate"`
}

// apply sets the request's fields on s (a new schedule has no Kind yet).
func (req *connectScheduleRequest) apply(s *store.Schedule, now time.Time) error {
	if req.Type != nil {
		s.Kind = *req.Type
	}
	if s.Kind == "" {
		return errStatus(http.StatusBadRequest, "type is required: one of "+strings.Join(schedule.Kinds, ", "))
	}
	if s.Kind == "cron" {
		// One of dais's own schedules, as connectSchedule shows it.
		var c struct {
			Cron string `json:"cron"`
		}
		if err := json.Unmarshal([]byte(specText(req.Schedule)), &c); err != nil || c.Cron == "" {
			return errStatus(http.StatusBadRequest, `a schedule of type cron is {"cron": "<expression>"}`)
		}
		s.Kind, s.Spec, s.Cron, s.IntervalSeconds = "", "", c.Cron, 0
	} else {
		if req.Schedule != nil || s.Spec == "" {
			s.Spec = specText(req.Schedule)
		}
		s.Cron, s.IntervalSeconds = "", 0
		if err := schedule.CheckSpec(s.Kind, s.Spec); err != nil {
			return errStatus(http.StatusBadRequest, err.Error())
		}
	}
	if req.StartTime != nil && *req.StartTime != "" {
		t, err := time.Parse(time.RFC3339Nano, *req.StartTime)
		if err != nil {
			return errStatus(http.StatusBadRequest, fmt.Sprintf("start_time %q must be an RFC 3339 time, such as 2026-03-02T09:30:00Z", *req.StartTime))
		}
		s.StartAt = t
	}
	if s.StartAt.IsZero() {
		s.StartAt = now
	}
	if req.Timezone != nil {
		s.Timezone = *req.Timezone
	}
	if s.Timezone == "UTC" {
		s.Timezone = ""
	}
	if req.Email != nil {
		s.Email = *req.Email
	}
	if req.Activate != nil {
		s.Enabled = *req.Activate
	}
	return nil
}

// specText is the schedule parameters as text: a JSON string's content,
// or the JSON object itself.
func specText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// refID reads an id sent as a number or a string.
func refID(name string, raw json.RawMessage) (int64, error) {
	s := strings.Trim(strings.TrimSpace(string(raw)), `"`)
	if s == "" || s == "null" {
		return 0, nil
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, errStatus(http.StatusBadRequest, name+" must be a positive integer")
	}
	return id, nil
}

// storeSchedule computes the next run and writes s (created when it has
// no id), then wakes the scheduler.
func (a *API) storeSchedule(ctx context.Context, s *store.Schedule) error {
	next, err := schedule.Next(s, a.sch.Now().UTC())
	if err != nil {
		return errStatus(http.StatusBadRequest, err.Error())
	}
	s.NextRunAt = next
	if s.ID == 0 {
		err = a.st.CreateSchedule(ctx, s)
	} else {
		err = a.st.UpdateSchedule(ctx, s)
	}
	if err != nil {
		return fmt.Errorf("store schedule: %w", err)
	}
	a.sch.Wake()
	return nil
}

// variantSchedules is GET /__api__/variants/{vid}/schedules: [] or the one schedule.
func (a *API) variantSchedules(w http.ResponseWriter, r *http.Request) error {
	c, _, err := a.variantContent(r, authz.Viewer)
	if err != nil {
		return err
	}
	all, err := a.st.ListSchedules(r.Context(), c.ID)
	if err != nil {
		return err
	}
	out := make([]connectScheduleJSON, 0, len(all))
	for i := range all {
		out = append(out, connectSchedule(&all[i]))
	}
	web.WriteJSON(w, http.StatusOK, out)
	return nil
}

// createConnectSchedule is POST /__api__/schedules {app_id | variant_id,
// type, schedule, start_time, timezone, email}: the content's schedule
// (one per content; 409 when it has one).
func (a *API) createConnectSchedule(w http.ResponseWriter, r *http.Request) error {
	var req connectScheduleRequest
	if err := web.DecodeJSON(r, &req); err != nil {
		return err
	}
	vid, err := refID("variant_id", req.VariantID)
	if err != nil {
		return err
	}
	if vid == 0 {
		if vid, err = refID("app_id", req.AppID); err != nil {
			return err
		}
	}
	if vid == 0 {
		return errStatus(http.StatusBadRequest, "variant_id (or app_id) is required: the variant to schedule")
	}
	r.SetPathValue("vid", strconv.FormatInt(vid, 10))
	c, _, err := a.variantContent(r, authz.Editor)
	if err != nil {
		return err
	}
	if existing, err := a.st.ListSchedules(r.Context(), c.ID); err != nil {
		return err
	} else if len(existing) > 0 {
		return errStatus(http.StatusConflict, fmt.Sprintf("content %s has schedule %d already; change it with POST /__api__/schedules/%d", c.Name, existing[0].ID, existing[0].ID))
	}
	s := &store.Schedule{ContentID: c.ID, Enabled: true}
	if err := req.apply(s, a.sch.Now().UTC()); err != nil {
		return err
	}
	if err := a.storeSchedule(r.Context(), s); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, connectSchedule(s))
	return nil
}

// scheduleOf is the schedule {id} and its content, on which the user must
// have want.
func (a *API) scheduleOf(r *http.Request, want authz.Access) (*store.Schedule, error) {
	ref := r.PathValue("id")
	id, err := strconv.ParseInt(ref, 10, 64)
	if err != nil {
		return nil, errStatus(http.StatusNotFound, "no schedule "+ref+": schedule ids are numbers")
	}
	s, err := a.st.Schedule(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errStatus(http.StatusNotFound, "no schedule "+ref)
	}
	if err != nil {
		return nil, err
	}
	r.SetPathValue("vid", strconv.FormatInt(s.ContentID, 10))
	if _, _, err := a.variantContent(r, want); err != nil {
		var re *web.RequestError
		if errors.As(err, &re) && re.Status == http.StatusNotFound {
			return nil, errStatus(http.StatusNotFound, "no schedule "+ref)
		}
		return nil, err
	}
	return s, nil
}

// getConnectSchedule is GET /__api__/schedules/{id}.
func (a *API) getConnectSchedule(w http.ResponseWriter, r *http.Request) error {
	s, err := a.scheduleOf(r, authz.Viewer)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, connectSchedule(s))
	return nil
}

// updateConnectSchedule is POST /__api__/schedules/{id}: the fields sent
// change, the others stay; the next run is computed again.
func (a *API) updateConnectSchedule(w http.ResponseWriter, r *http.Request) error {
	s, err := a.scheduleOf(r, authz.Editor)
	if err != nil {
		return err
	}
	var req connectScheduleRequest
	if err := web.DecodeJSON(r, &req); err != nil {
		return err
	}
	if s.Kind == "" && req.Type == nil {
		// One of dais's own: a Connect client must say what it becomes.
		return errStatus(http.StatusBadRequest, "type is required to change this schedule: one of "+strings.Join(schedule.Kinds, ", "))
	}
	if err := req.apply(s, a.sch.Now().UTC()); err != nil {
		return err
	}
	if err := a.storeSchedule(r.Context(), s); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, connectSchedule(s))
	return nil
}

// deleteConnectSchedule is DELETE /__api__/schedules/{id}.
func (a *API) deleteConnectSchedule(w http.ResponseWriter, r *http.Request) error {
	s, err := a.scheduleOf(r, authz.Editor)
	if err != nil {
		return err
	}
	if err := a.st.DeleteSchedule(r.Context(), s.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	web.WriteJSON(w, http.StatusOK, struct{}{})
	return nil
}

// listConnectSchedules is GET /__api__/schedules: the schedules of the
// content the user may see.
func (a *API) listConnectSchedules(w http.ResponseWriter, r *http.Request) error {
	u, err := needUser(r)
	if err != nil {
		return err
	}
	all, err := a.st.ListSchedules(r.Context(), 0)
	if err != nil {
		return err
	}
	out := []connectScheduleJSON{}
	for i := range all {
		c, err := a.st.Content(r.Context(), all[i].ContentID)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if have, err := authz.Content(r.Context(), a.st, u, c); err != nil {
			return err
		} else if have == authz.None {
			continue
		}
		out = append(out, connectSchedule(&all[i]))
	}
	web.WriteJSON(w, http.StatusOK, out)
	return nil
}
