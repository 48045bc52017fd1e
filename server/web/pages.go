package web

import (
	"bytes"
	"embed"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dais-dev/dais/server/authz"
	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/store"
)

//go:embed templates
var templateFS embed.FS

// dashboardLimit is the content list's page size.
const dashboardLimit = 50

type pages struct {
	welcome, login, dashboard, token, tokens, app, logs, keys *template.Template
	forbidden, profile, signin                                *template.Template
	adminUsers, adminGroups, adminServer, adminAudit          *template.Template
	adminLoad, groups                                         *template.Template
	css                                                       []byte
}

func newPages() (*pages, error) {
	var p pages
	for name, t := range map[string]**template.Template{
		"welcome.html": &p.welcome, "login.html": &p.login, "dashboard.html": &p.dashboard, "token.html": &p.token,
		"tokens.html": &p.tokens, "app.html": &p.app, "logs.html": &p.logs, "keys.html": &p.keys,
		"forbidden.html": &p.forbidden, "profile.html": &p.profile, "signin.html": &p.signin,
		"admin_users.html": &p.adminUsers, "admin_groups.html": &p.adminGroups, "admin_server.html": &p.adminServer,
		"admin_audit.html": &p.adminAudit, "admin_load.html": &p.adminLoad, "groups.html": &p.groups,
	} {
		parsed, err := template.ParseFS(templateFS, "templates/layout.html", "templates/groups_body.html", "templates/"+name)
		if err != nil {
			return nil, err
		}
		*t = parsed.Lookup(name)
	}
	var err error
	if p.css, err = templateFS.ReadFile("templates/dais.css"); err != nil {
		return nil, err
	}
	return &p, nil
}

// PageData is what every page's layout reads.
type PageData struct {
	Title         string
	Version       string
	User          *store.User
	PublicWarning template.HTML // the admin's HTML, shown as is
}

func (s *Server) pageData(r *http.Request, title string) PageData {
	u, _ := UserFrom(r.Context())
	return PageData{
		Title:         title,
		Version:       s.version,
		User:          u,
		PublicWarning: template.HTML(s.Config().Server.PublicWarning),
	}
}

// render executes a page into a buffer first, so a template error is a
// clean 500 rather than half a page.
func (s *Server) render(w http.ResponseWriter, t *template.Template, status int, data any) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		s.log.Error("render page", "template", t.Name(), logKeyErr, err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) handleCSS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(s.pages.css)
}

func (s *Server) handleWelcome(w http.ResponseWriter, r *http.Request) {
	s.render(w, s.pages.welcome, http.StatusOK, s.pageData(r, "Welcome"))
}

type loginData struct {
	PageData
	Error    string
	Next     string
	Username string
	// Hint says which account to use, for providers other than password.
	Hint string
}

// loginHint is the login form's line on which account to use.
func loginHint(cfg *config.Config) string {
	if cfg.Authentication.Provider == ProviderLDAP {
		return "Use your organisation's directory account (LDAP)."
	}
	return ""
}

func (s *Server) handleLoginForm(w http.ResponseWriter, r *http.Request) {
	if cfg := s.Config(); cfg.Authentication.Provider == ProviderOAuth2 {
		s.handleOIDCLogin(w, r, cfg)
		return
	}
	if cfg := s.Config(); cfg.Authentication.Provider == ProviderProxy {
		if _, ok := UserFrom(r.Context()); ok {
			http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusFound)
			return
		}
		if cfg.ProxyAuth.LoginURL != "" {
			http.Redirect(w, r, cfg.ProxyAuth.LoginURL, http.StatusFound)
			return
		}
		s.signinPage(w, r, http.StatusUnauthorized, "Log in", "Sign in through your organisation's single sign-on: this server takes the user from the proxy in front of it (Authentication.Provider = proxy), and this request came without one.", false, "", "")
		return
	}
	s.render(w, s.pages.login, http.StatusOK, loginData{
		PageData: s.pageData(r, "Log in"),
		Next:     safeNext(r.URL.Query().Get("next")),
		Hint:     loginHint(s.Config()),
	})
}

// signinData is a sign-in step's message page: a failed sign-in, or what
// to do under single sign-on.
type signinData struct {
	PageData
	Heading, Message string
	Failed           bool
	Link, LinkText   string
}

