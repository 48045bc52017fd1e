// Package web is dais's HTTP side: the server with its middleware (metrics,
// access log, authentication, the JSON-only rule of /__api__, the licensing
// gate), the pages (welcome, login, dashboard) and the JSON 404 of
// /__api__. The API's routes (server/api) go on with Server.Handle.
package web

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/diskspace"
	"github.com/dais-dev/dais/server/store"
	"github.com/prometheus/client_golang/prometheus"
)

// Log attribute keys.
const (
	logKeyErr    = "err"
	logKeyMethod = "method"
	logKeyPath   = "path"
	logKeyUser   = "user"
)

// Options configure a Server.
type Options struct {
	// Config is the running configuration; SetConfig replaces it on reload.
	Config *config.Config
	Store  store.Store
	Logger *slog.Logger
	// AccessLog receives one Combined Log Format line per request when
	// Config.Logging.AccessLog is on; nil turns it off.
	AccessLog io.Writer
	// Version is shown in the dashboard and /__api__/server_settings.
	Version string
	// Registry collects the HTTP metrics and is served on /metrics; nil
	// makes a new one with the Go and process collectors.
	Registry *prometheus.Registry
	// TestEndpoints adds /__test__/ routes used by the black-box tests
	// (dais serve turns them on with DAIS_TEST_ENDPOINTS=1).
	TestEndpoints bool
}

// Gate says whether the server may serve content (licensing); reason is
// shown to users when it may not.
type Gate func() (ok bool, reason string)

// Server is dais's HTTP handler. It is safe for concurrent use; SetConfig
// and SetGate may be called while it serves.
type Server struct {
	mux     *http.ServeMux
	handler http.Handler
	cfg     atomic.Pointer[config.Config]
	gate    atomic.Pointer[Gate]
	// unavailable is why /__ping__ and /__ready__ answer 503 (SetUnavailable).
	unavailable atomic.Pointer[string]
	store       store.Store
	log         *slog.Logger
	access      io.Writer
	version     string
	registry    *prometheus.Registry
	metrics     *httpMetrics
	pages       *pages
	disk        *diskspace.Monitor
	// proxy remembers recent logins of Authentication.Provider = proxy.
	proxy proxyLogins
	// oidc is the OpenID Connect provider of Provider = oauth2.
	oidc oidcState
}

// New builds the server with its own routes: pages, /__ping__, /metrics and
// the JSON 404 of /__api__.
func New(o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registry == nil {
		o.Registry = NewRegistry()
	}
	s := &Server{
		mux:      http.NewServeMux(),
		store:    o.Store,
		log:      o.Logger,
		access:   o.AccessLog,
		version:  o.Version,
		registry: o.Registry,
	}
	s.cfg.Store(o.Config)
	s.disk = diskspace.New(o.Config.Server.DataDir, func() int64 { return s.Config().Server.DataDirReserve }, o.Logger)
	m, err := newHTTPMetrics(o.Registry)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	p, err := newPages()
	if err != nil {
		return nil, err
	}
	s.pages = p
	s.routes()
	if o.TestEndpoints {
		s.testRoutes()
	}
	s.handler = s.observe(s.recoverPanic(s.limitBody(s.authenticate(s.apiRules(recordRoute(s.mux))))))
	return s, nil
}

// Handle registers h for a Go 1.22 ServeMux pattern, such as
// "POST /__api__/v1/content" or "/content/{guid}/". Every route gets the
// server's middleware: metrics, access log, authentication (UserFrom), and
// under /__api__ the JSON-only rule and the refusal of anonymous writes.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// HandleFunc is Handle for a function.
func (s *Server) HandleFunc(pattern string, f func(http.ResponseWriter, *http.Request)) {
	s.mux.HandleFunc(pattern, f)
}

// ServeHTTP runs a request through the middleware and the routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Config is the running configuration.
func (s *Server) Config() *config.Config { return s.cfg.Load() }

// SetConfig replaces the running configuration (on HUP). The caller has
// already kept the old values of keys that need a restart.
func (s *Server) SetConfig(c *config.Config) { s.cfg.Store(c) }

// SetGate installs the licensing gate: while it says no, /__ping__ answers
// 402 with the reason, /content/ answers 402, and the dashboard shows the
// reason. nil removes it.
func (s *Server) SetGate(g func() (ok bool, reason string)) {
	if g == nil {
		s.gate.Store(nil)
		return
	}
	gg := Gate(g)
	s.gate.Store(&gg)
}

