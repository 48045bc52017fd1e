package process

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Timeouts are Posit Connect's connection_timeout and read_timeout of the
// requests to one content, as its proxy enforces them (Scheduler.
// ConnectionTimeout and ReadTimeout, or the content's own values):
//
//   - Connection: the longest a request or WebSocket may go without data
//     sent or received across it (the request's body coming in, the app's
//     answer going out, either direction of a WebSocket). A request still
//     waiting for the app's answer is answered 504; one whose answer had
//     started is cut; a WebSocket is closed.
//   - Read: the longest a WebSocket may go without data received from the
//     client, and a request body without its next bytes. It does not apply
//     to a request whose body has all arrived: the client has nothing more
//     to send, and the app's answer may take its time (Connection bounds it).
//
// 0 is never, as in Connect. The wait for a process (Pool.Acquire) is not
// counted: InitTimeout bounds it.
type Timeouts struct {
	Connection time.Duration
	Read       time.Duration
}

type timeoutsKey struct{}

// WithTimeouts gives the requests served with ctx these Timeouts, in
// place of the Proxy's (SetTimeouts).
func WithTimeouts(ctx context.Context, t Timeouts) context.Context {
	return context.WithValue(ctx, timeoutsKey{}, t)
}

// SetTimeouts sets the Timeouts of requests whose context carries none
// (WithTimeouts). Safe while requests are served.
func (px *Proxy) SetTimeouts(t Timeouts) { px.timeouts.Store(&t) }

func (px *Proxy) timeoutsFor(ctx context.Context) Timeouts {
	if t, ok := ctx.Value(timeoutsKey{}).(Timeouts); ok {
		return t
	}
	if t := px.timeouts.Load(); t != nil {
		return *t
	}
	return Timeouts{}
}

// IdleTimeoutError is the cause (context.Cause) of a request the proxy
// ended for its Timeouts.
type IdleTimeoutError struct {
	Content string        // the content's GUID
	Setting string        // "connection_timeout" or "read_timeout"
	After   time.Duration // the timeout
	// BodyStalled: the request's body had not all arrived (the client's
	// fault: 408, not 504).
	BodyStalled bool
}

func (e *IdleTimeoutError) Error() string {
	if e.Setting == "read_timeout" {
		return fmt.Sprintf("content %s: nothing received from the client for %s (read_timeout)", e.Content, e.After)
	}
	return fmt.Sprintf("content %s: nothing sent or received for %s (connection_timeout)", e.Content, e.After)
}

// writeGrace is how long the client's connection may still take to
// write once a request timed out (the 504, or the rest of a buffer): a
// client that does not read must not hold the request's goroutine either.
const writeGrace = 5 * time.Second

// idleWatch ends a request (cancels its context with an IdleTimeoutError)
// once it has been idle for its Timeouts. touch and touchIn cost two
// atomic stores: the timer is not reset at each read but, when it fires,
// re-armed for what is left since the last activity.
type idleWatch struct {
	t      Timeouts
	guid   string
	path   string
	log    *slog.Logger
	cancel context.CancelCauseFunc
	onFire func(*idleWatch)

	lastAny atomic.Int64 // unix nanoseconds of the last byte either way
	lastIn  atomic.Int64 // of the last byte from the client
	readOn  atomic.Bool  // Read applies: a body arriving, or a WebSocket
	// bodyPending: the request's body has not all arrived. When the watch
	// fires then, the client's connection gets a read deadline: the
	// transport waits for its body writer, blocked reading that body.
	bodyPending atomic.Bool

	mu    sync.Mutex
	timer *time.Timer
	done  bool
	fired bool
}

// watchIdle starts the watch of a request: ctx is cancelled with an
// IdleTimeoutError when it times out; stop it with stop. nil when
// neither timeout applies (both 0).
func watchIdle(ctx context.Context, t Timeouts, guid, path string, log *slog.Logger, onFire func(*idleWatch)) (*idleWatch, context.Context) {
	if t.Connection <= 0 && t.Read <= 0 {
		return nil, ctx
	}
	ctx, cancel := context.WithCancelCause(ctx)
	w := &idleWatch{t: t, guid: guid, path: path, log: log, cancel: cancel, onFire: onFire}
	now := time.Now().UnixNano()
	w.lastAny.Store(now)
	w.lastIn.Store(now)
	w.mu.Lock()
	w.arm(time.Now())
	w.mu.Unlock()
	return w, ctx
}

// touch records data sent to the client (or moving either way).
func (w *idleWatch) touch() {
	if w != nil {
		w.lastAny.Store(time.Now().UnixNano())
	}
}

// touchIn records data received from the client.
func (w *idleWatch) touchIn() {
	if w != nil {
		now := time.Now().UnixNano()
		w.lastAny.Store(now)
		w.lastIn.Store(now)
	}
}

