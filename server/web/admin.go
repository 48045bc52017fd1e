package web

import (
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/dais-dev/dais/server/authz"
	"github.com/dais-dev/dais/server/store"
)

// The administrators' pages, /connect/admin/...: users, groups, the
// server, the audit log and the load. Like the content page (apppage.go)
// they are clients of the API in process, with the user's own session:
// what they show and do is what the API allows that user. A page is
// refused (403) to anyone the API's administrator routes refuse, by the
// same rule (authz.HasRole, what RequireRole asks), so that a viewer or
// a publisher never sees one half-empty.

const adminPageSize = 50

// adminData is what every admin page's template reads.
type adminData struct {
	PageData
	Section        string // users, groups, server, audit, load
	CSRF           string
	Message, Error string
}

// adminPage checks that the request's user may see an admin page: it
// redirects to the login form (no user) or answers 403, and says false.
func (s *Server) adminPage(w http.ResponseWriter, r *http.Request, section, title string) (adminData, bool) {
	u, ok := UserFrom(r.Context())
	if !ok {
		http.Redirect(w, r, "/__login__?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
		return adminData{}, false
	}
	d := adminData{PageData: s.pageData(r, title), Section: section, CSRF: csrfToken(r, "admin"),
		Message: flashed(r, "msg"), Error: flashed(r, "err")}
	if !authz.HasRole(u, store.RoleAdministrator) {
		d.Error = "This page is for administrators; you are " + u.Username + ", " + u.Role + "."
		d.Title = "Not allowed"
		s.render(w, s.pages.forbidden, http.StatusForbidden, d)
		return d, false
	}
	return d, true
}

func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// ---- users

type apiUserFull struct {
	GUID       string     `json:"guid"`
	Username   string     `json:"username"`
	FirstName  string     `json:"first_name"`
	LastName   string     `json:"last_name"`
	Email      string     `json:"email"`
	Role       string     `json:"user_role"`
	Locked     bool       `json:"locked"`
	ActiveTime *time.Time `json:"active_time"`
}

type userRow struct {
	GUID, Username, Name, Email, Role, LastActive string
	Locked, Self                                  bool
}

type usersData struct {
	adminData
	Q, Role    string
	Users      []userRow
	Total      int
	From, To   int
	Prev, Next string
	Roles      []string
	Passwords  bool   // the server signs people in with passwords
	Back       string // this page, where the forms come back to
}

func (s *Server) handleAdminUsers(w http.ResponseWriter, r *http.Request) {
	ad, ok := s.adminPage(w, r, "users", "Users")
	if !ok {
		return
	}
	me, _ := UserFrom(r.Context())
	q := r.URL.Query()
	d := usersData{adminData: ad, Q: strings.TrimSpace(q.Get("q")), Role: q.Get("role"),
		Roles:     []string{store.RoleViewer, store.RolePublisher, store.RoleAdministrator},
		Passwords: s.Config().Authentication.Provider == store.ProviderPassword}
	page := 1
	if n, err := strconv.Atoi(q.Get("page")); err == nil && n > 1 && n <= 100_000 {
		page = n
	}
	v := url.Values{"prefix": {d.Q}, "page_number": {strconv.Itoa(page)}, "page_size": {strconv.Itoa(adminPageSize)}}
	if d.Role != "" {
		v.Set("user_role", d.Role)
	}
	var res struct {
		Results []apiUserFull `json:"results"`
		Total   int           `json:"total"`
	}
	if st, msg := s.callAPI(r, http.MethodGet, "/__api__/v1/users?"+v.Encode(), nil, &res); st != http.StatusOK {
		d.Error = "Could not list users: " + msg
	}
	for _, u := range res.Results {
		row := userRow{GUID: u.GUID, Username: u.Username, Name: strings.TrimSpace(u.FirstName + " " + u.LastName),
			Email: u.Email, Role: u.Role, Locked: u.Locked, Self: u.GUID == me.GUID, LastActive: "never"}
		if u.ActiveTime != nil {
			row.LastActive = when(*u.ActiveTime)
		}
		d.Users = append(d.Users, row)
	}
	d.Total = res.Total
	if len(d.Users) > 0 {
		d.From = (page-1)*adminPageSize + 1
		d.To = d.From + len(d.Users) - 1
	}
	link := func(n int) string {
		l := url.Values{}
		if d.Q != "" {
			l.Set("q", d.Q)
		}
		if d.Role != "" {
			l.Set("role", d.Role)
		}
		if n > 1 {
			l.Set("page", strconv.Itoa(n))
		}
		if len(l) == 0 {
			return "/connect/admin/users"
		}
		return "/connect/admin/users?" + l.Encode()
	}
	d.Back = link(page)
	if page > 1 {
		d.Prev = link(page - 1)
	}
	if d.To < d.Total && len(d.Users) > 0 {
		d.Next = link(page + 1)
	}
	s.render(w, s.pages.adminUsers, http.StatusOK, d)
}

// handleAdminAction is POST /connect/admin/{section}/{action}: each form
// of the admin pages, turned into its API call.
func (s *Server) handleAdminAction(w http.ResponseWriter, r *http.Request) {
	if _, ok := UserFrom(r.Context()); !ok {
		http.Redirect(w, r, "/__login__?next=/connect/admin/users", http.StatusSeeOther)
		return
	}
	if !readForm(w, r, "admin") {
		return
	}
	f := r.PostForm
	if r.PathValue("section") == "groups" {
		s.groupAction(w, r, adminGroupsPath, formBack(f, "/connect/admin/", "/connect/admin/users"))
		return
	}
	back := formBack(f, "/connect/admin/", "/connect/admin/users")
	who := f.Get("username")
	userPath := "/__api__/v1/users/" + url.PathEscape(f.Get("guid"))
	var status int
	var msg, done string
	switch r.PathValue("section") + " " + r.PathValue("action") {
	case "users create":
		body := map[string]any{"username": strings.TrimSpace(who), "user_role": f.Get("role")}
		for _, k := range []string{"first_name", "last_name", "email"} {
			if v := strings.TrimSpace(f.Get(k)); v != "" {
				body[k] = v
			}
		}
		if p := f.Get("password"); p != "" {
			body["password"] = p
		}
		status, msg = s.callAPI(r, http.MethodPost, "/__api__/v1/users", body, nil)
		done = "Added " + strings.TrimSpace(who) + " as " + f.Get("role") + "."
	case "users role":
		status, msg = s.callAPI(r, http.MethodPatch, userPath, map[string]any{"user_role": f.Get("role")}, nil)
		done = who + " is now " + f.Get("role") + "."
	case "users lock", "users unlock":
		lock := r.PathValue("action") == "lock"
		status, msg = s.callAPI(r, http.MethodPost, userPath+"/lock", map[string]any{"locked": lock}, nil)
		done = map[bool]string{true: "Locked " + who + ": their sessions and API keys are refused from now on.", false: "Unlocked " + who + "."}[lock]
	default:
		http.NotFound(w, r)
		return
	}
	redirectFlash(w, r, back, status, msg, done)
}

// ---- groups

// The groups pages: an administrator's, every group, and a publisher's
// own (/connect/groups), the groups they own. Both show a group's
// members to anyone (as the API does) and offer its forms only where
// authz.Group, the API's rule for changing a group, allows them.
const (
	adminGroupsPath = "/connect/admin/groups"
	ownGroupsPath   = "/connect/groups"
)

type groupRow struct {
	GUID, Name, Link string
	Selected         bool
}

// groupsData is a groups page: the list, and one group shown with its
// members. Local is false for a group the identity provider brings: its
// members change at the provider. CanManage is authz.Group's answer for
// the user and the group shown: the page offers its forms then.
type groupsData struct {
	adminData
	Base       string // the page's path, adminGroupsPath or ownGroupsPath
	Q          string
	Groups     []groupRow
	Total      int
	Shown      string // the group whose members are listed
	ShownID    string
	Owner      string // "" for a local group without an owner
	Local      bool
	CanManage  bool
	Members    []userRow
	NoMember   bool
	Find       string    // the search for a user to add
	Found      []userRow // its results, members left out
	Back       string    // this page, where the forms come back to
	From, To   int
	Prev, Next string
}

// groupsPageSize is how many groups the groups page lists at once.
const groupsPageSize = 100

// handleAdminGroups is the administrators' groups page: every group.
func (s *Server) handleAdminGroups(w http.ResponseWriter, r *http.Request) {
	ad, ok := s.adminPage(w, r, "groups", "Groups")
	if !ok {
		return
	}
	s.groupsPage(w, r, groupsData{adminData: ad, Base: adminGroupsPath}, "", s.pages.adminGroups)
}

// handleGroups is a publisher's groups page: the groups they own, made
// and changed through the same API calls as the administrators' page
// (which is where an administrator manages every group). A viewer, who
// may not make a group, gets 403.
func (s *Server) handleGroups(w http.ResponseWriter, r *http.Request) {
	u, ok := UserFrom(r.Context())
	if !ok {
		http.Redirect(w, r, "/__login__?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
		return
	}
	ad := adminData{PageData: s.pageData(r, "Your groups"), CSRF: csrfToken(r, "groups"),
		Message: flashed(r, "msg"), Error: flashed(r, "err")}
	if !authz.HasRole(u, store.RolePublisher) {
		ad.Error = "Groups are made and changed by publishers; you are " + u.Username + ", " + u.Role + "."
		ad.Title = "Not allowed"
		s.render(w, s.pages.forbidden, http.StatusForbidden, ad)
		return
	}
	s.groupsPage(w, r, groupsData{adminData: ad, Base: ownGroupsPath}, u.GUID, s.pages.groups)
}

// groupsPage lists the groups (one API call, however many there are;
// with owner, a user's GUID, those they own) and the members of one of
// them (?group=<guid>): a member list per group on one page would cost
// an API call per group. ?find= searches the users to add to the group
// shown.
func (s *Server) groupsPage(w http.ResponseWriter, r *http.Request, d groupsData, owner string, page *template.Template) {
	me, _ := UserFrom(r.Context())
	q := r.URL.Query()
	d.Q, d.Find, d.Back = strings.TrimSpace(q.Get("q")), strings.TrimSpace(q.Get("find")), d.Base
	var res struct {
		Results []apiGroup `json:"results"`
		Total   int        `json:"total"`
	}
	n := 1
	if i, err := strconv.Atoi(q.Get("page")); err == nil && i > 1 && i <= 100_000 {
		n = i
	}
	v := url.Values{"prefix": {d.Q}, "page_number": {strconv.Itoa(n)}, "page_size": {strconv.Itoa(groupsPageSize)}}
	if owner != "" {
		v.Set("owner_guid", owner)
	}
	if st, msg := s.callAPI(r, http.MethodGet, "/__api__/v1/groups?"+v.Encode(), nil, &res); st != http.StatusOK {
		d.Error = "Could not list groups: " + msg
	}
	d.Total = res.Total
	// link is this page's address with the group shown (or none) and page i.
	link := func(group string, i int) string {
		l := url.Values{}
		if group != "" {
			l.Set("group", group)
		}
		if d.Q != "" {
			l.Set("q", d.Q)
		}
		if i > 1 {
			l.Set("page", strconv.Itoa(i))
		}
		if group != "" {
			return d.Base + "?" + l.Encode() + "#members"
		}
		if len(l) == 0 {
			return d.Base
		}
		return d.Base + "?" + l.Encode()
	}
	shown := q.Get("group")
	for _, g := range res.Results {
		d.Groups = append(d.Groups, groupRow{GUID: g.GUID, Name: g.Name, Link: link(g.GUID, n), Selected: g.GUID == shown})
	}
	if len(d.Groups) > 0 {
		d.From = (n-1)*groupsPageSize + 1
		d.To = d.From + len(d.Groups) - 1
	}
	if n > 1 {
		d.Prev = link(shown, n-1)
	}
	if d.To < d.Total && len(d.Groups) > 0 {
		d.Next = link(shown, n+1)
	}
	// The group shown is read by itself: it may be on another page of the
	// list (a link from the audit log) or outside the search.
	var g apiGroup
	if shown != "" {
		if st, msg := s.callAPI(r, http.MethodGet, "/__api__/v1/groups/"+url.PathEscape(shown), nil, &g); st != http.StatusOK {
			d.Error = "Could not read the group " + shown + ": " + msg
		}
	}
	if g.GUID != "" {
		d.Shown, d.ShownID = g.Name, g.GUID
		d.Back = link(g.GUID, n)
		// Where it comes from, and whether the user may change it: the
		// API's rule, on the stored group (a local group may have no
		// owner, when its owner's account was deleted).
		if sg, err := s.store.GroupByGUID(r.Context(), g.GUID); err == nil {
			d.Local = sg.Provider == store.GroupProviderLocal
			d.CanManage = authz.Group(me, sg) == nil
		} else {
			d.Error = "Could not read the group " + g.Name + ": " + err.Error()
		}
		if g.OwnerGUID != nil {
			d.Owner = "a user no longer listed"
			var o apiUser
			if s.callAPI(r, http.MethodGet, "/__api__/v1/users/"+url.PathEscape(*g.OwnerGUID), nil, &o); o.Username != "" {
				d.Owner = o.Username
			}
		}
		var m struct {
			Results []apiUserFull `json:"results"`
		}
		if st, msg := s.callAPI(r, http.MethodGet, "/__api__/v1/groups/"+url.PathEscape(g.GUID)+"/members", nil, &m); st != http.StatusOK {
			d.Error = "Could not list the members of " + g.Name + ": " + msg
		}
		member := map[string]bool{}
		for _, u := range m.Results {
			member[u.GUID] = true
			d.Members = append(d.Members, userRow{GUID: u.GUID, Username: u.Username, Name: strings.TrimSpace(u.FirstName + " " + u.LastName),
				Email: u.Email, Role: u.Role, Locked: u.Locked})
		}
		d.NoMember = len(d.Members) == 0
		if d.CanManage && d.Find != "" {
			var found struct {
				Results []apiUserFull `json:"results"`
			}
			fv := url.Values{"prefix": {d.Find}, "page_size": {"20"}}
			if st, msg := s.callAPI(r, http.MethodGet, "/__api__/v1/users?"+fv.Encode(), nil, &found); st != http.StatusOK {
				d.Error = "Could not search the users: " + msg
			}
			for _, u := range found.Results {
				if !member[u.GUID] {
					d.Found = append(d.Found, userRow{GUID: u.GUID, Username: u.Username, Name: strings.TrimSpace(u.FirstName + " " + u.LastName),
						Email: u.Email, Role: u.Role, Locked: u.Locked})
				}
			}
		}
	}
	s.render(w, page, http.StatusOK, d)
}

// handleGroupsAction is POST /connect/groups/{action}: a form of a
// publisher's groups page.
func (s *Server) handleGroupsAction(w http.ResponseWriter, r *http.Request) {
	if _, ok := UserFrom(r.Context()); !ok {
		http.Redirect(w, r, "/__login__?next="+ownGroupsPath, http.StatusSeeOther)
		return
	}
	if !readForm(w, r, "groups") {
		return
	}
	s.groupAction(w, r, ownGroupsPath, formBack(r.PostForm, ownGroupsPath, ownGroupsPath))
}

// groupAction turns a groups page's form (create, delete, add, remove)
// into its API call, with the user's own session: the API decides
// (authz.Group). A refusal is a 403 page; anything else comes back to
// back with the API's answer. base is the page's path.
func (s *Server) groupAction(w http.ResponseWriter, r *http.Request, base, back string) {
	f := r.PostForm
	who := f.Get("username")
	groupPath := "/__api__/v1/groups/" + url.PathEscape(f.Get("guid"))
	var status int
	var msg, done string
	switch r.PathValue("action") {
	case "create":
		name := strings.TrimSpace(f.Get("name"))
		var g apiGroup
		status, msg = s.callAPI(r, http.MethodPost, "/__api__/v1/groups", map[string]any{"name": name}, &g)
		done = "Made the group " + name + "."
		if g.GUID != "" {
			back = base + "?group=" + url.QueryEscape(g.GUID) + "#members"
		}
	case "delete":
		if strings.TrimSpace(f.Get("confirm")) != f.Get("name") {
			status, msg = http.StatusBadRequest, "type the group's name, "+f.Get("name")+", to delete it"
			break
		}
		status, msg = s.callAPI(r, http.MethodDelete, groupPath, nil, nil)
		done = "Deleted the group " + f.Get("name") + "."
		if status < 300 {
			back = base
		}
	case "add":
		status, msg = s.callAPI(r, http.MethodPost, groupPath+"/members", map[string]any{"user_guid": f.Get("user")}, nil)
		done = "Added " + who + " to " + f.Get("name") + "."
	case "remove":
		status, msg = s.callAPI(r, http.MethodDelete, groupPath+"/members/"+url.PathEscape(f.Get("user")), nil, nil)
		done = "Removed " + who + " from " + f.Get("name") + "."
	default:
		http.NotFound(w, r)
		return
	}
	if status == http.StatusForbidden {
		d := adminData{PageData: s.pageData(r, "Not allowed"), Error: msg}
		s.render(w, s.pages.forbidden, http.StatusForbidden, d)
		return
	}
	redirectFlash(w, r, back, status, msg, done)
}

// formBack is the form's back field when it is a path below prefix, else def.
func formBack(f url.Values, prefix, def string) string {
	if b := f.Get("back"); strings.HasPrefix(b, prefix) && !strings.ContainsAny(b, "\\\r\n") {
		return b
	}
	return def
}

// ---- server

type serverData struct {
	adminData
	ConnectVersion, Build, Hostname string
	License                         struct {
		Type, Reason, Status string
		OK                   bool
	}
	Runtimes []struct{ Language, Versions string }
	Nodes    []nodeRow
}

type nodeRow struct {
	Name, Address, Version, Started, Heartbeat string
	Draining, This                             bool
}

func (s *Server) handleAdminServer(w http.ResponseWriter, r *http.Request) {
	ad, ok := s.adminPage(w, r, "server", "Server")
	if !ok {
		return
	}
	d := serverData{adminData: ad}
	var settings struct {
		Version  string `json:"version"`
		Build    string `json:"build"`
		Hostname string `json:"hostname"`
		License  struct {
			Type   string `json:"type"`
			OK     bool   `json:"ok"`
			Reason string `json:"reason"`
			Status string `json:"status"`
		} `json:"license"`
	}
	var problems []string
	if st, msg := s.callAPI(r, http.MethodGet, "/__api__/server_settings", nil, &settings); st != http.StatusOK {
		problems = append(problems, "settings: "+msg)
	}
	d.ConnectVersion, d.Build, d.Hostname = settings.Version, settings.Build, settings.Hostname
	d.License.Type, d.License.OK, d.License.Reason, d.License.Status = settings.License.Type, settings.License.OK, settings.License.Reason, settings.License.Status
	if d.License.Type == "" {
		d.License.Type = "none"
	}
	for _, lang := range []struct{ name, path string }{{"R", "r"}, {"Python", "python"}, {"Quarto", "quarto"}} {
		var rt struct {
			Installations []struct {
				Version string `json:"version"`
			} `json:"installations"`
		}
		if st, msg := s.callAPI(r, http.MethodGet, "/__api__/v1/server_settings/"+lang.path, nil, &rt); st != http.StatusOK {
			problems = append(problems, lang.name+": "+msg)
			continue
		}
		var vs []string
		for _, i := range rt.Installations {
			vs = append(vs, i.Version)
		}
		versions := strings.Join(vs, ", ")
		if versions == "" {
			versions = "none found"
		}
		d.Runtimes = append(d.Runtimes, struct{ Language, Versions string }{lang.name, versions})
	}
	var nodes []struct {
		Name         string    `json:"name"`
		Address      string    `json:"address"`
		Version      string    `json:"version"`
		StartedTime  time.Time `json:"started_time"`
		HeartbeatAge float64   `json:"heartbeat_age_seconds"`
		Draining     bool      `json:"draining"`
		This         bool      `json:"this_node"`
	}
	if st, msg := s.callAPI(r, http.MethodGet, "/__api__/v1/system/nodes", nil, &nodes); st != http.StatusOK {
		problems = append(problems, "nodes: "+msg)
	}
	if len(nodes) > 1 {
		for _, n := range nodes {
			d.Nodes = append(d.Nodes, nodeRow{Name: n.Name, Address: n.Address, Version: n.Version, Started: when(n.StartedTime),
				Heartbeat: fmt.Sprintf("%.0f s ago", n.HeartbeatAge), Draining: n.Draining, This: n.This})
		}
	}
	if len(problems) > 0 && d.Error == "" {
		d.Error = "Could not read " + strings.Join(problems, "; ")
	}
	s.render(w, s.pages.adminServer, http.StatusOK, d)
}

// ---- audit log

type auditRow struct {
	Time, User, UserLink, Action string
	Event                        []auditPart
}

// auditPart is a piece of an entry's description: text, or a user or a
// group named and linked where the record has their GUID.
type auditPart struct{ Text, Link string }

// auditGUID is a user or a group named by GUID in a description, as the
// API's audited routes write them ("user <guid>", "group <guid>"), or
// content named by its quoted title and GUID (`"Sales" (<guid>)`).
var auditGUID = regexp.MustCompile(`\b(user|group) ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b` +
	`|("(?:[^"\\]|\\.)*") \(([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\)`)

// auditNames turns the GUIDs of users and groups in the descriptions into
// their names and links to their admin page, one API call per distinct
// GUID; a user or group deleted since keeps its GUID, unlinked. Content
// keeps its title, linked to its page (no call), except in the entry of
// its deletion, which keeps the GUID.
func (s *Server) auditNames(r *http.Request, rows []auditRow, descs []string) {
	type named struct{ name, link string }
	seen := map[string]named{}
	lookup := func(kind, guid string) named {
		if n, ok := seen[kind+guid]; ok {
			return n
		}
		var n named
		if kind == "user" {
			var u apiUser
			if s.callAPI(r, http.MethodGet, "/__api__/v1/users/"+url.PathEscape(guid), nil, &u); u.Username != "" {
				n = named{u.Username, "/connect/admin/users?q=" + url.QueryEscape(u.Username)}
			}
		} else {
			var g apiGroup
			if s.callAPI(r, http.MethodGet, "/__api__/v1/groups/"+url.PathEscape(guid), nil, &g); g.Name != "" {
				n = named{g.Name, "/connect/admin/groups?group=" + url.QueryEscape(guid) + "#members"}
			}
		}
		seen[kind+guid] = n
		return n
	}
	for i, desc := range descs {
		last := 0
		for _, m := range auditGUID.FindAllStringSubmatchIndex(desc, -1) {
			if m[6] >= 0 { // content
				if rows[i].Action == "remove_application" {
					continue
				}
				rows[i].Event = append(rows[i].Event, auditPart{Text: desc[last:m[0]]},
					auditPart{Text: desc[m[6]:m[7]], Link: "/connect/apps/" + desc[m[8]:m[9]]})
				last = m[1]
				continue
			}
			kind, guid := desc[m[2]:m[3]], desc[m[4]:m[5]]
			n := lookup(kind, guid)
			if n.name == "" {
				continue
			}
			rows[i].Event = append(rows[i].Event, auditPart{Text: desc[last:m[4]]}, auditPart{Text: n.name, Link: n.link})
			last = m[5]
		}
		rows[i].Event = append(rows[i].Event, auditPart{Text: desc[last:]})
	}
}

type auditData struct {
	adminData
	Entries    []auditRow
	Prev, Next string
}

func (s *Server) handleAdminAudit(w http.ResponseWriter, r *http.Request) {
	ad, ok := s.adminPage(w, r, "audit", "Audit log")
	if !ok {
		return
	}
	d := auditData{adminData: ad}
	q := r.URL.Query()
	v := url.Values{"limit": {strconv.Itoa(adminPageSize)}, "ascOrder": {"false"}}
	for _, k := range []string{"next", "previous"} {
		if c := q.Get(k); c != "" {
			if _, err := strconv.ParseInt(c, 10, 64); err == nil {
				v.Set(k, c)
			}
		}
	}
	var res struct {
		Results []struct {
			Time             string  `json:"time"`
			UserGUID         *string `json:"user_guid"`
			UserDescription  string  `json:"user_description"`
			Action           string  `json:"action"`
			EventDescription string  `json:"event_description"`
		} `json:"results"`
		Paging struct {
			Cursors struct {
				Previous *string `json:"previous"`
				Next     *string `json:"next"`
			} `json:"cursors"`
			Previous *string `json:"previous"`
			Next     *string `json:"next"`
		} `json:"paging"`
	}
	if st, msg := s.callAPI(r, http.MethodGet, "/__api__/v1/audit_logs?"+v.Encode(), nil, &res); st != http.StatusOK {
		d.Error = "Could not read the audit log: " + msg
	}
	var descs []string
	for _, e := range res.Results {
		t := e.Time
		if pt, err := time.Parse(time.RFC3339, e.Time); err == nil {
			t = pt.UTC().Format("2006-01-02 15:04:05 UTC")
		}
		row := auditRow{Time: t, User: e.UserDescription, Action: e.Action}
		if e.UserGUID != nil && e.UserDescription != "" {
			row.UserLink = "/connect/admin/users?q=" + url.QueryEscape(e.UserDescription)
		}
		d.Entries = append(d.Entries, row)
		descs = append(descs, e.EventDescription)
	}
	s.auditNames(r, d.Entries, descs)
	if res.Paging.Previous != nil && res.Paging.Cursors.Previous != nil {
		d.Prev = "/connect/admin/audit?previous=" + url.QueryEscape(*res.Paging.Cursors.Previous)
	}
	if res.Paging.Next != nil && res.Paging.Cursors.Next != nil {
		d.Next = "/connect/admin/audit?next=" + url.QueryEscape(*res.Paging.Cursors.Next)
	}
	s.render(w, s.pages.adminAudit, http.StatusOK, d)
}

// ---- load

type loadRow struct {
	GUID, Name string
	Processes  int
	Kinds      string
	Memory     string
	Nodes      string
}

type loadData struct {
	adminData
	Node                         string
	MemoryTotal, MemoryAvailable string
	ServerMemory, ContentMemory  string
	Rows                         []loadRow
	Processes                    int
}

func (s *Server) handleAdminLoad(w http.ResponseWriter, r *http.Request) {
	ad, ok := s.adminPage(w, r, "load", "Load")
	if !ok {
		return
	}
	d := loadData{adminData: ad}
	var res struct {
		Node                 string `json:"node"`
		MemoryTotalBytes     int64  `json:"memory_total_bytes"`
		MemoryAvailableBytes int64  `json:"memory_available_bytes"`
		ServerMemoryBytes    int64  `json:"server_memory_bytes"`
		Processes            []struct {
			ContentGUID  string `json:"content_guid"`
			ContentName  string `json:"content_name"`
			ContentTitle string `json:"content_title"`
			Tag          string `json:"tag"`
			Hostname     string `json:"hostname"`
			MemoryBytes  *int64 `json:"memory_bytes"`
		} `json:"processes"`
	}
	if st, msg := s.callAPI(r, http.MethodGet, "/__api__/v1/system/load", nil, &res); st != http.StatusOK {
		d.Error = "Could not read the load: " + msg
	}
	d.Node = res.Node
	d.MemoryTotal, d.MemoryAvailable, d.ServerMemory = humanBytes(res.MemoryTotalBytes), humanBytes(res.MemoryAvailableBytes), humanBytes(res.ServerMemoryBytes)
	type acc struct {
		row          loadRow
		mem          int64
		known        bool
		kinds, nodes map[string]int
	}
	var order []string
	by := map[string]*acc{}
	var all int64
	for _, p := range res.Processes {
		a := by[p.ContentGUID]
		if a == nil {
			name := p.ContentTitle
			if name == "" {
				name = p.ContentName
			}
			a = &acc{row: loadRow{GUID: p.ContentGUID, Name: name}, kinds: map[string]int{}, nodes: map[string]int{}}
			by[p.ContentGUID] = a
			order = append(order, p.ContentGUID)
		}
		a.row.Processes++
		a.kinds[p.Tag]++
		a.nodes[p.Hostname]++
		if p.MemoryBytes != nil {
			a.mem += *p.MemoryBytes
			a.known = true
			all += *p.MemoryBytes
		}
	}
	join := func(m map[string]int) string {
		var parts []string
		for k, n := range m {
			parts = append(parts, fmt.Sprintf("%s ×%d", k, n))
		}
		return strings.Join(parts, ", ")
	}
	for _, g := range order {
		a := by[g]
		a.row.Kinds, a.row.Nodes = join(a.kinds), join(a.nodes)
		a.row.Memory = "on another node"
		if a.known {
			a.row.Memory = humanBytes(a.mem)
		}
		d.Rows = append(d.Rows, a.row)
		d.Processes += a.row.Processes
	}
	d.ContentMemory = humanBytes(all)
	s.render(w, s.pages.adminLoad, http.StatusOK, d)
}
