package process

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ContentPrefix is where content is served: /content/<guid>/...
const ContentPrefix = "/content/"

// BaseURLHeader tells the app its public URL, as Posit Connect does.
const BaseURLHeader = "RStudio-Connect-App-Base-URL"

// Proxy forwards /content/<guid>/... to the pool registered for <guid>,
// with the prefix stripped:
//
//	px := process.NewProxy(logger, cfg.Server.Address)
//	px.Switch(ctx, guid, newPool) // warm the new pool, swap, drain the old one
//	mux.Handle("/content/", accessCheck(px))
//
// The public URL of a request is found as Posit Connect finds it behind a
// reverse proxy: the X-RSC-Request header the proxy adds (the absolute URL
// the client asked for; it works with path rewriting, e.g. a dais served
// under https://proxy/rsc/), else X-Forwarded-Proto, -Host and -Port, else
// PublicURL (Server.Address), else the request's own scheme and Host.
// Upstream requests carry RStudio-Connect-App-Base-URL (the content's public
// URL), X-RSC-Request (the request's public URL), X-Forwarded-Proto and
// -Host of that public URL, X-Forwarded-For (the client's address: an
// inbound one is replaced, not trusted) and the original Host; hop-by-hop
// headers are dropped both ways. WebSocket upgrades pass through;
// responses are streamed (streams flushed at once, responses of known
// length whenever the proxy has sent all the app has sent so far, or at
// least every 20 ms). Plain GET, HEAD and OPTIONS requests are sent by the
// proxy itself (serveDirect), the others by httputil.ReverseProxy. Access
// checks are the caller's: wrap the Proxy in a handler that checks them.
//
// Sessions of a pool with Options.Pin (Shiny apps) stay on the process
// that started them, as on Posit Connect: a page at the app's top level
// (/content/<guid>/ and its siblings, e.g. index.html) is answered with
// <base href="_w_<worker>/"> first in its <head>, so that every relative
// URL of the page (scripts, session/<token>/download/..., uploads,
// dataobj) carries the worker id of the process that served it, and with
// a script that opens Shiny's WebSocket under that base too
// (Shiny.createSocket; shiny.js opens it at the page's own path
// otherwise). A request whose path starts with _w_<worker>/ goes to that
// process, whatever its load, with the segment removed: the app never
// sees it. A worker id whose process is gone gets the least busy process,
// and so does every later request naming it (Pool.Remap). Pools a
// redeploy replaced serve their workers' requests until they stop.
type Proxy struct {
	log     *slog.Logger
	rp      *httputil.ReverseProxy // requests serveDirect does not take
	loop    *loopTransport         // keep-alive connections to the processes
	forward *http.Transport        // to other nodes (Forward)
	public  atomic.Pointer[publicBase]
	// timeouts of requests whose context names none (WithTimeouts).
	timeouts atomic.Pointer[Timeouts]
	mu       sync.RWMutex
	pools    map[string]*Pool
	retired  map[string][]*Pool // replaced by Set, serving their sessions until stopped
}

type targetKey struct{}

type target struct {
	key         string   // the process's Lease.Key: its connections' cache key
	dial        DialFunc // the process's Lease.Dial
	path, raw   string
	baseURL     string
	requestURL  string
	proto, host string // of the public URL
	// page: a GET of a top-level page of a pinned pool; its HTML gets
	// <base href="<up>_w_<worker>/"> (up is "../" when the request's own
	// path had a worker segment).
	page       bool
	up, worker string
	idle       *idleWatch // nil: no timeout applies
}

