package web

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/dais-dev/dais/server/store"
)

// authorizationKey marks a request context whose Authorization header
// authenticate accepted as a dais API key (Key or Bearer scheme).
type authorizationKey struct{}

// CredentialCookies are the cookies that carry dais credentials. A new way
// to log in that sets a cookie adds its name here, so that it never
// reaches content.
var CredentialCookies = []string{SessionCookie}

// StripCredentials removes from r every dais credential the request
// carries, before it is passed to content: an Authorization header that
// authenticate accepted as an API key (any scheme) or that uses Connect's
// Key scheme, a token's signature headers, and the CredentialCookies.
// Other Authorization values (an app's own Basic or bearer token) and
// other cookies pass unchanged. Call it on the request that goes to the
// content's processes, WebSocket upgrades included.
func StripCredentials(r *http.Request) {
	if accepted, _ := r.Context().Value(authorizationKey{}).(bool); accepted {
		r.Header.Del("Authorization")
	} else if _, scheme, present := apiKeyFrom(r); present && scheme == "key" {
		r.Header.Del("Authorization")
	}
	stripTokenHeaders(r)
	stripCookies(r.Header, CredentialCookies)
}

// stripCookies drops the named cookies from every Cookie header of h,
// leaving the other pairs as the client wrote them.
func stripCookies(h http.Header, names []string) {
	values := h.Values("Cookie")
	if len(values) == 0 {
		return
	}
	var out []string
	changed := false
	for _, v := range values {
		var keep []string
		for _, pair := range strings.Split(v, ";") {
			name, _, _ := strings.Cut(strings.TrimSpace(pair), "=")
			if isCredentialCookie(name, names) {
				changed = true
				continue
			}
			if strings.TrimSpace(pair) != "" {
				keep = append(keep, strings.TrimSpace(pair))
			}
		}
		if len(keep) > 0 {
			out = append(out, strings.Join(keep, "; "))
		}
	}
	if !changed {
		return
	}
	h.Del("Cookie")
	for _, v := range out {
		h.Add("Cookie", v)
	}
}

func isCredentialCookie(name string, names []string) bool {
	for _, n := range names {
		if name == n {
			return true
		}
	}
	return false
}

// The headers that tell content who is looking, as Posit Connect sends
// them: a JSON object {"user": "<username>", "groups": ["<name>", ...]}.
// Shiny apps (R and Python) read ShinyCredentialsHeader into session$user
// and session$groups; APIs and other apps read ConnectCredentialsHeader.
const (
	ShinyCredentialsHeader   = "Shiny-Server-Credentials"
	ConnectCredentialsHeader = "RStudio-Connect-Credentials"
)

// ContentCredentials is the value of the credentials headers.
type ContentCredentials struct {
	User   string   `json:"user"`
	Groups []string `json:"groups"`
}

// SetContentCredentials removes any credentials header the client sent
// (a visitor could otherwise claim to be anyone) and, for a signed-in
// user, sets the one the content reads: ShinyCredentialsHeader for Shiny
// apps, ConnectCredentialsHeader for the others. groups are the names of
// the user's groups. An anonymous visitor gets neither header.
func SetContentCredentials(r *http.Request, u *store.User, groups []string, shiny bool) {
	r.Header.Del(ShinyCredentialsHeader)
	r.Header.Del(ConnectCredentialsHeader)
	if u == nil {
		return
	}
	if groups == nil {
		groups = []string{}
	}
	b, err := json.Marshal(ContentCredentials{User: u.Username, Groups: groups})
	if err != nil {
		return // strings always marshal
	}
	name := ConnectCredentialsHeader
	if shiny {
		name = ShinyCredentialsHeader
	}
	r.Header.Set(name, string(b))
}
