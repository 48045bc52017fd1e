package deploy

import (
	"errors"
	"net/http"
	"net/url"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/dais-dev/dais/server/authz"
	"github.com/dais-dev/dais/server/content/manifest"
	"github.com/dais-dev/dais/server/process"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

// ServeContent is /content/{guid}/...: the access check, then the files
// or the app's processes.
func (s *Service) ServeContent(w http.ResponseWriter, r *http.Request) {
	guid := r.PathValue("guid")
	c, err := s.st.ContentByGUID(r.Context(), guid)
	if errors.Is(err, store.ErrNotFound) {
		http.Error(w, "no content at /content/"+guid+"/", http.StatusNotFound)
		return
	}
	if err != nil {
		s.log.Error("look up content", logKeyContent, guid, logKeyErr, err)
		http.Error(w, "cannot look up the content now", http.StatusServiceUnavailable)
		return
	}
	s.Serve(w, r, c, "/content/"+guid)
}

// Serve answers a request for content c whose path starts with prefix
// (no trailing slash): /content/<guid>, or the content's vanity path. The
// content sees the same request at either: its path below prefix, and
// prefix in its base URL (RStudio-Connect-App-Base-URL).
func (s *Service) Serve(w http.ResponseWriter, r *http.Request, c *store.Content, prefix string) {
	guid := c.GUID
	ctx := r.Context()
	u, _ := web.UserFrom(ctx)
	a, err := authz.Content(ctx, s.st, u, c)
	if err != nil {
		s.log.Error("check content access", logKeyContent, guid, logKeyErr, err)
		http.Error(w, "cannot check access now", http.StatusServiceUnavailable)
		return
	}
	if a == authz.None {
		if u == nil {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, "/__login__?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
				return
			}
			http.Error(w, "log in, or send an API key as 'Authorization: Key <key>'", http.StatusUnauthorized)
			return
		}
		http.Error(w, "user "+u.Username+" may not view this content; ask its owner for access", http.StatusForbidden)
		return
	}
	if c.Locked {
		msg := "This content is locked."
		if c.LockedMessage != "" {
			msg += "\n\n" + c.LockedMessage
		}
		http.Error(w, msg, http.StatusForbidden)
		return
	}
	if c.BundleID == nil {
		http.Error(w, "this content has not been deployed yet", http.StatusNotFound)
		return
	}
	if s.serveRevision(w, r, c, strings.TrimPrefix(r.URL.Path, prefix)) {
		return
	}
	if s.stale(ctx, c) {
		// served.go: deployed or rendered on another node, or not
		// activated here yet (its activation at start failed).
		if wait := s.refresh(ctx, c); wait != nil && !s.servesAny(guid) {
			awaitRefresh(ctx, wait)
		}
	}
	s.mu.Lock()
	f := s.files[guid]
	s.mu.Unlock()
	if f != nil {
		rest := strings.TrimPrefix(r.URL.Path, prefix)
		if r.Method == http.MethodGet && isPage(rest) {
			s.o.Usage.Visit(store.Visit{ContentID: c.ID, ContentGUID: guid, UserGUID: userGUID(u), BundleID: *c.BundleID, Path: rest})
		}
		f.serve(w, r, rest)
		return
	}
	if s.proxy.Pool(guid) != nil {
		if s.forwardSession(w, r, c, prefix) {
			return
		}
		web.StripCredentials(r)
		var groups []string
		if u != nil {
			gs, err := s.st.UserGroups(ctx, u.ID)
			if err != nil {
				s.log.Error("read the visitor's groups", logKeyContent, guid, logKeyErr, err)
				http.Error(w, "cannot check access now", http.StatusServiceUnavailable)
				return
			}
			for _, g := range gs {
				groups = append(groups, g.Name)
			}
		}
		web.SetContentCredentials(r, u, groups, interactive[manifest.AppMode(c.AppMode)])
		r = r.WithContext(process.WithTimeouts(ctx, s.proxyTimeouts(c)))
		if interactive[manifest.AppMode(c.AppMode)] && r.Header.Get("Upgrade") != "" {
			// A session of an interactive app is its WebSocket: from the
			// upgrade until the proxy's copy ends (ServeAt returns).
			end := s.o.Usage.SessionStart(store.ShinySession{ContentID: c.ID, ContentGUID: guid, UserGUID: userGUID(u)})
			defer end()
		}
		if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
			sw := &slowBodyWriter{ResponseWriter: w, r: r}
			s.proxy.ServeAt(sw, r, guid, prefix)
			// The body's deadline also ends the request's context: the
			// proxy may then have given up without a word.
			if !sw.wrote && web.BodyTimedOut(r) {
				sw.WriteHeader(http.StatusRequestTimeout)
			}
			return
		}
		s.proxy.ServeAt(w, r, guid, prefix)
		return
	}
	http.Error(w, "this content is not running: its last deploy failed or the server could not start it; see the deploy log", http.StatusServiceUnavailable)
}