// signinPage answers with a sign-in message in the dashboard's layout.
func (s *Server) signinPage(w http.ResponseWriter, r *http.Request, status int, heading, msg string, failed bool, link, linkText string) {
	s.render(w, s.pages.signin, status, signinData{PageData: s.pageData(r, heading), Heading: heading, Message: msg,
		Failed: failed, Link: link, LinkText: linkText})
}

// safeNext keeps a post-login redirect on this server.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/connect/"
	}
	return next
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	cfg := s.Config()
	if p := cfg.Authentication.Provider; p != store.ProviderPassword && p != ProviderLDAP {
		closeUnread(w, r)
		http.Error(w, "password login is off on this server (Authentication.Provider = "+p+"): sign in through your organisation's single sign-on", http.StatusForbidden)
		return
	}
	if err := r.ParseForm(); err != nil {
		if status, msg, ok := BodyError(err); ok {
			http.Error(w, msg, status)
			return
		}
		http.Error(w, "malformed form", http.StatusBadRequest)
		return
	}
	username := strings.TrimSpace(r.PostForm.Get("username"))
	password := r.PostForm.Get("password")
	next := safeNext(r.PostForm.Get("next"))
	fail := func(status int, msg string) {
		s.render(w, s.pages.login, status, loginData{
			PageData: s.pageData(r, "Log in"), Error: msg, Next: next, Username: username, Hint: loginHint(cfg),
		})
	}
	if s.store == nil {
		fail(http.StatusServiceUnavailable, "accounts are not available")
		return
	}
	if cfg.Authentication.Provider == ProviderLDAP {
		u, status, msg := s.ldapLogin(r.Context(), cfg, username, password)
		if u == nil {
			fail(status, msg)
			return
		}
		s.startSession(w, r, u, next, "")
		return
	}
	u, err := s.store.UserByUsername(r.Context(), username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Error("login: look up user", logKeyUser, username, logKeyErr, err)
		fail(http.StatusServiceUnavailable, "cannot check credentials now; try again")
		return
	}
	if u == nil {
		_ = CheckPassword(dummyHash(), password)
		fail(http.StatusUnauthorized, "Wrong username or password.")
		return
	}
	if !CheckPassword(u.PasswordHash, password) {
		fail(http.StatusUnauthorized, "Wrong username or password.")
		return
	}
	if u.Locked {
		fail(http.StatusForbidden, "This account is locked; ask an administrator.")
		return
	}
	token, err := newSessionToken()
	if err != nil {
		fail(http.StatusInternalServerError, "cannot start a session; try again")
		return
	}
	now := time.Now()
	sess := &store.Session{TokenHash: HashToken(token), UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(SessionLifetime)}
	if err := s.store.CreateSession(r.Context(), sess); err != nil {
		if fe := s.disk.Failed(err); fe != nil {
			fail(fe.Status(), "cannot start a session: "+fe.Error())
			return
		}
		s.log.Error("login: create session", logKeyUser, username, logKeyErr, err)
		fail(http.StatusServiceUnavailable, "cannot start a session; try again")
		return
	}
	u.LastLoginAt = now
	if err := s.store.UpdateUser(r.Context(), u); err != nil {
		s.log.Warn("login: record last login", logKeyUser, username, logKeyErr, err)
	}
	s.log.Info("login", logKeyUser, username)
	RecordAudit(r.Context(), s.store, s.log, u, AuditLogin, "Logged in")
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: token, Path: "/",
		Expires: sess.ExpiresAt, HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: isHTTPS(r),
	})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// isHTTPS tells whether the client reached us over TLS, directly or
