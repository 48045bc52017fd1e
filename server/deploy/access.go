package deploy

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

// Access levels a user has on one content.
type access int

const (
	accessNone   access = iota
	accessViewer        // may see it
	accessEditor        // may deploy and change settings (owner, collaborator, admin)
)

// accessOf tells what u (nil: anonymous) may do with c.
func (s *Service) accessOf(ctx context.Context, u *store.User, c *store.Content) (access, error) {
	if u != nil {
		if u.Role == store.RoleAdministrator || u.ID == c.OwnerID {
			return accessEditor, nil
		}
		perms, err := s.st.Permissions(ctx, c.ID)
		if err != nil {
			return accessNone, err
		}
		for _, p := range perms {
			if p.UserID != u.ID {
				continue
			}
			if p.Role == store.PermOwner && web.HasRole(u, store.RolePublisher) {
				return accessEditor, nil
			}
			return accessViewer, nil
		}
	}
	switch c.AccessType {
	case store.AccessAll:
		return accessViewer, nil
	case store.AccessLoggedIn:
		if u != nil {
			return accessViewer, nil
		}
	}
	return accessNone, nil
}

// apiError is a failure to answer with a status.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errStatus(status int, msg string) error { return &apiError{status, msg} }

// writeErr answers err: an *apiError or *web.RequestError with its
// status, anything else logged and answered 500.
func (s *Service) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		web.WriteError(w, ae.status, ae.msg)
		return
	}
	var re *web.RequestError
	if errors.As(err, &re) {
		web.WriteError(w, re.Status, re.Msg)
		return
	}
	s.log.Error("API request failed", "method", r.Method, "path", r.URL.Path, logKeyErr, err)
	web.WriteError(w, http.StatusInternalServerError, "internal error; the server log has the details")
}

// needUser returns the request's user or a 401.
func needUser(r *http.Request) (*store.User, error) {
	u, ok := web.UserFrom(r.Context())
	if !ok {
		return nil, errStatus(http.StatusUnauthorized, "authentication required: send an API key as 'Authorization: Key <key>'")
	}
	return u, nil
}

// contentFor loads the content of the request (by {id} or {guid}) and
// checks that the user has at least want on it. Content the user may not
// see is reported as missing.
func (s *Service) contentFor(r *http.Request, want access) (*store.Content, *store.User, error) {
	u, err := needUser(r)
	if err != nil {
		return nil, nil, err
	}
	var c *store.Content
	ref := r.PathValue("guid")
	if id := r.PathValue("id"); id != "" {
		ref = id
		n, perr := strconv.ParseInt(id, 10, 64)
		if perr != nil {
			return nil, u, errStatus(http.StatusNotFound, "no content with id "+id+": ids are numbers")
		}
		c, err = s.st.Content(r.Context(), n)
	} else {
		c, err = s.st.ContentByGUID(r.Context(), ref)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, u, errStatus(http.StatusNotFound, "no content "+ref)
	}
	if err != nil {
		return nil, u, err
	}
	have, err := s.accessOf(r.Context(), u, c)
	if err != nil {
		return nil, u, err
	}
	if have == accessNone {
		return nil, u, errStatus(http.StatusNotFound, "no content "+ref)
	}
	if have < want {
		return nil, u, errStatus(http.StatusForbidden, "user "+u.Username+" may view but not change content "+c.Name+"; ask its owner to add them as a collaborator")
	}
	return c, u, nil
}

// needPublisher refuses viewers: only publishers and administrators
// create content.
func needPublisher(u *store.User) error {
	if !web.HasRole(u, store.RolePublisher) {
		return errStatus(http.StatusForbidden, "user "+u.Username+" has role "+u.Role+"; publishing needs publisher or administrator (an administrator can change it with 'dais users role')")
	}
	return nil
}

// publicBase is the server's public URL without a trailing slash:
// Server.Address, else the request's scheme and host.
func (s *Service) publicBase(r *http.Request) string {
	if a := strings.TrimSuffix(s.o.Config().Server.Address, "/"); a != "" {
		return a
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
		scheme = p
	}
	return scheme + "://" + r.Host
}