// publicRoot is dais's root URL as the client of r sees it: scheme, host
// and path (no trailing slash); see Proxy. Headers that do not parse, or an
// X-RSC-Request that is not the URL of this request, are ignored.
func publicRoot(r *http.Request, configured *publicBase) (proto, host, path string) {
	own := "http"
	if r.TLS != nil {
		own = "https"
	}
	// Canonical header names: Get would allocate to canonicalise others.
	if v := r.Header.Get("X-Rsc-Request"); v != "" {
		if u, err := url.Parse(v); err == nil && (u.Scheme == "http" || u.Scheme == "https") && validHost(u.Host) {
			// What the proxy kept of the path after its own prefix is this
			// request's path: what comes before is dais's root.
			if prefix, ok := strings.CutSuffix(u.EscapedPath(), r.URL.EscapedPath()); ok {
				return u.Scheme, u.Host, strings.TrimSuffix(prefix, "/")
			}
		}
	}
	proto = strings.ToLower(strings.TrimSpace(firstValue(r.Header.Get("X-Forwarded-Proto"))))
	host = strings.TrimSpace(firstValue(r.Header.Get("X-Forwarded-Host")))
	if proto != "" || host != "" {
		proto, host = cmp.Or(proto, own), cmp.Or(host, r.Host)
		if port := strings.TrimSpace(firstValue(r.Header.Get("X-Forwarded-Port"))); port != "" && !strings.Contains(host, ":") {
			if n, err := strconv.Atoi(port); err == nil && n > 0 && n < 65536 &&
				!(proto == "https" && n == 443) && !(proto == "http" && n == 80) {
				host += ":" + port
			}
		}
		if (proto == "http" || proto == "https") && validHost(host) {
			return proto, host, ""
		}
	}
	if configured.ok {
		return configured.scheme, configured.host, configured.path
	}
	return own, r.Host, ""
}

// publicBase is the server's public URL (Server.Address) parsed (ok: it
// has a host), used for the base URL header; without one, the scheme and
// Host of each request are.
type publicBase struct {
	raw                string
	scheme, host, path string
	ok                 bool
}

// SetPublicURL sets the server's public URL (Server.Address; "" for none).
// Safe while requests are served (a reload sets it).
func (px *Proxy) SetPublicURL(raw string) {
	b := &publicBase{raw: raw}
	if u, err := url.Parse(raw); raw != "" && err == nil && u.Host != "" {
		b.scheme, b.host, b.path, b.ok = u.Scheme, u.Host, strings.TrimSuffix(u.EscapedPath(), "/"), true
	}
	px.public.Store(b)
}

func (px *Proxy) publicBase() *publicBase { return px.public.Load() }

// firstValue is the first of a comma-separated header value (a chain of
// proxies appends theirs: the first is the one the client reached).
func firstValue(v string) string {
	first, _, _ := strings.Cut(v, ",")
	return first
}

// validHost is a host[:port] with nothing a URL would read otherwise.
func validHost(h string) bool {
	if h == "" || strings.ContainsAny(h, "/?#@\\ \t\r\n") {
		return false
	}
	u, err := url.Parse("http://" + h)
	return err == nil && u.Host == h && u.Hostname() != ""
}

// NewProxy makes a Proxy with no content.
func NewProxy(logger *slog.Logger, publicURL string) *Proxy {
	if logger == nil {
		logger = slog.Default()
	}
	px := &Proxy{log: logger, pools: map[string]*Pool{}, retired: map[string][]*Pool{}}
	px.SetPublicURL(publicURL)
	px.loop = &loopTransport{
		full: &http.Transport{
			Proxy:                 nil,
			DialContext:           dialTarget,
			MaxIdleConns:          4096,
			MaxIdleConnsPerHost:   512,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
			DisableCompression:    true,
		},
		maxIdle: 512,
		idleFor: 90 * time.Second,
		idle:    map[string][]*loopConn{},
	}
	px.rp = &httputil.ReverseProxy{
		Rewrite: px.rewrite,
		ModifyResponse: func(resp *http.Response) error {
			watchResponse(resp)
			return pinPage(resp)
		},
		// Streams (no Content-Length, or text/event-stream) are flushed
		// after every write whatever this says. A response of known length
		// is flushed at least this often: -1 (flush every write) cost a
		// timer goroutine that wrote the headers in a syscall of their own,
		// then another for the body, on every request.
		FlushInterval: 20 * time.Millisecond,
		BufferPool:    bufferPool{},
		// Plain GET, HEAD and OPTIONS requests go over loopTransport's
		// keep-alive connections; the rest over http.Transport, which
		// keeps more idle connections than its default (2 per host, so
		// concurrent requests would open a new TCP connection each).
		Transport:    px.loop,
		ErrorHandler: px.proxyError,
	}
	px.forward = &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
	return px
}

