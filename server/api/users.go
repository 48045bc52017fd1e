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

// userJSON is a user as the Connect API shows it (v1 and the legacy
// /__api__/me); rsconnect reads id, username, first_name, last_name.
type userJSON struct {
	ID          int64      `json:"id"`
	GUID        string     `json:"guid"`
	Username    string     `json:"username"`
	FirstName   string     `json:"first_name"`
	LastName    string     `json:"last_name"`
	Email       string     `json:"email"`
	UserRole    string     `json:"user_role"`
	CreatedTime time.Time  `json:"created_time"`
	UpdatedTime time.Time  `json:"updated_time"`
	ActiveTime  *time.Time `json:"active_time"`
	Confirmed   bool       `json:"confirmed"`
	Locked      bool       `json:"locked"`
}

// newUserJSON converts a store user; the password hash never leaves.
func newUserJSON(u *store.User) userJSON {
	j := userJSON{
		ID: u.ID, GUID: u.GUID, Username: u.Username, FirstName: u.FirstName, LastName: u.LastName,
		Email: u.Email, UserRole: u.Role, CreatedTime: u.CreatedAt.UTC(), UpdatedTime: u.UpdatedAt.UTC(),
		Confirmed: true, Locked: u.Locked,
	}
	if !u.LastLoginAt.IsZero() {
		t := u.LastLoginAt.UTC()
		j.ActiveTime = &t
	}
	return j
}

func (a *API) me(w http.ResponseWriter, r *http.Request) {
	u, ok := web.UserFrom(r.Context())
	if !ok {
		web.WriteError(w, http.StatusUnauthorized, "authentication required: send an API key as 'Authorization: Key <key>'")
		return
	}
	web.WriteJSON(w, http.StatusOK, newUserJSON(u))
}

// usersPage is Connect's paged list shape.
type usersPage struct {
	Results     []userJSON `json:"results"`
	CurrentPage int        `json:"current_page"`
	Total       int        `json:"total"`
}

// listUsers is GET /__api__/v1/users?prefix=&user_role=&page_number=&page_size=.
func (a *API) listUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, size := 1, 20
	var err error
	if v := q.Get("page_number"); v != "" {
		if page, err = strconv.Atoi(v); err != nil || page < 1 {
			web.WriteError(w, http.StatusBadRequest, "page_number must be a positive integer")
			return
		}
	}
	if v := q.Get("page_size"); v != "" {
		if size, err = strconv.Atoi(v); err != nil || size < 1 || size > 500 {
			web.WriteError(w, http.StatusBadRequest, "page_size must be an integer from 1 to 500")
			return
		}
	}
	role := q.Get("user_role")
	if role != "" && !authz.ValidRole(role) {
		web.WriteError(w, http.StatusBadRequest, "user_role must be viewer, publisher or administrator")
		return
	}
	users, total, err := a.st.ListUsers(r.Context(), store.UserFilter{
		Prefix: q.Get("prefix"), Role: role, Start: (page - 1) * size, Count: size,
	})
	if err != nil {
		a.log.Error("list users", logKeyErr, err)
		web.WriteError(w, http.StatusInternalServerError, "cannot list users now")
		return
	}
	out := usersPage{Results: make([]userJSON, 0, len(users)), CurrentPage: page, Total: total}
	for i := range users {
		out.Results = append(out.Results, newUserJSON(&users[i]))
	}
	web.WriteJSON(w, http.StatusOK, out)
}

// userOf is the user of the request's {guid}; when there is none, or it
// cannot be read, it answers the request (404, 500) and says false.
func (a *API) userOf(w http.ResponseWriter, r *http.Request) (*store.User, bool) {
	u, err := a.st.UserByGUID(r.Context(), r.PathValue("guid"))
	if errors.Is(err, store.ErrNotFound) {
		web.WriteError(w, http.StatusNotFound, "no user with guid "+r.PathValue("guid"))
		return nil, false
	}
	if err != nil {
		a.log.Error("get user", logKeyErr, err)
		web.WriteError(w, http.StatusInternalServerError, "cannot read the user now")
		return nil, false
	}
	return u, true
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request) {
	u, ok := a.userOf(w, r)
	if !ok {
		return
	}
	web.WriteJSON(w, http.StatusOK, newUserJSON(u))
}

// userRequest is the body of POST /__api__/v1/users and PATCH
// /__api__/v1/users/{guid}; absent fields are left as they are.
type userRequest struct {
	Username  *string `json:"username"`
	Password  *string `json:"password"`
	FirstName *string `json:"first_name"`
	LastName  *string `json:"last_name"`
	Email     *string `json:"email"`
	UserRole  *string `json:"user_role"`
	Locked    *bool   `json:"locked"`
}

