package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/dais-dev/dais/server/store"
)

// The claim page of token authentication (tokenauth.go): the client's
// token_claim_url. The user opens it logged in, by whatever way they log
// in (the page only needs the session), and confirms or refuses. The form
// carries a CSRF token derived from the session, on top of the same-origin
// check every cookie-authenticated write gets.

// TokenClaimPath is the path of a token's claim page.
func TokenClaimPath(token string) string { return "/connect/tokens/" + url.PathEscape(token) }

type tokenData struct {
	PageData
	Token, UserAgent, Address, Created, CSRF string
	Error                                    string
	Done, Refused                            bool
}

// csrfToken binds a form to the browser session that asked for it: an
// HMAC, keyed by the session cookie (which other sites cannot read), of
// what the form does.
func csrfToken(r *http.Request, purpose string) string {
	c, err := r.Cookie(SessionCookie)
	if err != nil || c.Value == "" {
		return ""
	}
	m := hmac.New(sha256.New, []byte(c.Value))
	m.Write([]byte(purpose))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// tokenForClaim loads the token of the page and checks who asks. It
// answers the request itself (login redirect or error page) when it
// returns nil.
func (s *Server) tokenForClaim(w http.ResponseWriter, r *http.Request) (*store.Token, *store.User) {
	u, ok := UserFrom(r.Context())
	if !ok {
		http.Redirect(w, r, "/__login__?next="+url.QueryEscape(TokenClaimPath(r.PathValue("token"))), http.StatusFound)
		return nil, nil
	}
	d := tokenData{PageData: s.pageData(r, "Connect a client"), Token: r.PathValue("token")}
	tok, err := s.store.TokenByToken(r.Context(), d.Token)
	if errors.Is(err, store.ErrNotFound) || (err == nil && tok.UserID == 0 && time.Since(tok.CreatedAt) > UnclaimedTokenLifetime) {
		d.Error = "There is no such token waiting: it may have expired (a token waits an hour for its claim). Connect again from R or RStudio."
		s.render(w, s.pages.token, http.StatusNotFound, d)
		return nil, nil
	}
	if err != nil {
		s.log.Error("token claim: look up token", logKeyErr, err)
		http.Error(w, "cannot look up the token now; try again", http.StatusServiceUnavailable)
		return nil, nil
	}
	if tok.UserID == u.ID {
		d.Done = true
		s.render(w, s.pages.token, http.StatusOK, d)
		return nil, nil
	}
	if tok.UserID != 0 {
		d.Error = "This token was connected by another user already."
		s.render(w, s.pages.token, http.StatusConflict, d)
		return nil, nil
	}
	return tok, u
}

func (s *Server) handleTokenForm(w http.ResponseWriter, r *http.Request) {
	tok, _ := s.tokenForClaim(w, r)
	if tok == nil {
		return
	}
	s.render(w, s.pages.token, http.StatusOK, tokenData{
		PageData: s.pageData(r, "Connect a client"),
		Token:    tok.Token, UserAgent: tok.UserAgent, Address: tok.Address,
		Created: tok.CreatedAt.UTC().Format("2006-01-02 15:04:05 UTC"),
		CSRF:    csrfToken(r, "claim "+tok.Token),
	})
}

type tokenRow struct {
	Token, Short, UserAgent, Claimed, LastUsed, CSRF string
}

type tokenListData struct {
	PageData
	Tokens  []tokenRow
	Message string
}

// handleTokenList is the user's connected clients (claimed tokens), each
// with a button that revokes it.
func (s *Server) handleTokenList(w http.ResponseWriter, r *http.Request) {
	s.renderTokenList(w, r, http.StatusOK, "")
}

func (s *Server) renderTokenList(w http.ResponseWriter, r *http.Request, status int, msg string) {
	u, ok := UserFrom(r.Context())
	if !ok {
		http.Redirect(w, r, "/__login__?next="+url.QueryEscape("/connect/tokens"), http.StatusFound)
		return
	}
	ts, err := s.store.ListTokens(r.Context(), u.ID)
	if err != nil {
		s.log.Error("list tokens", logKeyUser, u.Username, logKeyErr, err)
		http.Error(w, "cannot list the clients now; try again", http.StatusServiceUnavailable)
		return
	}
	d := tokenListData{PageData: s.pageData(r, "Connected clients"), Message: msg}
	for _, t := range ts {
		row := tokenRow{Token: t.Token, Short: shortToken(t.Token), UserAgent: t.UserAgent,
			Claimed: t.ClaimedAt.UTC().Format("2006-01-02 15:04 UTC"), LastUsed: "never", CSRF: csrfToken(r, "revoke "+t.Token)}
		if !t.LastUsedAt.IsZero() {
			row.LastUsed = t.LastUsedAt.UTC().Format("2006-01-02 15:04 UTC")
		}
		d.Tokens = append(d.Tokens, row)
	}
	s.render(w, s.pages.tokens, status, d)
}

// revokeToken is the Revoke button of the list: the user's own token only.
func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, u *store.User) {
	id := r.PathValue("token")
	want := csrfToken(r, "revoke "+id)
	if want == "" || !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(want)) {
		s.renderTokenList(w, r, http.StatusForbidden, "That form is out of date or did not come from this server's page; nothing was revoked.")
		return
	}
	tok, err := s.store.TokenByToken(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && tok.UserID != u.ID) {
		s.renderTokenList(w, r, http.StatusNotFound, "No such client of yours.")
		return
	}
	if err == nil {
		err = s.store.DeleteToken(r.Context(), tok.ID)
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Error("revoke token", logKeyUser, u.Username, logKeyErr, err)
		http.Error(w, "cannot revoke the client now; try again", http.StatusServiceUnavailable)
		return
	}
	s.log.Info("token revoked", logKeyUser, u.Username, "token_id", tok.ID)
	s.renderTokenList(w, r, http.StatusOK, "Revoked: that client's next request is refused.")
}

