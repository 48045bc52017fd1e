package web

import (
	"bytes"
	"crypto/hmac"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dais-dev/dais/server/schedule"
)

// The page of one content, /connect/apps/{guid} (the link clients print,
// /connect/#/apps/{guid}, comes here through a few lines of JavaScript on
// the content list). The page is a client of the API, in process: it
// reads what it shows with the user's own session through the same
// /__api__ routes a client calls, and each of its forms is turned into
// that API call. So a page can never show or do what the API would refuse
// that user, and there is one authorization rule (server/authz) for both.
// Forms carry a CSRF token bound to the session and to the content, on top
// of the same-origin check every cookie-authenticated write gets.

// AppPath is the plain path of a content's page.
func AppPath(guid string) string { return "/connect/apps/" + url.PathEscape(guid) }

// apiRecorder keeps an in-process API answer.
type apiRecorder struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (w *apiRecorder) Header() http.Header { return w.h }
func (w *apiRecorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *apiRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(b)
}

// callAPI makes an API request as the user of r (its session cookie goes
// with it) and decodes a 2xx answer into out (nil: ignored). It returns
// the status and, for an error, the API's message.
func (s *Server) callAPI(r *http.Request, method, path string, body, out any) (int, string) {
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return http.StatusInternalServerError, err.Error()
		}
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequestWithContext(r.Context(), method, path, rd)
	if err != nil {
		return http.StatusInternalServerError, err.Error()
	}
	req.Host = r.Host
	req.RemoteAddr = r.RemoteAddr
	req.TLS = r.TLS
	if c, err := r.Cookie(SessionCookie); err == nil {
		req.AddCookie(c)
	}
	// The page's own form was checked (CSRF token and same origin).
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, h := range []string{"User-Agent", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	rec := &apiRecorder{h: http.Header{}}
	s.handler.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.status >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(rec.body.Bytes(), &e) == nil && e.Error != "" {
			return rec.status, e.Error
		}
		return rec.status, strings.TrimSpace(rec.body.String())
	}
	if out != nil {
		if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
			return http.StatusInternalServerError, "cannot read the API's answer: " + err.Error()
		}
	}
	return rec.status, ""
}

