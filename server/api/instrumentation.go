package api

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/dais-dev/dais/server/authz"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

// Usage the proxy records (server/usage): visits of documents and static
// content, and sessions of Shiny apps. Administrators see all of it;
// publishers see that of the content they own or collaborate on, as
// Connect does; viewers none (403).

// contentVisit is one entry of GET /v1/instrumentation/content/visits.
type contentVisit struct {
	ContentGUID string  `json:"content_guid"`
	UserGUID    *string `json:"user_guid"`
	VariantKey  *string `json:"variant_key"`
	RenderingID *int64  `json:"rendering_id"`
	BundleID    *int64  `json:"bundle_id"`
	Time        string  `json:"time"`
	DataVersion int     `json:"data_version"`
	Path        string  `json:"path"`
}

// shinyUsage is one entry of GET /v1/instrumentation/shiny/usage.
type shinyUsage struct {
	ContentGUID string  `json:"content_guid"`
	UserGUID    *string `json:"user_guid"`
	Started     string  `json:"started"`
	Ended       *string `json:"ended"`
	DataVersion int     `json:"data_version"`
}

// usageFilter reads Connect's filters: content_guid (several joined by
// "|"), min_data_version, from, to (RFC 3339) and the page.
func (a *API) usageFilter(r *http.Request) (store.UsageFilter, error) {
	var f store.UsageFilter
	var err error
	if f.Page, err = readPage(r, "asc_order"); err != nil {
		return f, err
	}
	q := r.URL.Query()
	if v := q.Get("content_guid"); v != "" {
		for _, g := range strings.Split(v, "|") {
			if g = strings.TrimSpace(g); g != "" {
				f.ContentGUIDs = append(f.ContentGUIDs, g)
			}
		}
	}
	if v := q.Get("min_data_version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return f, errStatus(http.StatusBadRequest, "min_data_version must be a non-negative integer, not "+strconv.Quote(v))
		}
		f.MinDataVersion = n
	}
	for name, dst := range map[string]*time.Time{"from": &f.From, "to": &f.To} {
		v := q.Get(name)
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return f, errStatus(http.StatusBadRequest, name+" must be a timestamp in RFC 3339 format, like 2024-05-01T00:00:00Z, not "+strconv.Quote(v))
		}
		*dst = t
	}
	u, err := needUser(r)
	if err != nil {
		return f, err
	}
	if !authz.HasRole(u, store.RoleAdministrator) {
		ids, err := a.editableContent(r, u)
		if err != nil {
			return f, err
		}
		f.ContentIDs, f.OnlyContentIDs = ids, true
	}
	return f, nil
}

// editableContent is the ids of the content u owns or collaborates on.
func (a *API) editableContent(r *http.Request, u *store.User) ([]int64, error) {
	items, _, err := a.st.ListContent(r.Context(), store.ContentFilter{VisibleTo: u.ID})
	if err != nil {
		return nil, err
	}
	rule, err := authz.List(r.Context(), a.st, u, items)
	if err != nil {
		return nil, err
	}
	ids := []int64{}
	for i := range items {
		if rule.Content(&items[i]) >= authz.Editor {
			ids = append(ids, items[i].ID)
		}
	}
	return ids, nil
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func optID(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}

// listVisits is GET /__api__/v1/instrumentation/content/visits.
func (a *API) listVisits(w http.ResponseWriter, r *http.Request) error {
	f, err := a.usageFilter(r)
	if err != nil {
		return err
	}
	visits, info, err := a.st.ListVisits(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]contentVisit, 0, len(visits))
	ids := make([]int64, 0, len(visits))
	for _, v := range visits {
		out = append(out, contentVisit{ContentGUID: v.ContentGUID, UserGUID: optString(v.UserGUID), VariantKey: optString(v.VariantKey),
			RenderingID: optID(v.RenderingID), BundleID: optID(v.BundleID), Time: v.Time.UTC().Format(time.RFC3339),
			DataVersion: v.DataVersion, Path: v.Path})
		ids = append(ids, v.ID)
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"results": out, "paging": a.pagingOf(r, f.Page, info, ids)})
	return nil
}

// listShinyUsage is GET /__api__/v1/instrumentation/shiny/usage.
func (a *API) listShinyUsage(w http.ResponseWriter, r *http.Request) error {
	f, err := a.usageFilter(r)
	if err != nil {
		return err
	}
	sessions, info, err := a.st.ListShinySessions(r.Context(), f)
	if err != nil {
		return err
	}
	out := make([]shinyUsage, 0, len(sessions))
	ids := make([]int64, 0, len(sessions))
	for _, s := range sessions {
		e := shinyUsage{ContentGUID: s.ContentGUID, UserGUID: optString(s.UserGUID), Started: s.Started.UTC().Format(time.RFC3339), DataVersion: s.DataVersion}
		if !s.Ended.IsZero() {
			end := s.Ended.UTC().Format(time.RFC3339)
			e.Ended = &end
		}
		out = append(out, e)
		ids = append(ids, s.ID)
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"results": out, "paging": a.pagingOf(r, f.Page, info, ids)})
	return nil
}