func (s *Server) handleTokenClaim(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		if status, msg, ok := BodyError(err); ok {
			http.Error(w, msg, status)
			return
		}
		http.Error(w, "malformed form", http.StatusBadRequest)
		return
	}
	if r.PostForm.Get("action") == "revoke" {
		u, ok := UserFrom(r.Context())
		if !ok {
			http.Redirect(w, r, "/__login__?next="+url.QueryEscape("/connect/tokens"), http.StatusSeeOther)
			return
		}
		s.revokeToken(w, r, u)
		return
	}
	tok, u := s.tokenForClaim(w, r)
	if tok == nil {
		return
	}
	d := tokenData{PageData: s.pageData(r, "Connect a client"), Token: tok.Token}
	want := csrfToken(r, "claim "+tok.Token)
	if want == "" || !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(want)) {
		d.Error = "This form is out of date or did not come from this server's page; open the claim link again."
		s.render(w, s.pages.token, http.StatusForbidden, d)
		return
	}
	switch r.PostForm.Get("action") {
	case "claim":
		err := s.store.ClaimToken(r.Context(), tok.ID, u.ID, time.Now())
		if errors.Is(err, store.ErrConflict) {
			d.Error = "This token was connected by another user already."
			s.render(w, s.pages.token, http.StatusConflict, d)
			return
		}
		if err != nil {
			s.log.Error("token claim", logKeyUser, u.Username, logKeyErr, err)
			http.Error(w, "cannot connect the token now; try again", http.StatusServiceUnavailable)
			return
		}
		s.log.Info("token claimed", logKeyUser, u.Username, "token_id", tok.ID, "user_agent", tok.UserAgent)
		RecordAudit(r.Context(), s.store, s.log, u, AuditClaimToken, "Connected a client's token (id "+strconv.FormatInt(tok.ID, 10)+", "+tok.UserAgent+")")
		d.Done = true
	case "refuse":
		if err := s.store.DeleteToken(r.Context(), tok.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Error("token refusal", logKeyUser, u.Username, logKeyErr, err)
			http.Error(w, "cannot remove the token now; try again", http.StatusServiceUnavailable)
			return
		}
		s.log.Info("token refused", logKeyUser, u.Username, "token_id", tok.ID)
		d.Refused = true
	default:
		d.Error = "Choose Connect or Refuse."
		s.render(w, s.pages.token, http.StatusBadRequest, d)
		return
	}
	s.render(w, s.pages.token, http.StatusOK, d)
}
