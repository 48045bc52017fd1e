package api

import (
	"net/http"

	"github.com/dais-dev/dais/server/web"
)

// listRuntimeCaches is GET /__api__/v1/system/caches/runtime: the runtimes
// that have a package cache, as [{language, version, image_name}].
func (a *API) listRuntimeCaches(w http.ResponseWriter, r *http.Request) error {
	list, err := a.dep.RuntimeCaches()
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"caches": list})
	return nil
}

// deleteRuntimeCache is DELETE /__api__/v1/system/caches/runtime
// {language, version, image_name, dry_run}: clears the package cache of
// one runtime as a task ({task_id}; null for a dry run).
func (a *API) deleteRuntimeCache(w http.ResponseWriter, r *http.Request) error {
	u, err := needUser(r)
	if err != nil {
		return err
	}
	var req struct {
		Language  string `json:"language"`
		Version   string `json:"version"`
		ImageName string `json:"image_name"`
		DryRun    bool   `json:"dry_run"`
	}
	if err := web.DecodeJSON(r, &req); err != nil {
		return err
	}
	if req.Language == "" || req.Version == "" {
		return errStatus(http.StatusBadRequest, "language and version are required: send {\"language\": \"Python\", \"version\": \"3.11.2\", \"image_name\": \"Local\"}")
	}
	rc, err := a.dep.FindRuntimeCache(req.Language, req.Version, req.ImageName)
	if err != nil {
		return err
	}
	out := map[string]any{"language": rc.Language, "version": rc.Version, "image_name": rc.ImageName, "task_id": nil}
	if !req.DryRun {
		t, err := a.dep.StartDeleteRuntimeCache(r.Context(), rc, u)
		if err != nil {
			return err
		}
		out["task_id"] = t.ID
	}
	web.WriteJSON(w, http.StatusOK, out)
	return nil
}
