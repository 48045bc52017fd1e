package api

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

// Keyset paging, as Connect pages its audit log and usage: a page of
// limit rows, and cursors (here the id of the row at either end of the
// page, as a string) to ask for the page after (next) or before
// (previous). The answer is {"results": [...], "paging": {...}}.

const (
	defaultPageLimit = 20
	maxPageLimit     = 500
)

// keysetPaging is Connect's "paging" object.
type keysetPaging struct {
	Cursors  pagingCursors `json:"cursors"`
	First    string        `json:"first"`
	Previous *string       `json:"previous"`
	Next     *string       `json:"next"`
	Last     string        `json:"last"`
}

type pagingCursors struct {
	Previous *string `json:"previous"`
	Next     *string `json:"next"`
}

// readPage reads limit, previous, next and the order (ascName: ascOrder for
// the audit log, asc_order for usage) of a request. Bad values are a 400
// naming the parameter.
func readPage(r *http.Request, ascName string) (store.Page, error) {
	q := r.URL.Query()
	p := store.Page{Limit: defaultPageLimit, Asc: true}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageLimit {
			return p, errStatus(http.StatusBadRequest, "limit must be an integer from 1 to "+strconv.Itoa(maxPageLimit)+", not "+strconv.Quote(v))
		}
		p.Limit = n
	}
	if v := q.Get(ascName); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return p, errStatus(http.StatusBadRequest, ascName+" must be true or false, not "+strconv.Quote(v))
		}
		p.Asc = b
	}
	cursor := func(name string) (*int64, error) {
		v := q.Get(name)
		if v == "" {
			return nil, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, errStatus(http.StatusBadRequest, name+" must be a cursor from the paging object of an earlier answer, not "+strconv.Quote(v))
		}
		return &n, nil
	}
	var err error
	if p.Next, err = cursor("next"); err != nil {
		return p, err
	}
	if p.Previous, err = cursor("previous"); err != nil {
		return p, err
	}
	if p.Next != nil && p.Previous != nil {
		return p, errStatus(http.StatusBadRequest, "give next or previous, not both")
	}
	return p, nil
}

// pagingOf builds the paging object of a page whose rows have ids ids
// (in page order), for a request to r.
func (a *API) pagingOf(r *http.Request, p store.Page, info store.PageInfo, ids []int64) keysetPaging {
	base := a.publicBase(r) + r.URL.Path
	link := func(set, value string) string {
		q := url.Values{}
		for k, v := range r.URL.Query() {
			if k != "next" && k != "previous" {
				q[k] = v
			}
		}
		if set != "" {
			q.Set(set, value)
		}
		if s := q.Encode(); s != "" {
			return base + "?" + s
		}
		return base
	}
	pg := keysetPaging{First: link("", "")}
	// The last page is the one before a cursor past every row.
	if p.Asc {
		pg.Last = link("previous", strconv.FormatInt(1<<63-1, 10))
	} else {
		pg.Last = link("previous", "0")
	}
	if len(ids) > 0 {
		prev := strconv.FormatInt(ids[0], 10)
		next := strconv.FormatInt(ids[len(ids)-1], 10)
		pg.Cursors = pagingCursors{Previous: &prev, Next: &next}
		if info.HasPrevious {
			l := link("previous", prev)
			pg.Previous = &l
		}
		if info.HasNext {
			l := link("next", next)
			pg.Next = &l
		}
	}
	return pg
}

// auditLog is an entry as Connect's GET /v1/audit_logs gives it.
type auditLog struct {
	ID               string  `json:"id"`
	Time             string  `json:"time"`
	UserID           string  `json:"user_id"`
	UserGUID         *string `json:"user_guid"`
	UserDescription  string  `json:"user_description"`
	Action           string  `json:"action"`
	EventDescription string  `json:"event_description"`
}

