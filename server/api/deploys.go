package api

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/dais-dev/dais/server/authz"
	"github.com/dais-dev/dais/server/deploy"
	"github.com/dais-dev/dais/server/web"
)

// deployContent is POST /__api__/v1/content/{guid}/deploy
// {bundle_id, activate}: bundle_id absent or null means the newest (for
// git-backed content: a new bundle from the branch's head); activate false
// builds the bundle as a draft, without making it live.
func (a *API) deployContent(w http.ResponseWriter, r *http.Request) error {
	return a.startDeploy(w, r, false)
}

// buildContent is POST /__api__/v1/content/{guid}/build {bundle_id,
// activate}: a deploy whose package environment is restored again from
// scratch (not from the package cache), as rsconnect's content build run
// asks after a runtime changed.
func (a *API) buildContent(w http.ResponseWriter, r *http.Request) error {
	return a.startDeploy(w, r, true)
}

func (a *API) startDeploy(w http.ResponseWriter, r *http.Request, rebuild bool) error {
	c, u, err := a.contentFor(r, authz.Editor)
	if err != nil {
		return err
	}
	var req struct {
		BundleID json.RawMessage `json:"bundle_id"`
		Activate *bool           `json:"activate"`
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
	if c.Locked {
		return errLocked(c)
	}
	o := deploy.DeployOptions{Draft: req.Activate != nil && !*req.Activate, Rebuild: rebuild}
	if ref == "" {
		// Git-backed content without a bundle named: fetch the branch.
		git, err := a.gitBacked(r, c)
		if err != nil {
			return err
		}
		if git {
			t, err := a.dep.StartRepoDeploy(r.Context(), c, u, o)
			if err != nil {
				return err
			}
			web.WriteJSON(w, http.StatusOK, map[string]string{"task_id": t.ID})
			return nil
		}
	}
	t, err := a.dep.StartDeploy(r.Context(), c, u, ref, o)
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