// dialTimeout bounds a connection to a content process.
const dialTimeout = 10 * time.Second

// dialTarget connects to the process of the request's target, whatever
// the address says: the address is the process's key (Lease.Key), which
// keys the transports' cached connections, and the process is reached
// through its Lease.Dial (inside its network namespace when it has one).
func dialTarget(ctx context.Context, network, addr string) (net.Conn, error) {
	t, _ := ctx.Value(targetKey{}).(*target)
	if t == nil {
		return nil, errors.New("proxy: no content process to dial")
	}
	return dialProcess(ctx, t.dial)
}

// dialProcess connects to a process through its Lease.Dial, within dialTimeout.
func dialProcess(ctx context.Context, dial DialFunc) (net.Conn, error) {
	if dial == nil {
		return nil, errors.New("proxy: no content process to dial")
	}
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	c, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetKeepAlive(true)
		tc.SetKeepAlivePeriod(30 * time.Second)
	}
	return c, nil
}

// proxyError answers a request the app could not: 504 when it timed out
// waiting for the app (Timeouts; the watch logged it), 408 when the
// client's body stalled (read_timeout) or was too slow, nothing when the
// client went away, else 502.
func (px *Proxy) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	var idle *IdleTimeoutError
	if errors.As(context.Cause(r.Context()), &idle) {
		if idle.Setting == "read_timeout" || idle.BodyStalled {
			http.Error(w, idle.Error()+": the request body stopped arriving", http.StatusRequestTimeout)
			return
		}
		http.Error(w, idle.Error()+": the app did not answer in time", http.StatusGatewayTimeout)
		return
	}
	if errors.Is(err, context.Canceled) {
		return // the client went away
	}
	var slow interface{ ClientTooSlow() bool }
	if errors.As(err, &slow) && slow.ClientTooSlow() {
		// The client's body missed its deadline (server/web): not the app's fault.
		http.Error(w, err.Error(), http.StatusRequestTimeout)
		return
	}
	px.log.Warn("proxy to content process failed", "path", r.URL.Path, "err", err)
	http.Error(w, "content process unavailable: "+err.Error(), http.StatusBadGateway)
}

func (px *Proxy) rewrite(pr *httputil.ProxyRequest) {
	t := pr.In.Context().Value(targetKey{}).(*target)
	pr.SetURL(&url.URL{Scheme: "http", Host: t.key})
	pr.Out.URL.Path, pr.Out.URL.RawPath = t.path, t.raw
	pr.Out.Host = pr.In.Host
	pr.SetXForwarded()
	pr.Out.Header.Set("X-Forwarded-Proto", t.proto)
	pr.Out.Header.Set("X-Forwarded-Host", t.host)
	pr.Out.Header.Set(BaseURLHeader, t.baseURL)
	pr.Out.Header.Set("X-RSC-Request", t.requestURL)
	pr.Out.Header.Del(ForwardedByHeader)
	if t.page {
		// The page gets the worker's <base> (pinPage): ask for it
		// uncompressed (Shiny's httpuv gzips it otherwise).
		pr.Out.Header.Del("Accept-Encoding")
	}
}

// Set registers pool for guid and returns the pool it replaces (nil if
// none). The old pool still serves the requests of its own workers
// (AcquireWorker) until it is stopped.
func (px *Proxy) Set(guid string, pool *Pool) *Pool {
	px.mu.Lock()
	defer px.mu.Unlock()
	old := px.pools[guid]
	px.pools[guid] = pool
	keep := slices.DeleteFunc(px.retired[guid], func(p *Pool) bool { return p.Closed() || p == pool })
	if old != nil && old != pool && old.Pinned() {
		keep = append(keep, old)
	}
	if len(keep) == 0 {
		delete(px.retired, guid)
	} else {
		px.retired[guid] = keep
	}
	return old
}

