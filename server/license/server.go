// Package license holds dais's floating license leases: the lease server
// (`dais license-server`: a number of seats, leases with a TTL kept in a
// small SQLite file) and the lease client that `dais serve` runs as a
// component when Licensing.LicenseType = remote.
//
// The protocol is HTTP JSON:
//
//	POST   /leases             {"node","instance"} -> 200 lease | 409 all seats taken
//	POST   /leases/{id}/renew  -> 200 lease | 404 unknown or expired
//	DELETE /leases/{id}        -> 200 lease | 404 unknown or expired
//	GET    /status             seats, leases held, recent grants/releases/expiries
//	GET    /__ping__           200 {}
//
// A lease answer is {"id","node","granted_at","expires_at","renewed_at","ttl_ms"}.
// Errors are {"error": "...", "code": N}.
package license

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Log attribute keys.
const (
	logKeyLease   = "lease"
	logKeyNode    = "node"
	logKeyExpires = "expires"
	logKeyInUse   = "in_use"
	logKeySeats   = "seats"
	logKeyErr     = "err"
	logKeyServer  = "server"
	logKeyRetry   = "retry_in"
)

// DefaultPort is the license server's usual port.
const DefaultPort = "8989"

// ServerOptions configure a lease server.
type ServerOptions struct {
	Store *Store
	// Seats is how many leases may be held at once (>= 1).
	Seats int
	// TTL is how long a lease lasts without a renewal (> 0).
	TTL    time.Duration
	Logger *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Server is the lease server's HTTP handler.
type Server struct {
	o   ServerOptions
	mux *http.ServeMux
}

// NewServer checks o and builds the handler.
func NewServer(o ServerOptions) (*Server, error) {
	if o.Store == nil {
		return nil, errors.New("license server: no lease store")
	}
	if o.Seats < 1 {
		return nil, fmt.Errorf("license server: %d seats: give --seats 1 or more", o.Seats)
	}
	if o.TTL <= 0 {
		return nil, fmt.Errorf("license server: TTL %s: give --ttl a positive duration such as 30s", o.TTL)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{o: o, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /__ping__", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, struct{}{}) })
	s.mux.HandleFunc("POST /leases", s.handleAcquire)
	s.mux.HandleFunc("POST /leases/{id}/renew", s.handleRenew)
	s.mux.HandleFunc("DELETE /leases/{id}", s.handleRelease)
	s.mux.HandleFunc("GET /status", s.handleStatus)
	return s, nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// leaseJSON is a lease as the API shows it.
type leaseJSON struct {
	Lease
	TTLMS int64 `json:"ttl_ms"`
}

func (s *Server) leaseJSON(l Lease) leaseJSON {
	return leaseJSON{Lease: l, TTLMS: s.o.TTL.Milliseconds()}
}

type errorJSON struct {
	Error string `json:"error"`
	Code  int    `json:"code"`
	// RetryAfterMS, on 409, is when the first held lease expires unless renewed.
	RetryAfterMS int64 `json:"retry_after_ms,omitempty"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorJSON{Error: msg, Code: code})
}

func (s *Server) logExpired(ls []Lease) {
	for _, l := range ls {
		s.o.Logger.Info("license lease expired", logKeyLease, l.ID, logKeyNode, l.Node, logKeyExpires, l.ExpiresAt)
	}
}

// acquireRequest is the body of POST /leases.
type acquireRequest struct {
	Node     string `json:"node"`
	Instance string `json:"instance"`
}

func (s *Server) handleAcquire(w http.ResponseWriter, r *http.Request) {
	var req acquireRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, `bad request body: send JSON {"node": "<name>"}: `+err.Error())
		return
	}
	req.Node = strings.TrimSpace(req.Node)
	if req.Node == "" || len(req.Node) > 255 {
		writeError(w, http.StatusBadRequest, `"node" must name the server asking for a lease (1-255 characters)`)
		return
	}
	now := s.o.Now()
	l, renewed, expired, held, err := s.o.Store.Acquire(r.Context(), req.Node, req.Instance, s.o.Seats, s.o.TTL, now)
	s.logExpired(expired)
	switch {
	case errors.Is(err, ErrFull):
		var nodes []string
		for _, h := range held {
			nodes = append(nodes, h.Node)
		}
		retry := s.o.TTL
		if len(held) > 0 {
			retry = max(held[0].ExpiresAt.Sub(now), time.Millisecond)
		}
		s.o.Logger.Info("license lease refused: all seats taken", logKeyNode, req.Node, logKeySeats, s.o.Seats, logKeyInUse, len(held))
		w.Header().Set("Retry-After", strconv.Itoa(int((retry+time.Second-1)/time.Second)))
		writeJSON(w, http.StatusConflict, errorJSON{
			Error: fmt.Sprintf("all %d license seats are taken (by %s); a seat frees when its holder stops gracefully or its lease expires",
				s.o.Seats, strings.Join(nodes, ", ")),
			Code: http.StatusConflict, RetryAfterMS: retry.Milliseconds(),
		})
		return
	case err != nil:
		s.o.Logger.Error("acquire license lease", logKeyNode, req.Node, logKeyErr, err)
		writeError(w, http.StatusInternalServerError, "the license server cannot write its lease database: "+err.Error())
		return
	}
	if renewed {
		s.o.Logger.Info("license lease renewed (repeated acquire)", logKeyLease, l.ID, logKeyNode, l.Node, logKeyExpires, l.ExpiresAt)
	} else {
		s.o.Logger.Info("license lease granted", logKeyLease, l.ID, logKeyNode, l.Node, logKeyExpires, l.ExpiresAt,
			logKeyInUse, len(held), logKeySeats, s.o.Seats)
	}
	writeJSON(w, http.StatusOK, s.leaseJSON(l))
}

func (s *Server) handleRenew(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	l, expired, err := s.o.Store.Renew(r.Context(), id, s.o.TTL, s.o.Now())
	s.logExpired(expired)
	switch {
	case errors.Is(err, ErrNotFound):
		s.o.Logger.Info("license lease renewal refused: unknown or expired", logKeyLease, id)
		writeError(w, http.StatusNotFound, "lease "+id+" is unknown or has expired: acquire a new one with POST /leases")
		return
	case err != nil:
		s.o.Logger.Error("renew license lease", logKeyLease, id, logKeyErr, err)
		writeError(w, http.StatusInternalServerError, "the license server cannot write its lease database: "+err.Error())
		return
	}
	s.o.Logger.Info("license lease renewed", logKeyLease, l.ID, logKeyNode, l.Node, logKeyExpires, l.ExpiresAt)
	writeJSON(w, http.StatusOK, s.leaseJSON(l))
}

func (s *Server) handleRelease(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	l, expired, err := s.o.Store.Release(r.Context(), id, s.o.Now())
	s.logExpired(expired)
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "lease "+id+" is unknown or has expired already")
		return
	case err != nil:
		s.o.Logger.Error("release license lease", logKeyLease, id, logKeyErr, err)
		writeError(w, http.StatusInternalServerError, "the license server cannot write its lease database: "+err.Error())
		return
	}
	s.o.Logger.Info("license lease released", logKeyLease, l.ID, logKeyNode, l.Node)
	writeJSON(w, http.StatusOK, s.leaseJSON(l))
}

// Status is the answer of GET /status.
type Status struct {
	Seats  int     `json:"seats"`
	TTLMS  int64   `json:"ttl_ms"`
	TTL    string  `json:"ttl"`
	InUse  int     `json:"in_use"`
	Free   int     `json:"free"`
	Leases []Lease `json:"leases"`
	// Events are the latest grants, releases and expiries, oldest first.
	Events []Event `json:"events"`
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	n := 100
	if v := r.URL.Query().Get("events"); v != "" {
		if i, err := strconv.Atoi(v); err == nil && i >= 0 && i <= keepEvents {
			n = i
		}
	}
	now := s.o.Now()
	leases, err := s.o.Store.Leases(r.Context(), now)
	if err == nil {
		var evs []Event
		if evs, err = s.o.Store.Events(r.Context(), n); err == nil {
			if leases == nil {
				leases = []Lease{}
			}
			writeJSON(w, http.StatusOK, Status{
				Seats: s.o.Seats, TTLMS: s.o.TTL.Milliseconds(), TTL: s.o.TTL.String(),
				InUse: len(leases), Free: max(s.o.Seats-len(leases), 0), Leases: leases, Events: evs,
			})
			return
		}
	}
	writeError(w, http.StatusInternalServerError, "read the lease database: "+err.Error())
}

// sweepEvery is how often expired leases are looked for: a quarter of the
// TTL, between 50 ms and 5 s.
func sweepEvery(ttl time.Duration) time.Duration {
	return min(max(ttl/4, 50*time.Millisecond), 5*time.Second)
}

// Sweep frees expired leases (logging each) every so often until ctx ends.
func (s *Server) Sweep(ctx context.Context) {
	t := time.NewTicker(sweepEvery(s.o.TTL))
	defer t.Stop()
	for {
		expired, err := s.o.Store.Sweep(ctx, s.o.Now())
		if err != nil && ctx.Err() == nil {
			s.o.Logger.Warn("sweep expired license leases", logKeyErr, err)
		}
		s.logExpired(expired)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Serve answers on ln and sweeps until ctx ends, then shuts down.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.o.Logger.Handler(), slog.LevelWarn),
	}
	sweepCtx, stopSweep := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.Sweep(sweepCtx) })
	defer func() { stopSweep(); wg.Wait() }()

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	// Requests here are short; a connection opened but never used (HTTP
	// clients dial ahead) would hold Shutdown for 5 s, so close after 1 s.
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	<-errc
	return nil
}
