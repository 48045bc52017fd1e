package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/store"
)

// ProviderProxy is Authentication.Provider = proxy: a trusted front end
// authenticates and names the user in the headers [ProxyAuth] names.
const ProviderProxy = "proxy"

// proxyLoginTTL bounds how long a proxy login is remembered: the same
// headers within it reuse the account without writing to the database; a
// change of name, groups or role at the proxy is seen at once (the headers
// differ), a lock within a read.
const proxyLoginTTL = time.Minute

// proxyLogins remembers recent proxy logins: hash of the headers -> user id.
type proxyLogins struct {
	mu sync.Mutex
	m  map[string]proxyLogin
}

type proxyLogin struct {
	userID int64
	at     time.Time
}

func (p *proxyLogins) get(key string, now time.Time) (int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.m[key]
	if !ok || now.Sub(e.at) > proxyLoginTTL {
		return 0, false
	}
	return e.userID, true
}

func (p *proxyLogins) put(key string, id int64, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil || len(p.m) > 10000 {
		p.m = map[string]proxyLogin{}
	}
	p.m[key] = proxyLogin{userID: id, at: now}
}

// proxyHeaders are the header names [ProxyAuth] configures.
func proxyHeaders(pa config.ProxyAuth) []string {
	var out []string
	for _, h := range []string{pa.UsernameHeader, pa.UniqueIdHeader, pa.FirstNameHeader, pa.LastNameHeader, pa.EmailHeader, pa.RoleHeader, pa.GroupsHeader} {
		if h != "" {
			out = append(out, h)
		}
	}
	return out
}

// trustedPeer says whether the request's TCP peer is one of
// ProxyAuth.TrustedProxies (config check has validated them).
func trustedPeer(r *http.Request, pa config.ProxyAuth) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, t := range pa.TrustedProxies {
		if p, err := config.ParseTrusted(t); err == nil && p.Contains(a) {
			return true
		}
	}
	return false
}

// stripProxyHeaders removes the configured identity headers from r and
// returns the names it found.
func stripProxyHeaders(r *http.Request, pa config.ProxyAuth) []string {
	var found []string
	for _, h := range proxyHeaders(pa) {
		if len(r.Header.Values(h)) > 0 {
			found = append(found, h)
			r.Header.Del(h)
		}
	}
	return found
}

// listHeader reads a multi-valued header: repeated, comma-separated, or both.
func listHeader(r *http.Request, name string) []string {
	if name == "" {
		return nil
	}
	var out []string
	for _, v := range r.Header.Values(name) {
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}

// errDuplicateHeader: a header that must be single came twice, as a
// confused or hostile chain would send it; Connect refuses it too.
var errDuplicateHeader = errors.New("duplicate authentication header")

func singleHeader(r *http.Request, name string) (string, error) {
	if name == "" {
		return "", nil
	}
	vs := r.Header.Values(name)
	switch len(vs) {
	case 0:
		return "", nil
	case 1:
		return strings.TrimSpace(vs[0]), nil
	}
	return "", errDuplicateHeader
}

// proxyIdentity reads the identity a trusted proxy sent; ok is false when
// it names no user (an anonymous request the proxy let through).
func proxyIdentity(r *http.Request, pa config.ProxyAuth) (id Identity, ok bool, err error) {
	username, err := singleHeader(r, pa.UsernameHeader)
	if err != nil || username == "" {
		return Identity{}, false, err
	}
	id = Identity{Provider: ProviderProxy, Username: username, GroupsKnown: pa.GroupsHeader != "",
		Groups: listHeader(r, pa.GroupsHeader), Roles: listHeader(r, pa.RoleHeader)}
	for _, f := range []struct {
		name string
		dst  *string
	}{{pa.UniqueIdHeader, &id.UniqueID}, {pa.FirstNameHeader, &id.FirstName}, {pa.LastNameHeader, &id.LastName}, {pa.EmailHeader, &id.Email}} {
		if *f.dst, err = singleHeader(r, f.name); err != nil {
			return Identity{}, false, err
		}
	}
	return id, true, nil
}

// proxyUser is the account of a proxy login: remembered for
// proxyLoginTTL per distinct identity and role configuration, else
// provisioned (Provision).
func (s *Server) proxyUser(ctx context.Context, az config.Authorization, id Identity) (*store.User, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%q %q %q %q %q %q %v %q %q %+v", id.Provider, id.UniqueID, id.Username, id.FirstName, id.LastName, id.Email, id.GroupsKnown, id.Groups, id.Roles, az)
	key := hex.EncodeToString(h.Sum(nil))
	now := time.Now()
	if uid, ok := s.proxy.get(key, now); ok {
		u, err := s.store.User(ctx, uid)
		if err == nil {
			if u.Locked {
				return nil, &LoginError{"account " + u.Username + " is locked"}
			}
			return u, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
	}
	u, err := Provision(ctx, s.store, s.log, az, id)
	if err != nil {
		return nil, err
	}
	if now.Sub(u.LastLoginAt) > proxyLoginTTL {
		u.LastLoginAt = now
		if err := s.store.UpdateUser(ctx, u); err != nil {
			s.log.Warn("record proxy login", logKeyErr, err)
		}
	}
	s.proxy.put(key, u.ID, now)
	return u, nil
}

// authenticateProxy is authenticate's last way with Provider = proxy: the
// headers of a trusted proxy (those of anyone else were removed first).
func (s *Server) authenticateProxy(next http.Handler, w http.ResponseWriter, r *http.Request, cfg *config.Config) {
	id, ok, err := proxyIdentity(r, cfg.ProxyAuth)
	if err != nil {
		s.log.Warn("proxy authentication refused", logKeyErr, err, logKeyPath, r.URL.Path)
		s.refuse(w, r, http.StatusUnauthorized, "authentication failed")
		return
	}
	if !ok {
		next.ServeHTTP(w, r)
		return
	}
	u, err := s.proxyUser(r.Context(), cfg.Authorization, id)
	var le *LoginError
	switch {
	case errors.As(err, &le):
		s.log.Warn("proxy login refused", logKeyUser, id.Username, logKeyErr, err)
		s.refuse(w, r, http.StatusForbidden, le.Msg)
		return
	case err != nil:
		s.log.Error("proxy login", logKeyUser, id.Username, logKeyErr, err)
		s.refuse(w, r, http.StatusServiceUnavailable, "cannot check credentials now; try again")
		return
	}
	if unsafeMethod(r.Method) && !sameOrigin(r) {
		s.refuse(w, r, http.StatusForbidden, "cross-site request refused: send an API key, or make the request from this server's own pages")
		return
	}
	infoFrom(r).username = u.Username
	next.ServeHTTP(w, r.WithContext(WithUser(r.Context(), u)))
}