// SetIfAbsent registers pool for guid if no pool is, and tells whether it did.
func (px *Proxy) SetIfAbsent(guid string, pool *Pool) bool {
	px.mu.Lock()
	defer px.mu.Unlock()
	if px.pools[guid] != nil {
		return false
	}
	px.pools[guid] = pool
	return true
}

// Remove unregisters guid and returns its pool (nil if none); the caller stops it.
func (px *Proxy) Remove(guid string) *Pool {
	px.mu.Lock()
	defer px.mu.Unlock()
	old := px.pools[guid]
	delete(px.pools, guid)
	delete(px.retired, guid)
	return old
}

// PinnedWorker reads the worker id of a request for guid's pinned app
// whose path below the content's prefix is rest ("/_w_<id>/..."), and
// tells whether a process of this server has it (in guid's pool or one a
// redeploy replaced). id is "" for an app that is not pinned, or a
// request that names no worker.
func (px *Proxy) PinnedWorker(guid, rest string) (id string, held bool) {
	pool := px.Pool(guid)
	if pool == nil || !pool.Pinned() {
		return "", false
	}
	id, _, ok := cutWorker(rest)
	if !ok {
		return "", false
	}
	if pool.HasWorker(id) {
		return id, true
	}
	px.mu.RLock()
	defer px.mu.RUnlock()
	return id, slices.ContainsFunc(px.retired[guid], func(p *Pool) bool { return p.HasWorker(id) })
}

// ForwardedByHeader marks a request one node forwarded to the node that
// runs its process (Proxy.Forward): the receiving node serves it itself.
const ForwardedByHeader = "X-Dais-Forwarded-By"

// Forward sends the request, WebSocket upgrades included, to the dais
// node at addr (host:port), as from node: for a session whose process
// runs there. The other node checks access again and serves it; the
// request's public URL goes with it (X-RSC-Request). fallback serves the
// request here when addr cannot be reached and nothing was sent yet.
func (px *Proxy) Forward(w http.ResponseWriter, r *http.Request, addr, node string, fallback http.HandlerFunc) {
	proto, host, root := publicRoot(r, px.publicBase())
	public := proto + "://" + host + root + r.URL.RequestURI()
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: "http", Host: addr})
			pr.Out.URL.Path, pr.Out.URL.RawPath = pr.In.URL.Path, pr.In.URL.RawPath
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Set("X-RSC-Request", public)
			pr.Out.Header.Set(ForwardedByHeader, node)
		},
		Transport:     px.forward,
		FlushInterval: -1,
		BufferPool:    bufferPool{},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			px.log.Warn("forward to the node running the session's process failed; serving here", "address", addr, "path", r.URL.Path, "err", err)
			if r.Body == nil || r.Body == http.NoBody {
				fallback(w, r)
				return
			}
			http.Error(w, "the node running this session is unreachable: "+err.Error(), http.StatusBadGateway)
		},
	}
	rp.ServeHTTP(w, r)
}

// acquireWorker leases worker id's process from guid's pool or from one a
// redeploy replaced.
func (px *Proxy) acquireWorker(guid string, pool *Pool, id string) (*Lease, error) {
	l, err := pool.AcquireWorker(id)
	if !errors.Is(err, ErrNoWorker) {
		return l, err
	}
	px.mu.RLock()
	old := slices.Clone(px.retired[guid])
	px.mu.RUnlock()
	for _, p := range old {
		if l, err := p.AcquireWorker(id); err == nil {
			return l, nil
		}
	}
	return nil, ErrNoWorker
}

// Pool returns the pool registered for guid, or nil.
func (px *Proxy) Pool(guid string) *Pool {
	px.mu.RLock()
	defer px.mu.RUnlock()
	return px.pools[guid]
}

// Switch moves guid's traffic to pool without dropping requests: the new
// pool gets a ready process first, then takes new requests, then the old
// pool finishes its requests in flight and stops. When the new pool does
// not get ready, it is stopped and the old one keeps serving. ctx bounds
// both the warm-up and the drain: WebSockets (Shiny sessions) hold the old
// pool until they close, so give it a deadline; when it passes, what is
// still open on the old pool is cut.
func (px *Proxy) Switch(ctx context.Context, guid string, pool *Pool) error {
	if err := pool.WaitReady(ctx); err != nil {
		pool.Stop(context.Background())
		return err
	}
	old := px.Set(guid, pool)
	if old != nil && old != pool {
		return old.Drain(ctx)
	}
	return nil
}

// ServeHTTP serves /content/<guid>/... from guid's pool: 404 for an unknown
// guid, 503 when no process gets ready.
func (px *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, ContentPrefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	guid, _, hasSlash := strings.Cut(rest, "/")
	if guid == "" {
		http.NotFound(w, r)
		return
	}
	if !hasSlash {
		// Relative URLs in apps need the trailing slash.
		u := *r.URL
		u.Path += "/"
		u.RawPath = ""
		http.Redirect(w, r, u.String(), http.StatusMovedPermanently)
		return
	}
	px.ServeAt(w, r, guid, ContentPrefix+guid)
}

// ServeAt serves a request whose path starts with prefix (no trailing
// slash, e.g. a vanity path) from guid's pool: the app gets the path below
// prefix, and prefix+"/" under the public URL as its base URL.
func (px *Proxy) ServeAt(w http.ResponseWriter, r *http.Request, guid, prefix string) {
	t := &target{path: strings.TrimPrefix(r.URL.Path, prefix)}
	if r.URL.RawPath != "" {
		t.raw = strings.TrimPrefix(r.URL.RawPath, prefix)
	}
	proto, host, root := publicRoot(r, px.publicBase())
	base := proto + "://" + host + root
	t.baseURL = base + prefix + "/"
	t.requestURL = base + r.URL.RequestURI()
	t.proto, t.host = proto, host

	var lease *Lease
	worker := ""
	for attempt := 0; ; attempt++ {
		pool := px.Pool(guid)
		if pool == nil {
			http.Error(w, "no running content at "+prefix+"/; deploy it first", http.StatusNotFound)
			return
		}
		if pool.Pinned() && attempt == 0 {
			if id, rest, ok := cutWorker(t.path); ok {
				if rest == "" {
					// Relative URLs below the worker need its trailing slash.
					u := *r.URL
					u.Path += "/"
					u.RawPath = ""
					http.Redirect(w, r, u.String(), http.StatusMovedPermanently)
					return
				}
				worker, t.path, t.up = id, rest, "../"
				if t.raw != "" {
					_, t.raw, _ = cutWorker(t.raw)
				}
			}
			t.page = r.Method == http.MethodGet && strings.HasPrefix(t.path, "/") && !strings.Contains(t.path[1:], "/")
		}
		var err error
		if worker != "" {
			if lease, err = px.acquireWorker(guid, pool, worker); err == nil {
				break
			}
		}
		lease, err = pool.Acquire(r.Context())
		if errors.Is(err, ErrClosed) && attempt < 3 {
			// Swapped by a redeploy between lookup and acquire: the new
			// pool is registered already.
			time.Sleep(time.Duration(attempt) * 10 * time.Millisecond)
			continue
		}
		if err != nil {
			if r.Context().Err() == nil {
				px.log.Warn("no content process for request", "content", guid, "err", err)
				w.Header().Set("Retry-After", "5")
				http.Error(w, "content is not available: "+err.Error(), http.StatusServiceUnavailable)
			}
			return
		}
		if worker != "" {
			pool.Remap(worker, lease)
		}
		break
	}
	defer lease.Release()
	t.key, t.dial, t.worker = lease.Key(), lease.Dial, lease.Worker()
	// From here on the request may not go idle longer than its Timeouts
	// (the wait for a process above has InitTimeout for a bound).
	if idle, ctx := watchIdle(r.Context(), px.timeoutsFor(r.Context()), guid, r.URL.Path, px.log, func(idle *idleWatch) {
		// A client that does not read must not hold the goroutine either,
		// nor one whose body stalled (http.Transport waits for the
		// goroutine that copies it).
		rc := http.NewResponseController(w)
		_ = rc.SetWriteDeadline(time.Now().Add(writeGrace))
		if idle.bodyPending.Load() {
			_ = rc.SetReadDeadline(time.Now())
		}
	}); idle != nil {
		t.idle = idle
		r = r.WithContext(ctx)
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &watchedBody{ReadCloser: r.Body, w: idle}
			idle.bodyPending.Store(true)
			idle.readApplies(true)
		}
		defer func() {
			if idle.stop() {
				// Kept alive after the 504: the next request has no deadline.
				_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
			}
		}()
	}
	if !t.page && plainRequest(r) {
		px.serveDirect(w, r, t)
		return
	}
	px.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), targetKey{}, t)))
}

