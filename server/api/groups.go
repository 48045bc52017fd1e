package api

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"unicode"

	"github.com/dais-dev/dais/server/authz"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

// groupJSON is a group as Connect's v1 API shows it. owner_guid is null
// for a group an authentication provider brings.
type groupJSON struct {
	GUID      string  `json:"guid"`
	Name      string  `json:"name"`
	OwnerGUID *string `json:"owner_guid"`
}

func (a *API) groupJSON(r *http.Request, g *store.Group) groupJSON {
	j := groupJSON{GUID: g.GUID, Name: g.Name}
	if g.OwnerID != 0 {
		if o, err := a.st.User(r.Context(), g.OwnerID); err == nil {
			j.OwnerGUID = &o.GUID
		}
	}
	return j
}

// groupsPage is Connect's paged list shape (as usersPage).
type groupsPage struct {
	Results     []groupJSON `json:"results"`
	CurrentPage int         `json:"current_page"`
	Total       int         `json:"total"`
}

// pageParams reads Connect's page_number (from 1) and page_size (1 to
// 500, default def).
func pageParams(r *http.Request, def int) (page, size int, err error) {
	q := r.URL.Query()
	page, size = 1, def
	if v := q.Get("page_number"); v != "" {
		if page, err = strconv.Atoi(v); err != nil || page < 1 {
			return 0, 0, errStatus(http.StatusBadRequest, "page_number must be a positive integer")
		}
	}
	if v := q.Get("page_size"); v != "" {
		if size, err = strconv.Atoi(v); err != nil || size < 1 || size > 500 {
			return 0, 0, errStatus(http.StatusBadRequest, "page_size must be an integer from 1 to 500")
		}
	}
	return page, size, nil
}

// groupOf is the group of the request's {guid}.
func (a *API) groupOf(r *http.Request) (*store.Group, error) {
	guid := r.PathValue("guid")
	g, err := a.st.GroupByGUID(r.Context(), guid)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errStatus(http.StatusNotFound, "no group with guid "+guid)
	}
	return g, err
}

// manageGroup returns the request's group when u may change it
// (authz.Group: an administrator or the group's owner, and only a local
// group, as a provider's groups change at the provider).
func (a *API) manageGroup(r *http.Request) (*store.Group, *store.User, error) {
	u, err := needUser(r)
	if err != nil {
		return nil, nil, err
	}
	g, err := a.groupOf(r)
	if err != nil {
		return nil, u, err
	}
	switch err := authz.Group(u, g); {
	case errors.Is(err, authz.ErrGroupNotOwned):
		return nil, u, errStatus(http.StatusForbidden, "user "+u.Username+" may not change group "+g.Name+": only its owner and administrators may")
	case errors.Is(err, authz.ErrGroupFromProvider):
		return nil, u, errStatus(http.StatusConflict, "group "+g.Name+" comes from the "+g.Provider+" authentication provider: change it there")
	case err != nil:
		return nil, u, err
	}
	return g, u, nil
}

// checkGroupName refuses empty, overlong or control-character names.
func checkGroupName(name string) error {
	if strings.TrimSpace(name) == "" || len(name) > 255 || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return errStatus(http.StatusBadRequest, "name must be 1 to 255 characters, not blank, without control characters")
	}
	return nil
}

// listGroups is GET /__api__/v1/groups?prefix=&page_number=&page_size=,
// and dais's owner_guid= (the groups a user owns, as the publishers'
// groups page lists them).
func (a *API) listGroups(w http.ResponseWriter, r *http.Request) error {
	page, size, err := pageParams(r, 20)
	if err != nil {
		return err
	}
	f := store.GroupFilter{Prefix: r.URL.Query().Get("prefix"), Start: (page - 1) * size, Count: size}
	out := groupsPage{Results: []groupJSON{}, CurrentPage: page}
	if guid := r.URL.Query().Get("owner_guid"); guid != "" {
		o, err := a.st.UserByGUID(r.Context(), guid)
		if errors.Is(err, store.ErrNotFound) {
			web.WriteJSON(w, http.StatusOK, out) // nobody's: no group
			return nil
		}
		if err != nil {
			return err
		}
		f.OwnerID = o.ID
	}
	gs, total, err := a.st.ListGroups(r.Context(), f)
	if err != nil {
		return err
	}
	out.Total = total
	for i := range gs {
		out.Results = append(out.Results, a.groupJSON(r, &gs[i]))
	}
	web.WriteJSON(w, http.StatusOK, out)
	return nil
}