// listAuditLogs is GET /__api__/v1/audit_logs (administrators).
func (a *API) listAuditLogs(w http.ResponseWriter, r *http.Request) error {
	p, err := readPage(r, "ascOrder")
	if err != nil {
		return err
	}
	logs, info, err := a.st.ListAuditLogs(r.Context(), p)
	if err != nil {
		return err
	}
	out := make([]auditLog, 0, len(logs))
	ids := make([]int64, 0, len(logs))
	for _, l := range logs {
		e := auditLog{ID: strconv.FormatInt(l.ID, 10), Time: l.Time.UTC().Format(time.RFC3339), UserID: strconv.FormatInt(l.UserID, 10),
			UserDescription: l.UserDescription, Action: l.Action, EventDescription: l.EventDescription}
		if l.UserGUID != "" {
			g := l.UserGUID
			e.UserGUID = &g
		}
		out = append(out, e)
		ids = append(ids, l.ID)
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"results": out, "paging": a.pagingOf(r, p, info, ids)})
	return nil
}

// auditActions are the API routes whose success is recorded in the audit
// log: Connect's action name and what happened, with {guid}, {id} and
// the like filled in from the path (content is named by its title).
// routes() wraps exactly these routes (auditedRoute).
var auditActions = map[string]struct{ action, what string }{
	"POST /__api__/v1/users":                               {"add_user", "Added user"},
	"PUT /__api__/v1/users/{guid}":                         {"edit_user", "Changed user {guid}"},
	"PATCH /__api__/v1/users/{guid}":                       {"edit_user", "Changed user {guid}"},
	"POST /__api__/v1/users/{guid}/lock":                   {"lock_user", "Locked or unlocked user {guid}"},
	"DELETE /__api__/tokens/{id}":                          {"remove_token", "Removed token {id}"},
	"POST /__api__/v1/groups":                              {"add_group", "Added group"},
	"PATCH /__api__/v1/groups/{guid}":                      {"edit_group", "Changed group {guid}"},
	"DELETE /__api__/v1/groups/{guid}":                     {"remove_group", "Removed group {guid}"},
	"POST /__api__/v1/groups/{guid}/members":               {"add_group_member", "Added a member to group {guid}"},
	"DELETE /__api__/v1/groups/{guid}/members/{user_guid}": {"remove_group_member", "Removed user {user_guid} from group {guid}"},

	"POST /__api__/applications":                          {"add_application", "Created content"},
	"POST /__api__/applications/{id}":                     {"update_application", "Changed content {id}"},
	"POST /__api__/applications/{id}/upload":              {"upload_bundle", "Uploaded a bundle of content {id}"},
	"POST /__api__/applications/{id}/deploy":              {"deploy_application", "Deployed content {id}"},
	"POST /__api__/v1/content":                            {"add_application", "Created content"},
	"PATCH /__api__/v1/content/{guid}":                    {"update_application", "Changed the settings of content {guid}"},
	"DELETE /__api__/v1/content/{guid}":                   {"remove_application", "Deleted content {guid}"},
	"POST /__api__/v1/content/{guid}/bundles":             {"upload_bundle", "Uploaded a bundle of content {guid}"},
	"DELETE /__api__/v1/content/{guid}/bundles/{bid}":     {"remove_bundle", "Deleted bundle {bid} of content {guid}"},
	"POST /__api__/v1/content/{guid}/deploy":              {"deploy_application", "Deployed content {guid}"},
	"POST /__api__/v1/content/{guid}/build":               {"build_application", "Rebuilt the environment of content {guid}"},
	"POST /__api__/v1/content/{guid}/render":              {"render_application", "Rendered content {guid}"},
	"PUT /__api__/v1/content/{guid}/repository":           {"update_git_repository", "Set the git repository of content {guid}"},
	"PATCH /__api__/v1/content/{guid}/repository":         {"update_git_repository", "Changed the git repository of content {guid}"},
	"DELETE /__api__/v1/content/{guid}/repository":        {"remove_git_repository", "Removed the git repository of content {guid}"},
	"PATCH /__api__/v1/content/{guid}/environment":        {"update_environment_variables", "Changed environment variables of content {guid}"},
	"PUT /__api__/v1/content/{guid}/environment":          {"update_environment_variables", "Set environment variables of content {guid}"},
	"POST /__api__/v1/content/{guid}/permissions":         {"add_application_permission", "Added a permission to content {guid}"},
	"PUT /__api__/v1/content/{guid}/permissions/{pid}":    {"update_application_permission", "Changed permission {pid} of content {guid}"},
	"DELETE /__api__/v1/content/{guid}/permissions/{pid}": {"remove_application_permission", "Removed permission {pid} of content {guid}"},
	"PUT /__api__/v1/content/{guid}/schedule":             {"update_schedule", "Set the schedule of content {guid}"},
	"DELETE /__api__/v1/content/{guid}/schedule":          {"remove_schedule", "Removed the schedule of content {guid}"},
	"POST /__api__/variants/{vid}/render":                 {"render_application", "Rendered variant {vid}"},
	"POST /__api__/schedules":                             {"add_schedule", "Added a schedule"},
	"POST /__api__/schedules/{id}":                        {"update_schedule", "Changed schedule {id}"},
	"DELETE /__api__/schedules/{id}":                      {"remove_schedule", "Removed schedule {id}"},
	"DELETE /__api__/v1/system/caches/runtime":            {"remove_runtime_cache", "Deleted a runtime package cache"},
	"POST /__api__/v1/tags":                               {"add_tag", "Added tag"},
	"PATCH /__api__/v1/tags/{id}":                         {"update_tag", "Changed tag {id}"},
	"DELETE /__api__/v1/tags/{id}":                        {"remove_tag", "Removed tag {id}"},
	"POST /__api__/v1/content/{guid}/tags":                {"add_application_tag", "Tagged content {guid}"},
	"DELETE /__api__/v1/content/{guid}/tags/{tid}":        {"remove_application_tag", "Removed tag {tid} from content {guid}"},
	"PUT /__api__/v1/content/{guid}/vanity":               {"add_vanity_url", "Set the vanity URL of content {guid}"},
	"DELETE /__api__/v1/content/{guid}/vanity":            {"remove_vanity_url", "Removed the vanity URL of content {guid}"},
}

