package license

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/dais-dev/dais/server/config"
)

// ClientOptions configure a lease client. Zero durations take the defaults.
type ClientOptions struct {
	// Server is the license server: host:port (port 8989 when left out) or
	// an http(s) URL.
	Server string
	// Node names this dais server in the license server's status.
	Node   string
	Logger *slog.Logger
	// HTTP makes the requests; default a client with a 5 s timeout.
	HTTP *http.Client
	// RetryMin and RetryMax bound the exponential backoff after a failed
	// request (default 500 ms and 5 s).
	RetryMin, RetryMax time.Duration
	// FullPoll is how often to ask again while all seats are taken
	// (default 2 s): a seat released by a graceful stop is taken up within it.
	FullPoll time.Duration
	// StartWait is how long Start waits for the first lease before it
	// returns unlicensed and goes on trying in the background (default 5 s).
	StartWait time.Duration
	// ReleaseTimeout bounds the release on Stop when Stop's ctx has no
	// earlier deadline (default 10 s).
	ReleaseTimeout time.Duration
}

// Client holds a floating license lease for dais serve: it acquires one at
// Start (retrying with backoff in the background), renews it at a third of
// its TTL, rides out a license server outage until the lease would expire,
// and releases it at Stop. It is a serve.Component; Licensed is the web
// server's gate.
type Client struct {
	o        ClientOptions
	base     string // the license server's URL, without a trailing slash
	instance string
	log      *slog.Logger

	mu       sync.Mutex
	lease    *Lease    // the lease held, nil when none
	deadline time.Time // when the lease ends by our clock (request sent + TTL)
	renewAt  time.Time
	reason   string // why no lease is held
	// expired says when the last lease ran out without a renewal, until a
	// new one is granted: the reasons keep saying so.
	expired string
	lastErr string // the last failed request, for the reasons
	stopped bool

	cancel    context.CancelFunc
	wg        sync.WaitGroup
	firstDone chan struct{}
}

// ServerURL turns a Licensing.LicenseServer value into the server's URL:
// host:port or host (port 8989) gets http://.
func ServerURL(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("no license server: set Licensing.LicenseServer (or RSC_LICENSE_SERVER) to host:port or a URL")
	}
	bare := !strings.Contains(s, "://")
	if bare {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("license server %q is neither host:port nor an http(s) URL: fix Licensing.LicenseServer or RSC_LICENSE_SERVER", strings.TrimPrefix(s, "http://"))
	}
	if bare && u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), DefaultPort)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// NewClient checks o and builds a client; nothing is sent before Start.
func NewClient(o ClientOptions) (*Client, error) {
	base, err := ServerURL(o.Server)
	if err != nil {
		return nil, err
	}
	if o.Node == "" {
		o.Node = "dais"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: 5 * time.Second}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.RetryMin, 500*time.Millisecond)
	def(&o.RetryMax, 5*time.Second)
	def(&o.FullPoll, 2*time.Second)
	def(&o.StartWait, 5*time.Second)
	def(&o.ReleaseTimeout, 10*time.Second)
	return &Client{
		o: o, base: base, instance: newID(), log: o.Logger.With(logKeyServer, base),
		reason:    "waiting for a license lease from " + base,
		firstDone: make(chan struct{}),
	}, nil
}