// workerPrefix starts the first segment of a path below a pinned app that
// names its process.
const workerPrefix = "/_w_"

var workerID = regexp.MustCompile(`^` + WorkerPattern + `$`)

// cutWorker splits "/_w_<id>/rest" into id and "/rest" ("" when nothing
// follows the id, not even a slash).
func cutWorker(path string) (id, rest string, ok bool) {
	after, ok := strings.CutPrefix(path, workerPrefix)
	if !ok {
		return "", "", false
	}
	id, rest, slash := strings.Cut(after, "/")
	if !workerID.MatchString(id) {
		return "", "", false
	}
	if slash {
		rest = "/" + rest
	}
	return id, rest, true
}

// maxPinnedPage is the largest page whose HTML gets the worker's base:
// larger ones pass unchanged (a Shiny page is some kilobytes).
const maxPinnedPage = 4 << 20

// pinPage gives the HTML of a top-level page of a pinned app the worker's
// <base href> and the script that opens Shiny's WebSocket below it, first
// in its <head>; see Proxy. A page with a <base> of its own, compressed,
// or larger than maxPinnedPage is left as it is.
func pinPage(resp *http.Response) error {
	t, _ := resp.Request.Context().Value(targetKey{}).(*target)
	if t == nil || !t.page || t.worker == "" || resp.StatusCode != http.StatusOK {
		return nil
	}
	if ct := strings.ToLower(resp.Header.Get("Content-Type")); !strings.HasPrefix(ct, "text/html") {
		return nil
	}
	if ce := resp.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxPinnedPage+1))
	if err != nil {
		return err
	}
	if len(b) > maxPinnedPage {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(b), resp.Body), resp.Body}
		return nil
	}
	resp.Body.Close()
	if out, ok := insertBase(b, t.up+"_w_"+t.worker+"/"); ok {
		b = out
		// The page names one process: a cached copy must not outlive it.
		resp.Header.Del("ETag")
		resp.Header.Del("Last-Modified")
		resp.Header.Set("Cache-Control", "no-store")
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
	resp.TransferEncoding = nil
	return nil
}

// pinScript makes shiny.js open its WebSocket below the page's base (the
// worker's) rather than at the page's own path; shiny.js keeps a
// window.Shiny that exists when it loads, createSocket included. It also
// keeps links to a place in the page ("#id", a table of contents) in the
// page: against the base they would load another URL. The click handler
// is on window, so it sees a click after the page's own handlers (Bootstrap's
// tabs prevent the default) and acts only when none did.
const pinScript = `<script>(function(){var s=window.Shiny=window.Shiny||{};` +
	`s.createSocket=function(){var u=new URL("websocket/",document.baseURI);` +
	`u.protocol=u.protocol==="https:"?"wss:":"ws:";var ws=new WebSocket(u.href);ws.binaryType="arraybuffer";return ws;};` +
	`window.addEventListener("click",function(e){var a=e.target&&e.target.closest&&e.target.closest("a[href]");` +
	`if(!a||e.defaultPrevented||e.button!==0||e.ctrlKey||e.metaKey||e.shiftKey||e.altKey||(a.target&&a.target!=="_self"))return;` +
	`var h=a.getAttribute("href");if(h.charAt(0)!=="#")return;e.preventDefault();location.hash=h;});})();</script>`