// SetUnavailable makes /__ping__ and /__ready__ answer 503 with reason
// (a node draining before it stops, or one that lost its database), so
// that load balancers send it nothing new; "" lets them answer as usual.
func (s *Server) SetUnavailable(reason string) {
	if reason == "" {
		s.unavailable.Store(nil)
		return
	}
	s.unavailable.Store(&reason)
}

// Unavailable is the reason SetUnavailable gave, or "".
func (s *Server) Unavailable() string {
	if r := s.unavailable.Load(); r != nil {
		return *r
	}
	return ""
}

// Licensed asks the licensing gate, if any: whether content may be
// served, and why not.
func (s *Server) Licensed() (bool, string) {
	g := s.gate.Load()
	if g == nil {
		return true, ""
	}
	return (*g)()
}

// Registry is where the HTTP metrics live; other packages may register theirs.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// Logger is the server's logger.
func (s *Server) Logger() *slog.Logger { return s.log }

// Disk watches the data volume's free space (Server.DataDir and
// Server.DataDirReserve): the readiness endpoint reports it, and whoever
// writes to the volume asks it first (Check) and tells it of failed
// writes (Failed).
func (s *Server) Disk() *diskspace.Monitor { return s.disk }

// Version is the dais version the server shows.
func (s *Server) Version() string { return s.version }

func (s *Server) routes() {
	s.mux.HandleFunc("GET /__ping__", s.handlePing)
	s.mux.HandleFunc("GET /__ready__", s.handleReady)
	s.mux.Handle("GET /metrics", s.metricsHandler())

	// Pages.
	s.mux.HandleFunc("GET /{$}", s.handleWelcome)
	s.mux.HandleFunc("GET /__login__", s.handleLoginForm)
	login := smallBody(MaxLoginBody, "login form", http.HandlerFunc(s.handleLogin))
	s.mux.Handle("POST /__login__", login)
	s.mux.HandleFunc("GET "+OIDCCallbackPath, s.handleOIDCCallback)
	s.mux.HandleFunc("GET /connect/login", s.handleLoginForm)
	s.mux.Handle("POST /connect/login", login)
	logout := smallBody(MaxLoginBody, "logout form", http.HandlerFunc(s.handleLogout))
	s.mux.Handle("POST /__logout__", logout)
	s.mux.Handle("POST /connect/logout", logout)
	s.mux.HandleFunc("GET /connect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/connect/", http.StatusFound)
	})
	s.mux.HandleFunc("GET /connect/{$}", s.handleDashboard)
	s.mux.HandleFunc("GET /connect/tokens", s.handleTokenList)         // tokens.go: the user's connected clients
	s.mux.HandleFunc("GET /connect/tokens/{token}", s.handleTokenForm) // tokens.go: the claim page of token authentication
	s.mux.Handle("POST /connect/tokens/{token}", smallBody(MaxLoginBody, "token claim form", http.HandlerFunc(s.handleTokenClaim)))
	s.mux.HandleFunc("GET /connect/apps/{guid}", s.handleAppPage) // apppage.go: one content
	s.mux.HandleFunc("GET /connect/apps/{guid}/logs", s.handleAppLogs)
	s.mux.HandleFunc("GET /connect/keys", s.handleKeys) // keys.go: the user's API keys
	s.mux.Handle("POST /connect/keys/{action}", smallBody(MaxLoginBody, "key form", http.HandlerFunc(s.handleKeyAction)))
	s.mux.Handle("POST /connect/apps/{guid}/{action}", smallBody(MaxLoginBody, "content form", http.HandlerFunc(s.handleAppAction)))
	s.mux.HandleFunc("GET /connect/profile", s.handleProfile) // profile.go
	s.mux.Handle("POST /connect/profile", smallBody(MaxLoginBody, "profile form", http.HandlerFunc(s.handleProfileSave)))
	s.mux.HandleFunc("GET /connect/admin/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/connect/admin/users", http.StatusFound)
	})
	s.mux.HandleFunc("GET /connect/admin/users", s.handleAdminUsers) // admin.go: administrators' pages
	s.mux.HandleFunc("GET /connect/admin/groups", s.handleAdminGroups)
	s.mux.HandleFunc("GET /connect/admin/server", s.handleAdminServer)
	s.mux.HandleFunc("GET /connect/admin/audit", s.handleAdminAudit)
	s.mux.HandleFunc("GET /connect/admin/load", s.handleAdminLoad)
	s.mux.Handle("POST /connect/admin/{section}/{action}", smallBody(MaxLoginBody, "admin form", http.HandlerFunc(s.handleAdminAction)))
	s.mux.HandleFunc("GET /connect/groups", s.handleGroups) // admin.go: a publisher's own groups
	s.mux.Handle("POST /connect/groups/{action}", smallBody(MaxLoginBody, "groups form", http.HandlerFunc(s.handleGroupsAction)))
	s.mux.HandleFunc("GET /__static__/dais.css", s.handleCSS)
	s.mux.HandleFunc("/content/", s.handleContentGate)

	// API: the routes come from server/api; everything else under
	// /__api__ is a JSON 404.
	s.mux.HandleFunc("/__api__/", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, http.StatusNotFound, "no API endpoint "+r.Method+" "+r.URL.Path)
	})
	s.mux.HandleFunc("/__api__", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, http.StatusNotFound, "no API endpoint "+r.Method+" "+r.URL.Path)
	})
}

