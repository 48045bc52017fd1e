package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/dais-dev/dais/server/authz"
	"github.com/dais-dev/dais/server/store"
	"golang.org/x/crypto/bcrypt"
)

// SessionCookie is the name of the browser session cookie.
const SessionCookie = "dais_session"

// SessionLifetime is how long a login lasts.
const SessionLifetime = 7 * 24 * time.Hour

// keyTouchInterval bounds how often an API key's last use is written, so
// that a busy client does not turn every read into a database write.
const keyTouchInterval = time.Minute

// HashPassword hashes a password with bcrypt (golang.org/x/crypto).
func HashPassword(password string) (string, error) {
	if password == "" {
		return "", errors.New("empty password")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// CheckPassword tells whether password matches a HashPassword hash.
func CheckPassword(hash, password string) bool {
	return hash != "" && bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}

// dummyHash is compared against when a login names an unknown user, so an
// unknown user takes as long to refuse as a wrong password.
// Made on first use: hashing costs tens of milliseconds, which every dais
// command would otherwise pay at start.
var dummyHash = sync.OnceValue(func() string {
	h, _ := bcrypt.GenerateFromPassword([]byte("dais-no-such-user"), bcrypt.DefaultCost)
	return string(h)
})

// HashToken is how API keys and session tokens are stored: hex sha256.
// They are long random secrets, so a fast hash is enough.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// NewAPIKey makes a random API key (32 hex characters, 128 bits) and the
// record to store for it; only the hash is kept. The caller fills UserID
// and Name, and shows key to the user once.
func NewAPIKey() (key string, rec store.APIKey, err error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", store.APIKey{}, fmt.Errorf("make API key: %w", err)
	}
	key = hex.EncodeToString(b)
	return key, store.APIKey{Hash: HashToken(key), Prefix: key[:6]}, nil
}

func newSessionToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make session token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// apiKeyFrom returns the key of "Authorization: Key <k>" (Connect's
// scheme; "Bearer <k>" is accepted too) and the scheme, lower case. Any
// other Authorization (Basic, ...) is not dais's: present is false and it
// reaches content unchanged.
func apiKeyFrom(r *http.Request) (key, scheme string, present bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", "", false
	}
	scheme, key, _ = strings.Cut(strings.TrimSpace(h), " ")
	scheme = strings.ToLower(scheme)
	switch scheme {
	case "key", "bearer":
		return strings.TrimSpace(key), scheme, true
	}
	return "", "", false
}

// authenticate finds the user of a request: an API key in Authorization
// first, else a token's signature (tokenauth.go), else the session cookie. A bad key is refused with 401; a bad or
// expired cookie just means "not logged in". Unsafe requests authenticated
// by the cookie alone must come from the same origin (CSRF).
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.store == nil {
			next.ServeHTTP(w, r)
			return
		}
		ctx := r.Context()
		cfg := s.Config()
		proxied := cfg.Authentication.Provider == ProviderProxy
		if proxied && !trustedPeer(r, cfg.ProxyAuth) {
			if found := stripProxyHeaders(r, cfg.ProxyAuth); len(found) > 0 {
				s.log.Warn("proxy authentication headers from an address not in ProxyAuth.TrustedProxies removed",
					"remote", r.RemoteAddr, "headers", strings.Join(found, ","), logKeyPath, r.URL.Path)
			}
		}
		if key, scheme, present := apiKeyFrom(r); present {
			u, err := s.userByKey(r, key)
			if err != nil {
				if errors.Is(err, errBadKey) && scheme == "bearer" && strings.HasPrefix(r.URL.Path, "/content/") {
					// Not a dais key: an app's own bearer token. Content
					// gets it unchanged; to dais the request is anonymous.
					if proxied {
						s.authenticateProxy(next, w, r, cfg)
						return
					}
					s.authenticateCookie(next, w, r)
					return
				}
				if errors.Is(err, errBadKey) {
					s.refuse(w, r, http.StatusUnauthorized, "invalid API key: send 'Authorization: Key <key>' with a key from 'dais keys create --user NAME'")
					return
				}
				s.log.Error("authenticate API key", logKeyErr, err)
				s.refuse(w, r, http.StatusServiceUnavailable, "cannot check credentials now; try again")
				return
			}
			if u.Locked {
				s.refuse(w, r, http.StatusUnauthorized, "account "+u.Username+" is locked")
				return
			}
			infoFrom(r).username = u.Username
			ctx = context.WithValue(WithUser(ctx, u), authorizationKey{}, true)
			next.ServeHTTP(w, r.WithContext(ctx))
			return
		}
		if signedRequest(r) {
			u, r2, err := s.userByToken(r)
			var ae *authError
			switch {
			case errors.As(err, &ae):
				s.refuse(w, r, ae.status, ae.msg)
				return
			case err != nil:
				s.log.Error("authenticate token", logKeyErr, err)
				s.refuse(w, r, http.StatusServiceUnavailable, "cannot check credentials now; try again")
				return
			case u.Locked:
				s.refuse(w, r, http.StatusUnauthorized, "account "+u.Username+" is locked")
				return
			}
			infoFrom(r).username = u.Username
			next.ServeHTTP(w, r2.WithContext(context.WithValue(WithUser(ctx, u), authorizationKey{}, true)))
			return
		}
		if proxied {
			s.authenticateProxy(next, w, r, cfg)
			return
		}
		s.authenticateCookie(next, w, r)
	})
}

