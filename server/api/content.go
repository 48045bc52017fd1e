package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dais-dev/dais/server/authz"
	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/content/manifest"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

// contentJSON is a content as the v1 API shows it, with Connect's names.
// As in Connect, id and bundle_id are strings there, and r_version,
// py_version and quarto_version are the versions the last deploy used.
type contentJSON struct {
	ID                 string  `json:"id"`
	GUID               string  `json:"guid"`
	Name               string  `json:"name"`
	Title              string  `json:"title"`
	Description        string  `json:"description"`
	AccessType         string  `json:"access_type"`
	AppMode            string  `json:"app_mode"`
	ContentCategory    string  `json:"content_category"`
	MinProcesses       *int    `json:"min_processes"`
	MaxProcesses       *int    `json:"max_processes"`
	MaxConnsPerProcess *int    `json:"max_conns_per_process"`
	IdleTimeout        *int    `json:"idle_timeout"`
	InitTimeout        *int    `json:"init_timeout"`
	BundleID           *string `json:"bundle_id"`
	RVersion           *string `json:"r_version"`
	PyVersion          *string `json:"py_version"`
	QuartoVersion      *string `json:"quarto_version"`
	RunAs              *string `json:"run_as"`
	RunAsCurrentUser   bool    `json:"run_as_current_user"`
	Locked             bool    `json:"locked"`
	LockedMessage      string  `json:"locked_message"`
	// OutboundNetwork (dais only): whether the content's processes may
	// reach the outside; null is the server's Applications.OutboundNetwork.
	OutboundNetwork *bool `json:"outbound_network"`
	// Connect's idle timeouts of the content's requests and WebSockets,
	// in seconds (0: never); null is the server's [Scheduler] value.
	ConnectionTimeout *int `json:"connection_timeout"`
	ReadTimeout       *int `json:"read_timeout"`
	// Connect's resource fields: bytes and CPUs, null for the server's
	// [Scheduler] defaults. The limits are enforced (docs/sandbox.md);
	// the requests are kept for clients and not used.
	MemoryRequest    *int64     `json:"memory_request"`
	MemoryLimit      *int64     `json:"memory_limit"`
	CPURequest       *float64   `json:"cpu_request"`
	CPULimit         *float64   `json:"cpu_limit"`
	OwnerGUID        string     `json:"owner_guid"`
	ContentURL       string     `json:"content_url"`
	DashboardURL     string     `json:"dashboard_url"`
	AppRole          string     `json:"app_role"`
	CreatedTime      time.Time  `json:"created_time"`
	LastDeployedTime *time.Time `json:"last_deployed_time"`

	// The versions a client asked for by setting r_version, py_version or
	// quarto_version, used by the next deploys instead of the manifest's;
	// a dais extension, present only when set.
	RVersionRequested      *string `json:"r_version_requested,omitempty"`
	PyVersionRequested     *string `json:"py_version_requested,omitempty"`
	QuartoVersionRequested *string `json:"quarto_version_requested,omitempty"`

	// Connect's fields of ?include=tags,owner,vanity_url (tags.go).
	Tags      []tagJSON  `json:"tags,omitempty"`
	Owner     *ownerJSON `json:"owner,omitempty"`
	VanityURL *string    `json:"vanity_url,omitempty"`
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (a *API) contentURL(r *http.Request, c *store.Content) string {
	return a.publicBase(r) + "/content/" + c.GUID + "/"
}

func (a *API) dashboardURL(r *http.Request, c *store.Content) string {
	return a.publicBase(r) + "/connect/#/apps/" + c.GUID
}

func (a *API) owner(ctx context.Context, c *store.Content) *store.User {
	u, err := a.st.User(ctx, c.OwnerID)
	if err != nil {
		return &store.User{}
	}
	return u
}

// listView is what the rendering of a list reads once for all its items:
// the user's access to each (authz.List) and each owner. nil renders one
// item, reading both for it.
type listView struct {
	rule   *authz.Rule
	owners map[int64]*store.User
}

func (a *API) newListView(ctx context.Context, u *store.User, list []store.Content) (*listView, error) {
	rule, err := authz.List(ctx, a.st, u, list)
	if err != nil {
		return nil, err
	}
	return &listView{rule: rule, owners: map[int64]*store.User{}}, nil
}

// ownerOf is c's owner (a blank user when it cannot be read).
func (a *API) ownerOf(ctx context.Context, v *listView, c *store.Content) *store.User {
	if v == nil {
		return a.owner(ctx, c)
	}
	o, ok := v.owners[c.OwnerID]
	if !ok {
		o = a.owner(ctx, c)
		v.owners[c.OwnerID] = o
	}
	return o
}

// contentJSONs renders a list of content for u.
func (a *API) contentJSONs(r *http.Request, list []store.Content, u *store.User) ([]contentJSON, error) {
	v, err := a.newListView(r.Context(), u, list)
	if err != nil {
		return nil, err
	}
	out := make([]contentJSON, 0, len(list))
	for i := range list {
		out = append(out, a.contentJSONIn(r, &list[i], u, v))
	}
	return out, nil
}

func (a *API) lastDeployed(c *store.Content) *time.Time {
	if c.BundleID == nil {
		return nil
	}
	t := c.UpdatedAt.UTC()
	return &t
}

func (a *API) contentJSON(r *http.Request, c *store.Content, u *store.User) contentJSON {
	return a.contentJSONIn(r, c, u, nil)
}

// contentJSONIn renders c, one item of the list v was made for (nil: c alone).
func (a *API) contentJSONIn(r *http.Request, c *store.Content, u *store.User, v *listView) contentJSON {
	o := a.ownerOf(r.Context(), v, c)
	j := contentJSON{
		ID: strconv.FormatInt(c.ID, 10), GUID: c.GUID, Name: c.Name, Title: c.Title, Description: c.Description,
		AccessType: c.AccessType, AppMode: c.AppMode, MinProcesses: c.MinProcesses, MaxProcesses: c.MaxProcesses,
		MaxConnsPerProcess: c.MaxConnsPerProcess, IdleTimeout: c.IdleTimeout, InitTimeout: c.InitTimeout,
		ConnectionTimeout: c.ConnectionTimeout, ReadTimeout: c.ReadTimeout,
		RVersion: strPtr(c.RVersion), PyVersion: strPtr(c.PyVersion), QuartoVersion: strPtr(c.QuartoVersion),
		RunAs: strPtr(c.RunAs), OwnerGUID: o.GUID, ContentURL: a.contentURL(r, c), DashboardURL: a.dashboardURL(r, c),
		CreatedTime: c.CreatedAt.UTC(), LastDeployedTime: a.lastDeployed(c), Locked: c.Locked, LockedMessage: c.LockedMessage,
		OutboundNetwork: c.OutboundNetwork,
		MemoryRequest:   c.MemoryRequest, MemoryLimit: c.MemoryLimit, CPURequest: c.CPURequest, CPULimit: c.CPULimit,
	}
	j.RVersionRequested, j.PyVersionRequested, j.QuartoVersionRequested =
		strPtr(c.RVersionWanted), strPtr(c.PyVersionWanted), strPtr(c.QuartoVersionWanted)
	if c.BundleID != nil {
		j.BundleID = strPtr(strconv.FormatInt(*c.BundleID, 10))
	}
	if c.AppMode != "" {
		switch manifest.AppMode(c.AppMode) {
		case manifest.Plumber, manifest.PythonAPI, manifest.PythonFastAPI:
			j.ContentCategory = "api"
		case manifest.Static:
			j.ContentCategory = "site"
		}
	}
	var access authz.Access
	if v != nil {
		access = v.rule.Content(c)
	} else {
		access, _ = authz.Content(r.Context(), a.st, u, c)
	}
	switch access {
	case authz.Editor:
		j.AppRole = "owner"
		if u != nil && u.ID != c.OwnerID {
			j.AppRole = "editor"
		}
	case authz.Viewer:
		j.AppRole = "viewer"
	default:
		j.AppRole = "none"
	}
	a.includes(r, c, &j, v)
	return j
}

// settings are the fields a client may set on content (v1 POST/PATCH,
// legacy POST). Each is raw so that an explicit null (reset to the
// server default) differs from an absent field.
type settings map[string]json.RawMessage

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// readOnlyFields are content fields the API shows but a client cannot set.
var readOnlyFields = []string{
	"id", "guid", "app_mode", "content_category", "bundle_id", "created_time", "last_deployed_time",
	"content_url", "dashboard_url", "app_role", "owner", "parameterized", "cluster_name", "image_name",
	"r_version_requested", "py_version_requested", "quarto_version_requested", "tags", "vanity_url", "extension",
}

// unsupportedFields are fields of Connect's content that dais does not
// implement: null, false, 0 or "" (the server default) is accepted, any
// other value refused with a 400 naming the field, never ignored.
var unsupportedFields = map[string]string{
	"load_factor":          "dais starts a new process when the others are full (max_conns_per_process)",
	"amd_gpu_limit":        "dais runs no GPU content",
	"nvidia_gpu_limit":     "dais runs no GPU content",
	"service_account_name": "dais runs content on its own host, not on Kubernetes",
	"default_image_name":   "dais runs content on its own host, not in images",
	"run_as_current_user":  "dais runs content as run_as, never as the visiting user",
}

// alwaysOnFields are switches dais cannot turn off: null or true only.
var alwaysOnFields = map[string]string{
	"r_environment_management":          "dais always restores a bundle's R packages",
	"py_environment_management":         "dais always restores a bundle's Python packages",
	"default_r_environment_management":  "dais always restores a bundle's R packages",
	"default_py_environment_management": "dais always restores a bundle's Python packages",
}

// knownFields are the fields apply sets.
var knownFields = []string{
	"name", "title", "description", "access_type", "r_version", "py_version", "quarto_version",
	"min_processes", "max_processes", "max_conns_per_process", "idle_timeout", "init_timeout",
	"connection_timeout", "read_timeout",
	"run_as", "locked", "locked_message", "owner_guid", "outbound_network",
	"memory_request", "memory_limit", "cpu_request", "cpu_limit",
}

// check refuses the fields dais does not set: read-only ones, the
// unsupported ones with a value other than the default, and unknown ones.
func (st settings) check() error {
	for _, key := range slices.Sorted(maps.Keys(st)) {
		raw := strings.TrimSpace(string(st[key]))
		switch {
		case slices.Contains(knownFields, key):
		case slices.Contains(readOnlyFields, key):
			return errStatus(http.StatusBadRequest, key+" cannot be set: it is read-only")
		case unsupportedFields[key] != "":
			if raw != "null" && raw != "false" && raw != "0" && raw != `""` && raw != "0.0" {
				return errStatus(http.StatusBadRequest, fmt.Sprintf("dais does not support %s (%s): leave it out or send null", key, unsupportedFields[key]))
			}
		case alwaysOnFields[key] != "":
			if raw != "null" && raw != "true" {
				return errStatus(http.StatusBadRequest, fmt.Sprintf("%s can only be true or null: %s", key, alwaysOnFields[key]))
			}
		default:
			return errStatus(http.StatusBadRequest, fmt.Sprintf("unknown content field %q: see docs/api.md for the fields dais sets", key))
		}
	}
	return nil
}

// maxProxyTimeout is the most connection_timeout and read_timeout may be,
// in seconds (config.MaxProxyTimeout, a week).
const maxProxyTimeout = int(config.MaxProxyTimeout / time.Second)

// apply checks the request's fields and copies them onto c; u is who
// asks (run_as and owner_guid are for administrators).
func (a *API) apply(ctx context.Context, st settings, c *store.Content, u *store.User) error {
	if err := st.check(); err != nil {
		return err
	}
	admin := u.Role == store.RoleAdministrator
	str := func(key string, dst *string) error {
		raw, ok := st[key]
		if !ok {
			return nil
		}
		if string(raw) == "null" {
			*dst = ""
			return nil
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return errStatus(http.StatusBadRequest, key+" must be a string")
		}
		return nil
	}
	num := func(key string, dst **int, lo, hi int) error {
		raw, ok := st[key]
		if !ok {
			return nil
		}
		if string(raw) == "null" {
			*dst = nil
			return nil
		}
		var v int
		if err := json.Unmarshal(raw, &v); err != nil || v < lo || v > hi {
			return errStatus(http.StatusBadRequest, fmt.Sprintf("%s must be an integer from %d to %d, or null for the server default", key, lo, hi))
		}
		*dst = &v
		return nil
	}
	boolean := func(key string, dst *bool) error {
		raw, ok := st[key]
		if !ok || string(raw) == "null" {
			return nil
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return errStatus(http.StatusBadRequest, key+" must be true or false")
		}
		return nil
	}
	for _, f := range []func() error{
		func() error { return str("name", &c.Name) },
		func() error { return str("title", &c.Title) },
		func() error { return str("description", &c.Description) },
		func() error { return str("access_type", &c.AccessType) },
		// A version set is a request for the next deploys, not what
		// the field reads back (the version the last deploy used).
		func() error { return str("r_version", &c.RVersionWanted) },
		func() error { return str("py_version", &c.PyVersionWanted) },
		func() error { return str("quarto_version", &c.QuartoVersionWanted) },
		func() error { return num("min_processes", &c.MinProcesses, 0, maxProcessesLimit) },
		func() error { return num("max_processes", &c.MaxProcesses, 1, maxProcessesLimit) },
		func() error { return num("max_conns_per_process", &c.MaxConnsPerProcess, 1, 100000) },
		func() error { return num("idle_timeout", &c.IdleTimeout, 0, 86400*30) },
		func() error { return num("init_timeout", &c.InitTimeout, 1, 86400) },
		// 0 is never, as in Connect; more than a week is a mistake
		// (milliseconds for seconds).
		func() error { return num("connection_timeout", &c.ConnectionTimeout, 0, maxProxyTimeout) },
		func() error { return num("read_timeout", &c.ReadTimeout, 0, maxProxyTimeout) },
		func() error { return boolean("locked", &c.Locked) },
		func() error { return str("locked_message", &c.LockedMessage) },
	} {
		if err := f(); err != nil {
			return err
		}
	}
	if _, ok := st["run_as"]; ok {
		old := c.RunAs
		if err := str("run_as", &c.RunAs); err != nil {
			return err
		}
		if c.RunAs != old && !admin {
			return errStatus(http.StatusForbidden, "only administrators may change run_as")
		}
		if c.RunAs != old && c.RunAs != "" {
			if err := config.CheckRunAs(c.RunAs); err != nil {
				return errStatus(http.StatusBadRequest, "run_as: "+err.Error())
			}
		}
	}
	if raw, ok := st["outbound_network"]; ok {
		var v *bool
		if string(raw) != "null" {
			var b bool
			if err := json.Unmarshal(raw, &b); err != nil {
				return errStatus(http.StatusBadRequest, "outbound_network must be true, false or null (the server's Applications.OutboundNetwork)")
			}
			v = &b
		}
		changed := (v == nil) != (c.OutboundNetwork == nil) || (v != nil && *v != *c.OutboundNetwork)
		if changed && !admin {
			return errStatus(http.StatusForbidden, "only administrators may change outbound_network")
		}
		c.OutboundNetwork = v
	}
	if err := a.applyResources(st, c); err != nil {
		return err
	}
	if raw, ok := st["owner_guid"]; ok && string(raw) != "null" {
		var guid string
		if err := json.Unmarshal(raw, &guid); err != nil {
			return errStatus(http.StatusBadRequest, "owner_guid must be a string: the guid of a user")
		}
		o, err := a.st.UserByGUID(ctx, guid)
		if errors.Is(err, store.ErrNotFound) {
			return errStatus(http.StatusBadRequest, "owner_guid: no user with guid "+guid)
		}
		if err != nil {
			return err
		}
		if o.ID != c.OwnerID {
			if !admin {
				return errStatus(http.StatusForbidden, "only administrators may change the owner (owner_guid)")
			}
			if !authz.HasRole(o, store.RolePublisher) {
				return errStatus(http.StatusBadRequest, "owner_guid: user "+o.Username+" is a viewer; the owner must be a publisher or an administrator")
			}
			c.OwnerID = o.ID
		}
	}
	if !nameRE.MatchString(c.Name) {
		return errStatus(http.StatusBadRequest, fmt.Sprintf("name %q is not valid: use 1 to 64 letters, digits, '-', '_' or '.'", c.Name))
	}
	switch c.AccessType {
	case store.AccessAll, store.AccessLoggedIn, store.AccessACL:
	default:
		return errStatus(http.StatusBadRequest, fmt.Sprintf("access_type %q is not valid: use all, logged_in or acl", c.AccessType))
	}
	if c.MinProcesses != nil && c.MaxProcesses != nil && *c.MinProcesses > *c.MaxProcesses {
		return errStatus(http.StatusBadRequest, "min_processes must not be above max_processes")
	}
	return nil
}

// errLocked refuses a change of locked content.
func errLocked(c *store.Content) error {
	return errStatus(http.StatusConflict, "content "+c.Name+" is locked: unlock it first (PATCH {\"locked\": false})")
}

// visibleContent lists the content matching f that u may see, then pages it.
func (a *API) visibleContent(ctx context.Context, u *store.User, f store.ContentFilter) ([]store.Content, int, error) {
	// The access rule in SQL (store.ContentFilter.VisibleTo is
	// authz.Content's answer, None or not, for a user who is not an
	// administrator), so that a page reads only its rows.
	if u.Role != store.RoleAdministrator {
		f.VisibleTo = u.ID
	}
	return a.st.ListContent(ctx, f)
}

// newContent creates content owned by the request's user from the
// request's fields (POST /__api__/applications and /__api__/v1/content).
func (a *API) newContent(r *http.Request) (*store.Content, *store.User, error) {
	u, err := needUser(r)
	if err != nil {
		return nil, nil, err
	}
	st, err := decodeSettings(r)
	if err != nil {
		return nil, nil, err
	}
	if err := needPublisher(u); err != nil {
		return nil, nil, err
	}
	if _, ok := st["name"]; !ok {
		return nil, nil, errStatus(http.StatusBadRequest, "name is required")
	}
	c := &store.Content{OwnerID: u.ID, AccessType: store.AccessACL}
	if err := a.apply(r.Context(), st, c, u); err != nil {
		return nil, nil, err
	}
	if err := a.st.CreateContent(r.Context(), c); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, nil, errStatus(http.StatusConflict, "you already have content named "+c.Name+"; pick another name or deploy to that one")
		}
		return nil, nil, err
	}
	a.log.Info("content created", logKeyContent, c.GUID, "name", c.Name, "owner", u.Username)
	return c, u, nil
}