// handleReady is the readiness check (dais health, the image's
// HEALTHCHECK, a load balancer's or Kubernetes' readiness probe): 200
// {"status":"ok"} when dais can do its work; 503 with the status
// "degraded: data volume full" and the reason when the data volume is
// below its reserve or a write failed for lack of space in the last
// minute, or 503 with the licensing gate's reason; 503 "unavailable" while
// the node drains or has lost its database (SetUnavailable), as /__ping__
// does. Otherwise /__ping__ stays a liveness check: it answers 200 as long
// as the server serves.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	body := map[string]any{"status": "ok"}
	status := http.StatusOK
	if u, ok := s.disk.Usage(); ok {
		body["data_volume"] = u
	}
	if why := s.Unavailable(); why != "" {
		status, body["status"], body["error"] = http.StatusServiceUnavailable, "unavailable", why
	} else if full, why := s.disk.Degraded(); full {
		status, body["status"], body["error"] = http.StatusServiceUnavailable, diskspace.Degraded, why
	} else if ok, reason := s.Licensed(); !ok {
		status, body["status"], body["error"] = http.StatusServiceUnavailable, "degraded: no license", reason
	}
	WriteJSON(w, status, body)
}

func (s *Server) handlePing(w http.ResponseWriter, r *http.Request) {
	if why := s.Unavailable(); why != "" {
		WriteError(w, http.StatusServiceUnavailable, why)
		return
	}
	if ok, reason := s.Licensed(); !ok {
		WriteError(w, http.StatusPaymentRequired, reason)
		return
	}
	WriteJSON(w, http.StatusOK, struct{}{})
}

// handleContentGate answers /content/ when no package registered a more
// specific route: 402 while the gate is closed; /content/<guid> gets its
// trailing slash (relative links in apps need it); else 404.
func (s *Server) handleContentGate(w http.ResponseWriter, r *http.Request) {
	if ok, reason := s.Licensed(); !ok {
		http.Error(w, "dais cannot serve content: "+reason, http.StatusPaymentRequired)
		return
	}
	if rest := strings.TrimPrefix(r.URL.Path, "/content/"); rest != "" && !strings.Contains(rest, "/") {
		u := *r.URL
		u.Path += "/"
		u.RawPath = ""
		http.Redirect(w, r, u.RequestURI(), http.StatusMovedPermanently)
		return
	}
	http.NotFound(w, r)
}

// isAPI tells whether a path is under /__api__.
func isAPI(path string) bool {
	return path == "/__api__" || strings.HasPrefix(path, "/__api__/")
}

// contextKey keys values dais puts in a request context.
type contextKey int

const userKey contextKey = 0

// UserFrom returns the authenticated user of a request context.
func UserFrom(ctx context.Context) (*store.User, bool) {
	u, ok := ctx.Value(userKey).(*store.User)
	return u, ok && u != nil
}

// WithUser returns ctx carrying u; for tests and internal calls.
func WithUser(ctx context.Context, u *store.User) context.Context {
	return context.WithValue(ctx, userKey, u)
}
