// Package api is dais's Connect-compatible HTTP API under /__api__: the
// route table (routes.go, which reads like docs/api.md) and one file per
// resource (server settings, users, content, bundles, deploys, tasks,
// environment, permissions, jobs, schedules, and the legacy applications
// API of rsconnect 0.8.x). Handlers check access with server/authz, the
// rule the dashboard's pages share, and hand the work to the services:
// server/deploy (bundles, deploys, renders, processes), server/schedule,
// server/store.
package api

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/dais-dev/dais/server/authz"
	"github.com/dais-dev/dais/server/deploy"
	"github.com/dais-dev/dais/server/schedule"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

// Log attribute keys.
const (
	logKeyErr     = "err"
	logKeyContent = "content"
	logKeyUser    = "user"
)

// Options configure the API.
type Options struct {
	// Web is the HTTP server the routes go on; its running configuration,
	// version and licensing gate are what server settings report.
	Web    *web.Server
	Store  store.Store
	Deploy *deploy.Service
	// Scheduler runs schedules; nil leaves the schedule routes out.
	Scheduler *schedule.Scheduler
	Logger    *slog.Logger
}

// API serves /__api__. Build it with Register.
type API struct {
	o   Options
	web *web.Server
	st  store.Store
	dep *deploy.Service
	sch *schedule.Scheduler
	log *slog.Logger
}

// Register builds the API and puts its routes (routes.go) on o.Web.
func Register(o Options) *API {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	a := &API{o: o, web: o.Web, st: o.Store, dep: o.Deploy, sch: o.Scheduler, log: o.Logger}
	a.routes()
	return a
}

// handler turns a handler that returns its error into an http.Handler
// that answers the error: its status when it has one (*web.RequestError),
// else 500 with the details in the log only.
func (a *API) handler(f func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := f(w, r); err != nil {
			a.writeErr(w, r, err)
		}
	})
}

func (a *API) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	var re *web.RequestError
	if errors.As(err, &re) {
		web.WriteError(w, re.Status, re.Msg)
		return
	}
	if fe := a.web.Disk().Failed(err); fe != nil {
		web.WriteError(w, fe.Status(), fe.Error()) // the volume is full: said in words, logged once a minute
		return
	}
	a.log.Error("API request failed", "method", r.Method, "path", r.URL.Path, logKeyErr, err)
	web.WriteError(w, http.StatusInternalServerError, "internal error; the server log has the details")
}

// errStatus is a failure to answer with status and msg.
func errStatus(status int, msg string) error { return &web.RequestError{Status: status, Msg: msg} }

// needUser returns the request's user or a 401.
func needUser(r *http.Request) (*store.User, error) {
	u, ok := web.UserFrom(r.Context())
	if !ok {
		return nil, errStatus(http.StatusUnauthorized, "authentication required: send an API key as 'Authorization: Key <key>'")
	}
	return u, nil
}

// needPublisher refuses viewers: only publishers and administrators
// create content.
func needPublisher(u *store.User) error {
	if !authz.HasRole(u, store.RolePublisher) {
		return errStatus(http.StatusForbidden, "user "+u.Username+" has role "+u.Role+"; publishing needs publisher or administrator (an administrator can change it with 'dais users role')")
	}
	return nil
}

// contentFor loads the content of the request (by {id} or {guid}) and
// checks that the user has at least want on it. Content the user may not
// see is reported as missing.
func (a *API) contentFor(r *http.Request, want authz.Access) (*store.Content, *store.User, error) {
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
		c, err = a.st.Content(r.Context(), n)
	} else {
		c, err = a.st.ContentByGUID(r.Context(), ref)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, u, errStatus(http.StatusNotFound, "no content "+ref)
	}
	if err != nil {
		return nil, u, err
	}
	have, err := authz.Content(r.Context(), a.st, u, c)
	if err != nil {
		return nil, u, err
	}
	if have == authz.None {
		return nil, u, errStatus(http.StatusNotFound, "no content "+ref)
	}
	if have < want {
		return nil, u, errStatus(http.StatusForbidden, "user "+u.Username+" may view but not change content "+c.Name+"; ask its owner to add them as a collaborator")
	}
	return c, u, nil
}

// publicBase is the server's public URL without a trailing slash:
// Server.Address, else the request's scheme and host.
func (a *API) publicBase(r *http.Request) string {
	if s := strings.TrimSuffix(a.web.Config().Server.Address, "/"); s != "" {
		return s
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

func intParam(r *http.Request, name string, def int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, errStatus(http.StatusBadRequest, name+" must be a non-negative integer")
	}
	return n, nil
}