// through a proxy that says so.
func isHTTPS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	var idToken string
	if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" && s.store != nil {
		if sess, err := s.store.Session(r.Context(), HashToken(c.Value), time.Now()); err == nil {
			idToken = sess.IDToken
		}
		if err := s.store.DeleteSession(r.Context(), HashToken(c.Value)); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("logout: delete session", logKeyErr, err)
		}
		if u, ok := UserFrom(r.Context()); ok {
			RecordAudit(r.Context(), s.store, s.log, u, AuditLogout, "Logged out")
		}
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: isHTTPS(r)})
	if cfg := s.Config(); cfg.Authentication.Provider == ProviderProxy {
		if cfg.ProxyAuth.LogoutURL != "" {
			http.Redirect(w, r, cfg.ProxyAuth.LogoutURL, http.StatusSeeOther)
			return
		}
		s.signinPage(w, r, http.StatusOK, "Log out at your single sign-on", "You are signed in through your organisation's single sign-on: log out there, or close the browser.", false, "/", "Back to dais")
		return
	}
	if to := s.providerLogoutURL(r.Context(), s.Config(), idToken); to != "" {
		http.Redirect(w, r, to, http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

type dashboardItem struct {
	GUID, Name, Title, AppMode, AccessType, Owner, Updated string
	Processes                                              int    // running now, on any node
	LastRender                                             string // a document's newest render: succeeded, failed, running...
	CanRender                                              bool   // a document the user may render (an editor of it)
}

// dashboardQuery is the content list's search, from the URL (GET, so a
// page of results can be bookmarked and works without JavaScript).
type dashboardQuery struct {
	Q, Type, Owner, Tag, Sort string // Tag: a tag's id
	Page                      int    // from 1
}

// dashboardSort is one of the content list's orders: Value in the URL,
// Order the store's (store.ContentFilter.Sort).
type dashboardSort struct{ Value, Label, Order string }

// dashboardSorts are the content list's orders, the default first: the
// most recently changed or deployed, as Posit Connect's content list.
var dashboardSorts = []dashboardSort{
	{"updated", "last changed or deployed", "updated"}, {"created", "newest first", "created"},
	{"oldest", "oldest first", "id"}, {"name", "name", "name"}, {"title", "title", "title"},
}

// tagOption is a tag in the filter: its id and its path in the tree.
type tagOption struct{ ID, Path string }

type dashboardData struct {
	PageData
	LoggedInWarning template.HTML
	GateReason      string
	Message         string // from an action that came back here (a content deleted)
	Query           dashboardQuery
	Types           []string
	Tags            []tagOption
	Sorts           []dashboardSort
	Content         []dashboardItem
	Total           int
	From, To        int    // 1-based positions of this page's first and last item
	Prev, Next      string // links to the neighbouring pages, "" when none
}

// dashboardTypes are the app modes the type filter offers.
var dashboardTypes = []string{"shiny", "python-shiny", "rmd-static", "rmd-shiny", "quarto-static", "quarto-shiny",
	"jupyter-static", "python-dash", "python-streamlit", "python-bokeh", "python-fastapi", "python-api", "api", "static"}

func (s *Server) handleDashboard(w http.ResponseWriter, r *http.Request) {
	u, ok := UserFrom(r.Context())
	if !ok {
		http.Redirect(w, r, "/__login__?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
		return
	}
	qv := r.URL.Query()
	q := dashboardQuery{Q: strings.TrimSpace(qv.Get("q")), Type: qv.Get("type"), Owner: strings.TrimSpace(qv.Get("owner")),
		Tag: qv.Get("tag"), Sort: qv.Get("sort"), Page: 1}
	if _, err := strconv.ParseInt(q.Tag, 10, 64); err != nil {
		q.Tag = ""
	}
	if !slices.ContainsFunc(dashboardSorts, func(o dashboardSort) bool { return o.Value == q.Sort }) {
		q.Sort = dashboardSorts[0].Value
	}
	if n, err := strconv.Atoi(qv.Get("page")); err == nil && n > 1 && n <= 1_000_000 {
		q.Page = n
	}
	d := dashboardData{
		PageData:        s.pageData(r, "Content"),
		LoggedInWarning: template.HTML(s.Config().Server.LoggedInWarning),
		Query:           q,
		Types:           dashboardTypes,
		Sorts:           dashboardSorts,
		Message:         flashed(r, "msg"),
	}
	tags, err := s.tagOptions(r)
	if err != nil {
		s.log.Error("dashboard: list tags", logKeyErr, err)
	}
	d.Tags = tags
	if ok, reason := s.Licensed(); !ok {
		d.GateReason = reason
	}
	items, total, err := s.visibleContent(r, u, q)
	if err != nil {
		s.log.Error("dashboard: list content", logKeyUser, u.Username, logKeyErr, err)
		http.Error(w, "cannot list content now; try again", http.StatusServiceUnavailable)
		return
	}
	d.Content, d.Total = items, total
	if len(items) > 0 {
		d.From = (q.Page-1)*dashboardLimit + 1
		d.To = d.From + len(items) - 1
	}
	page := func(n int) string {
		v := url.Values{}
		for k, x := range map[string]string{"q": q.Q, "type": q.Type, "owner": q.Owner, "tag": q.Tag, "sort": q.Sort} {
			if x != "" && !(k == "sort" && x == dashboardSorts[0].Value) {
				v.Set(k, x)
			}
		}
		if n > 1 {
			v.Set("page", strconv.Itoa(n))
		}
		if len(v) == 0 {
			return "/connect/"
		}
		return "/connect/?" + v.Encode()
	}
	if q.Page > 1 {
		d.Prev = page(q.Page - 1)
	}
	if d.To < total && len(items) > 0 {
		d.Next = page(q.Page + 1)
	}
	s.render(w, s.pages.dashboard, http.StatusOK, d)
}

// visibleContent lists one page of what u may see matching q. The access
// rule is in SQL (store.ContentFilter.VisibleTo, the same answer as
// server/authz's Content for a user who is not an administrator, and what
// the API's content list uses), so a page reads only its own rows.
func (s *Server) visibleContent(r *http.Request, u *store.User, q dashboardQuery) ([]dashboardItem, int, error) {
	ctx := r.Context()
	f := store.ContentFilter{Words: strings.Fields(strings.ToLower(q.Q)), AppMode: q.Type,
		Start: (q.Page - 1) * dashboardLimit, Count: dashboardLimit}
	for _, o := range dashboardSorts {
		if o.Value == q.Sort {
			f.Sort = o.Order
		}
	}
	f.TagID, _ = strconv.ParseInt(q.Tag, 10, 64)
	if len(f.Words) > 8 {
		f.Words = f.Words[:8]
	}
	if u.Role != store.RoleAdministrator {
		f.VisibleTo = u.ID
	}
	if q.Owner != "" {
		o, err := s.store.UserByUsername(ctx, q.Owner)
		if errors.Is(err, store.ErrNotFound) {
			return nil, 0, nil
		}
		if err != nil {
			return nil, 0, err
		}
		f.OwnerID = o.ID
	}
	all, total, err := s.store.ListContent(ctx, f)
	if err != nil {
		return nil, 0, err
	}
	owners := map[int64]string{u.ID: u.Username}
	items := make([]dashboardItem, 0, len(all))
	// State: the running processes of the page's content (one query for
	// all; few run at once), a document's newest render (one query each).
	running := map[int64]int{}
	if len(all) > 0 {
		jobs, err := s.store.RunningJobs(ctx)
		if err != nil {
			return nil, 0, err
		}
		for _, j := range jobs {
			running[j.ContentID]++
		}
	}
	for _, c := range all {
		owner, ok := owners[c.OwnerID]
		if !ok {
			if o, err := s.store.User(ctx, c.OwnerID); err == nil {
				owner = o.Username
			}
			owners[c.OwnerID] = owner
		}
		item := dashboardItem{
			GUID: c.GUID, Name: c.Name, Title: c.Title, AppMode: c.AppMode, AccessType: c.AccessType,
			Owner: owner, Updated: c.UpdatedAt.UTC().Format("2006-01-02 15:04 UTC"), Processes: running[c.ID],
		}
		if documentModes[c.AppMode] {
			if rs, err := s.store.ListRenders(ctx, c.ID, 1); err == nil && len(rs) > 0 {
				item.LastRender = rs[0].Status
			}
			// Render now only for who may: the API's rule.
			if a, err := authz.Content(ctx, s.store, u, &c); err == nil && a >= authz.Editor {
				item.CanRender = true
			}
		}
		items = append(items, item)
	}
	return items, total, nil
}

// tagOptions are every tag, as "parent / child" paths, in path order.
func (s *Server) tagOptions(r *http.Request) ([]tagOption, error) {
	tags, err := s.store.ListTags(r.Context(), store.TagFilter{})
	if err != nil {
		return nil, err
	}
	byID := map[int64]store.Tag{}
	for _, t := range tags {
		byID[t.ID] = t
	}
	out := make([]tagOption, 0, len(tags))
	for _, t := range tags {
		path := t.Name
		for p, depth := t.ParentID, 0; p != 0 && depth < 20; depth++ {
			parent, ok := byID[p]
			if !ok {
				break
			}
			path = parent.Name + " / " + path
			p = parent.ParentID
		}
		out = append(out, tagOption{ID: strconv.FormatInt(t.ID, 10), Path: path})
	}
	slices.SortFunc(out, func(a, b tagOption) int { return strings.Compare(strings.ToLower(a.Path), strings.ToLower(b.Path)) })
	return out, nil
}