func decodeSettings(r *http.Request) (settings, error) {
	var st settings
	if err := web.DecodeJSON(r, &st); err != nil {
		return nil, err
	}
	if st == nil {
		return nil, errStatus(http.StatusBadRequest, "send a JSON object")
	}
	return st, nil
}

// update applies a settings body to the content of the request.
func (a *API) update(r *http.Request) (*store.Content, error) {
	c, u, err := a.contentFor(r, authz.Editor)
	if err != nil {
		return nil, err
	}
	st, err := decodeSettings(r)
	if err != nil {
		return nil, err
	}
	before := *c
	if err := a.apply(r.Context(), st, c, u); err != nil {
		return nil, err
	}
	if before.Locked && c.Locked {
		for key := range st {
			if key != "locked" && key != "locked_message" {
				return nil, errLocked(c) // locked content keeps its settings
			}
		}
	}
	if err := a.st.UpdateContent(r.Context(), c); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return nil, errStatus(http.StatusConflict, "the owner already has content named "+c.Name)
		}
		return nil, err
	}
	a.dep.Changed(&before, c)
	return c, nil
}

// listContent is GET /__api__/v1/content?name=N&owner_guid=G.
func (a *API) listContent(w http.ResponseWriter, r *http.Request) error {
	u, err := needUser(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.ContentFilter{Name: q.Get("name")}
	if g := q.Get("owner_guid"); g != "" {
		o, err := a.st.UserByGUID(r.Context(), g)
		if errors.Is(err, store.ErrNotFound) {
			web.WriteJSON(w, http.StatusOK, []contentJSON{})
			return nil
		}
		if err != nil {
			return err
		}
		f.OwnerID = o.ID
	}
	list, _, err := a.visibleContent(r.Context(), u, f)
	if err != nil {
		return err
	}
	out, err := a.contentJSONs(r, list, u)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (a *API) createContent(w http.ResponseWriter, r *http.Request) error {
	c, u, err := a.newContent(r)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, a.contentJSON(r, c, u))
	return nil
}

func (a *API) getContent(w http.ResponseWriter, r *http.Request) error {
	c, u, err := a.contentFor(r, authz.Viewer)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, a.contentJSON(r, c, u))
	return nil
}

func (a *API) patchContent(w http.ResponseWriter, r *http.Request) error {
	c, err := a.update(r)
	if err != nil {
		return err
	}
	u, _ := web.UserFrom(r.Context())
	web.WriteJSON(w, http.StatusOK, a.contentJSON(r, c, u))
	return nil
}

// deleteContent stops the content, removes its files and its records.
func (a *API) deleteContent(w http.ResponseWriter, r *http.Request) error {
	c, _, err := a.contentFor(r, authz.Editor)
	if err != nil {
		return err
	}
	if err := a.dep.Delete(r.Context(), c); err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, struct{}{})
	return nil
}

// applyResources sets Connect's memory and CPU fields: a limit within the
// server's maximum ([Scheduler] MaxMemoryLimit, MaxCPULimit), a request no
// larger than its limit; null is the server's default.
func (a *API) applyResources(st settings, c *store.Content) error {
	sched := a.web.Config().Scheduler
	bytes := func(key string, dst **int64, max int64) error {
		raw, ok := st[key]
		if !ok {
			return nil
		}
		if string(raw) == "null" {
			*dst = nil
			return nil
		}
		var v float64 // clients may send 1.073741824e+09
		if err := json.Unmarshal(raw, &v); err != nil || v < 0 || v != float64(int64(v)) {
			return errStatus(http.StatusBadRequest, key+" must be a whole number of bytes, or null for the server default")
		}
		n := int64(v)
		if n == 0 {
			*dst = nil
			return nil
		}
		if n < config.MinMemoryLimit {
			return errStatus(http.StatusBadRequest, fmt.Sprintf("%s must be at least %d bytes (16 MiB), or 0 or null for the server default", key, config.MinMemoryLimit))
		}
		if max > 0 && n > max {
			return errStatus(http.StatusBadRequest, fmt.Sprintf("%s %d is over the server's maximum of %d bytes (Scheduler.MaxMemoryLimit)", key, n, max))
		}
		*dst = &n
		return nil
	}
	cpus := func(key string, dst **float64, max float64) error {
		raw, ok := st[key]
		if !ok {
			return nil
		}
		if string(raw) == "null" {
			*dst = nil
			return nil
		}
		var v float64
		if err := json.Unmarshal(raw, &v); err != nil || v < 0 || math.IsInf(v, 0) {
			return errStatus(http.StatusBadRequest, key+" must be a number of CPUs (0.5 is half of one), or null for the server default")
		}
		if v == 0 {
			*dst = nil
			return nil
		}
		if v < 0.01 {
			return errStatus(http.StatusBadRequest, key+" must be at least 0.01 CPUs, or 0 or null for the server default")
		}
		if max > 0 && v > max {
			return errStatus(http.StatusBadRequest, fmt.Sprintf("%s %g is over the server's maximum of %g CPUs (Scheduler.MaxCPULimit)", key, v, max))
		}
		*dst = &v
		return nil
	}
	for _, f := range []func() error{
		func() error { return bytes("memory_limit", &c.MemoryLimit, sched.MaxMemoryLimit) },
		func() error { return bytes("memory_request", &c.MemoryRequest, sched.MaxMemoryLimit) },
		func() error { return cpus("cpu_limit", &c.CPULimit, sched.MaxCPULimit) },
		func() error { return cpus("cpu_request", &c.CPURequest, sched.MaxCPULimit) },
	} {
		if err := f(); err != nil {
			return err
		}
	}
	if c.MemoryRequest != nil && c.MemoryLimit != nil && *c.MemoryRequest > *c.MemoryLimit {
		return errStatus(http.StatusBadRequest, "memory_request must not exceed memory_limit")
	}
	if c.CPURequest != nil && c.CPULimit != nil && *c.CPURequest > *c.CPULimit {
		return errStatus(http.StatusBadRequest, "cpu_request must not exceed cpu_limit")
	}
	return nil
}