// proxyTimeouts are c's connection_timeout and read_timeout over the
// [Scheduler] defaults, read at each request: a PATCH or a reload applies
// to the next request, without a restart of the processes.
func (s *Service) proxyTimeouts(c *store.Content) process.Timeouts {
	sc := s.o.Config().Scheduler
	t := process.Timeouts{Connection: sc.ConnectionTimeout.Std(), Read: sc.ReadTimeout.Std()}
	if c.ConnectionTimeout != nil {
		t.Connection = time.Duration(*c.ConnectionTimeout) * time.Second
	}
	if c.ReadTimeout != nil {
		t.Read = time.Duration(*c.ReadTimeout) * time.Second
	}
	return t
}

// revisionPath is a document's earlier rendering below the content, as
// Connect links it: /_rev<rendering id>/<file>.
var revisionPath = regexp.MustCompile(`^/_rev([0-9]{1,18})(/.*)?$`)

// serveRevision answers a request for an earlier rendering of document c
// (rest is the path below the content) and says true; false when rest is
// not such a path. The rendering must be one of c's that succeeded; its
// output directory is served as the newest one is (fileSite).
func (s *Service) serveRevision(w http.ResponseWriter, r *http.Request, c *store.Content, rest string) bool {
	m := revisionPath.FindStringSubmatch(rest)
	if m == nil || manifest.AppMode(c.AppMode).Kind() != manifest.KindDocument {
		return false
	}
	id, _ := strconv.ParseInt(m[1], 10, 64)
	rn, err := s.st.Render(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (rn.ContentID != c.ID || rn.Status != store.RenderSucceeded || rn.OutputDir == "")) {
		http.Error(w, "no rendering "+m[1]+" of this content", http.StatusNotFound)
		return true
	}
	if err != nil {
		s.log.Error("look up a rendering", logKeyContent, c.GUID, logKeyErr, err)
		http.Error(w, "cannot look up the rendering now", http.StatusServiceUnavailable)
		return true
	}
	root, err := os.OpenRoot(rn.OutputDir)
	if err != nil {
		http.Error(w, "the output of rendering "+m[1]+" is gone", http.StatusNotFound)
		return true
	}
	defer root.Close()
	(&fileSite{root: root, index: "index.html"}).serve(w, r, m[2])
	return true
}

// interactive are the app modes whose WebSocket sessions are Shiny
// usage (GET /__api__/v1/instrumentation/shiny/usage).
var interactive = map[manifest.AppMode]bool{
	manifest.Shiny: true, manifest.RMarkdownShiny: true, manifest.QuartoShiny: true, manifest.PythonShiny: true,
}

// isPage says whether a path below the content is a page a visitor opens
// (a directory's index or an HTML file), not one of its assets: a visit
// is recorded per page, as Connect counts views of documents.
func isPage(rest string) bool {
	if rest == "" || strings.HasSuffix(rest, "/") {
		return true
	}
	ext := strings.ToLower(path.Ext(rest))
	return ext == ".html" || ext == ".htm"
}

func userGUID(u *store.User) string {
	if u == nil {
		return ""
	}
	return u.GUID
}

// slowBodyWriter answers 408 in place of the app's answer when the
// client's body missed its deadline (server/web): the app got a truncated
// body, and some servers answer that as if it were whole.
type slowBodyWriter struct {
	http.ResponseWriter
	r       *http.Request
	dropped bool
	wrote   bool
}

func (w *slowBodyWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	if web.BodyTimedOut(w.r) {
		w.dropped = true
		for k := range w.Header() {
			w.Header().Del(k)
		}
		http.Error(w.ResponseWriter, "the request body arrived too slowly; see [HTTP] UploadMinRate", http.StatusRequestTimeout)
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *slowBodyWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.dropped {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

func (w *slowBodyWriter) Flush() {
	if !w.dropped {
		_ = http.NewResponseController(w.ResponseWriter).Flush()
	}
}

func (w *slowBodyWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