var (
	headTag = regexp.MustCompile(`(?i)<head(\s[^>]*)?>`)
	baseTag = regexp.MustCompile(`(?i)<base[\s>/]`)
	headEnd = regexp.MustCompile(`(?i)</head\s*>`)
)

// insertBase puts <base href="href"> and pinScript right after the page's
// <head> tag; ok is false (page unchanged) when it has no <head> or has a
// <base> of its own in it.
func insertBase(page []byte, href string) ([]byte, bool) {
	loc := headTag.FindIndex(page)
	if loc == nil {
		return page, false
	}
	head := page[loc[1]:]
	if end := headEnd.FindIndex(head); end != nil {
		head = head[:end[0]]
	}
	if baseTag.Match(head) {
		return page, false
	}
	var out bytes.Buffer
	out.Grow(len(page) + len(href) + len(pinScript) + 20)
	out.Write(page[:loc[1]])
	out.WriteString(`<base href="` + html.EscapeString(href) + `">`)
	out.WriteString(pinScript)
	out.Write(page[loc[1]:])
	return out.Bytes(), true
}

// bufferPool reuses the proxy's copy buffers (32 KiB each, allocated per
// request otherwise).
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }

// loopTransport sends GET, HEAD and OPTIONS requests without a body or an
// upgrade over keep-alive connections it reads and writes on the caller's
// goroutine; everything else goes to full (http.Transport). http.Transport
// hands every request to a writer goroutine and every response back from a
// reader goroutine: on an idle server each hand-off wakes a sleeping
// thread, which showed as most of the latency the proxy added to one
// request at a time. Content processes speak HTTP/1.1 without TLS on a
// loopback (theirs); the address of a request is the process's key.
type loopTransport struct {
	full    *http.Transport
	maxIdle int           // idle connections kept per address
	idleFor time.Duration // an idle connection older than this is closed

	mu        sync.Mutex
	idle      map[string][]*loopConn // by address, most recently used last
	lastPrune time.Time
}

type loopConn struct {
	c    net.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	addr string
	used time.Time // when it went idle
}

func (t *loopTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	switch {
	case req.URL.Scheme != "http",
		req.Method != http.MethodGet && req.Method != http.MethodHead && req.Method != http.MethodOptions,
		req.Body != nil && req.Body != http.NoBody,
		req.Header.Get("Upgrade") != "",
		len(req.Trailer) > 0:
		return t.full.RoundTrip(req)
	}
	ctx := req.Context()
	for {
		target, _ := ctx.Value(targetKey{}).(*target)
		if target == nil {
			return nil, errors.New("proxy: no content process to dial")
		}
		pc, reused, err := t.get(ctx, req.URL.Host, target.dial)
		if err != nil {
			return nil, err
		}
		resp, err := t.roundTrip(ctx, pc, req)
		if err == nil {
			return resp, nil
		}
		pc.c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var stale *staleConnError
		if reused && errors.As(err, &stale) {
			// The process closed this idle connection (gunicorn does after
			// 2 s) before reading the request: safe to send it again.
			continue
		}
		return nil, err
	}
}

// staleConnError: the connection ended before any byte of a response.
type staleConnError struct{ err error }

func (e *staleConnError) Error() string { return e.err.Error() }
func (e *staleConnError) Unwrap() error { return e.err }

