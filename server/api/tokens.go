package api

import (
	"errors"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/dais-dev/dais/server/authz"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

// Tokens of Connect's token authentication (R rsconnect's connectUser(),
// the RStudio IDE's publish wizard); server/web/tokenauth.go checks the
// signed requests, server/web/tokens.go is the claim page.

// maxTokenBody bounds POST /__api__/tokens, which needs no credentials: a
// token id and a public key of a few KiB.
const maxTokenBody = 64 << 10

// tokenIDPattern is what a client may choose as a token id: rsconnect's is
// "T" and 32 hex digits.
var tokenIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{8,128}$`)

// tokenJSON is a token as GET /__api__/tokens shows it.
type tokenJSON struct {
	ID           int64      `json:"id"`
	Token        string     `json:"token"`
	UserGUID     string     `json:"user_guid"`
	UserAgent    string     `json:"user_agent"`
	CreatedTime  time.Time  `json:"created_time"`
	ClaimedTime  *time.Time `json:"claimed_time"`
	LastUsedTime *time.Time `json:"last_used_time"`
}

func newTokenJSON(t *store.Token, owner *store.User) tokenJSON {
	j := tokenJSON{ID: t.ID, Token: t.Token, UserGUID: owner.GUID, UserAgent: t.UserAgent, CreatedTime: t.CreatedAt.UTC()}
	if !t.ClaimedAt.IsZero() {
		c := t.ClaimedAt.UTC()
		j.ClaimedTime = &c
	}
	if !t.LastUsedAt.IsZero() {
		l := t.LastUsedAt.UTC()
		j.LastUsedTime = &l
	}
	return j
}

// createToken is POST /__api__/tokens {token, public_key, user_id}: no
// credentials needed (the client has none yet); the answer's
// token_claim_url is the page where a logged-in user claims the token.
func (a *API) createToken(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Token     string `json:"token"`
		PublicKey string `json:"public_key"`
		UserID    any    `json:"user_id"` // rsconnect sends 0; the claim decides the user
	}
	if err := web.DecodeJSON(r, &body); err != nil {
		return err
	}
	if !tokenIDPattern.MatchString(body.Token) {
		return errStatus(http.StatusBadRequest, "token must be 8 to 128 letters, digits, '-' or '_' (rsconnect sends \"T\" and 32 hex digits)")
	}
	if _, err := web.ParseTokenKey(body.PublicKey); err != nil {
		return errStatus(http.StatusBadRequest, err.Error()+" (send base64 of the DER of an RSA public key)")
	}
	ctx := r.Context()
	now := time.Now()
	if _, err := a.st.DeleteUnclaimedTokens(ctx, now.Add(-web.UnclaimedTokenLifetime)); err != nil {
		return err
	}
	addr, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		addr = r.RemoteAddr
	}
	for _, lim := range []struct {
		from string
		max  int
	}{{addr, web.MaxUnclaimedTokensPerAddress}, {"", web.MaxUnclaimedTokens}} {
		n, err := a.st.CountUnclaimedTokens(ctx, lim.from)
		if err != nil {
			return err
		}
		if n >= lim.max {
			return errStatus(http.StatusTooManyRequests, "too many tokens are waiting for their claim; claim or refuse them, or try again later (unclaimed tokens expire after "+web.UnclaimedTokenLifetime.String()+")")
		}
	}
	ua := r.UserAgent()
	if len(ua) > 200 {
		ua = ua[:200]
	}
	t := &store.Token{Token: body.Token, PublicKey: body.PublicKey, UserAgent: ua, Address: addr}
	if err := a.st.CreateToken(ctx, t); errors.Is(err, store.ErrConflict) {
		return errStatus(http.StatusConflict, "token "+body.Token+" exists already: make a new one")
	} else if err != nil {
		return err
	}
	a.log.Info("token created", "token_id", t.ID, "user_agent", ua, "address", addr)
	web.WriteJSON(w, http.StatusOK, map[string]any{
		"id":              t.ID,
		"token":           t.Token,
		"token_claim_url": a.publicBase(r) + web.TokenClaimPath(t.Token),
	})
	return nil
}

// tokenOwner is the user whose tokens a request lists or revokes: the
// caller, or with ?user_guid= another user, for administrators.
func (a *API) tokenOwner(r *http.Request) (*store.User, error) {
	u, err := needUser(r)
	if err != nil {
		return nil, err
	}
	guid := r.URL.Query().Get("user_guid")
	if guid == "" || guid == u.GUID {
		return u, nil
	}
	if !authz.HasRole(u, store.RoleAdministrator) {
		return nil, errStatus(http.StatusForbidden, "only administrators see other users' tokens")
	}
	o, err := a.st.UserByGUID(r.Context(), guid)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errStatus(http.StatusNotFound, "no user "+guid)
	}
	return o, err
}

// listTokens is GET /__api__/tokens[?user_guid=]: the claimed tokens.
func (a *API) listTokens(w http.ResponseWriter, r *http.Request) error {
	o, err := a.tokenOwner(r)
	if err != nil {
		return err
	}
	ts, err := a.st.ListTokens(r.Context(), o.ID)
	if err != nil {
		return err
	}
	out := make([]tokenJSON, 0, len(ts))
	for i := range ts {
		out = append(out, newTokenJSON(&ts[i], o))
	}
	web.WriteJSON(w, http.StatusOK, out)
	return nil
}

// deleteToken is DELETE /__api__/tokens/{id}: revokes a token of the
// caller's (any user's, for administrators). Its next request is refused.
func (a *API) deleteToken(w http.ResponseWriter, r *http.Request) error {
	u, err := needUser(r)
	if err != nil {
		return err
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return errStatus(http.StatusNotFound, "no token "+r.PathValue("id")+": ids are numbers")
	}
	t, err := a.st.Token(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && t.UserID != u.ID && !authz.HasRole(u, store.RoleAdministrator)) {
		return errStatus(http.StatusNotFound, "no token "+r.PathValue("id"))
	}
	if err != nil {
		return err
	}
	if err := a.st.DeleteToken(r.Context(), id); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	a.log.Info("token revoked", "token_id", id, logKeyUser, u.Username)
	web.WriteJSON(w, http.StatusOK, struct{}{})
	return nil
}
