package process

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
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
// Upstream requests carry X-Forwarded-For, -Host and -Proto (inbound ones
// are replaced, not trusted), the original Host, RStudio-Connect-App-Base-URL
// (the content's public URL, from PublicURL or the request) and
// X-RSC-Request (the full public URL of the request). WebSocket upgrades
// pass through; responses are streamed (flushed at once). Access checks are
// the caller's: wrap the Proxy in a handler that checks them.
type Proxy struct {
	// PublicURL is the server's public URL (Server.Address), used for the
	// base URL header; "" means scheme and Host of each request.
	PublicURL string

	log   *slog.Logger
	rp    *httputil.ReverseProxy
	mu    sync.RWMutex
	pools map[string]*Pool
}

type targetKey struct{}

type target struct {
	addr       string
	path, raw  string
	baseURL    string
	requestURL string
}

// NewProxy makes a Proxy with no content.
func NewProxy(logger *slog.Logger, publicURL string) *Proxy {
	if logger == nil {
		logger = slog.Default()
	}
	px := &Proxy{PublicURL: publicURL, log: logger, pools: map[string]*Pool{}}
	px.rp = &httputil.ReverseProxy{
		Rewrite: px.rewrite,
		// Streams (no Content-Length, or text/event-stream) are flushed
		// after every write whatever this says. A response of known length
		// is flushed at least this often: -1 (flush every write) cost a
		// timer goroutine that wrote the headers in a syscall of their own,
		// then another for the body, on every request.
		FlushInterval: 20 * time.Millisecond,
		BufferPool:    bufferPool{},
		// Keep connections to content processes open: the default keeps
		// 2 idle per host, so concurrent requests would open a new TCP
		// connection each.
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          4096,
			MaxIdleConnsPerHost:   512,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
			DisableCompression:    true,
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, context.Canceled) {
				return // the client went away
			}
			px.log.Warn("proxy to content process failed", "path", r.URL.Path, "err", err)
			http.Error(w, "content process unavailable: "+err.Error(), http.StatusBadGateway)
		},
	}
	return px
}

func (px *Proxy) rewrite(pr *httputil.ProxyRequest) {
	t := pr.In.Context().Value(targetKey{}).(*target)
	pr.SetURL(&url.URL{Scheme: "http", Host: t.addr})
	pr.Out.URL.Path, pr.Out.URL.RawPath = t.path, t.raw
	pr.Out.Host = pr.In.Host
	pr.SetXForwarded()
	pr.Out.Header.Set(BaseURLHeader, t.baseURL)
	pr.Out.Header.Set("X-RSC-Request", t.requestURL)
}

// Set registers pool for guid and returns the pool it replaces (nil if none).
func (px *Proxy) Set(guid string, pool *Pool) *Pool {
	px.mu.Lock()
	defer px.mu.Unlock()
	old := px.pools[guid]
	px.pools[guid] = pool
	return old
}

// Remove unregisters guid and returns its pool (nil if none); the caller stops it.
func (px *Proxy) Remove(guid string) *Pool {
	px.mu.Lock()
	defer px.mu.Unlock()
	old := px.pools[guid]
	delete(px.pools, guid)
	return old
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
	prefix := ContentPrefix + guid
	t := &target{path: strings.TrimPrefix(r.URL.Path, prefix)}
	if r.URL.RawPath != "" {
		t.raw = strings.TrimPrefix(r.URL.RawPath, prefix)
	}
	base := strings.TrimSuffix(px.PublicURL, "/")
	if base == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	t.baseURL = base + prefix + "/"
	t.requestURL = base + r.URL.RequestURI()

	var lease *Lease
	for attempt := 0; ; attempt++ {
		pool := px.Pool(guid)
		if pool == nil {
			http.Error(w, "no running content at "+prefix+"/; deploy it first", http.StatusNotFound)
			return
		}
		var err error
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
		break
	}
	defer lease.Release()
	t.addr = lease.Addr()
	px.rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), targetKey{}, t)))
}

// bufferPool reuses the proxy's copy buffers (32 KiB each, allocated per
// request otherwise).
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }
