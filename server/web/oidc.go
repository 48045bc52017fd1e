package web

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/store"
	"golang.org/x/oauth2"
)

// ProviderOAuth2 is Authentication.Provider = oauth2: OpenID Connect.
const ProviderOAuth2 = "oauth2"

// OIDCCallbackPath is the redirect URI's path, as Connect's.
const OIDCCallbackPath = "/__login__/callback"

// oidcCookie carries a login in progress (state, nonce, PKCE verifier,
// where to go after) from /__login__ to the callback; one use.
const oidcCookie = "dais_oidc"

// oidcTimeout bounds each call to the provider (discovery, token,
// userinfo) and a login's round trip through it.
const (
	oidcTimeout   = 15 * time.Second
	oidcLoginLife = 10 * time.Minute
)

// oidcState is the provider's discovery, made at the first login (not at
// start, so that a provider that is down does not stop dais) and kept.
type oidcState struct {
	mu       sync.Mutex
	issuer   string
	provider *oidc.Provider
}

func (o *oidcState) get(ctx context.Context, issuer string) (*oidc.Provider, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider != nil && o.issuer == issuer {
		return o.provider, nil
	}
	ctx, cancel := context.WithTimeout(ctx, oidcTimeout)
	defer cancel()
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, oidcHTTPClient), issuer)
	if err != nil {
		return nil, err
	}
	o.provider, o.issuer = p, issuer
	return p, nil
}

// oidcHTTPClient talks to the provider; the deadline also bounds key
// fetches made in the background of verification.
var oidcHTTPClient = &http.Client{Timeout: oidcTimeout}

type oidcLogin struct {
	State    string    `json:"s"`
	Nonce    string    `json:"n"`
	Verifier string    `json:"v"`
	Next     string    `json:"x"`
	Expires  time.Time `json:"e"`
}

func randomToken() string {
	b := make([]byte, 24)
	rand.Read(b) // never fails on Linux
	return base64.RawURLEncoding.EncodeToString(b)
}

// redirectURL is <Server.Address or this request's origin>/__login__/callback.
func redirectURL(r *http.Request, cfg *config.Config) string {
	base := strings.TrimSuffix(cfg.Server.Address, "/")
	if base == "" {
		scheme := "http"
		if isHTTPS(r) {
			scheme = "https"
		}
		base = scheme + "://" + r.Host
	}
	return base + OIDCCallbackPath
}

func oauthConfig(r *http.Request, cfg *config.Config, p *oidc.Provider) (*oauth2.Config, error) {
	secret, err := cfg.OAuth2.Secret()
	if err != nil {
		return nil, err
	}
	scopes := []string{oidc.ScopeOpenID, "profile", "email"}
	scopes = append(scopes, cfg.OAuth2.CustomScope...)
	return &oauth2.Config{ClientID: cfg.OAuth2.ClientId, ClientSecret: secret,
		Endpoint: p.Endpoint(), RedirectURL: redirectURL(r, cfg), Scopes: scopes}, nil
}

// oidcFail answers a login that cannot go on: a page that says why and
// how to start again. The server keeps serving.
func (s *Server) oidcFail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	s.signinPage(w, r, status, "Sign-in failed", msg, true, "/__login__", "Start again")
}

// handleOIDCLogin starts a login: to the provider with state, nonce and
// PKCE (S256).
func (s *Server) handleOIDCLogin(w http.ResponseWriter, r *http.Request, cfg *config.Config) {
	next := safeNext(r.URL.Query().Get("next"))
	if _, ok := UserFrom(r.Context()); ok {
		http.Redirect(w, r, next, http.StatusFound)
		return
	}
	p, err := s.oidc.get(r.Context(), cfg.OAuth2.OpenIDConnectIssuer)
	if err != nil {
		s.log.Error("OpenID Connect discovery", "issuer", cfg.OAuth2.OpenIDConnectIssuer, logKeyErr, err)
		s.oidcFail(w, r, http.StatusServiceUnavailable, "The sign-in provider cannot be reached now; try again in a moment.")
		return
	}
	l := oidcLogin{State: randomToken(), Nonce: randomToken(), Verifier: oauth2.GenerateVerifier(), Next: next, Expires: time.Now().Add(oidcLoginLife)}
	b, _ := json.Marshal(l)
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: base64.RawURLEncoding.EncodeToString(b), Path: OIDCCallbackPath,
		MaxAge: int(oidcLoginLife / time.Second), HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: isHTTPS(r)})
	oc, err := oauthConfig(r, cfg, p)
	if err != nil {
		s.log.Error("OpenID Connect client secret", logKeyErr, err)
		s.oidcFail(w, r, http.StatusServiceUnavailable, "Sign-in is not available now: the server's OpenID Connect client is misconfigured; tell an administrator.")
		return
	}
	u := oc.AuthCodeURL(l.State, oidc.Nonce(l.Nonce), oauth2.S256ChallengeOption(l.Verifier))
	http.Redirect(w, r, u, http.StatusFound)
}

// handleOIDCCallback ends a login: checks state, exchanges the code with
// the PKCE verifier, verifies the ID token (issuer, audience, expiry,
// signature, nonce), merges the userinfo claims, provisions the account
// and starts a session.
func (s *Server) handleOIDCCallback(w http.ResponseWriter, r *http.Request) {
	cfg := s.Config()
	if cfg.Authentication.Provider != ProviderOAuth2 {
		http.NotFound(w, r)
		return
	}
	c, err := r.Cookie(oidcCookie)
	// One use: a replayed callback finds no login in progress.
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: "", Path: OIDCCallbackPath, MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: isHTTPS(r)})
	var l oidcLogin
	if err == nil {
		if b, derr := base64.RawURLEncoding.DecodeString(c.Value); derr == nil {
			err = json.Unmarshal(b, &l)
		} else {
			err = derr
		}
	}
	q := r.URL.Query()
	switch {
	case err != nil || l.State == "" || time.Now().After(l.Expires):
		s.oidcFail(w, r, http.StatusBadRequest, "No sign-in is in progress in this browser (or it took too long).")
		return
	case q.Get("state") != l.State:
		s.log.Warn("OpenID Connect callback with a wrong state refused")
		s.oidcFail(w, r, http.StatusBadRequest, "This sign-in answer does not belong to the sign-in this browser started.")
		return
	case q.Get("error") != "":
		s.log.Warn("OpenID Connect provider refused the login", "error", q.Get("error"), "description", q.Get("error_description"))
		s.oidcFail(w, r, http.StatusUnauthorized, "The sign-in provider refused the login: "+q.Get("error"))
		return
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(r.Context(), oidcHTTPClient), oidcTimeout)
	defer cancel()
	p, err := s.oidc.get(ctx, cfg.OAuth2.OpenIDConnectIssuer)
	if err != nil {
		s.log.Error("OpenID Connect discovery", "issuer", cfg.OAuth2.OpenIDConnectIssuer, logKeyErr, err)
		s.oidcFail(w, r, http.StatusServiceUnavailable, "The sign-in provider cannot be reached now; try again in a moment.")
		return
	}
	oc, err := oauthConfig(r, cfg, p)
	if err != nil {
		s.log.Error("OpenID Connect client secret", logKeyErr, err)
		s.oidcFail(w, r, http.StatusServiceUnavailable, "Sign-in is not available now: the server's OpenID Connect client is misconfigured; tell an administrator.")
		return
	}
	tok, err := oc.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(l.Verifier))
	if err != nil {
		s.log.Warn("OpenID Connect code exchange", logKeyErr, err)
		s.oidcFail(w, r, http.StatusUnauthorized, "The sign-in provider did not accept the sign-in answer.")
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		s.oidcFail(w, r, http.StatusUnauthorized, "The sign-in provider sent no ID token.")
		return
	}
	idt, err := p.Verifier(&oidc.Config{ClientID: cfg.OAuth2.ClientId}).Verify(ctx, raw)
	if err != nil {
		s.log.Warn("OpenID Connect ID token refused", logKeyErr, err)
		s.oidcFail(w, r, http.StatusUnauthorized, "The sign-in provider's ID token is not valid.")
		return
	}
	if idt.Nonce != l.Nonce {
		s.log.Warn("OpenID Connect ID token with a wrong nonce refused")
		s.oidcFail(w, r, http.StatusUnauthorized, "The sign-in provider's ID token is not valid.")
		return
	}
	claims := map[string]any{}
	if err := idt.Claims(&claims); err != nil {
		s.oidcFail(w, r, http.StatusUnauthorized, "The sign-in provider's ID token is not valid.")
		return
	}
	if p.UserInfoEndpoint() != "" {
		ui, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		switch {
		case err != nil:
			s.log.Warn("OpenID Connect userinfo (using the ID token's claims alone)", logKeyErr, err)
		case ui.Subject != idt.Subject:
			s.log.Warn("OpenID Connect userinfo for another subject ignored")
		default:
			extra := map[string]any{}
			if err := ui.Claims(&extra); err == nil {
				for k, v := range extra {
					if _, ok := claims[k]; !ok {
						claims[k] = v
					}
				}
			}
		}
	}
	id, err := oidcIdentity(cfg.OAuth2, claims)
	if err != nil {
		s.oidcFail(w, r, http.StatusForbidden, err.Error())
		return
	}
	u, err := Provision(r.Context(), s.store, s.log, cfg.Authorization, id)
	var le *LoginError
	switch {
	case errors.As(err, &le):
		s.log.Warn("OpenID Connect login refused", logKeyUser, id.Username, logKeyErr, err)
		s.oidcFail(w, r, http.StatusForbidden, le.Msg)
		return
	case err != nil:
		s.log.Error("OpenID Connect login", logKeyUser, id.Username, logKeyErr, err)
		s.oidcFail(w, r, http.StatusServiceUnavailable, "Cannot sign you in now; try again.")
		return
	}
	s.startSession(w, r, u, l.Next, raw)
}

