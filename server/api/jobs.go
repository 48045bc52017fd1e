package api

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/dais-dev/dais/server/authz"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

type jobJSON struct {
	ID       string `json:"id"`
	Key      string `json:"key"`
	PID      int    `json:"pid"`
	AppID    string `json:"app_id"`
	AppGUID  string `json:"app_guid"`
	BundleID string `json:"bundle_id"`
	Tag      string `json:"tag"`
	Hostname string `json:"hostname"`
	Status   int    `json:"status"` // 0 running, 1 finished (Connect's codes)
	ExitCode *int   `json:"exit_code"`
	// ExitReason (dais only): why dais ended the process, when it knows
	// ("killed: over its 256 MB memory limit").
	ExitReason string     `json:"exit_reason,omitempty"`
	StartTime  time.Time  `json:"start_time"`
	EndTime    *time.Time `json:"end_time"`
}

// listJobs is GET .../jobs: the content's processes, newest first.
func (a *API) listJobs(w http.ResponseWriter, r *http.Request) error {
	c, _, err := a.contentFor(r, authz.Editor)
	if err != nil {
		return err
	}
	jobs, err := a.st.ListJobs(r.Context(), c.ID, 100)
	if err != nil {
		return err
	}
	out := make([]jobJSON, 0, len(jobs))
	for _, j := range jobs {
		jj := jobJSON{
			ID: strconv.FormatInt(j.ID, 10), Key: j.Key, PID: j.PID, AppID: strconv.FormatInt(c.ID, 10), AppGUID: c.GUID,
			BundleID: strconv.FormatInt(j.BundleID, 10), Tag: j.Tag, Hostname: j.Node, ExitCode: j.ExitCode, ExitReason: j.ExitReason,
			StartTime: j.StartedAt.UTC(),
		}
		if !j.EndedAt.IsZero() {
			t := j.EndedAt.UTC()
			jj.EndTime, jj.Status = &t, 1
		}
		out = append(out, jj)
	}
	web.WriteJSON(w, http.StatusOK, out)
	return nil
}

// jobLog is GET .../jobs/{key}/log: the process's output, last 1000 lines.
func (a *API) jobLog(w http.ResponseWriter, r *http.Request) error {
	c, _, err := a.contentFor(r, authz.Editor)
	if err != nil {
		return err
	}
	j, err := a.st.Job(r.Context(), r.PathValue("key"))
	if errors.Is(err, store.ErrNotFound) || (err == nil && j.ContentID != c.ID) {
		return errStatus(http.StatusNotFound, "no job "+r.PathValue("key")+" of "+c.Name)
	}
	if err != nil {
		return err
	}
	type entry struct {
		Source string `json:"source"`
		Data   string `json:"data"`
	}
	entries := []entry{}
	for _, l := range a.dep.JobLog(c, j, 1000) {
		entries = append(entries, entry{Source: "output", Data: l})
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"source": "both", "entries": entries})
	return nil
}