// createGroup is POST /__api__/v1/groups {name}: a local group owned by
// its creator, a publisher or administrator.
func (a *API) createGroup(w http.ResponseWriter, r *http.Request) error {
	u, err := needUser(r)
	if err != nil {
		return err
	}
	var req struct {
		Name *string `json:"name"`
	}
	if err := web.DecodeJSON(r, &req); err != nil {
		return err
	}
	if req.Name == nil {
		return errStatus(http.StatusBadRequest, "name is required")
	}
	if err := checkGroupName(*req.Name); err != nil {
		return err
	}
	if !authz.HasRole(u, store.RolePublisher) {
		return errStatus(http.StatusForbidden, "user "+u.Username+" has role "+u.Role+"; creating groups needs publisher or administrator")
	}
	g := &store.Group{Name: *req.Name, OwnerID: u.ID}
	if err := a.st.CreateGroup(r.Context(), g); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return errStatus(http.StatusConflict, "a group named "+g.Name+" exists already")
		}
		return err
	}
	web.WriteJSON(w, http.StatusOK, a.groupJSON(r, g))
	return nil
}

func (a *API) getGroup(w http.ResponseWriter, r *http.Request) error {
	g, err := a.groupOf(r)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, a.groupJSON(r, g))
	return nil
}

// updateGroup is PATCH /__api__/v1/groups/{guid} {name?, owner_guid?}.
func (a *API) updateGroup(w http.ResponseWriter, r *http.Request) error {
	g, _, err := a.manageGroup(r)
	if err != nil {
		return err
	}
	var req struct {
		Name      *string `json:"name"`
		OwnerGUID *string `json:"owner_guid"`
	}
	if err := web.DecodeJSON(r, &req); err != nil {
		return err
	}
	if req.Name != nil {
		if err := checkGroupName(*req.Name); err != nil {
			return err
		}
		g.Name = *req.Name
	}
	if req.OwnerGUID != nil {
		o, err := a.st.UserByGUID(r.Context(), *req.OwnerGUID)
		if errors.Is(err, store.ErrNotFound) {
			return errStatus(http.StatusBadRequest, "owner_guid: no user with guid "+*req.OwnerGUID)
		}
		if err != nil {
			return err
		}
		g.OwnerID = o.ID
	}
	if err := a.st.UpdateGroup(r.Context(), g); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return errStatus(http.StatusConflict, "a group named "+g.Name+" exists already")
		}
		return err
	}
	web.WriteJSON(w, http.StatusOK, a.groupJSON(r, g))
	return nil
}

// deleteGroup is DELETE /__api__/v1/groups/{guid}: its members lose the
// access it gave them at once.
func (a *API) deleteGroup(w http.ResponseWriter, r *http.Request) error {
	g, _, err := a.manageGroup(r)
	if err != nil {
		return err
	}
	if err := a.st.DeleteGroup(r.Context(), g.ID); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, struct{}{})
	return nil
}

// listGroupMembers is GET /__api__/v1/groups/{guid}/members.
func (a *API) listGroupMembers(w http.ResponseWriter, r *http.Request) error {
	g, err := a.groupOf(r)
	if err != nil {
		return err
	}
	us, err := a.st.GroupMembers(r.Context(), g.ID)
	if err != nil {
		return err
	}
	out := usersPage{Results: make([]userJSON, 0, len(us)), CurrentPage: 1, Total: len(us)}
	for i := range us {
		out.Results = append(out.Results, newUserJSON(&us[i]))
	}
	web.WriteJSON(w, http.StatusOK, out)
	return nil
}

