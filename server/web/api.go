package web

import (
	"errors"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/dais-dev/dais/server/store"
)

// UserJSON is a user as the Connect API shows it (v1 and the legacy
// /__api__/me); rsconnect reads id, username, first_name, last_name.
type UserJSON struct {
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

// NewUserJSON converts a store user; the password hash never leaves.
func NewUserJSON(u *store.User) UserJSON {
	j := UserJSON{
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

func (s *Server) handleMe(w http.ResponseWriter, r *http.Request) {
	u, ok := UserFrom(r.Context())
	if !ok {
		WriteError(w, http.StatusUnauthorized, "authentication required: send an API key as 'Authorization: Key <key>'")
		return
	}
	WriteJSON(w, http.StatusOK, NewUserJSON(u))
}

// handleServerSettings is public: rsconnect reads version before it has
// checked the key.
func (s *Server) handleServerSettings(w http.ResponseWriter, r *http.Request) {
	cfg := s.Config()
	ok, reason := s.gateState()
	host, _ := os.Hostname()
	WriteJSON(w, http.StatusOK, map[string]any{
		"version":  s.version,
		"build":    "dais " + s.version,
		"hostname": host,
		"authentication": map[string]any{
			"name":                "Password",
			"handles_credentials": true,
			"handles_login":       true,
			"unique_usernames":    true,
		},
		"license": map[string]any{
			"type":   cfg.Licensing.LicenseType,
			"ok":     ok,
			"reason": reason,
		},
		"r":      map[string]any{"enabled": cfg.R.Enabled},
		"python": map[string]any{"enabled": cfg.Python.Enabled},
		"quarto": map[string]any{"enabled": cfg.Quarto.Enabled},
	})
}

// usersPage is Connect's paged list shape.
type usersPage struct {
	Results     []UserJSON `json:"results"`
	CurrentPage int        `json:"current_page"`
	Total       int        `json:"total"`
}

// handleListUsers is GET /__api__/v1/users?prefix=&user_role=&page_number=&page_size=.
func (s *Server) handleListUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	page, size := 1, 20
	var err error
	if v := q.Get("page_number"); v != "" {
		if page, err = strconv.Atoi(v); err != nil || page < 1 {
			WriteError(w, http.StatusBadRequest, "page_number must be a positive integer")
			return
		}
	}
	if v := q.Get("page_size"); v != "" {
		if size, err = strconv.Atoi(v); err != nil || size < 1 || size > 500 {
			WriteError(w, http.StatusBadRequest, "page_size must be an integer from 1 to 500")
			return
		}
	}
	role := q.Get("user_role")
	if role != "" && !ValidRole(role) {
		WriteError(w, http.StatusBadRequest, "user_role must be viewer, publisher or administrator")
		return
	}
	users, total, err := s.store.ListUsers(r.Context(), store.UserFilter{
		Prefix: q.Get("prefix"), Role: role, Start: (page - 1) * size, Count: size,
	})
	if err != nil {
		s.log.Error("list users", logKeyErr, err)
		WriteError(w, http.StatusInternalServerError, "cannot list users now")
		return
	}
	out := usersPage{Results: make([]UserJSON, 0, len(users)), CurrentPage: page, Total: total}
	for i := range users {
		out.Results = append(out.Results, NewUserJSON(&users[i]))
	}
	WriteJSON(w, http.StatusOK, out)
}

func (s *Server) handleGetUser(w http.ResponseWriter, r *http.Request) {
	u, err := s.store.UserByGUID(r.Context(), r.PathValue("guid"))
	if errors.Is(err, store.ErrNotFound) {
		WriteError(w, http.StatusNotFound, "no user with guid "+r.PathValue("guid"))
		return
	}
	if err != nil {
		s.log.Error("get user", logKeyErr, err)
		WriteError(w, http.StatusInternalServerError, "cannot read the user now")
		return
	}
	WriteJSON(w, http.StatusOK, NewUserJSON(u))
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
		if !ValidRole(*req.UserRole) {
			return &RequestError{http.StatusBadRequest, "user_role must be viewer, publisher or administrator"}
		}
		u.Role = *req.UserRole
	}
	if req.Locked != nil {
		u.Locked = *req.Locked
	}
	if req.Password != nil {
		if len(*req.Password) < 8 {
			return &RequestError{http.StatusBadRequest, "password must have at least 8 characters"}
		}
		h, err := HashPassword(*req.Password)
		if err != nil {
			return err
		}
		u.PasswordHash = h
	}
	return nil
}

// handleCreateUser is POST /__api__/v1/users (administrators):
// {username, password, first_name, last_name, email, user_role}.
func (s *Server) handleCreateUser(w http.ResponseWriter, r *http.Request) {
	var req userRequest
	if err := DecodeJSON(r, &req); err != nil {
		WriteRequestError(w, err)
		return
	}
	if req.Username == nil || *req.Username == "" {
		WriteError(w, http.StatusBadRequest, "username is required")
		return
	}
	u := &store.User{Role: store.RoleViewer}
	if err := req.apply(u); err != nil {
		WriteRequestError(w, err)
		return
	}
	if err := s.store.CreateUser(r.Context(), u); err != nil {
		if errors.Is(err, store.ErrConflict) {
			WriteError(w, http.StatusConflict, "user "+u.Username+" already exists")
			return
		}
		s.log.Error("create user", logKeyUser, u.Username, logKeyErr, err)
		WriteError(w, http.StatusInternalServerError, "cannot create the user now")
		return
	}
	WriteJSON(w, http.StatusOK, NewUserJSON(u))
}

// handleUpdateUser is PATCH /__api__/v1/users/{guid}: administrators change
// anything; users change their own names, e-mail and password.
func (s *Server) handleUpdateUser(w http.ResponseWriter, r *http.Request) {
	me, _ := UserFrom(r.Context())
	var req userRequest
	if err := DecodeJSON(r, &req); err != nil {
		WriteRequestError(w, err)
		return
	}
	u, err := s.store.UserByGUID(r.Context(), r.PathValue("guid"))
	if errors.Is(err, store.ErrNotFound) {
		WriteError(w, http.StatusNotFound, "no user with guid "+r.PathValue("guid"))
		return
	}
	if err != nil {
		s.log.Error("get user", logKeyErr, err)
		WriteError(w, http.StatusInternalServerError, "cannot read the user now")
		return
	}
	if !HasRole(me, store.RoleAdministrator) {
		if u.ID != me.ID {
			WriteError(w, http.StatusForbidden, "only administrators may change other users")
			return
		}
		if req.UserRole != nil || req.Locked != nil || req.Username != nil {
			WriteError(w, http.StatusForbidden, "only administrators may change usernames, roles and locks")
			return
		}
	}
	if err := req.apply(u); err != nil {
		WriteRequestError(w, err)
		return
	}
	if err := s.store.UpdateUser(r.Context(), u); err != nil {
		if errors.Is(err, store.ErrConflict) {
			WriteError(w, http.StatusConflict, "user "+u.Username+" already exists")
			return
		}
		s.log.Error("update user", logKeyUser, u.Username, logKeyErr, err)
		WriteError(w, http.StatusInternalServerError, "cannot update the user now")
		return
	}
	WriteJSON(w, http.StatusOK, NewUserJSON(u))
}
