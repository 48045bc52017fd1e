package web

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// writeStall bounds how long one write of an answer may wait for the
// client to read it: a client that stops reading (to hold the server's
// goroutines and connections) is cut off. Time between writes (a quiet
// stream) does not count. A variable for tests.
var writeStall = 2 * time.Minute

// statusWriter remembers the status and size of an answer, and gives each
// write writeStall to complete. It passes Flush, Hijack and Unwrap
// through, so streaming and WebSockets work; a hijacked connection has no
// deadline left.
type statusWriter struct {
	http.ResponseWriter
	rc       *http.ResponseController
	status   int
	size     int64
	hijacked bool
}

// stall moves the write deadline to writeStall from now.
func (w *statusWriter) stall() {
	if !w.hijacked {
		_ = w.rc.SetWriteDeadline(time.Now().Add(writeStall))
	}
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.stall()
	n, err := w.ResponseWriter.Write(b)
	w.size += int64(n)
	return n, err
}

func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.stall()
	_ = w.rc.Flush()
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := w.rc.Hijack()
	if err == nil {
		w.hijacked = true
		_ = c.SetDeadline(time.Time{}) // the new owner sets its own
		if w.status == 0 {
			w.status = http.StatusSwitchingProtocols
		}
	}
	return c, rw, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// reqInfo is filled in by the inner layers for the outer ones: the user
// for the access log, the route pattern for the metrics.
type reqInfo struct {
	username string
	pattern  string
}

type reqInfoKey struct{}

func infoFrom(r *http.Request) *reqInfo {
	i, _ := r.Context().Value(reqInfoKey{}).(*reqInfo)
	if i == nil {
		return &reqInfo{}
	}
	return i
}

// observe is the outermost layer: metrics, and one Combined Log Format line
// per request (plus the duration in seconds) when Logging.AccessLog is on.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		s.metrics.inFlight.Inc()
		info := &reqInfo{}
		r = r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, info))
		sw := &statusWriter{ResponseWriter: w, rc: http.NewResponseController(w)}
		sw.stall() // also what the server writes after the handler (headers, the last chunk)
		defer func() {
			s.metrics.inFlight.Dec()
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			elapsed := time.Since(start)
			s.metrics.observe(info.pattern, r.Method, status, elapsed)
			if s.access == nil || !s.Config().Logging.AccessLog {
				return
			}
			host, _, err := net.SplitHostPort(r.RemoteAddr)
			if err != nil {
				host = r.RemoteAddr
			}
			line := fmt.Sprintf("%s - %s [%s] %s %d %d %s %s %.6f\n",
				host, orDash(info.username), start.Format("02/Jan/2006:15:04:05 -0700"),
				strconv.Quote(r.Method+" "+logURI(r.URL)+" "+r.Proto),
				status, sw.size, strconv.Quote(orDash(r.Referer())), strconv.Quote(orDash(r.UserAgent())),
				elapsed.Seconds())
			_, _ = s.access.Write([]byte(line))
		}()
		next.ServeHTTP(sw, r)
		sw.stall() // the server writes what is buffered once the handler returns
	})
}

// logURI is the request URI for the access log, with the password of a
// URL given as a query value (GET /__api__/repo/branches?url=https://user:token@host/...)
// replaced.
func logURI(u *url.URL) string {
	uri := u.RequestURI()
	if u.RawQuery == "" || !strings.Contains(u.RawQuery, "@") && !strings.Contains(strings.ToUpper(u.RawQuery), "%40") {
		return uri
	}
	q := u.Query()
	changed := false
	for _, vs := range q {
		for i, v := range vs {
			if p, err := url.Parse(v); err == nil && p.User != nil {
				if _, has := p.User.Password(); has {
					p.User = url.UserPassword(p.User.Username(), "REDACTED")
					vs[i] = p.String()
					changed = true
				}
			}
		}
	}
	if !changed {
		return uri
	}
	return u.EscapedPath() + "?" + q.Encode()
}