// addGroupMember is POST /__api__/v1/groups/{guid}/members {user_guid}.
func (a *API) addGroupMember(w http.ResponseWriter, r *http.Request) error {
	g, _, err := a.manageGroup(r)
	if err != nil {
		return err
	}
	var req struct {
		UserGUID string `json:"user_guid"`
	}
	if err := web.DecodeJSON(r, &req); err != nil {
		return err
	}
	if req.UserGUID == "" {
		return errStatus(http.StatusBadRequest, "user_guid is required")
	}
	m, err := a.st.UserByGUID(r.Context(), req.UserGUID)
	if errors.Is(err, store.ErrNotFound) {
		return errStatus(http.StatusBadRequest, "user_guid: no user with guid "+req.UserGUID)
	}
	if err != nil {
		return err
	}
	if err := a.st.AddGroupMember(r.Context(), g.ID, m.ID); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return errStatus(http.StatusConflict, "user "+m.Username+" is a member of group "+g.Name+" already")
		}
		return err
	}
	web.WriteJSON(w, http.StatusOK, struct{}{})
	return nil
}

// removeGroupMember is DELETE /__api__/v1/groups/{guid}/members/{user_guid}.
func (a *API) removeGroupMember(w http.ResponseWriter, r *http.Request) error {
	g, _, err := a.manageGroup(r)
	if err != nil {
		return err
	}
	ug := r.PathValue("user_guid")
	m, err := a.st.UserByGUID(r.Context(), ug)
	if errors.Is(err, store.ErrNotFound) {
		return errStatus(http.StatusNotFound, "no user with guid "+ug)
	}
	if err != nil {
		return err
	}
	if err := a.st.RemoveGroupMember(r.Context(), g.ID, m.ID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return errStatus(http.StatusNotFound, "user "+m.Username+" is not a member of group "+g.Name)
		}
		return err
	}
	web.WriteJSON(w, http.StatusOK, struct{}{})
	return nil
}

// groupContentJSON is one entry of GET /v1/experimental/groups/{guid}/content.
type groupContentJSON struct {
	ContentGUID  string                `json:"content_guid"`
	ContentName  string                `json:"content_name"`
	ContentTitle string                `json:"content_title"`
	AccessType   string                `json:"access_type"`
	Permissions  []groupContentPermRow `json:"permissions"`
}

type groupContentPermRow struct {
	PrincipalGUID string `json:"principal_guid"`
	PrincipalType string `json:"principal_type"`
	PrincipalName string `json:"principal_name"`
	PrincipalRole string `json:"principal_role"`
}

// groupContent is GET /__api__/v1/experimental/groups/{guid}/content: the
// content the group has a permission on, of what the caller may see.
func (a *API) groupContent(w http.ResponseWriter, r *http.Request) error {
	u, err := needUser(r)
	if err != nil {
		return err
	}
	g, err := a.groupOf(r)
	if err != nil {
		return err
	}
	ps, err := a.st.GroupPermissions(r.Context(), g.ID)
	if err != nil {
		return err
	}
	out := []groupContentJSON{}
	for _, p := range ps {
		c, err := a.st.Content(r.Context(), p.ContentID)
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
		role := "viewer"
		if p.Role == store.PermOwner {
			role = "publisher" // Connect's name for a collaborating group
		}
		out = append(out, groupContentJSON{
			ContentGUID: c.GUID, ContentName: c.Name, ContentTitle: c.Title, AccessType: c.AccessType,
			Permissions: []groupContentPermRow{{PrincipalGUID: g.GUID, PrincipalType: "group", PrincipalName: g.Name, PrincipalRole: role}},
		})
	}
	web.WriteJSON(w, http.StatusOK, out)
	return nil
}
