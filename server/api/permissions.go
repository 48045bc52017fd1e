package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/dais-dev/dais/server/authz"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

type permissionJSON struct {
	ID            string `json:"id"`
	ContentGUID   string `json:"content_guid"`
	PrincipalGUID string `json:"principal_guid"`
	PrincipalType string `json:"principal_type"`
	Role          string `json:"role"`
}

func (a *API) permissionJSON(ctx context.Context, c *store.Content, p *store.Permission) permissionJSON {
	j := permissionJSON{ID: strconv.FormatInt(p.ID, 10), ContentGUID: c.GUID, PrincipalType: "user", Role: p.Role}
	if p.GroupID != 0 {
		j.PrincipalType = "group"
		if g, err := a.st.Group(ctx, p.GroupID); err == nil {
			j.PrincipalGUID = g.GUID
		}
		return j
	}
	if u, err := a.st.User(ctx, p.UserID); err == nil {
		j.PrincipalGUID = u.GUID
	}
	return j
}

func (a *API) listPermissions(w http.ResponseWriter, r *http.Request) error {
	c, _, err := a.contentFor(r, authz.Viewer)
	if err != nil {
		return err
	}
	ps, err := a.st.Permissions(r.Context(), c.ID)
	if err != nil {
		return err
	}
	out := make([]permissionJSON, 0, len(ps))
	for i := range ps {
		out = append(out, a.permissionJSON(r.Context(), c, &ps[i]))
	}
	web.WriteJSON(w, http.StatusOK, out)
	return nil
}

type permissionRequest struct {
	PrincipalGUID string `json:"principal_guid"`
	PrincipalType string `json:"principal_type"`
	Role          string `json:"role"`
}

func checkPermRole(role string) error {
	if role != store.PermViewer && role != store.PermOwner {
		return errStatus(http.StatusBadRequest, fmt.Sprintf("role %q is not valid: use viewer or owner", role))
	}
	return nil
}

// principal fills p's user or group from a request's principal_guid and
// principal_type ("user", the default, or "group").
func (a *API) principal(r *http.Request, req *permissionRequest, p *store.Permission) error {
	switch req.PrincipalType {
	case "", "user":
		u, err := a.st.UserByGUID(r.Context(), req.PrincipalGUID)
		if errors.Is(err, store.ErrNotFound) {
			return errStatus(http.StatusBadRequest, "principal_guid: no user with guid "+req.PrincipalGUID)
		}
		if err != nil {
			return err
		}
		p.UserID, p.GroupID = u.ID, 0
	case "group":
		g, err := a.st.GroupByGUID(r.Context(), req.PrincipalGUID)
		if errors.Is(err, store.ErrNotFound) {
			return errStatus(http.StatusBadRequest, "principal_guid: no group with guid "+req.PrincipalGUID)
		}
		if err != nil {
			return err
		}
		p.UserID, p.GroupID = 0, g.ID
	default:
		return errStatus(http.StatusBadRequest, fmt.Sprintf("principal_type %q is not valid: use user or group", req.PrincipalType))
	}
	return nil
}

// addPermission is POST .../permissions {principal_guid, principal_type: "user" | "group", role}.
func (a *API) addPermission(w http.ResponseWriter, r *http.Request) error {
	c, _, err := a.contentFor(r, authz.Editor)
	if err != nil {
		return err
	}
	var req permissionRequest
	if err := web.DecodeJSON(r, &req); err != nil {
		return err
	}
	if err := checkPermRole(req.Role); err != nil {
		return err
	}
	p := &store.Permission{ContentID: c.ID, Role: req.Role}
	if err := a.principal(r, &req, p); err != nil {
		return err
	}
	if err := a.st.SetPermission(r.Context(), p); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, a.permissionJSON(r.Context(), c, p))
	return nil
}

func (a *API) permissionOf(r *http.Request, c *store.Content) (*store.Permission, error) {
	id, err := strconv.ParseInt(r.PathValue("pid"), 10, 64)
	if err != nil {
		return nil, errStatus(http.StatusNotFound, "no permission "+r.PathValue("pid"))
	}
	p, err := a.st.Permission(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && p.ContentID != c.ID) {
		return nil, errStatus(http.StatusNotFound, "no permission "+r.PathValue("pid")+" on "+c.Name)
	}
	return p, err
}

func (a *API) updatePermission(w http.ResponseWriter, r *http.Request) error {
	c, _, err := a.contentFor(r, authz.Editor)
	if err != nil {
		return err
	}
	p, err := a.permissionOf(r, c)
	if err != nil {
		return err
	}
	var req permissionRequest
	if err := web.DecodeJSON(r, &req); err != nil {
		return err
	}
	if err := checkPermRole(req.Role); err != nil {
		return err
	}
	p.Role = req.Role
	if err := a.st.SetPermission(r.Context(), p); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, a.permissionJSON(r.Context(), c, p))
	return nil
}

func (a *API) deletePermission(w http.ResponseWriter, r *http.Request) error {
	c, _, err := a.contentFor(r, authz.Editor)
	if err != nil {
		return err
	}
	p, err := a.permissionOf(r, c)
	if err != nil {
		return err
	}
	if err := a.st.DeletePermission(r.Context(), p.ID); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, struct{}{})
	return nil
}