// authenticateCookie is authenticate's second way: the session cookie.
func (s *Server) authenticateCookie(next http.Handler, w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
		u, err := s.userBySession(r, c.Value)
		switch {
		case err == nil && !u.Locked:
			if unsafeMethod(r.Method) && !sameOrigin(r) {
				s.refuse(w, r, http.StatusForbidden, "cross-site request refused: send an API key, or make the request from this server's own pages")
				return
			}
			infoFrom(r).username = u.Username
			next.ServeHTTP(w, r.WithContext(WithUser(r.Context(), u)))
			return
		case err != nil && !errors.Is(err, store.ErrNotFound):
			s.log.Error("authenticate session", logKeyErr, err)
		}
	}
	next.ServeHTTP(w, r)
}

var errBadKey = errors.New("invalid API key")

func (s *Server) userByKey(r *http.Request, key string) (*store.User, error) {
	if key == "" {
		return nil, errBadKey
	}
	ctx := r.Context()
	k, err := s.store.APIKeyByHash(ctx, HashToken(key))
	if errors.Is(err, store.ErrNotFound) {
		return nil, errBadKey
	}
	if err != nil {
		return nil, err
	}
	u, err := s.store.User(ctx, k.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errBadKey
	}
	if err != nil {
		return nil, err
	}
	if now := time.Now(); now.Sub(k.LastUsedAt) > keyTouchInterval {
		if err := s.store.TouchAPIKey(ctx, k.ID, now); err != nil {
			s.log.Warn("record API key use", logKeyErr, err)
		}
	}
	return u, nil
}

func (s *Server) userBySession(r *http.Request, token string) (*store.User, error) {
	ctx := r.Context()
	sess, err := s.store.Session(ctx, HashToken(token), time.Now())
	if err != nil {
		return nil, err
	}
	return s.store.User(ctx, sess.UserID)
}

// refuse answers an authentication failure: JSON under /__api__, text elsewhere.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, status int, msg string) {
	closeUnread(w, r)
	if isAPI(r.URL.Path) {
		WriteError(w, status, msg)
		return
	}
	http.Error(w, msg, status)
}

func unsafeMethod(m string) bool {
	return m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions
}

// sameOrigin tells whether a browser request came from this server's own
// pages: by Sec-Fetch-Site, else by Origin, else by Referer.
func sameOrigin(r *http.Request) bool {
	if sfs := r.Header.Get("Sec-Fetch-Site"); sfs != "" {
		return sfs == "same-origin" || sfs == "none"
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		origin = r.Referer()
	}
	if origin == "" {
		// Not a browser (browsers send Origin on unsafe requests).
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

// RequireRole lets a request through only for an authenticated user with
// at least role: 401 without a user, 403 with a lesser role.
func RequireRole(role string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, ok := UserFrom(r.Context())
			if !ok {
				msg := "authentication required: send an API key as 'Authorization: Key <key>'"
				if isAPI(r.URL.Path) {
					WriteError(w, http.StatusUnauthorized, msg)
				} else {
					http.Error(w, msg, http.StatusUnauthorized)
				}
				return
			}
			if !authz.HasRole(u, role) {
				msg := fmt.Sprintf("user %s has role %s; this needs %s or above (an administrator can change it with 'dais users role')", u.Username, u.Role, role)
				if isAPI(r.URL.Path) {
					WriteError(w, http.StatusForbidden, msg)
				} else {
					http.Error(w, msg, http.StatusForbidden)
				}
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}
