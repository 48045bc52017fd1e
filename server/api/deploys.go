package api

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/dais-dev/dais/server/authz"
	"github.com/dais-dev/dais/server/web"
)

// deployContent is POST /__api__/v1/content/{guid}/deploy {bundle_id}.
func (a *API) deployContent(w http.ResponseWriter, r *http.Request) error {
	c, u, err := a.contentFor(r, authz.Editor)
	if err != nil {
		return err
	}
	var req struct {
		BundleID json.RawMessage `json:"bundle_id"`
	}
	if r.ContentLength != 0 {
		if err := web.DecodeJSON(r, &req); err != nil {
			return err
		}
	}
	ref := strings.Trim(string(req.BundleID), `"`)
	if ref == "null" {
		ref = ""
	}
	t, err := a.dep.StartDeploy(r.Context(), c, u, ref)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]string{"task_id": t.ID})
	return nil
}

// renderContent is POST /__api__/v1/content/{guid}/render: render the
// document again; its output replaces the served one when it succeeds.
func (a *API) renderContent(w http.ResponseWriter, r *http.Request) error {
	c, u, err := a.contentFor(r, authz.Editor)
	if err != nil {
		return err
	}
	t, err := a.dep.StartRenderBy(r.Context(), c, u)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]string{"id": t.ID, "task_id": t.ID})
	return nil
}