// apiContent is what the page reads of GET /__api__/v1/content/{guid}.
type apiContent struct {
	ID                 string     `json:"id"`
	GUID               string     `json:"guid"`
	Name               string     `json:"name"`
	Title              string     `json:"title"`
	Description        string     `json:"description"`
	AccessType         string     `json:"access_type"`
	AppMode            string     `json:"app_mode"`
	MinProcesses       *int       `json:"min_processes"`
	MaxProcesses       *int       `json:"max_processes"`
	MaxConnsPerProcess *int       `json:"max_conns_per_process"`
	IdleTimeout        *int       `json:"idle_timeout"`
	InitTimeout        *int       `json:"init_timeout"`
	ConnectionTimeout  *int       `json:"connection_timeout"`
	ReadTimeout        *int       `json:"read_timeout"`
	BundleID           *string    `json:"bundle_id"`
	RVersion           *string    `json:"r_version"`
	PyVersion          *string    `json:"py_version"`
	QuartoVersion      *string    `json:"quarto_version"`
	Locked             bool       `json:"locked"`
	LockedMessage      string     `json:"locked_message"`
	ContentURL         string     `json:"content_url"`
	AppRole            string     `json:"app_role"`
	CreatedTime        time.Time  `json:"created_time"`
	LastDeployedTime   *time.Time `json:"last_deployed_time"`
	Owner              *struct {
		GUID      string `json:"guid"`
		Username  string `json:"username"`
		FirstName string `json:"first_name"`
		LastName  string `json:"last_name"`
	} `json:"owner"`
	Tags []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"tags"`
	VanityURL *string `json:"vanity_url"`
}

type apiBundle struct {
	ID          string    `json:"id"`
	CreatedTime time.Time `json:"created_time"`
	Size        int64     `json:"size"`
	Active      bool      `json:"active"`
}

type apiPermission struct {
	ID            string `json:"id"`
	PrincipalGUID string `json:"principal_guid"`
	PrincipalType string `json:"principal_type"`
	Role          string `json:"role"`
}

type apiUser struct {
	GUID     string `json:"guid"`
	Username string `json:"username"`
}

type apiGroup struct {
	GUID      string  `json:"guid"`
	Name      string  `json:"name"`
	OwnerGUID *string `json:"owner_guid"` // nil: no owner
}

type appBundle struct {
	ID, Deployed, Size string
	Active             bool
}

type appPermission struct {
	ID, Who, Kind, Role string
}

type appData struct {
	PageData
	LoggedInWarning template.HTML
	C               apiContent
	CSRF            string
	Editor          bool // may change it: owner, collaborator, administrator
	Message, Error  string
	Owner           string
	Runtimes        []string
	Bundles         []appBundle
	Env             []string
	Permissions     []appPermission
	Vanity          string
	Frame           string // the content's URL for the frame; "" when nothing is deployed
	LogsURL         string
	AllTags         []tagOption // the tags an editor may add
	Document        bool        // renders (rmd-static, jupyter-static, quarto-static): the schedule section
	Schedule        *appSchedule
	Zones           []string // the time zones the server knows, for the schedule form
	Zone            string   // the one selected: the schedule's, or UTC
	Renders         []appRender
}

// apiSchedule is what the page reads of GET .../schedule.
type apiSchedule struct {
	Cron            string     `json:"cron"`
	IntervalSeconds int64      `json:"interval_seconds"`
	Type            string     `json:"type"`
	Schedule        string     `json:"schedule"`
	Timezone        string     `json:"timezone"`
	Enabled         bool       `json:"enabled"`
	NextRun         *time.Time `json:"next_run"`
	LastRun         *time.Time `json:"last_run"`
}

// appSchedule is the schedule as the page shows it.
type appSchedule struct {
	When, Timezone, NextRun, LastRun string
	Cron                             string
	EveryMinutes                     int64
	Enabled                          bool
}

// apiRendering is one item of GET /__api__/variants/{id}/renderings.
type apiRendering struct {
	ID             int64      `json:"id"`
	RenderTime     *time.Time `json:"render_time"`
	RenderDuration *int64     `json:"render_duration"`
	Active         bool       `json:"active"`
	Status         string     `json:"status"`
	Error          string     `json:"error"`
	TaskID         string     `json:"task_id"`
}

// appRender is one row of the rendered output history.
type appRender struct {
	When, Took, Status, Error, Output, Log string
	Active                                 bool
}

// documentModes are the app modes that render (and so may be scheduled).
var documentModes = map[string]bool{"rmd-static": true, "jupyter-static": true, "quarto-static": true}

// scheduleWhen says a schedule's rule in words.
func scheduleWhen(sc apiSchedule) string {
	switch {
	case sc.Cron != "":
		return "cron " + sc.Cron
	case sc.IntervalSeconds > 0 && sc.IntervalSeconds%3600 == 0:
		return fmt.Sprintf("every %d h", sc.IntervalSeconds/3600)
	case sc.IntervalSeconds > 0:
		return fmt.Sprintf("every %d min", max(sc.IntervalSeconds/60, 1))
	case sc.Type != "":
		return sc.Type + " " + sc.Schedule // set through Connect's API
	}
	return "never"
}

// inZone formats t in the zone tz (and says UTC when it differs).
func inZone(t *time.Time, tz string) string {
	if t == nil {
		return ""
	}
	loc, err := time.LoadLocation(tz)
	if err != nil || tz == "UTC" {
		return t.UTC().Format("2006-01-02 15:04 UTC")
	}
	return t.In(loc).Format("2006-01-02 15:04 MST") + " (" + t.UTC().Format("15:04 UTC") + ")"
}

// readSchedule fills the page's schedule section: the schedule (none: a
// 404 from the API) and the renders, newest first (at most 20).
func (s *Server) readSchedule(r *http.Request, d *appData) []string {
	var problems []string
	base := "/__api__/v1/content/" + url.PathEscape(d.C.GUID)
	var sc apiSchedule
	switch status, msg := s.callAPI(r, http.MethodGet, base+"/schedule", nil, &sc); status {
	case http.StatusOK:
		d.Schedule = &appSchedule{When: scheduleWhen(sc), Timezone: sc.Timezone, Cron: sc.Cron, Enabled: sc.Enabled,
			NextRun: inZone(sc.NextRun, sc.Timezone), LastRun: inZone(sc.LastRun, sc.Timezone)}
		if sc.Cron == "" && sc.IntervalSeconds > 0 {
			d.Schedule.EveryMinutes = max(sc.IntervalSeconds/60, 1)
		}
		if !sc.Enabled {
			d.Schedule.NextRun = ""
		}
	case http.StatusNotFound:
	default:
		problems = append(problems, "schedule: "+msg)
	}
	if d.Editor {
		d.Zone, d.Zones = "UTC", schedule.Zones()
		if d.Schedule != nil && d.Schedule.Timezone != "" {
			d.Zone = d.Schedule.Timezone
		}
		if !slices.Contains(d.Zones, d.Zone) { // read elsewhere than the list (the API still checks)
			d.Zones = append([]string{d.Zone}, d.Zones...)
		}
	}
	if d.C.ID == "" {
		return problems
	}
	var rs []apiRendering
	if status, msg := s.callAPI(r, http.MethodGet, "/__api__/variants/"+url.PathEscape(d.C.ID)+"/renderings", nil, &rs); status != http.StatusOK {
		return append(problems, "renders: "+msg)
	}
	for i, x := range rs {
		if i == 20 {
			break
		}
		row := appRender{When: "queued", Status: x.Status, Error: x.Error, Active: x.Active}
		if x.RenderTime != nil {
			row.When = x.RenderTime.UTC().Format("2006-01-02 15:04:05 UTC")
		}
		if x.RenderDuration != nil {
			row.Took = time.Duration(*x.RenderDuration).Round(100 * time.Millisecond).String()
		}
		switch {
		case x.Active && d.Frame != "":
			row.Output = d.Frame
		case x.Status == "succeeded" && d.Frame != "":
			// An earlier rendering, at Connect's path for it.
			row.Output = d.Frame + "_rev" + strconv.FormatInt(x.ID, 10) + "/"
		}
		if x.TaskID != "" {
			row.Log = AppPath(d.C.GUID) + "/logs?task=" + url.QueryEscape(x.TaskID)
		}
		d.Renders = append(d.Renders, row)
	}
	return problems
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func (s *Server) handleAppPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := UserFrom(r.Context()); !ok {
		http.Redirect(w, r, "/__login__?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
		return
	}
	guid := r.PathValue("guid")
	d := appData{
		PageData:        s.pageData(r, "Content"),
		LoggedInWarning: template.HTML(s.Config().Server.LoggedInWarning),
		CSRF:            csrfToken(r, "app "+guid),
		Message:         flashed(r, "msg"),
		Error:           flashed(r, "err"),
	}
	base := "/__api__/v1/content/" + url.PathEscape(guid)
	status, msg := s.callAPI(r, http.MethodGet, base+"?include=tags,owner,vanity_url", nil, &d.C)
	if status != http.StatusOK {
		s.renderAppError(w, r, status, msg)
		return
	}
	if d.C.Title != "" {
		d.Title = d.C.Title
	} else {
		d.Title = d.C.Name
	}
	d.Editor = d.C.AppRole == "owner" || d.C.AppRole == "editor"
	if d.C.Owner != nil {
		d.Owner = d.C.Owner.Username
	}
	for _, rt := range []struct {
		name string
		v    *string
	}{{"R", d.C.RVersion}, {"Python", d.C.PyVersion}, {"Quarto", d.C.QuartoVersion}} {
		if rt.v != nil && *rt.v != "" {
			d.Runtimes = append(d.Runtimes, rt.name+" "+*rt.v)
		}
	}
	if d.C.VanityURL != nil {
		d.Vanity = *d.C.VanityURL
	}
	if d.C.BundleID != nil && !d.C.Locked {
		d.Frame = "/content/" + url.PathEscape(d.C.GUID) + "/"
	}
	var problems []string
	var bundles []apiBundle
	if status, msg := s.callAPI(r, http.MethodGet, base+"/bundles", nil, &bundles); status == http.StatusOK {
		for _, b := range bundles {
			d.Bundles = append(d.Bundles, appBundle{ID: b.ID, Deployed: b.CreatedTime.UTC().Format("2006-01-02 15:04 UTC"),
				Size: humanBytes(b.Size), Active: b.Active})
		}
	} else if status != http.StatusForbidden {
		problems = append(problems, "bundles: "+msg)
	}
	if d.Editor {
		if status, msg := s.callAPI(r, http.MethodGet, base+"/environment", nil, &d.Env); status != http.StatusOK {
			problems = append(problems, "environment: "+msg)
		}
		var perms []apiPermission
		if status, msg := s.callAPI(r, http.MethodGet, base+"/permissions", nil, &perms); status == http.StatusOK {
			for _, p := range perms {
				ap := appPermission{ID: p.ID, Kind: p.PrincipalType, Role: p.Role, Who: p.PrincipalGUID}
				if p.PrincipalType == "group" {
					var g apiGroup
					if s.callAPI(r, http.MethodGet, "/__api__/v1/groups/"+url.PathEscape(p.PrincipalGUID), nil, &g); g.Name != "" {
						ap.Who = g.Name
					}
				} else {
					var u apiUser
					if s.callAPI(r, http.MethodGet, "/__api__/v1/users/"+url.PathEscape(p.PrincipalGUID), nil, &u); u.Username != "" {
						ap.Who = u.Username
					}
				}
				d.Permissions = append(d.Permissions, ap)
			}
		} else {
			problems = append(problems, "permissions: "+msg)
		}
		var tags []struct {
			ID       string  `json:"id"`
			Name     string  `json:"name"`
			ParentID *string `json:"parent_id"`
		}
		if status, msg := s.callAPI(r, http.MethodGet, "/__api__/v1/tags", nil, &tags); status == http.StatusOK {
			names, parents := map[string]string{}, map[string]string{}
			for _, t := range tags {
				names[t.ID] = t.Name
				if t.ParentID != nil {
					parents[t.ID] = *t.ParentID
				}
			}
			has := map[string]bool{}
			for _, t := range d.C.Tags {
				has[t.ID] = true
			}
			for _, t := range tags {
				if has[t.ID] {
					continue
				}
				path := t.Name
				for p, depth := parents[t.ID], 0; p != "" && depth < 20; p, depth = parents[p], depth+1 {
					path = names[p] + " / " + path
				}
				d.AllTags = append(d.AllTags, tagOption{ID: t.ID, Path: path})
			}
			slices.SortFunc(d.AllTags, func(a, b tagOption) int { return strings.Compare(strings.ToLower(a.Path), strings.ToLower(b.Path)) })
		} else {
			problems = append(problems, "tags: "+msg)
		}
		if d.Document = documentModes[d.C.AppMode]; d.Document {
			problems = append(problems, s.readSchedule(r, &d)...)
		}
	}
	if len(problems) > 0 && d.Error == "" {
		d.Error = "Could not read " + strings.Join(problems, "; ")
	}
	s.render(w, s.pages.app, http.StatusOK, d)
}

func (s *Server) renderAppError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if status < 400 {
		status = http.StatusInternalServerError
	}
	d := appData{PageData: s.pageData(r, "Content"), Error: msg}
	s.render(w, s.pages.app, status, d)
}

// handleAppAction turns one of the page's forms into its API call and
// goes back to the page with the API's answer.
func (s *Server) handleAppAction(w http.ResponseWriter, r *http.Request) {
	guid := r.PathValue("guid")
	if _, ok := UserFrom(r.Context()); !ok {
		http.Redirect(w, r, "/__login__?next="+url.QueryEscape(AppPath(guid)), http.StatusSeeOther)
		return
	}
	if !readForm(w, r, "app "+guid) {
		return
	}
	f := r.PostForm
	base := "/__api__/v1/content/" + url.PathEscape(guid)
	back := AppPath(guid)
	var status int
	var msg, done string
	anchor := ""
	intOrNil := func(name string) (any, bool) {
		v := strings.TrimSpace(f.Get(name))
		if v == "" {
			return nil, true
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			msg = name + " must be a whole number of 0 or more (or empty for the server's default)"
			return nil, false
		}
		return n, true
	}
	switch action := r.PathValue("action"); action {
	case "activate":
		anchor = "#info"
		var task struct {
			TaskID string `json:"task_id"`
		}
		status, msg = s.callAPI(r, http.MethodPost, base+"/deploy", map[string]string{"bundle_id": f.Get("bundle_id")}, &task)
		done = "Activating bundle " + f.Get("bundle_id") + " (task " + task.TaskID + ")."
	case "env":
		anchor = "#environment"
		name := strings.TrimSpace(f.Get("name"))
		var body []map[string]any
		if f.Get("remove") != "" {
			body = []map[string]any{{"name": name, "value": nil}}
			done = "Removed " + name + "; running processes restart with the change."
		} else {
			body = []map[string]any{{"name": name, "value": f.Get("value")}}
			done = "Set " + name + "; running processes restart with the change."
		}
		status, msg = s.callAPI(r, http.MethodPatch, base+"/environment", body, nil)
	case "runtime":
		anchor = "#runtime"
		body := map[string]any{}
		ok := true
		for _, k := range []string{"min_processes", "max_processes", "max_conns_per_process", "idle_timeout", "init_timeout",
			"connection_timeout", "read_timeout"} {
			v, good := intOrNil(k)
			if !good {
				ok = false
				break
			}
			body[k] = v
		}
		if !ok {
			status = http.StatusBadRequest
			break
		}
		status, msg = s.callAPI(r, http.MethodPatch, base, body, nil)
		done = "Runtime settings saved."
	case "settings":
		anchor = "#settings"
		status, msg = s.callAPI(r, http.MethodPatch, base, map[string]any{"title": f.Get("title"), "description": f.Get("description")}, nil)
		done = "Title and description saved."
	case "access":
		anchor = "#access"
		status, msg = s.callAPI(r, http.MethodPatch, base, map[string]any{"access_type": f.Get("access_type")}, nil)
		done = "Access saved."
	case "permission-add":
		anchor = "#access"
		who := strings.TrimSpace(f.Get("principal"))
		role := f.Get("role")
		guidOf, kind := "", ""
		var users []apiUser
		var page struct {
			Results []apiUser `json:"results"`
		}
		if st, _ := s.callAPI(r, http.MethodGet, "/__api__/v1/users?prefix="+url.QueryEscape(who)+"&page_size=100", nil, &page); st == http.StatusOK {
			users = page.Results
		}
		for _, u := range users {
			if strings.EqualFold(u.Username, who) {
				guidOf, kind = u.GUID, "user"
			}
		}
		if guidOf == "" {
			var groups struct {
				Results []apiGroup `json:"results"`
			}
			if st, _ := s.callAPI(r, http.MethodGet, "/__api__/v1/groups?prefix="+url.QueryEscape(who)+"&page_size=100", nil, &groups); st == http.StatusOK {
				for _, g := range groups.Results {
					if strings.EqualFold(g.Name, who) {
						guidOf, kind = g.GUID, "group"
					}
				}
			}
		}
		if guidOf == "" {
			status, msg = http.StatusNotFound, "no user or group named "+who
			break
		}
		status, msg = s.callAPI(r, http.MethodPost, base+"/permissions",
			map[string]string{"principal_guid": guidOf, "principal_type": kind, "role": role}, nil)
		done = "Added " + who + " as " + role + "."
	case "permission-remove":
		anchor = "#access"
		status, msg = s.callAPI(r, http.MethodDelete, base+"/permissions/"+url.PathEscape(f.Get("id")), nil, nil)
		done = "Removed."
	case "vanity":
		anchor = "#settings"
		if p := strings.TrimSpace(f.Get("path")); p == "" {
			status, msg = s.callAPI(r, http.MethodDelete, base+"/vanity", nil, nil)
			done = "Vanity URL removed."
		} else {
			status, msg = s.callAPI(r, http.MethodPut, base+"/vanity", map[string]string{"path": p}, nil)
			done = "Vanity URL set."
		}
	case "tag-add":
		anchor = "#tags"
		status, msg = s.callAPI(r, http.MethodPost, base+"/tags", map[string]string{"tag_id": f.Get("tag_id")}, nil)
		done = "Tag added."
	case "tag-remove":
		anchor = "#tags"
		status, msg = s.callAPI(r, http.MethodDelete, base+"/tags/"+url.PathEscape(f.Get("tag_id")), nil, nil)
		done = "Tag removed."
	case "schedule":
		anchor = "#schedule"
		body := map[string]any{"timezone": strings.TrimSpace(f.Get("timezone")), "enabled": f.Get("enabled") != ""}
		cron, every := strings.TrimSpace(f.Get("cron")), strings.TrimSpace(f.Get("every_minutes"))
		switch {
		case cron != "" && every != "":
			status, msg = http.StatusBadRequest, "give either a cron expression or a number of minutes, not both"
		case cron != "":
			body["cron"] = cron
		case every != "":
			n, err := strconv.Atoi(every)
			if err != nil || n < 1 {
				status, msg = http.StatusBadRequest, "every (minutes) must be a whole number of 1 or more"
				break
			}
			body["interval_seconds"] = n * 60
		default:
			status, msg = http.StatusBadRequest, "say when: a cron expression (such as 0 6 * * 1-5) or every so many minutes"
		}
		if status != 0 {
			break
		}
		status, msg = s.callAPI(r, http.MethodPut, base+"/schedule", body, nil)
		done = "Schedule saved."
	case "schedule-remove":
		anchor = "#schedule"
		status, msg = s.callAPI(r, http.MethodDelete, base+"/schedule", nil, nil)
		done = "Schedule removed: it renders only when asked now."
	case "render":
		anchor = "#schedule"
		var task struct {
			TaskID string `json:"task_id"`
		}
		status, msg = s.callAPI(r, http.MethodPost, base+"/render", struct{}{}, &task)
		done = "Rendering now (task " + task.TaskID + "); the new output is served once it succeeds."
	case "delete":
		var c apiContent
		if st, m := s.callAPI(r, http.MethodGet, base, nil, &c); st != http.StatusOK {
			status, msg = st, m
			break
		}
		if f.Get("confirm") != c.Name {
			status, msg, anchor = http.StatusBadRequest, "to delete it, type its name: "+c.Name, "#delete"
			break
		}
		status, msg = s.callAPI(r, http.MethodDelete, base, nil, nil)
		if status < 300 {
			q := url.Values{}
			flash(r, q, "msg", "Deleted "+c.Name+".")
			http.Redirect(w, r, "/connect/?"+q.Encode(), http.StatusSeeOther)
			return
		}
	default:
		http.NotFound(w, r)
		return
	}
	redirectFlash(w, r, back+anchor, status, msg, done)
}

// redirectFlash sends a form's poster back to back (a path, with a query
// and a #fragment or not) with the API's answer to the form as a flash:
// msg when status says it failed ("failed" when the API said nothing),
// else done.
func redirectFlash(w http.ResponseWriter, r *http.Request, back string, status int, msg, done string) {
	q := url.Values{}
	if status >= 300 || status == 0 {
		if msg == "" {
			msg = "failed"
		}
		flash(r, q, "err", msg)
	} else {
		flash(r, q, "msg", done)
	}
	back, fragment, _ := strings.Cut(back, "#")
	sep := "?"
	if strings.Contains(back, "?") {
		sep = "&"
	}
	if fragment != "" {
		fragment = "#" + fragment
	}
	http.Redirect(w, r, back+sep+q.Encode()+fragment, http.StatusSeeOther)
}

// flash adds a message for the next page to q, signed with the session
// (csrfToken), so that a link from elsewhere cannot put words on a page.
func flash(r *http.Request, q url.Values, key, text string) {
	q.Set(key, text)
	q.Set(key+"_sig", csrfToken(r, "flash "+key+" "+text))
}

// flashed is the message flash put in the request's URL, or "".
func flashed(r *http.Request, key string) string {
	v := r.URL.Query()
	text := v.Get(key)
	want := csrfToken(r, "flash "+key+" "+text)
	if text == "" || want == "" || !hmac.Equal([]byte(v.Get(key+"_sig")), []byte(want)) {
		return ""
	}
	return text
}

// CSRFToken is the token a page's form for purpose carries in the
// session of r ("" without a session); for tests that post as a page.
func CSRFToken(r *http.Request, purpose string) string { return csrfToken(r, purpose) }

type apiTask struct {
	ID          string     `json:"id"`
	Kind        string     `json:"kind"`
	Finished    bool       `json:"finished"`
	Code        int        `json:"code"`
	Error       string     `json:"error"`
	CreatedTime time.Time  `json:"created_time"`
	Finished2   *time.Time `json:"finished_time"`
}

type apiJob struct {
	Key        string     `json:"key"`
	PID        int        `json:"pid"`
	BundleID   string     `json:"bundle_id"`
	Hostname   string     `json:"hostname"`
	Status     int        `json:"status"`
	ExitCode   *int       `json:"exit_code"`
	ExitReason string     `json:"exit_reason"`
	StartTime  time.Time  `json:"start_time"`
	EndTime    *time.Time `json:"end_time"`
}

type logItem struct {
	Link, Label, When, State string
	Selected, Running        bool
}

type logsData struct {
	PageData
	C              apiContent
	Tasks, Jobs    []logItem
	Error          string
	Shown          string   // what the log below is
	Lines          []string // its output so far
	Stream         string   // its event stream; "" when it has ended
	Running        bool
	Back, LogsPath string
}

// handleAppLogs is /connect/apps/{guid}/logs: the content's deploy and
// render tasks and its processes, newest first, and the output of one of
// them (?task=ID or ?job=KEY; the newest task by default). The output so
// far is in the page; a few lines of JavaScript follow the rest live with
// the API's event stream.
func (s *Server) handleAppLogs(w http.ResponseWriter, r *http.Request) {
	if _, ok := UserFrom(r.Context()); !ok {
		http.Redirect(w, r, "/__login__?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
		return
	}
	guid := r.PathValue("guid")
	base := "/__api__/v1/content/" + url.PathEscape(guid)
	d := logsData{PageData: s.pageData(r, "Logs"), Back: AppPath(guid), LogsPath: AppPath(guid) + "/logs"}
	if status, msg := s.callAPI(r, http.MethodGet, base, nil, &d.C); status != http.StatusOK {
		s.renderAppError(w, r, status, msg)
		return
	}
	name := d.C.Title
	if name == "" {
		name = d.C.Name
	}
	d.Title = "Logs · " + name
	var tasks []apiTask
	if status, msg := s.callAPI(r, http.MethodGet, base+"/tasks", nil, &tasks); status != http.StatusOK {
		// Viewers: the API refuses them the logs, so does the page.
		s.renderAppError(w, r, status, msg)
		return
	}
	var jobs []apiJob
	if status, msg := s.callAPI(r, http.MethodGet, base+"/jobs", nil, &jobs); status != http.StatusOK {
		d.Error = "Could not read the processes: " + msg
	}
	q := r.URL.Query()
	taskID, jobKey := q.Get("task"), q.Get("job")
	if taskID == "" && jobKey == "" && len(tasks) > 0 {
		taskID = tasks[0].ID
	}
	when := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }
	for _, t := range tasks {
		state := "running"
		if t.Finished {
			state = "done"
			if t.Code != 0 || t.Error != "" {
				state = "failed"
			}
		}
		d.Tasks = append(d.Tasks, logItem{Link: d.LogsPath + "?task=" + url.QueryEscape(t.ID), Label: t.Kind,
			When: when(t.CreatedTime), State: state, Selected: t.ID == taskID, Running: !t.Finished})
	}
	for _, j := range jobs {
		state := "running"
		if j.EndTime != nil {
			state = "ended"
			if j.ExitCode != nil {
				state += fmt.Sprintf(" (exit %d)", *j.ExitCode)
			}
			if j.ExitReason != "" {
				state += ": " + j.ExitReason // "killed: over its 128 MB memory limit"
			}
		}
		d.Jobs = append(d.Jobs, logItem{Link: d.LogsPath + "?job=" + url.QueryEscape(j.Key), Label: fmt.Sprintf("process %d, bundle %s", j.PID, j.BundleID),
			When: when(j.StartTime), State: state, Selected: j.Key == jobKey, Running: j.EndTime == nil})
	}
	switch {
	case taskID != "":
		var t struct {
			Output   []string `json:"output"`
			Finished bool     `json:"finished"`
			Kind     string   `json:"kind"`
		}
		if status, msg := s.callAPI(r, http.MethodGet, "/__api__/v1/tasks/"+url.PathEscape(taskID), nil, &t); status != http.StatusOK {
			d.Error = msg
			break
		}
		d.Shown = "Task " + taskID
		for _, it := range d.Tasks {
			if it.Selected && it.Label != "" {
				d.Shown = strings.ToUpper(it.Label[:1]) + it.Label[1:] + ", " + it.When
			}
		}
		d.Lines = t.Output
		d.Running = !t.Finished
		d.Stream = "/__api__/v1/tasks/" + url.PathEscape(taskID) + "/stream?from=" + strconv.Itoa(len(t.Output))
	case jobKey != "":
		var l struct {
			Entries []struct {
				Data string `json:"data"`
			} `json:"entries"`
		}
		if status, msg := s.callAPI(r, http.MethodGet, base+"/jobs/"+url.PathEscape(jobKey)+"/log", nil, &l); status != http.StatusOK {
			d.Error = msg
			break
		}
		d.Shown = "Process " + jobKey
		for _, it := range d.Jobs {
			if it.Selected && it.Label != "" {
				d.Shown = strings.ToUpper(it.Label[:1]) + it.Label[1:]
			}
		}
		for _, e := range l.Entries {
			d.Lines = append(d.Lines, e.Data)
		}
		for _, j := range d.Jobs {
			if j.Selected {
				d.Running = j.Running
			}
		}
		// The stream starts over with the log's end: the page replaces
		// what it shows with it.
		d.Stream = base + "/jobs/" + url.PathEscape(jobKey) + "/log/stream"
	}
	s.render(w, s.pages.logs, http.StatusOK, d)
}