// recordRoute sits right around the mux, which fills in r.Pattern.
func recordRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r)
		infoFrom(r).pattern = r.Pattern
	})
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// recoverPanic turns a handler's panic into a 500 and a log line, so one bad
// request does not take the connection's other requests with it.
func (s *Server) recoverPanic(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v)
			}
			s.log.Error("handler panic", logKeyMethod, r.Method, logKeyPath, r.URL.Path, logKeyErr, fmt.Sprint(v))
			if isAPI(r.URL.Path) {
				WriteError(w, http.StatusInternalServerError, "internal error")
				return
			}
			http.Error(w, "internal error", http.StatusInternalServerError)
		}()
		next.ServeHTTP(w, r)
	})
}

// apiRules enforces, under /__api__: JSON answers only (whatever a handler
// or the mux writes as plain text or a redirect becomes a JSON error), and
// no writes without an authenticated user but on routes made with
// Anonymous. Outside /__api__ it applies the licensing gate to /content/.
func (s *Server) apiRules(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isAPI(r.URL.Path) {
			if strings.HasPrefix(r.URL.Path, "/content/") {
				if ok, reason := s.Licensed(); !ok {
					http.Error(w, "dais cannot serve content: "+reason, http.StatusPaymentRequired)
					return
				}
			}
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions {
			if _, ok := UserFrom(r.Context()); !ok && !s.allowsAnonymous(r) {
				closeUnread(w, r)
				WriteError(w, http.StatusUnauthorized, "authentication required: send an API key as 'Authorization: Key <key>' (create one with 'dais keys create --user NAME')")
				return
			}
		}
		jw := &jsonOnlyWriter{ResponseWriter: w}
		next.ServeHTTP(jw, r)
		jw.finish()
	})
}

// allowsAnonymous tells whether r's route was made with Anonymous.
func (s *Server) allowsAnonymous(r *http.Request) bool {
	h, _ := s.mux.Handler(r)
	a, ok := h.(interface{ allowsAnonymous() bool })
	return ok && a.allowsAnonymous()
}

// jsonOnlyWriter rewrites non-JSON error answers and redirects into JSON
// errors, so a client of /__api__ never sees HTML, plain text or a 3xx. A
// plain-text body (http.Error's) becomes the error message.
type jsonOnlyWriter struct {
	http.ResponseWriter
	wrote    bool
	replaced int // status of an answer being replaced; 0 = passing through
	location string
	textBody bool // the replaced body is plain text: it becomes the message
	body     []byte
}

func (w *jsonOnlyWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	ct := w.Header().Get("Content-Type")
	bad := (code >= 300 && code < 400 && code != http.StatusNotModified) ||
		(code >= 400 && !strings.HasPrefix(ct, "application/json"))
	if !bad {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.replaced = code
	w.location = w.Header().Get("Location")
	w.textBody = strings.HasPrefix(ct, "text/plain")
	for _, k := range []string{"Location", "Content-Length", "Content-Type", "X-Content-Type-Options"} {
		w.Header().Del(k)
	}
}

func (w *jsonOnlyWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	if w.replaced != 0 {
		if w.textBody && len(w.body) < 1024 {
			w.body = append(w.body, b...)
		}
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// finish writes the replacement JSON error, if there is one.
func (w *jsonOnlyWriter) finish() {
	if w.replaced == 0 {
		return
	}
	code := w.replaced
	msg := strings.TrimSpace(string(w.body))
	if msg == "" {
		msg = strings.ToLower(http.StatusText(code))
	}
	if code >= 300 && code < 400 {
		// The mux redirects to a cleaned or slash-terminated path; an API
		// client must call the canonical path itself.
		code = http.StatusNotFound
		msg = "no API endpoint at this path; use " + w.location
	}
	WriteError(w.ResponseWriter, code, msg)
}

func (w *jsonOnlyWriter) Flush() {
	if w.replaced == 0 {
		_ = http.NewResponseController(w.ResponseWriter).Flush()
	}
}

func (w *jsonOnlyWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
