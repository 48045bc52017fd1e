package web

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// Request bodies never hold a server goroutine without a deadline, and
// are never read beyond their limit (issue 23, defect 4):
//
//   - Small bodies (login forms, JSON) must arrive whole within
//     HTTP.BodyTimeout (default 10s), and hold at most MaxJSONBody (the
//     login form: MaxLoginBody).
//   - Large bodies (a bundle upload, a request to content) must arrive at
//     HTTP.UploadMinRate bytes per second at least, averaged from their
//     start, after HTTP.BodyTimeout of grace. An upload is large only once
//     its handler, having checked who asks, calls AllowUpload: before that
//     it is small, so an unauthenticated body is never read past what
//     the login needs.
//   - A Content-Length over the route's limit answers 413 at once, before
//     a byte of the body is read.
//
// The deadline is the connection's read deadline: a client that stalls
// gets its read cut, not a goroutine parked forever. It is lifted once the
// body has been read to its end (a handler may take longer to answer).

// MaxLoginBody bounds the login form: a username, a password, a return path.
const MaxLoginBody = 16 << 10

// Body kinds of a route.
type bodyKind int

const (
	bodySmall  bodyKind = iota // whole-body deadline
	bodyUpload                 // small until AllowUpload, then minimum rate
	bodyStream                 // minimum rate from the start (content)
)

type bodyPolicy struct {
	kind bodyKind
	max  int64 // bytes; 0 no limit
	what string
}

// policied is a handler that says how its requests' bodies are bounded.
type policied interface {
	http.Handler
	bodyPolicy() bodyPolicy
}

type policyHandler struct {
	http.Handler
	p bodyPolicy
}

func (h policyHandler) bodyPolicy() bodyPolicy { return h.p }

// Upload marks h as a route that takes a large body of up to max bytes
// (a bundle, described by what in the 413 message). Until h calls
// AllowUpload the body is bounded as a small one.
func Upload(max int64, what string, h http.Handler) http.Handler {
	return policyHandler{h, bodyPolicy{kind: bodyUpload, max: max, what: what}}
}

// Anonymous marks h as a route under /__api__ that takes writes without
// credentials (POST /__api__/tokens: the client has none yet), with a
// small body of at most max bytes (what names it in the 413 message).
func Anonymous(max int64, what string, h http.Handler) http.Handler {
	return anonymousHandler{policyHandler{h, bodyPolicy{kind: bodySmall, max: max, what: what}}}
}

type anonymousHandler struct{ policyHandler }

// Wrapped is outer, a handler around inner (an audit record, a metric),
// carrying inner's marks: how its body is bounded (Upload) and whether it
// takes anonymous writes (Anonymous). Without it, middleware added around
// an upload route would bound bundles as small JSON bodies.
func Wrapped(inner, outer http.Handler) http.Handler {
	switch h := inner.(type) {
	case anonymousHandler:
		return anonymousHandler{policyHandler{outer, h.p}}
	case policied:
		return policyHandler{outer, h.bodyPolicy()}
	}
	return outer
}

func (anonymousHandler) allowsAnonymous() bool { return true }

// smallBody marks h as a route whose body holds at most max bytes.
func smallBody(max int64, what string, h http.Handler) http.Handler {
	return policyHandler{h, bodyPolicy{kind: bodySmall, max: max, what: what}}
}

// ErrBodyTimeout is what reading a request body returns once its deadline
// has passed: the client sent it too slowly.
var ErrBodyTimeout = errors.New("request body arrived too slowly")

// BodyError tells whether err, from reading a request body, is the
// client's: a body too large (413), too slow (408) or not the one signed
// (400). msg names the limit.
func BodyError(err error) (status int, msg string, ok bool) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit), true
	case errors.Is(err, ErrBodyTimeout):
		return http.StatusRequestTimeout, err.Error(), true
	case errors.Is(err, ErrBodyChecksum):
		return http.StatusBadRequest, err.Error(), true
	}
	return 0, "", false
}

// bodyTimeoutError is ErrBodyTimeout with what was received. Packages
// that must not import web (the proxy) recognise it by its ClientTooSlow
// method.
type bodyTimeoutError struct{ msg string }

func (e *bodyTimeoutError) Error() string        { return e.msg }
func (e *bodyTimeoutError) Is(target error) bool { return target == ErrBodyTimeout }
func (e *bodyTimeoutError) ClientTooSlow() bool  { return true }

type bodyStateKey struct{}