// apply copies the request's fields onto u, checking them.
func (req *userRequest) apply(u *store.User) error {
	if req.Username != nil {
		u.Username = *req.Username
	}
	if req.FirstName != nil {
		u.FirstName = *req.FirstName
	}
	if req.LastName != nil {
		u.LastName = *req.LastName
	}
	if req.Email != nil {
		u.Email = *req.Email
	}
	if req.UserRole != nil {
		if !authz.ValidRole(*req.UserRole) {
			return errStatus(http.StatusBadRequest, "user_role must be viewer, publisher or administrator")
		}
		u.Role = *req.UserRole
	}
	if req.Locked != nil {
		u.Locked = *req.Locked
	}
	if req.Password != nil {
		if len(*req.Password) < 8 {
			return errStatus(http.StatusBadRequest, "password must have at least 8 characters")
		}
		h, err := web.HashPassword(*req.Password)
		if err != nil {
			return err
		}
		u.PasswordHash = h
	}
	return nil
}

// createUser is POST /__api__/v1/users (administrators):
// {username, password, first_name, last_name, email, user_role}.
func (a *API) createUser(w http.ResponseWriter, r *http.Request) {
	var req userRequest
	if err := web.DecodeJSON(r, &req); err != nil {
		web.WriteRequestError(w, err)
		return
	}
	if req.Username == nil || *req.Username == "" {
		web.WriteError(w, http.StatusBadRequest, "username is required")
		return
	}
	u := &store.User{Role: store.RoleViewer, Provider: a.web.Config().Authentication.Provider}
	if u.Provider != store.ProviderPassword && req.Password != nil {
		web.WriteError(w, http.StatusBadRequest, "this server signs people in through Authentication.Provider = "+u.Provider+
			", not with passwords: create the account without one; the first login with the same username takes it over")
		return
	}
	if err := req.apply(u); err != nil {
		web.WriteRequestError(w, err)
		return
	}
	a.writeSavedUser(w, u, "create", a.st.CreateUser(r.Context(), u))
}

// writeSavedUser answers a create or update of u: the user, or why it
// was not saved (409 for a taken username, the data volume's state when
// it is full, else a 500 that the log explains).
func (a *API) writeSavedUser(w http.ResponseWriter, u *store.User, action string, err error) {
	if err == nil {
		web.WriteJSON(w, http.StatusOK, newUserJSON(u))
		return
	}
	if errors.Is(err, store.ErrConflict) {
		web.WriteError(w, http.StatusConflict, "user "+u.Username+" already exists")
		return
	}
	if fe := a.web.Disk().Failed(err); fe != nil {
		web.WriteError(w, fe.Status(), fe.Error())
		return
	}
	a.log.Error(action+" user", logKeyUser, u.Username, logKeyErr, err)
	web.WriteError(w, http.StatusInternalServerError, "cannot "+action+" the user now")
}

// updateUser is PATCH /__api__/v1/users/{guid}: administrators change
// anything; users change their own names, e-mail and password.
func (a *API) updateUser(w http.ResponseWriter, r *http.Request) {
	me, _ := web.UserFrom(r.Context())
	var req userRequest
	if err := web.DecodeJSON(r, &req); err != nil {
		web.WriteRequestError(w, err)
		return
	}
	u, ok := a.userOf(w, r)
	if !ok {
		return
	}
	if !authz.HasRole(me, store.RoleAdministrator) {
		if u.ID != me.ID {
			web.WriteError(w, http.StatusForbidden, "only administrators may change other users")
			return
		}
		if req.UserRole != nil || req.Locked != nil || req.Username != nil {
			web.WriteError(w, http.StatusForbidden, "only administrators may change usernames, roles and locks")
			return
		}
	}
	if u.ID == me.ID && req.Locked != nil && *req.Locked {
		web.WriteError(w, http.StatusBadRequest, "administrators cannot lock themselves; ask another administrator")
		return
	}
	if err := req.apply(u); err != nil {
		web.WriteRequestError(w, err)
		return
	}
	a.writeSavedUser(w, u, "update", a.st.UpdateUser(r.Context(), u))
}

// lockUser is POST /__api__/v1/users/{guid}/lock {locked} (administrators):
// a locked user's API keys and sessions are refused at once, everywhere.
func (a *API) lockUser(w http.ResponseWriter, r *http.Request) {
	me, _ := web.UserFrom(r.Context())
	var req struct {
		Locked *bool `json:"locked"`
	}
	if err := web.DecodeJSON(r, &req); err != nil {
		web.WriteRequestError(w, err)
		return
	}
	if req.Locked == nil {
		web.WriteError(w, http.StatusBadRequest, "locked is required: send {\"locked\": true} to lock, false to unlock")
		return
	}
	u, ok := a.userOf(w, r)
	if !ok {
		return
	}
	if u.ID == me.ID && *req.Locked {
		web.WriteError(w, http.StatusBadRequest, "administrators cannot lock themselves; ask another administrator")
		return
	}
	u.Locked = *req.Locked
	err := a.st.UpdateUser(r.Context(), u)
	if err == nil {
		a.log.Info("user lock changed", logKeyUser, u.Username, "locked", u.Locked, "by", me.Username)
	}
	a.writeSavedUser(w, u, "lock", err)
}
