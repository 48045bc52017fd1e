package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dais-dev/dais/server/authz"
	"github.com/dais-dev/dais/server/deploy"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

// The legacy applications API of rsconnect 0.8.x and rsconnect-python up to 1.26.

// appJSON is a content as the legacy /__api__/applications API shows it;
// rsconnect 0.8.x reads id, guid, name, title, url and owner_username.
type appJSON struct {
	ID               int64      `json:"id"`
	GUID             string     `json:"guid"`
	Name             string     `json:"name"`
	Title            string     `json:"title"`
	Description      string     `json:"description"`
	URL              string     `json:"url"`
	AppMode          string     `json:"app_mode"`
	AccessType       string     `json:"access_type"`
	BundleID         *int64     `json:"bundle_id"`
	OwnerID          int64      `json:"owner_id"`
	OwnerGUID        string     `json:"owner_guid"`
	OwnerUsername    string     `json:"owner_username"`
	OwnerFirstName   string     `json:"owner_first_name"`
	OwnerLastName    string     `json:"owner_last_name"`
	CreatedTime      time.Time  `json:"created_time"`
	UpdatedTime      time.Time  `json:"updated_time"`
	LastDeployedTime *time.Time `json:"last_deployed_time"`
}

func (a *API) appJSON(r *http.Request, c *store.Content) appJSON { return a.appJSONIn(r, c, nil) }

// appJSONIn renders c, one of a list whose owners v keeps (nil: c alone).
func (a *API) appJSONIn(r *http.Request, c *store.Content, v *listView) appJSON {
	o := a.ownerOf(r.Context(), v, c)
	return appJSON{
		ID: c.ID, GUID: c.GUID, Name: c.Name, Title: c.Title, Description: c.Description,
		URL: a.contentURL(r, c), AppMode: c.AppMode, AccessType: c.AccessType, BundleID: c.BundleID,
		OwnerID: c.OwnerID, OwnerGUID: o.GUID, OwnerUsername: o.Username, OwnerFirstName: o.FirstName, OwnerLastName: o.LastName,
		CreatedTime: c.CreatedAt.UTC(), UpdatedTime: c.UpdatedAt.UTC(), LastDeployedTime: a.lastDeployed(c),
	}
}

// listApplications is GET /__api__/applications?filter=name:N&filter=account_id:I&search=S&count=C&start=O (or offset=O).
func (a *API) listApplications(w http.ResponseWriter, r *http.Request) error {
	u, err := needUser(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	var f store.ContentFilter
	for _, flt := range q["filter"] {
		key, val, ok := strings.Cut(flt, ":")
		if !ok {
			return errStatus(http.StatusBadRequest, fmt.Sprintf("filter %q must be key:value (name, account_id, guid, app_mode)", flt))
		}
		switch key {
		case "name":
			f.Name = val
		case "account_id":
			id, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return errStatus(http.StatusBadRequest, "filter account_id must be a number")
			}
			f.OwnerID = id
		case "app_mode":
			f.AppMode = val
		case "guid":
			c, err := a.st.ContentByGUID(r.Context(), val)
			if errors.Is(err, store.ErrNotFound) {
				web.WriteJSON(w, http.StatusOK, map[string]any{"applications": []appJSON{}, "count": 0, "total": 0, "continuation": 0})
				return nil
			}
			if err != nil {
				return err
			}
			f.Name, f.OwnerID = c.Name, c.OwnerID
		default:
			return errStatus(http.StatusBadRequest, fmt.Sprintf("unknown filter %q: use name, account_id, guid or app_mode", key))
		}
	}
	f.Search = q.Get("search")
	count, start := 100, 0
	if v := q.Get("count"); v != "" {
		if count, err = strconv.Atoi(v); err != nil || count < 1 {
			return errStatus(http.StatusBadRequest, "count must be a positive integer")
		}
	}
	for _, k := range []string{"start", "offset"} {
		if v := q.Get(k); v != "" {
			if start, err = strconv.Atoi(v); err != nil || start < 0 {
				return errStatus(http.StatusBadRequest, k+" must be a non-negative integer")
			}
		}
	}
	f.Start, f.Count = start, count
	list, total, err := a.visibleContent(r.Context(), u, f)
	if err != nil {
		return err
	}
	apps := make([]appJSON, 0, len(list))
	owners := &listView{owners: map[int64]*store.User{}}
	for i := range list {
		apps = append(apps, a.appJSONIn(r, &list[i], owners))
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{
		"applications": apps, "count": len(apps), "total": total, "continuation": start + len(apps),
	})
	return nil
}

// createApplication is POST /__api__/applications {name, title}.
func (a *API) createApplication(w http.ResponseWriter, r *http.Request) error {
	c, _, err := a.newContent(r)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, a.appJSON(r, c))
	return nil
}

func (a *API) getApplication(w http.ResponseWriter, r *http.Request) error {
	c, _, err := a.contentFor(r, authz.Viewer)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, a.appJSON(r, c))
	return nil
}

// updateApplication is POST /__api__/applications/{id} {title, ...}.
func (a *API) updateApplication(w http.ResponseWriter, r *http.Request) error {
	c, err := a.update(r)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, a.appJSON(r, c))
	return nil
}

func (a *API) configApplication(w http.ResponseWriter, r *http.Request) error {
	c, _, err := a.contentFor(r, authz.Viewer)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]string{
		"config_url": a.dashboardURL(r, c),
		"logs_url":   a.dashboardURL(r, c) + "/logs",
	})
	return nil
}

// uploadApplication is POST /__api__/applications/{id}/upload: the raw
// tar.gz body (perhaps chunked, perhaps without a Content-Type).
func (a *API) uploadApplication(w http.ResponseWriter, r *http.Request) error {
	c, _, err := a.contentFor(r, authz.Editor)
	if err != nil {
		return err
	}
	if err := a.dep.CheckSpace(r.ContentLength); err != nil {
		return err // 507 before a byte is read
	}
	web.AllowUpload(r) // an editor of c: the bundle may take its time
	b, err := a.dep.ReceiveBundle(r.Context(), c, r.Body)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{
		"id": b.ID, "app_id": c.ID, "size": b.Size, "created_time": b.CreatedAt.UTC(),
	})
	return nil
}

// deployApplication is POST /__api__/applications/{id}/deploy {bundle}.
func (a *API) deployApplication(w http.ResponseWriter, r *http.Request) error {
	c, u, err := a.contentFor(r, authz.Editor)
	if err != nil {
		return err
	}
	var req struct {
		Bundle json.Number `json:"bundle"`
	}
	if r.ContentLength != 0 {
		if err := web.DecodeJSON(r, &req); err != nil {
			return err
		}
	}
	if c.Locked {
		return errLocked(c)
	}
	t, err := a.dep.StartDeploy(r.Context(), c, u, string(req.Bundle), deploy.DeployOptions{})
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{
		"task_id": t.ID, "id": t.ID, "user_id": u.ID, "finished": false, "code": 0, "error": "",
	})
	return nil
}