// auditedRoute wraps the handler of an audited route: after a success
// (2xx) the action goes into the audit log. Other routes are returned as
// they are (content and reads: nothing added to their path).
func (a *API) auditedRoute(pattern string, h http.Handler) http.Handler {
	act, ok := auditActions[pattern]
	if !ok {
		return h
	}
	names := pathNames(pattern)
	return web.Wrapped(h, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, r)
		if sw.status >= 300 {
			return
		}
		desc := act.what
		for _, n := range names {
			v := r.PathValue(n)
			if n == "guid" && strings.Contains(pattern, "/content/") || n == "id" && strings.Contains(pattern, "/applications/") {
				v = a.contentName(r, n, v)
			}
			desc = strings.ReplaceAll(desc, "{"+n+"}", v)
		}
		u, _ := web.UserFrom(r.Context())
		web.RecordAudit(r.Context(), a.st, a.log, u, act.action, desc)
	}))
}

// contentName names content for the audit log: its title (or name) and
// GUID; the reference alone when it is gone (deleted).
func (a *API) contentName(r *http.Request, kind, ref string) string {
	var c *store.Content
	var err error
	if kind == "id" {
		id, perr := strconv.ParseInt(ref, 10, 64)
		if perr != nil {
			return ref
		}
		c, err = a.st.Content(r.Context(), id)
	} else {
		c, err = a.st.ContentByGUID(r.Context(), ref)
	}
	if err != nil {
		return ref
	}
	title := c.Title
	if title == "" {
		title = c.Name
	}
	return strconv.Quote(title) + " (" + c.GUID + ")"
}

func pathNames(pattern string) []string {
	var out []string
	for rest := pattern; ; {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(rest[i:], '}')
		out = append(out, strings.TrimSuffix(rest[i+1:i+j], "..."))
		rest = rest[i+j:]
	}
}

// statusWriter remembers the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
