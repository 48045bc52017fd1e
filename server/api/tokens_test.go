package api_test

import (
	"context"
	"crypto"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

// tokenClient signs requests as R rsconnect's signatureHeaders does.
type tokenClient struct {
	id  string
	key *rsa.PrivateKey
	n   int // requests signed: each gets its own second, as a client's do
	t0  time.Time
}

func newTokenClient(t *testing.T) *tokenClient {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return &tokenClient{id: fmt.Sprintf("T%x", b), key: key, t0: time.Now()}
}

func (c *tokenClient) publicKey(t *testing.T) string {
	der, err := x509.MarshalPKIXPublicKey(&c.key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

// signed is one signed request; fields left zero take rsconnect's values.
type signed struct {
	method, path, body string
	date               time.Time
	key                *rsa.PrivateKey // another key than the token's
	checksum           string          // overrides the body's
	signature          string          // overrides the computed one
}

func (c *tokenClient) request(t *testing.T, base string, s signed) *http.Request {
	t.Helper()
	if s.date.IsZero() {
		// The same request twice in one second has the same signature:
		// a replay. A test's requests come faster than a client's.
		s.date = c.t0.Add(-time.Duration(c.n) * time.Second)
		c.n++
	}
	date := s.date.UTC().Format(http.TimeFormat)
	sum := md5.Sum([]byte(s.body))
	checksum := base64.StdEncoding.EncodeToString(sum[:])
	if s.checksum != "" {
		checksum = s.checksum
	}
	path, _, _ := strings.Cut(s.path, "?")
	digest := sha1.Sum([]byte(s.method + "\n" + path + "\n" + date + "\n" + checksum))
	key := c.key
	if s.key != nil {
		key = s.key
	}
	raw, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA1, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := base64.StdEncoding.EncodeToString(raw)
	if s.signature != "" {
		sig = s.signature
	}
	var body io.Reader
	if s.body != "" {
		body = strings.NewReader(s.body)
	}
	req, err := http.NewRequest(s.method, base+s.path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Date", date)
	req.Header.Set("X-Auth-Token", c.id)
	req.Header.Set("X-Auth-Signature", sig)
	req.Header.Set("X-Content-Checksum", checksum)
	if s.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

func send(t *testing.T, client *http.Client, req *http.Request) answer {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func wantStatus(t *testing.T, what string, a answer, status int, in string) {
	t.Helper()
	if a.status != status || !strings.Contains(a.body, in) {
		t.Fatalf("%s: status %d, body %s; want %d containing %q", what, a.status, a.body, status, in)
	}
}

// browser logs in as the user through the login form and keeps the cookie.
func browser(t *testing.T, f *fixture, u *store.User) *http.Client {
	t.Helper()
	hash, err := web.HashPassword("pw-" + u.Username)
	if err != nil {
		t.Fatal(err)
	}
	u.PasswordHash = hash
	if err := f.st.UpdateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.PostForm(f.ts.URL+"/__login__", url.Values{"username": {u.Username}, "password": {"pw-" + u.Username}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/connect/" {
		t.Fatalf("login: status %d at %s", resp.StatusCode, resp.Request.URL)
	}
	return c
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// claimForm opens the claim page as the browser and returns its CSRF token.
func claimForm(t *testing.T, c *http.Client, claimURL string) string {
	t.Helper()
	resp, err := c.Get(claimURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := csrfField.FindStringSubmatch(string(b))
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("claim page: status %d, no CSRF field in %s", resp.StatusCode, b)
	}
	return m[1]
}

func postClaim(t *testing.T, c *http.Client, claimURL string, form url.Values, origin string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, claimURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", origin)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestTokenAuthentication(t *testing.T) {
	f := newFixture(t)
	pub := f.users[store.RolePublisher]
	tc := newTokenClient(t)
	anon := http.DefaultClient

	// 1. The client registers its key, without credentials (rsconnect
	// sends X-Auth-Token: anonymous-access).
	body := fmt.Sprintf(`{"token": %q, "public_key": %q, "user_id": 0}`, tc.id, tc.publicKey(t))
	req, _ := http.NewRequest(http.MethodPost, f.ts.URL+"/__api__/tokens", strings.NewReader(body))
	req.Header.Set("X-Auth-Token", "anonymous-access")
	req.Header.Set("User-Agent", "rsconnect/1.3.0")
	a := send(t, anon, req)
	wantStatus(t, "POST /__api__/tokens", a, http.StatusOK, "token_claim_url")
	var created struct {
		Token    string `json:"token"`
		ClaimURL string `json:"token_claim_url"`
	}
	if err := json.Unmarshal([]byte(a.body), &created); err != nil {
		t.Fatal(err)
	}
	if created.ClaimURL != f.ts.URL+"/connect/tokens/"+tc.id {
		t.Fatalf("token_claim_url %q, want %s/connect/tokens/%s", created.ClaimURL, f.ts.URL, tc.id)
	}
	wantStatus(t, "the same token id again", send(t, anon, mustReq(t, "POST", f.ts.URL+"/__api__/tokens", body)), http.StatusConflict, "exists already")

	// 2. Unclaimed, it authenticates nothing: 500, which rsconnect waits on.
	a = send(t, anon, tc.request(t, f.ts.URL, signed{method: "GET", path: "/__api__/users/current"}))
	wantStatus(t, "unclaimed token", a, http.StatusInternalServerError, "is unclaimed")
	wantStatus(t, "unclaimed token writes", send(t, anon, tc.request(t, f.ts.URL, signed{method: "POST", path: "/__api__/v1/content", body: `{"name": "x"}`})),
		http.StatusInternalServerError, "is unclaimed")

	// 3. The user claims it in the browser. Logged out, the page sends
	// them to the login page and back.
	resp, err := anon.Get(created.ClaimURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/__login__" || resp.Request.URL.Query().Get("next") != "/connect/tokens/"+tc.id {
		t.Fatalf("logged-out claim page led to %s, want the login page with next", resp.Request.URL)
	}
	bc := browser(t, f, pub)
	csrf := claimForm(t, bc, created.ClaimURL)
	// A form without the CSRF token, or from another site, claims nothing.
	status, page := postClaim(t, bc, created.ClaimURL, url.Values{"action": {"claim"}}, f.ts.URL)
	if status != http.StatusForbidden || !strings.Contains(page, "out of date") {
		t.Fatalf("claim without CSRF: %d %s", status, page)
	}
	status, page = postClaim(t, bc, created.ClaimURL, url.Values{"action": {"claim"}, "csrf": {csrf}}, "http://evil.example")
	if status != http.StatusForbidden {
		t.Fatalf("cross-site claim: %d %s", status, page)
	}
	// Another user's CSRF token does not do either.
	other := browser(t, f, f.users[store.RoleViewer])
	status, _ = postClaim(t, other, created.ClaimURL, url.Values{"action": {"claim"}, "csrf": {csrf}}, f.ts.URL)
	if status != http.StatusForbidden {
		t.Fatalf("claim with another session's CSRF token: %d", status)
	}
	wantStatus(t, "still unclaimed", send(t, anon, tc.request(t, f.ts.URL, signed{method: "GET", path: "/__api__/users/current"})), http.StatusInternalServerError, "unclaimed")
	status, page = postClaim(t, bc, created.ClaimURL, url.Values{"action": {"claim"}, "csrf": {csrf}}, f.ts.URL)
	if status != http.StatusOK || !strings.Contains(page, "Connected") {
		t.Fatalf("claim: %d %s", status, page)
	}
	// Claimed, it cannot be claimed by another user.
	status, _ = postClaim(t, other, created.ClaimURL, url.Values{"action": {"claim"}, "csrf": {csrf}}, f.ts.URL)
	if status != http.StatusConflict {
		t.Fatalf("second claim by another user: %d", status)
	}

	// 4. Signed requests are the user's.
	a = send(t, anon, tc.request(t, f.ts.URL, signed{method: "GET", path: "/__api__/users/current"}))
	wantStatus(t, "signed users/current", a, http.StatusOK, `"username":"publisher1"`)
	a = send(t, anon, tc.request(t, f.ts.URL, signed{method: "POST", path: "/__api__/v1/content", body: `{"name": "signed-app"}`}))
	wantStatus(t, "signed create", a, http.StatusOK, `"name":"signed-app"`)
	a = send(t, anon, tc.request(t, f.ts.URL, signed{method: "GET", path: "/__api__/v1/content?name=signed-app"}))
	wantStatus(t, "signed list with a query (not signed)", a, http.StatusOK, `"signed-app"`)

	// 5. Bad input: 401 (400 for a body that is not the one signed), nothing changed.
	now := time.Now()
	fixed := tc.request(t, f.ts.URL, signed{method: "GET", path: "/__api__/users/current", date: now.Add(-4 * time.Minute)})
	wantStatus(t, "first use", send(t, anon, fixed), http.StatusOK, "publisher1")
	replay := tc.request(t, f.ts.URL, signed{method: "GET", path: "/__api__/users/current", date: now.Add(-4 * time.Minute)})
	other2 := newTokenClient(t)
	cases := []struct {
		name   string
		req    *http.Request
		status int
		in     string
	}{
		{"replay", replay, 401, "replayed"},
		{"stale date", tc.request(t, f.ts.URL, signed{method: "GET", path: "/__api__/users/current", date: now.Add(-10 * time.Minute)}), 401, "from the server's clock"},
		{"future date", tc.request(t, f.ts.URL, signed{method: "GET", path: "/__api__/users/current", date: now.Add(10 * time.Minute)}), 401, "from the server's clock"},
		{"wrong key", tc.request(t, f.ts.URL, signed{method: "GET", path: "/__api__/users/current", key: other2.key}), 401, "does not verify"},
		{"malformed signature", tc.request(t, f.ts.URL, signed{method: "GET", path: "/__api__/users/current", signature: "%%%not base64"}), 401, "malformed X-Auth-Signature"},
		{"truncated signature", tc.request(t, f.ts.URL, signed{method: "GET", path: "/__api__/users/current", signature: "AAAA"}), 401, "does not verify"},
		{"signed for another path", retarget(tc.request(t, f.ts.URL, signed{method: "GET", path: "/__api__/v1/user"}), f.ts.URL+"/__api__/users/current"), 401, "does not verify"},
		{"signed for another method", remethod(tc.request(t, f.ts.URL, signed{method: "GET", path: "/__api__/v1/content/x"}), "DELETE"), 401, "does not verify"},
		{"unknown token", other2.request(t, f.ts.URL, signed{method: "GET", path: "/__api__/users/current"}), 401, "unknown token"},
		{"checksum of another body", tc.request(t, f.ts.URL, signed{method: "POST", path: "/__api__/v1/content", body: `{"name": "sneaky"}`, checksum: "1B2M2Y8AsgTpgAmY7PhCfg=="}), 400, "X-Content-Checksum"},
		{"checksum for an empty body", tc.request(t, f.ts.URL, signed{method: "GET", path: "/__api__/users/current", checksum: "XUFAKrxLKna5cZ2REBfFkg=="}), 401, "empty body"},
	}
	noDate := tc.request(t, f.ts.URL, signed{method: "GET", path: "/__api__/users/current"})
	noDate.Header.Del("Date")
	badDate := tc.request(t, f.ts.URL, signed{method: "GET", path: "/__api__/users/current"})
	badDate.Header.Set("Date", "yesterday")
	cases = append(cases,
		struct {
			name   string
			req    *http.Request
			status int
			in     string
		}{"no date", noDate, 401, "needs a Date"},
		struct {
			name   string
			req    *http.Request
			status int
			in     string
		}{"malformed date", badDate, 401, "malformed Date"})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := send(t, anon, c.req)
			wantStatus(t, c.name, a, c.status, c.in)
			var e web.ErrorBody
			if err := json.Unmarshal([]byte(a.body), &e); err != nil || e.Code != c.status {
				t.Fatalf("error body %s is not {error, code}", a.body)
			}
		})
	}
	if _, n, err := f.st.ListContent(context.Background(), store.ContentFilter{Name: "sneaky"}); err != nil || n != 0 {
		t.Fatalf("a body that was not the one signed created content (%d, %v)", n, err)
	}

	// 6. The user lists and revokes the token; revoked, it is refused.
	a = send(t, anon, tc.request(t, f.ts.URL, signed{method: "GET", path: "/__api__/tokens"}))
	wantStatus(t, "list tokens", a, http.StatusOK, tc.id)
	var list []struct {
		ID        int64  `json:"id"`
		UserAgent string `json:"user_agent"`
	}
	if err := json.Unmarshal([]byte(a.body), &list); err != nil || len(list) != 1 || list[0].UserAgent != "rsconnect/1.3.0" {
		t.Fatalf("token list %s", a.body)
	}
	path := fmt.Sprintf("/__api__/tokens/%d", list[0].ID)
	f.run(t, []apiCase{
		{"others' tokens are not listed", "GET", "/__api__/tokens", store.RoleViewer, "", 200, "[]"},
		{"another user cannot revoke it", "DELETE", path, store.RoleViewer, "", 404, "no token"},
		{"a viewer cannot list another's", "GET", "/__api__/tokens?user_guid=" + pub.GUID, store.RoleViewer, "", 403, "administrators"},
		{"an administrator lists another's", "GET", "/__api__/tokens?user_guid=" + pub.GUID, store.RoleAdministrator, "", 200, tc.id},
		{"bad token id", "POST", "/__api__/tokens", "", `{"token": "x", "public_key": ""}`, 400, "token must be"},
		{"bad key", "POST", "/__api__/tokens", "", `{"token": "T0123456789abcdef", "public_key": "bm90IGEga2V5"}`, 400, "public_key"},
		{"anonymous writes elsewhere stay refused", "POST", "/__api__/v1/content", "", `{"name": "x"}`, 401, "authentication required"},
	})
	a = send(t, anon, tc.request(t, f.ts.URL, signed{method: "DELETE", path: path}))
	wantStatus(t, "revoke", a, http.StatusOK, "{}")
	a = send(t, anon, tc.request(t, f.ts.URL, signed{method: "GET", path: "/__api__/users/current"}))
	wantStatus(t, "revoked token", a, http.StatusUnauthorized, "unknown token")

	// A locked user's token is refused.
	tc2 := newTokenClient(t)
	body = fmt.Sprintf(`{"token": %q, "public_key": %q}`, tc2.id, tc2.publicKey(t))
	wantStatus(t, "second token", send(t, anon, mustReq(t, "POST", f.ts.URL+"/__api__/tokens", body)), 200, "token_claim_url")
	csrf = claimForm(t, bc, f.ts.URL+"/connect/tokens/"+tc2.id)
	if status, page := postClaim(t, bc, f.ts.URL+"/connect/tokens/"+tc2.id, url.Values{"action": {"claim"}, "csrf": {csrf}}, f.ts.URL); status != 200 {
		t.Fatalf("claim: %d %s", status, page)
	}
	pub.Locked = true
	if err := f.st.UpdateUser(context.Background(), pub); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, "locked user", send(t, anon, tc2.request(t, f.ts.URL, signed{method: "GET", path: "/__api__/users/current"})), 401, "locked")
}

// TestTokenRefused: the user refuses a token on the claim page; it is gone.
func TestTokenRefused(t *testing.T) {
	f := newFixture(t)
	tc := newTokenClient(t)
	body := fmt.Sprintf(`{"token": %q, "public_key": %q}`, tc.id, tc.publicKey(t))
	wantStatus(t, "create", send(t, http.DefaultClient, mustReq(t, "POST", f.ts.URL+"/__api__/tokens", body)), 200, "token_claim_url")
	bc := browser(t, f, f.users[store.RoleAdministrator])
	claimURL := f.ts.URL + "/connect/tokens/" + tc.id
	csrf := claimForm(t, bc, claimURL)
	if status, page := postClaim(t, bc, claimURL, url.Values{"action": {"refuse"}, "csrf": {csrf}}, f.ts.URL); status != 200 || !strings.Contains(page, "Refused") {
		t.Fatalf("refuse: %d %s", status, page)
	}
	wantStatus(t, "refused token", send(t, http.DefaultClient, tc.request(t, f.ts.URL, signed{method: "GET", path: "/__api__/users/current"})), 401, "unknown token")
	resp, err := bc.Get(claimURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("claim page of a refused token: %d, want 404", resp.StatusCode)
	}
}

func mustReq(t *testing.T, method, u, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func retarget(r *http.Request, u string) *http.Request {
	r2, _ := http.NewRequest(r.Method, u, nil)
	r2.Header = r.Header
	return r2
}

func remethod(r *http.Request, method string) *http.Request {
	r.Method = method
	return r
}

// TestTokenFlood: creating tokens needs no credentials, so one address
// may keep only so many waiting for their claim.
func TestTokenFlood(t *testing.T) {
	f := newFixture(t)
	tc := newTokenClient(t)
	pub := tc.publicKey(t)
	for i := range web.MaxUnclaimedTokensPerAddress {
		body := fmt.Sprintf(`{"token": "Tflood%04d%s", "public_key": %q}`, i, tc.id[1:9], pub)
		wantStatus(t, "create", send(t, http.DefaultClient, mustReq(t, "POST", f.ts.URL+"/__api__/tokens", body)), 200, "token_claim_url")
	}
	body := fmt.Sprintf(`{"token": "Tflood-one-more", "public_key": %q}`, pub)
	a := send(t, http.DefaultClient, mustReq(t, "POST", f.ts.URL+"/__api__/tokens", body))
	wantStatus(t, "one too many", a, http.StatusTooManyRequests, "too many tokens")
	if _, err := f.st.TokenByToken(context.Background(), "Tflood-one-more"); err == nil {
		t.Fatal("the refused token was stored")
	}
}

// TestTokenRevokedInBrowser: the user's connected clients page lists the
// token and its Revoke button revokes it; another session's form does not.
func TestTokenRevokedInBrowser(t *testing.T) {
	f := newFixture(t)
	tc := newTokenClient(t)
	body := fmt.Sprintf(`{"token": %q, "public_key": %q}`, tc.id, tc.publicKey(t))
	wantStatus(t, "create", send(t, http.DefaultClient, mustReq(t, "POST", f.ts.URL+"/__api__/tokens", body)), 200, "token_claim_url")
	bc := browser(t, f, f.users[store.RolePublisher])
	claimURL := f.ts.URL + "/connect/tokens/" + tc.id
	if status, page := postClaim(t, bc, claimURL, url.Values{"action": {"claim"}, "csrf": {claimForm(t, bc, claimURL)}}, f.ts.URL); status != 200 {
		t.Fatalf("claim: %d %s", status, page)
	}
	wantStatus(t, "claimed", send(t, http.DefaultClient, tc.request(t, f.ts.URL, signed{method: "GET", path: "/__api__/users/current"})), 200, "publisher1")

	list := func(c *http.Client) string {
		resp, err := c.Get(f.ts.URL + "/connect/tokens")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	page := list(bc)
	m := csrfField.FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, `value="revoke"`) {
		t.Fatalf("connected clients page:\n%s", page)
	}
	// Another user's page lists nothing, and their form revokes nothing.
	other := browser(t, f, f.users[store.RoleViewer])
	if strings.Contains(list(other), `value="revoke"`) {
		t.Fatal("another user sees the token")
	}
	status, _ := postClaim(t, other, claimURL, url.Values{"action": {"revoke"}, "csrf": {m[1]}}, f.ts.URL)
	if status != http.StatusForbidden {
		t.Fatalf("revoke with another session's form: %d", status)
	}
	wantStatus(t, "still valid", send(t, http.DefaultClient, tc.request(t, f.ts.URL, signed{method: "GET", path: "/__api__/users/current"})), 200, "publisher1")
	status, page = postClaim(t, bc, claimURL, url.Values{"action": {"revoke"}, "csrf": {m[1]}}, f.ts.URL)
	if status != http.StatusOK || !strings.Contains(page, "Revoked") || strings.Contains(page, `value="revoke"`) {
		t.Fatalf("revoke: %d %s", status, page)
	}
	wantStatus(t, "revoked", send(t, http.DefaultClient, tc.request(t, f.ts.URL, signed{method: "GET", path: "/__api__/users/current"})), 401, "unknown token")
}
