package web

import (
	"bytes"
	"embed"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/dais-dev/dais/server/authz"
	"github.com/dais-dev/dais/server/store"
)

//go:embed templates
var templateFS embed.FS

// dashboardLimit bounds the content listed on the dashboard.
const dashboardLimit = 200

type pages struct {
	welcome, login, dashboard, token, tokens *template.Template
	css                                      []byte
}

func newPages() (*pages, error) {
	parse := func(name string) (*template.Template, error) {
		t, err := template.ParseFS(templateFS, "templates/layout.html", "templates/"+name)
		if err != nil {
			return nil, err
		}
		return t.Lookup(name), nil
	}
	var p pages
	var err error
	if p.welcome, err = parse("welcome.html"); err != nil {
		return nil, err
	}
	if p.login, err = parse("login.html"); err != nil {
		return nil, err
	}
	if p.dashboard, err = parse("dashboard.html"); err != nil {
		return nil, err
	}
	if p.token, err = parse("token.html"); err != nil {
		return nil, err
	}
	if p.tokens, err = parse("tokens.html"); err != nil {
		return nil, err
	}
	if p.css, err = templateFS.ReadFile("templates/dais.css"); err != nil {
		return nil, err
	}
	return &p, nil
}

// pageData is what every page's layout reads.
type pageData struct {
	Title         string
	Version       string
	User          *store.User
	PublicWarning template.HTML // the admin's HTML, shown as is
}

func (s *Server) pageData(r *http.Request, title string) pageData {
	u, _ := UserFrom(r.Context())
	return pageData{
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
	pageData
	Error    string
	Next     string
	Username string
}

func (s *Server) handleLoginForm(w http.ResponseWriter, r *http.Request) {
	s.render(w, s.pages.login, http.StatusOK, loginData{
		pageData: s.pageData(r, "Log in"),
		Next:     safeNext(r.URL.Query().Get("next")),
	})
}

// safeNext keeps a post-login redirect on this server.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/connect/"
	}
	return next
}

func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
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
			pageData: s.pageData(r, "Log in"), Error: msg, Next: next, Username: username,
		})
	}
	if s.store == nil {
		fail(http.StatusServiceUnavailable, "accounts are not available")
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
	if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" && s.store != nil {
		if err := s.store.DeleteSession(r.Context(), HashToken(c.Value)); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("logout: delete session", logKeyErr, err)
		}
		if u, ok := UserFrom(r.Context()); ok {
			RecordAudit(r.Context(), s.store, s.log, u, AuditLogout, "Logged out")
		}
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: isHTTPS(r)})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

type dashboardItem struct {
	GUID, Name, Title, AppMode, AccessType, Owner, Updated string
}

type dashboardData struct {
	pageData
	LoggedInWarning template.HTML
	GateReason      string
	Content         []dashboardItem
	Total           int
	More            bool
}

func (s *Server) handleDashboard(w http.ResponseWriter, r *http.Request) {
	u, ok := UserFrom(r.Context())
	if !ok {
		http.Redirect(w, r, "/__login__?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
		return
	}
	d := dashboardData{
		pageData:        s.pageData(r, "Content"),
		LoggedInWarning: template.HTML(s.Config().Server.LoggedInWarning),
	}
	if ok, reason := s.Licensed(); !ok {
		d.GateReason = reason
	}
	items, total, err := s.visibleContent(r, u)
	if err != nil {
		s.log.Error("dashboard: list content", logKeyUser, u.Username, logKeyErr, err)
		http.Error(w, "cannot list content now; try again", http.StatusServiceUnavailable)
		return
	}
	d.Content, d.Total, d.More = items, total, total > len(items)
	s.render(w, s.pages.dashboard, http.StatusOK, d)
}

// visibleContent lists what u may see, by the API's rule (server/authz).
func (s *Server) visibleContent(r *http.Request, u *store.User) ([]dashboardItem, int, error) {
	ctx := r.Context()
	all, total, err := s.store.ListContent(ctx, store.ContentFilter{Count: dashboardLimit})
	if err != nil {
		return nil, 0, err
	}
	owners := map[int64]string{u.ID: u.Username}
	var items []dashboardItem
	for _, c := range all {
		a, err := authz.Content(ctx, s.store, u, &c)
		if err != nil {
			return nil, 0, err
		}
		if a == authz.None {
			total--
			continue
		}
		owner, ok := owners[c.OwnerID]
		if !ok {
			if o, err := s.store.User(ctx, c.OwnerID); err == nil {
				owner = o.Username
			}
			owners[c.OwnerID] = owner
		}
		items = append(items, dashboardItem{
			GUID: c.GUID, Name: c.Name, Title: c.Title, AppMode: c.AppMode, AccessType: c.AccessType,
			Owner: owner, Updated: c.UpdatedAt.UTC().Format("2006-01-02 15:04 UTC"),
		})
	}
	return items, total, nil
}