// ForConfig builds the client Licensing asks for: nil (no error) for
// LicenseType none, a Client for remote.
func ForConfig(l config.Licensing, node string, log *slog.Logger) (*Client, error) {
	switch l.LicenseType {
	case "", "none":
		return nil, nil
	case "remote":
		c, err := NewClient(ClientOptions{Server: l.LicenseServer, Node: node, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("Licensing.LicenseType = remote: %w", err)
		}
		return c, nil
	default:
		return nil, fmt.Errorf("Licensing.LicenseType = %q: use none or remote", l.LicenseType)
	}
}

// Name is the component's name.
func (c *Client) Name() string { return "license" }

// Licensed says whether a lease is held now, and if not why: the web
// server's gate (cheap; called on every /__ping__ and /content/ request).
func (c *Client) Licensed() (bool, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lease != nil && time.Now().Before(c.deadline) {
		return true, ""
	}
	if c.lease != nil {
		return false, c.expiredReasonLocked()
	}
	return false, c.reason
}

func (c *Client) expiredReasonLocked() string {
	return fmt.Sprintf("the license lease expired at %s: the license server %s could not renew it (%s); retrying",
		c.deadline.UTC().Format(time.RFC3339), c.base, c.lastErr)
}

// Start asks for a lease and returns once one is held, or after
// StartWait: the server then starts unlicensed (402) while the client goes
// on trying in the background. It never fails on the license server's account.
func (c *Client) Start(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.wg.Go(func() { c.run(runCtx) })
	t := time.NewTimer(c.o.StartWait)
	defer t.Stop()
	select {
	case <-c.firstDone:
	case <-t.C:
	case <-ctx.Done():
	}
	if ok, reason := c.Licensed(); !ok {
		c.log.Warn("starting without a license lease: /__ping__ answers 402 and content is not served until one is granted", "reason", reason)
	}
	return nil
}

// Stop ends the renewals and releases the lease, retrying within ctx's
// deadline or ReleaseTimeout, whichever comes first. The outcome is logged;
// a lease not released frees itself when its TTL runs out.
func (c *Client) Stop(ctx context.Context) error {
	if c.cancel != nil {
		c.cancel()
		c.wg.Wait()
	}
	c.mu.Lock()
	l, deadline := c.lease, c.deadline
	c.stopped = true
	c.mu.Unlock()
	if l == nil {
		c.log.Info("no license lease to release")
		return nil
	}
	if !time.Now().Before(deadline) {
		c.log.Info("license lease not released: it had expired already", logKeyLease, l.ID, logKeyExpires, l.ExpiresAt)
		c.setLease(nil, "stopped")
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.o.ReleaseTimeout)
	defer cancel()
	wait := 200 * time.Millisecond
	var err error
	for attempt := 1; ; attempt++ {
		var code int
		code, _, err = c.call(ctx, http.MethodDelete, "/leases/"+url.PathEscape(l.ID), nil)
		switch {
		case err == nil && code == http.StatusOK:
			c.log.Info("license lease released", logKeyLease, l.ID, logKeyNode, c.o.Node)
			c.setLease(nil, "stopped: the license lease was released")
			return nil
		case err == nil && code == http.StatusNotFound:
			c.log.Info("license lease released (the license server had freed it already)", logKeyLease, l.ID)
			c.setLease(nil, "stopped")
			return nil
		case err == nil:
			err = fmt.Errorf("the license server answered %d", code)
		}
		if ctx.Err() != nil {
			break
		}
		c.log.Debug("release license lease: retrying", "attempt", attempt, logKeyErr, err)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		if ctx.Err() != nil {
			break
		}
		wait = min(2*wait, 2*time.Second)
	}
	c.log.Warn(fmt.Sprintf("license lease NOT released: %v; it frees itself at %s", err, l.ExpiresAt.Format(time.RFC3339)),
		logKeyLease, l.ID, logKeyExpires, l.ExpiresAt)
	c.setLease(nil, "stopped")
	return nil
}

func (c *Client) setLease(l *Lease, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lease = l
	if reason != "" {
		c.reason = reason
	}
}

// run holds a lease until ctx ends.
func (c *Client) run(ctx context.Context) {
	backoff := c.o.RetryMin
	first := true
	for {
		var wait time.Duration
		c.mu.Lock()
		held, deadline, renewAt := c.lease, c.deadline, c.renewAt
		c.mu.Unlock()
		now := time.Now()
		switch {
		case held != nil && !now.Before(deadline):
			c.mu.Lock()
			reason := c.expiredReasonLocked()
			c.lease, c.reason = nil, reason
			c.expired = "the license lease expired at " + deadline.UTC().Format(time.RFC3339) + "; "
			c.mu.Unlock()
			c.log.Error("license lease expired without a renewal: content is not served (402) until a new lease is granted",
				logKeyLease, held.ID, "reason", reason)
		case held != nil && now.Before(renewAt):
			wait = renewAt.Sub(now)
		case held != nil:
			wait = c.renew(ctx, held, &backoff)
		default:
			wait = c.acquire(ctx, &backoff)
			if first {
				first = false
				close(c.firstDone)
			}
		}
		if wait <= 0 {
			if ctx.Err() != nil {
				return
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// grant records a lease granted or renewed by a request sent at sent.
func (c *Client) grant(l Lease, ttl time.Duration, sent time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lease = &l
	// Our clock, from when the request left: never later than the server's.
	c.deadline = sent.Add(ttl)
	c.renewAt = sent.Add(ttl / 3)
	c.lastErr, c.expired = "", ""
	return time.Until(c.renewAt)
}

func (c *Client) acquire(ctx context.Context, backoff *time.Duration) time.Duration {
	body, _ := json.Marshal(acquireRequest{Node: c.o.Node, Instance: c.instance})
	sent := time.Now()
	code, resp, err := c.call(ctx, http.MethodPost, "/leases", body)
	if ctx.Err() != nil {
		return 0
	}
	switch {
	case err == nil && code == http.StatusOK:
		var l leaseJSON
		if err = json.Unmarshal(resp, &l); err == nil && l.ID != "" && l.TTLMS > 0 {
			*backoff = c.o.RetryMin
			ttl := time.Duration(l.TTLMS) * time.Millisecond
			c.log.Info("license lease acquired", logKeyLease, l.ID, logKeyNode, c.o.Node, logKeyExpires, l.ExpiresAt, "ttl", ttl.String())
			return c.grant(l.Lease, ttl, sent)
		}
		err = fmt.Errorf("unexpected answer to POST /leases: %.200s", resp)
	case err == nil && code == http.StatusConflict:
		var e errorJSON
		_ = json.Unmarshal(resp, &e)
		wait := c.o.FullPoll
		if e.RetryAfterMS > 0 {
			wait = min(wait, time.Duration(e.RetryAfterMS)*time.Millisecond+50*time.Millisecond)
		}
		c.unlicensed("waiting for a free license seat: "+e.Error, "", slog.LevelInfo, wait)
		*backoff = c.o.RetryMin
		return wait
	case err == nil:
		err = fmt.Errorf("the license server answered %d: %.200s", code, bytes.TrimSpace(resp))
	}
	wait := *backoff
	*backoff = min(2**backoff, c.o.RetryMax)
	c.unlicensed("cannot get a license lease from "+c.base+": "+err.Error(), err.Error(), slog.LevelWarn, wait)
	return wait
}

// unlicensed records why no lease is held, logging when the reason changes.
func (c *Client) unlicensed(reason, lastErr string, level slog.Level, retry time.Duration) {
	c.mu.Lock()
	reason = c.expired + reason
	changed := reason != c.reason
	c.reason = reason
	if lastErr != "" {
		c.lastErr = lastErr
	}
	c.mu.Unlock()
	if changed {
		c.log.Log(context.Background(), level, "no license lease: "+reason, logKeyRetry, retry.Round(time.Millisecond).String())
	}
}

func (c *Client) renew(ctx context.Context, l *Lease, backoff *time.Duration) time.Duration {
	sent := time.Now()
	code, resp, err := c.call(ctx, http.MethodPost, "/leases/"+url.PathEscape(l.ID)+"/renew", nil)
	if ctx.Err() != nil {
		return 0
	}
	switch {
	case err == nil && code == http.StatusOK:
		var nl leaseJSON
		if err = json.Unmarshal(resp, &nl); err == nil && nl.TTLMS > 0 {
			*backoff = c.o.RetryMin
			c.log.Debug("license lease renewed", logKeyLease, nl.ID, logKeyExpires, nl.ExpiresAt)
			return c.grant(nl.Lease, time.Duration(nl.TTLMS)*time.Millisecond, sent)
		}
		err = fmt.Errorf("unexpected answer to renew: %.200s", resp)
	case err == nil && code == http.StatusNotFound:
		c.log.Warn("license lease lost: the license server no longer knows it (it expired there, or its database was replaced); asking for a new one",
			logKeyLease, l.ID)
		c.setLease(nil, "the license lease was lost; asking the license server "+c.base+" for a new one")
		return 0
	case err == nil:
		err = fmt.Errorf("the license server answered %d: %.200s", code, bytes.TrimSpace(resp))
	}
	c.mu.Lock()
	c.lastErr = err.Error()
	left := time.Until(c.deadline)
	c.mu.Unlock()
	wait := min(*backoff, max(left, 0))
	*backoff = min(2**backoff, c.o.RetryMax)
	c.log.Warn("renew license lease failed; still licensed until the lease expires", logKeyLease, l.ID,
		logKeyErr, err, "licensed_for", left.Round(time.Millisecond).String(), logKeyRetry, wait.Round(time.Millisecond).String())
	return wait
}

// call sends one request and returns the status and the body.
func (c *Client) call(ctx context.Context, method, path string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.o.HTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, b, err
}
