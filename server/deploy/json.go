package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/dais-dev/dais/server/content/manifest"
	"github.com/dais-dev/dais/server/store"
)

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

// contentJSON is a content as the v1 API shows it, with Connect's names.
// As in Connect, id and bundle_id are strings there, and r_version,
// py_version and quarto_version are the versions the last deploy used.
type contentJSON struct {
	ID                 string     `json:"id"`
	GUID               string     `json:"guid"`
	Name               string     `json:"name"`
	Title              string     `json:"title"`
	Description        string     `json:"description"`
	AccessType         string     `json:"access_type"`
	AppMode            string     `json:"app_mode"`
	ContentCategory    string     `json:"content_category"`
	MinProcesses       *int       `json:"min_processes"`
	MaxProcesses       *int       `json:"max_processes"`
	MaxConnsPerProcess *int       `json:"max_conns_per_process"`
	IdleTimeout        *int       `json:"idle_timeout"`
	InitTimeout        *int       `json:"init_timeout"`
	BundleID           *string    `json:"bundle_id"`
	RVersion           *string    `json:"r_version"`
	PyVersion          *string    `json:"py_version"`
	QuartoVersion      *string    `json:"quarto_version"`
	RunAs              *string    `json:"run_as"`
	OwnerGUID          string     `json:"owner_guid"`
	ContentURL         string     `json:"content_url"`
	DashboardURL       string     `json:"dashboard_url"`
	AppRole            string     `json:"app_role"`
	CreatedTime        time.Time  `json:"created_time"`
	LastDeployedTime   *time.Time `json:"last_deployed_time"`

	// The versions a client asked for by setting r_version, py_version or
	// quarto_version, used by the next deploys instead of the manifest's;
	// a dais extension, present only when set.
	RVersionRequested      *string `json:"r_version_requested,omitempty"`
	PyVersionRequested     *string `json:"py_version_requested,omitempty"`
	QuartoVersionRequested *string `json:"quarto_version_requested,omitempty"`
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (s *Service) contentURL(r *http.Request, c *store.Content) string {
	return s.publicBase(r) + "/content/" + c.GUID + "/"
}

func (s *Service) dashboardURL(r *http.Request, c *store.Content) string {
	return s.publicBase(r) + "/connect/#/apps/" + c.GUID
}

func (s *Service) owner(ctx context.Context, c *store.Content) *store.User {
	u, err := s.st.User(ctx, c.OwnerID)
	if err != nil {
		return &store.User{}
	}
	return u
}

func (s *Service) lastDeployed(c *store.Content) *time.Time {
	if c.BundleID == nil {
		return nil
	}
	t := c.UpdatedAt.UTC()
	return &t
}

func (s *Service) appJSON(r *http.Request, c *store.Content) appJSON {
	o := s.owner(r.Context(), c)
	return appJSON{
		ID: c.ID, GUID: c.GUID, Name: c.Name, Title: c.Title, Description: c.Description,
		URL: s.contentURL(r, c), AppMode: c.AppMode, AccessType: c.AccessType, BundleID: c.BundleID,
		OwnerID: c.OwnerID, OwnerGUID: o.GUID, OwnerUsername: o.Username, OwnerFirstName: o.FirstName, OwnerLastName: o.LastName,
		CreatedTime: c.CreatedAt.UTC(), UpdatedTime: c.UpdatedAt.UTC(), LastDeployedTime: s.lastDeployed(c),
	}
}

func (s *Service) contentJSON(r *http.Request, c *store.Content, u *store.User) contentJSON {
	o := s.owner(r.Context(), c)
	j := contentJSON{
		ID: strconv.FormatInt(c.ID, 10), GUID: c.GUID, Name: c.Name, Title: c.Title, Description: c.Description,
		AccessType: c.AccessType, AppMode: c.AppMode, MinProcesses: c.MinProcesses, MaxProcesses: c.MaxProcesses,
		MaxConnsPerProcess: c.MaxConnsPerProcess, IdleTimeout: c.IdleTimeout, InitTimeout: c.InitTimeout,
		RVersion: strPtr(c.RVersion), PyVersion: strPtr(c.PyVersion), QuartoVersion: strPtr(c.QuartoVersion),
		RunAs: strPtr(c.RunAs), OwnerGUID: o.GUID, ContentURL: s.contentURL(r, c), DashboardURL: s.dashboardURL(r, c),
		CreatedTime: c.CreatedAt.UTC(), LastDeployedTime: s.lastDeployed(c),
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
	switch a, _ := s.accessOf(r.Context(), u, c); a {
	case accessEditor:
		j.AppRole = "owner"
		if u != nil && u.ID != c.OwnerID {
			j.AppRole = "editor"
		}
	case accessViewer:
		j.AppRole = "viewer"
	default:
		j.AppRole = "none"
	}
	return j
}

// settings are the fields a client may set on content (v1 POST/PATCH,
// legacy POST). Each is raw so that an explicit null (reset to the
// server default) differs from an absent field.
type settings map[string]json.RawMessage

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// apply copies the known fields onto c; admin says whether run_as may change.
func (st settings) apply(c *store.Content, admin bool) error {
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
		func() error { return num("min_processes", &c.MinProcesses, 0, 1000) },
		func() error { return num("max_processes", &c.MaxProcesses, 1, 1000) },
		func() error { return num("max_conns_per_process", &c.MaxConnsPerProcess, 1, 100000) },
		func() error { return num("idle_timeout", &c.IdleTimeout, 0, 86400*30) },
		func() error { return num("init_timeout", &c.InitTimeout, 1, 86400) },
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