func (t *loopTransport) roundTrip(ctx context.Context, pc *loopConn, req *http.Request) (*http.Response, error) {
	// A cancelled request (the client went away) unblocks the reads and
	// writes below, and those of the body.
	stop := context.AfterFunc(ctx, func() { pc.c.SetDeadline(time.Unix(1, 0)) })
	if err := req.Write(pc.bw); err != nil {
		stop()
		return nil, &staleConnError{err}
	}
	if err := pc.bw.Flush(); err != nil {
		stop()
		return nil, &staleConnError{err}
	}
	for {
		if _, err := pc.br.Peek(1); err != nil {
			stop()
			return nil, &staleConnError{err}
		}
		resp, err := http.ReadResponse(pc.br, req)
		if err != nil {
			stop()
			return nil, err
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			// 1xx (103 Early Hints): passed on as http.Transport does.
			if trace := httptrace.ContextClientTrace(ctx); trace != nil && trace.Got1xxResponse != nil {
				if err := trace.Got1xxResponse(resp.StatusCode, textproto.MIMEHeader(resp.Header)); err != nil {
					stop()
					return nil, err
				}
			}
			continue
		}
		resp.Body = &loopBody{rc: resp.Body, t: t, pc: pc, stop: stop, reuse: !resp.Close && !req.Close, left: resp.ContentLength}
		return resp, nil
	}
}

// get returns an idle connection to addr (reused true) or a new one.
func (t *loopTransport) get(ctx context.Context, addr string, dial DialFunc) (*loopConn, bool, error) {
	t.mu.Lock()
	if l := t.idle[addr]; len(l) > 0 {
		pc := l[len(l)-1]
		l[len(l)-1] = nil
		t.idle[addr] = l[:len(l)-1]
		t.mu.Unlock()
		if time.Since(pc.used) < t.idleFor {
			return pc, true, nil
		}
		pc.c.Close()
		return t.get(ctx, addr, dial)
	}
	t.mu.Unlock()
	c, err := dialProcess(ctx, dial)
	if err != nil {
		return nil, false, err
	}
	return &loopConn{c: c, br: bufio.NewReader(c), bw: bufio.NewWriter(c), addr: addr}, false, nil
}

// put keeps pc for the next request to its address; every so often it
// closes connections idle too long (those of processes that stopped).
func (t *loopTransport) put(pc *loopConn) {
	now := time.Now()
	pc.used = now
	t.mu.Lock()
	defer t.mu.Unlock()
	if now.Sub(t.lastPrune) > t.idleFor/4 {
		t.lastPrune = now
		for addr, l := range t.idle {
			keep := l[:0]
			for _, x := range l {
				if now.Sub(x.used) < t.idleFor {
					keep = append(keep, x)
				} else {
					x.c.Close()
				}
			}
			clear(l[len(keep):])
			if len(keep) == 0 {
				delete(t.idle, addr)
			} else {
				t.idle[addr] = keep
			}
		}
	}
	if len(t.idle[pc.addr]) >= t.maxIdle {
		pc.c.Close()
		return
	}
	t.idle[pc.addr] = append(t.idle[pc.addr], pc)
}

// loopBody gives the connection back once the body has been read to its
// end, and closes it when the body is closed before that.
type loopBody struct {
	rc    io.ReadCloser
	t     *loopTransport
	pc    *loopConn
	stop  func() bool
	reuse bool
	done  bool
	left  int64 // bytes of a known length still to come; -1 unknown
}

func (b *loopBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if b.left > 0 {
		b.left -= int64(n)
		if b.left == 0 && err == nil {
			// The whole body is here: give the connection back now, before
			// the proxy writes these bytes to the client, who may send its
			// next request before another Read would have seen io.EOF.
			err = io.EOF
		}
	}
	if err == io.EOF {
		b.finish(true)
	} else if err != nil {
		b.finish(false)
	}
	return n, err
}

func (b *loopBody) Close() error {
	if !b.done {
		b.finish(false)
	}
	return nil
}

func (b *loopBody) finish(complete bool) {
	b.done = true
	// stop is false when the request was cancelled: the connection has a
	// deadline in the past by now.
	// Bytes after the end of the response mean the app does not speak
	// HTTP/1.1 as it should: do not read the next answer from them.
	if b.stop() && complete && b.reuse && b.pc.br.Buffered() == 0 {
		b.t.put(b.pc)
		return
	}
	b.pc.c.Close()
}