// oidcIdentity reads the claims [OAuth2] names.
func oidcIdentity(oc config.OAuth2, claims map[string]any) (Identity, error) {
	str := func(name string) string {
		if name == "" {
			return ""
		}
		switch v := claims[name].(type) {
		case string:
			return strings.TrimSpace(v)
		case float64:
			return strings.TrimSpace(fmt.Sprint(v))
		}
		return ""
	}
	id := Identity{Provider: ProviderOAuth2, UniqueID: str(oc.UniqueIdClaim), Username: str(oc.UsernameClaim),
		Email: str(oc.EmailClaim), FirstName: str(oc.FirstNameClaim), LastName: str(oc.LastNameClaim)}
	if id.UniqueID == "" {
		return Identity{}, fmt.Errorf("the sign-in provider sent no %q claim (OAuth2.UniqueIdClaim)", oc.UniqueIdClaim)
	}
	if id.Username == "" {
		if oc.RequireUsernameClaim {
			return Identity{}, fmt.Errorf("the sign-in provider sent no %q claim (OAuth2.UsernameClaim), which this server requires", oc.UsernameClaim)
		}
		id.Username = id.Email
		if id.Username == "" {
			id.Username = id.UniqueID
		}
	}
	if oc.GroupsClaim != "" {
		id.GroupsKnown = true
		switch v := claims[oc.GroupsClaim].(type) {
		case []any:
			for _, g := range v {
				if s, ok := g.(string); ok {
					id.Groups = append(id.Groups, s)
				}
			}
		case string: // some providers send one group, or a comma-separated list, as a string
			for _, g := range strings.Split(v, ",") {
				if g = strings.TrimSpace(g); g != "" {
					id.Groups = append(id.Groups, g)
				}
			}
		}
	}
	return id, nil
}

// startSession makes a session for u, sets its cookie and goes to next.
// idToken is an OpenID Connect sign-in's ID token, kept for logout.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, u *store.User, next, idToken string) {
	token, err := newSessionToken()
	if err != nil {
		http.Error(w, "cannot start a session; try again", http.StatusInternalServerError)
		return
	}
	now := time.Now()
	sess := &store.Session{TokenHash: HashToken(token), UserID: u.ID, CreatedAt: now, ExpiresAt: now.Add(SessionLifetime), IDToken: idToken}
	if err := s.store.CreateSession(r.Context(), sess); err != nil {
		s.log.Error("login: create session", logKeyUser, u.Username, logKeyErr, err)
		http.Error(w, "cannot start a session; try again", http.StatusServiceUnavailable)
		return
	}
	u.LastLoginAt = now
	if err := s.store.UpdateUser(r.Context(), u); err != nil {
		s.log.Warn("login: record last login", logKeyUser, u.Username, logKeyErr, err)
	}
	s.log.Info("login", logKeyUser, u.Username)
	RecordAudit(r.Context(), s.store, s.log, u, AuditLogin, "Logged in")
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: token, Path: "/", Expires: sess.ExpiresAt, HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: isHTTPS(r)})
	http.Redirect(w, r, safeNext(next), http.StatusSeeOther)
}

// providerLogoutURL is where logout sends the browser to end the
// provider's session too (OAuth2.LogoutAtProvider): its
// end_session_endpoint with the sign-in's ID token as id_token_hint and
// the client id. "" when off, when the session has no ID token, or when
// the provider advertises no end_session_endpoint.
func (s *Server) providerLogoutURL(ctx context.Context, cfg *config.Config, idToken string) string {
	if cfg.Authentication.Provider != ProviderOAuth2 || !cfg.OAuth2.LogoutAtProvider || idToken == "" {
		return ""
	}
	p, err := s.oidc.get(ctx, cfg.OAuth2.OpenIDConnectIssuer)
	if err != nil {
		s.log.Warn("logout at the provider: discovery", logKeyErr, err)
		return ""
	}
	var meta struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := p.Claims(&meta); err != nil || meta.EndSession == "" {
		s.log.Warn("logout at the provider: it advertises no end_session_endpoint (OAuth2.LogoutAtProvider)")
		return ""
	}
	u, err := url.Parse(meta.EndSession)
	if err != nil || (u.Scheme != "https" && !(u.Scheme == "http" && config.LoopbackHost(u.Hostname()))) {
		s.log.Warn("logout at the provider: end_session_endpoint is not an https URL", "url", meta.EndSession)
		return ""
	}
	q := u.Query()
	q.Set("id_token_hint", idToken)
	q.Set("client_id", cfg.OAuth2.ClientId)
	u.RawQuery = q.Encode()
	return u.String()
}