// readApplies turns the Read timeout on (a body arriving, a WebSocket) or
// off (the body has all arrived), counting from now.
func (w *idleWatch) readApplies(on bool) {
	if w == nil || w.t.Read <= 0 || w.readOn.Load() == on {
		return
	}
	w.lastIn.Store(time.Now().UnixNano())
	w.readOn.Store(on)
	if on {
		w.mu.Lock()
		if !w.done {
			w.arm(time.Now()) // the Read timeout may be due first
		}
		w.mu.Unlock()
	}
}

// arm sets the timer to the earliest moment a timeout may be due; w.mu held.
func (w *idleWatch) arm(now time.Time) {
	var next time.Duration = -1
	if w.t.Connection > 0 {
		next = w.t.Connection - now.Sub(time.Unix(0, w.lastAny.Load()))
	}
	if w.t.Read > 0 && w.readOn.Load() {
		if r := w.t.Read - now.Sub(time.Unix(0, w.lastIn.Load())); next < 0 || r < next {
			next = r
		}
	}
	if next < 0 && w.t.Connection <= 0 && !(w.t.Read > 0 && w.readOn.Load()) {
		w.timer = nil // nothing applies now; readApplies arms it
		return
	}
	next = max(next, time.Millisecond)
	if w.timer == nil {
		w.timer = time.AfterFunc(next, w.check)
	} else {
		w.timer.Reset(next)
	}
}

func (w *idleWatch) check() {
	now := time.Now()
	var err *IdleTimeoutError
	if w.t.Connection > 0 && now.Sub(time.Unix(0, w.lastAny.Load())) >= w.t.Connection {
		err = &IdleTimeoutError{Content: w.guid, Setting: "connection_timeout", After: w.t.Connection}
	} else if w.t.Read > 0 && w.readOn.Load() && now.Sub(time.Unix(0, w.lastIn.Load())) >= w.t.Read {
		err = &IdleTimeoutError{Content: w.guid, Setting: "read_timeout", After: w.t.Read}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return
	}
	if err == nil {
		w.arm(now)
		return
	}
	w.done, w.fired = true, true
	err.BodyStalled = w.bodyPending.Load()
	w.log.Warn("proxied request to content timed out; ending it", "content", w.guid, "path", w.path,
		"setting", err.Setting, "timeout", err.After)
	// The cause first: onFire's read deadline fails the body's read at
	// once, and proxyError must then find this error as the cause, not
	// take the read's i/o timeout for the app's failure (502).
	w.cancel(err)
	if w.onFire != nil {
		w.onFire(w)
	}
}

// stop ends the watch and tells whether it had fired.
func (w *idleWatch) stop() (fired bool) {
	if w == nil {
		return false
	}
	w.mu.Lock()
	w.done = true
	if w.timer != nil {
		w.timer.Stop()
	}
	fired = w.fired
	w.mu.Unlock()
	w.cancel(nil)
	return fired
}

// watchedBody is a request body from the client: each read is data
// received; the Read timeout applies until its end.
type watchedBody struct {
	io.ReadCloser
	w *idleWatch
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.w.touchIn()
	}
	if err != nil {
		b.w.bodyPending.Store(false)
		b.w.readApplies(false)
	}
	return n, err
}

// watchedResponse is the app's answer: each read is data for the client.
type watchedResponse struct {
	io.ReadCloser
	w *idleWatch
}

func (b *watchedResponse) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.w.touch()
	}
	return n, err
}

// watchedConn is the app's side of a WebSocket (a 101 answer's body):
// reads are data for the client, writes data from it.
type watchedConn struct {
	io.ReadWriteCloser
	w *idleWatch
}

func (c *watchedConn) Read(p []byte) (int, error) {
	n, err := c.ReadWriteCloser.Read(p)
	if n > 0 {
		c.w.touch()
	}
	return n, err
}

func (c *watchedConn) Write(p []byte) (int, error) {
	n, err := c.ReadWriteCloser.Write(p)
	if n > 0 {
		c.w.touchIn()
	}
	return n, err
}

// CloseWrite passes the client's half-close on, as without the wrapper.
func (c *watchedConn) CloseWrite() error {
	if cw, ok := c.ReadWriteCloser.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// watchResponse wraps the app's answer of a request served through
// httputil.ReverseProxy (ModifyResponse) so that its bytes count as
// activity; a WebSocket's both ways, with the Read timeout from now on.
func watchResponse(resp *http.Response) {
	t, _ := resp.Request.Context().Value(targetKey{}).(*target)
	if t == nil || t.idle == nil || resp.Body == nil || resp.Body == http.NoBody {
		return
	}
	t.idle.touch()
	if rwc, ok := resp.Body.(io.ReadWriteCloser); ok && resp.StatusCode == http.StatusSwitchingProtocols {
		resp.Body = &watchedConn{ReadWriteCloser: rwc, w: t.idle}
		t.idle.readApplies(true)
		return
	}
	resp.Body = &watchedResponse{ReadCloser: resp.Body, w: t.idle}
}