// AllowUpload lets the body of r, a route made with Upload, arrive at the
// minimum rate (HTTP.UploadMinRate) instead of within HTTP.BodyTimeout.
// Call it once the user may upload, before reading the body.
func AllowUpload(r *http.Request) {
	if b, ok := r.Context().Value(bodyStateKey{}).(*deadlineBody); ok {
		b.toRate()
	}
}

// closeUnread makes a refusal end the connection when the request has a
// body: the server would otherwise read (up to 256 KiB of) it before
// answering, to keep the connection; an unauthenticated body is not read.
func closeUnread(w http.ResponseWriter, r *http.Request) {
	if r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0 {
		w.Header().Set("Connection", "close")
	}
}

// BodyTimedOut tells whether the body of r missed its deadline: the
// request is incomplete, whatever a handler downstream made of it.
func BodyTimedOut(r *http.Request) bool {
	b, ok := r.Context().Value(bodyStateKey{}).(*deadlineBody)
	if !ok {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.timedOut
}

// limitBody applies the body rules to each request that has a body.
func (s *Server) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			next.ServeHTTP(w, r)
			return
		}
		p := bodyPolicy{kind: bodySmall, max: MaxJSONBody, what: "request body"}
		if strings.HasPrefix(r.URL.Path, "/content/") {
			p = bodyPolicy{kind: bodyStream}
		} else if h, _ := s.mux.Handler(r); h != nil {
			if ph, ok := h.(policied); ok {
				p = ph.bodyPolicy()
			}
		}
		if p.max > 0 && r.ContentLength > p.max {
			s.refuse(w, r, http.StatusRequestEntityTooLarge,
				fmt.Sprintf("%s of %d bytes is over the limit of %d bytes", p.what, r.ContentLength, p.max))
			return
		}
		cfg := s.Config().HTTP
		b := &deadlineBody{
			rc: http.NewResponseController(w), grace: cfg.BodyTimeout.Std(), rate: cfg.UploadMinRate,
			start: time.Now(), rateMode: p.kind == bodyStream,
		}
		body := r.Body
		if p.max > 0 {
			body = http.MaxBytesReader(w, body, p.max)
		}
		b.body = body
		b.setDeadline()
		r.Body = b
		r = r.WithContext(context.WithValue(r.Context(), bodyStateKey{}, b))
		defer b.handlerDone()
		next.ServeHTTP(w, r)
	})
}

// deadlineBody is a request body read under the connection's read
// deadline, which it moves as the body arrives.
type deadlineBody struct {
	body  io.ReadCloser
	rc    *http.ResponseController
	grace time.Duration
	rate  int64 // bytes per second
	start time.Time

	mu       sync.Mutex
	rateMode bool
	n        int64
	done     bool // handler returned: the deadline is no longer ours to move
	timedOut bool
	ended    bool // body read to its end: deadline lifted
}

func (b *deadlineBody) deadline() time.Time {
	if !b.rateMode || b.rate <= 0 {
		return b.start.Add(b.grace)
	}
	return b.start.Add(b.grace + time.Duration(float64(b.n)/float64(b.rate)*float64(time.Second)))
}

// setDeadline sets the read deadline; the caller holds mu or owns b.
func (b *deadlineBody) setDeadline() {
	if b.done || b.ended {
		return
	}
	_ = b.rc.SetReadDeadline(b.deadline())
}

func (b *deadlineBody) toRate() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rateMode = true
	b.setDeadline()
}

func (b *deadlineBody) handlerDone() {
	b.mu.Lock()
	b.done = true
	b.mu.Unlock()
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n += int64(n)
	switch {
	case err == io.EOF:
		// A handler may answer long after the body ended (a proxied app);
		// the server's check for a closed connection reads on after EOF
		// and must not hit this deadline.
		if !b.done && !b.ended {
			_ = b.rc.SetReadDeadline(time.Time{})
		}
		b.ended = true
	case err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		b.timedOut = true
		what := fmt.Sprintf("the whole body must arrive within %s (HTTP.BodyTimeout)", b.grace)
		if b.rateMode {
			what = fmt.Sprintf("the body must arrive at %d bytes/s or faster (HTTP.UploadMinRate), after %s (HTTP.BodyTimeout)", b.rate, b.grace)
		}
		return n, &bodyTimeoutError{fmt.Sprintf("%s: %d bytes in %s; %s", ErrBodyTimeout, b.n, time.Since(b.start).Round(time.Millisecond), what)}
	case err == nil && n > 0 && b.rateMode:
		b.setDeadline()
	}
	return n, err
}

func (b *deadlineBody) Close() error { return b.body.Close() }
