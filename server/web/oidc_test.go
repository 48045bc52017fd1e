package web

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/store"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
)

// zitadelOP starts zitadel's example OpenID provider on loopback, with
// client web/secret allowed to redirect to redirect, and returns its
// issuer. Users: test-user@127.0.0.1 and test-user2, password verysecure.
func zitadelOP(t *testing.T, redirect string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String() + "/"
	storage.RegisterClients(storage.WebClient("web", "secret", redirect))
	st := storage.NewStorage(storage.NewUserStore(issuer))
	router := exampleop.SetupServer(issuer, st, slog.New(slog.NewTextHandler(io.Discard, nil)), false)
	ts := httptest.NewUnstartedServer(router)
	ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	t.Cleanup(ts.Close)
	return issuer
}

func oidcFixture(t *testing.T) (*fixture, string) {
	f := newFixture(t)
	issuer := zitadelOP(t, f.ts.URL+OIDCCallbackPath)
	cfg := *f.srv.Config()
	cfg.Authentication.Provider = ProviderOAuth2
	cfg.OAuth2.ClientId, cfg.OAuth2.ClientSecret, cfg.OAuth2.OpenIDConnectIssuer = "web", "secret", issuer
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	f.srv.SetConfig(&cfg)
	return f, issuer
}

// oidcBrowser signs in through the OP's login form as a browser would,
// starting at dais's /__login__, and returns the client (its cookie jar
// holds the session) and the last response's URL and status.
func oidcBrowser(t *testing.T, f *fixture, user, password string) (*http.Client, *http.Response, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	cl := &http.Client{Jar: jar, Timeout: 20 * time.Second}
	resp, err := cl.Get(f.ts.URL + "/__login__?next=/__api__/v1/user")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	id := resp.Request.URL.Query().Get("authRequestID")
	if resp.StatusCode != 200 || id == "" {
		t.Fatalf("/__login__ led to %s (%d), want the provider's login form", resp.Request.URL, resp.StatusCode)
	}
	form := resp.Request.URL.ResolveReference(&url.URL{Path: "/login/username"})
	resp, err = cl.PostForm(form.String(), url.Values{"id": {id}, "username": {user}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return cl, resp, string(b)
}

// TestOIDCZitadel (issue 15): a full sign-in with authorization code,
// PKCE, state and nonce against zitadel's example OP: the account is made
// from the ID token and userinfo claims, the session works, the callback
// cannot be replayed or forged.
func TestOIDCZitadel(t *testing.T) {
	f, issuer := oidcFixture(t)
	user := "test-user@127.0.0.1"
	cl, resp, body := oidcBrowser(t, f, user, "verysecure")
	if resp.StatusCode != 200 || !strings.Contains(body, `"username":"`+user+`"`) {
		t.Fatalf("after sign-in: %s %d %s, want /__api__/v1/user as %s", resp.Request.URL, resp.StatusCode, body, user)
	}
	u, err := f.st.UserByUniqueID(context.Background(), ProviderOAuth2, "id1")
	if err != nil || u.Email != "test-user@zitadel.ch" || u.FirstName != "Test" || u.LastName != "User" {
		t.Fatalf("account from the claims: %+v %v", u, err)
	}
	// The callback that signed in, replayed: no login in progress.
	var cb string
	for r := resp.Request; r != nil; r = r.Response.Request {
		if strings.HasPrefix(r.URL.Path, OIDCCallbackPath) {
			cb = r.URL.String()
			break
		}
		if r.Response == nil {
			break
		}
	}
	if cb == "" {
		t.Fatal("no callback in the redirect chain")
	}
	if r, err := cl.Get(cb); err != nil || r.StatusCode != 400 {
		t.Fatalf("replayed callback: %v %v, want 400", r, err)
	}
	// A callback with no login in progress (a fresh browser), and one whose state is not the browser's.
	if r, err := http.Get(cb); err != nil || r.StatusCode != 400 {
		t.Fatalf("callback without a session: %v %v, want 400", r, err)
	}
	jar, _ := cookiejar.New(nil)
	b2 := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if r, err := b2.Get(f.ts.URL + "/__login__"); err != nil || r.StatusCode != 302 || !strings.HasPrefix(r.Header.Get("Location"), issuer) {
		t.Fatalf("/__login__: %v %v, want a redirect to the provider", r, err)
	} else if loc, _ := url.Parse(r.Header.Get("Location")); loc.Query().Get("code_challenge_method") != "S256" || loc.Query().Get("nonce") == "" || loc.Query().Get("state") == "" {
		t.Errorf("authorization request lacks PKCE, nonce or state: %s", loc)
	}
	if r, err := b2.Get(f.ts.URL + OIDCCallbackPath + "?code=x&state=forged"); err != nil || r.StatusCode != 400 {
		t.Fatalf("callback with a forged state: %v %v, want 400", r, err)
	}
	// Wrong password: the OP keeps its form; no session at dais.
	_, resp, body = oidcBrowser(t, f, "test-user2", "wrong")
	if strings.HasPrefix(resp.Request.URL.String(), f.ts.URL) || !strings.Contains(strings.ToLower(body), "password") {
		t.Errorf("wrong password ended at %s: %s", resp.Request.URL, body)
	}
	// Password login is off.
	if a := f.do(t, "POST", "/__login__", "", "username=x&password=y", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}); a.status != 403 {
		t.Errorf("password login under oauth2 = %d", a.status)
	}
}

// TestOIDCProviderDown: a provider that does not answer makes the login
// fail with a clear page; the server goes on serving.
func TestOIDCProviderDown(t *testing.T) {
	f := newFixture(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String() + "/"
	ln.Close()
	cfg := *f.srv.Config()
	cfg.Authentication.Provider = ProviderOAuth2
	cfg.OAuth2.ClientId, cfg.OAuth2.ClientSecret, cfg.OAuth2.OpenIDConnectIssuer = "web", "secret", dead
	f.srv.SetConfig(&cfg)
	if a := f.do(t, "GET", "/__login__", "", "", nil); a.status != 503 || !strings.Contains(a.body, "cannot be reached") {
		t.Fatalf("login with the provider down = %d %s", a.status, a.body)
	}
	if a := f.do(t, "GET", "/__api__/v1/user", f.keys[store.RoleViewer], "", nil); a.status != 200 {
		t.Fatalf("API key while the provider is down = %d", a.status)
	}
}

func TestOIDCIdentity(t *testing.T) {
	oc := config.Defaults().OAuth2
	id, err := oidcIdentity(oc, map[string]any{"sub": "s1", "preferred_username": "ann", "groups": []any{"eng", "ops"}})
	if err != nil || id.UniqueID != "s1" || id.Username != "ann" || !reflect.DeepEqual(id.Groups, []string{"eng", "ops"}) || !id.GroupsKnown {
		t.Errorf("groups as a list: %+v %v", id, err)
	}
	id, _ = oidcIdentity(oc, map[string]any{"sub": "s1", "email": "ann@example.com", "groups": "eng, ops"})
	if id.Username != "ann@example.com" || !reflect.DeepEqual(id.Groups, []string{"eng", "ops"}) {
		t.Errorf("groups as a string, no username claim: %+v", id)
	}
	oc.RequireUsernameClaim = true
	if _, err := oidcIdentity(oc, map[string]any{"sub": "s1"}); err == nil {
		t.Error("RequireUsernameClaim: a token without preferred_username was accepted")
	}
	if _, err := oidcIdentity(oc, map[string]any{"preferred_username": "ann"}); err == nil {
		t.Error("a token without sub was accepted")
	}
	oc.GroupsClaim = ""
	id, _ = oidcIdentity(oc, map[string]any{"sub": "s1", "preferred_username": "ann", "groups": []any{"eng"}})
	if id.GroupsKnown || id.Groups != nil {
		t.Errorf("GroupsClaim empty: groups read: %+v", id)
	}
}

// TestOIDCClientSecretFile: the client secret read from
// OAuth2.ClientSecretFile signs in; a wrong one in the file is refused by
// the provider at the code exchange.
func TestOIDCClientSecretFile(t *testing.T) {
	f, _ := oidcFixture(t)
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := *f.srv.Config()
	cfg.OAuth2.ClientSecret, cfg.OAuth2.ClientSecretFile = "", file
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	f.srv.SetConfig(&cfg)
	user := "test-user@127.0.0.1"
	if _, resp, body := oidcBrowser(t, f, user, "verysecure"); resp.StatusCode != 200 || !strings.Contains(body, `"username":"`+user+`"`) {
		t.Fatalf("sign-in with the secret from a file: %d %s", resp.StatusCode, body)
	}
	if err := os.WriteFile(file, []byte("not-the-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, resp, body := oidcBrowser(t, f, user, "verysecure"); resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, "not-the-secret") {
		t.Errorf("sign-in with a wrong secret in the file: %d %s, want 401", resp.StatusCode, body)
	}
}

// TestOIDCLogoutAtProvider: with OAuth2.LogoutAtProvider, logout ends
// dais's session and sends the browser to the provider's
// end_session_endpoint with the sign-in's ID token, which the provider
// accepts; without it, logout stays at dais.
func TestOIDCLogoutAtProvider(t *testing.T) {
	f, issuer := oidcFixture(t)
	noFollow := func(cl *http.Client) *http.Client {
		return &http.Client{Jar: cl.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	logout := func(cl *http.Client) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("POST", f.ts.URL+"/__logout__", nil)
		req.Header.Set("Origin", f.ts.URL)
		resp, err := noFollow(cl).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	cl, resp, _ := oidcBrowser(t, f, "test-user@127.0.0.1", "verysecure")
	if resp.StatusCode != 200 {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	if r := logout(cl); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/" {
		t.Errorf("logout without LogoutAtProvider: %d %q, want 303 to /", r.StatusCode, r.Header.Get("Location"))
	}

	cfg := *f.srv.Config()
	cfg.OAuth2.LogoutAtProvider = true
	f.srv.SetConfig(&cfg)
	cl, resp, _ = oidcBrowser(t, f, "test-user@127.0.0.1", "verysecure")
	if resp.StatusCode != 200 {
		t.Fatalf("sign-in: %d", resp.StatusCode)
	}
	r := logout(cl)
	to, _ := url.Parse(r.Header.Get("Location"))
	if r.StatusCode != http.StatusSeeOther || to == nil || !strings.HasPrefix(to.String(), issuer+"end_session?") || to.Query().Get("id_token_hint") == "" || to.Query().Get("client_id") != "web" {
		t.Fatalf("logout with LogoutAtProvider: %d %q, want 303 to %send_session with id_token_hint and client_id", r.StatusCode, to, issuer)
	}
	if me, err := cl.Get(f.ts.URL + "/__api__/v1/user"); err != nil || me.StatusCode != 401 {
		t.Errorf("dais's session after logout: %v %v, want 401", me, err)
	}
	// The provider takes the hint and ends its session: to its signed-out page.
	end, err := noFollow(cl).Get(to.String())
	if err != nil {
		t.Fatal(err)
	}
	end.Body.Close()
	if loc := end.Header.Get("Location"); end.StatusCode != http.StatusFound || !strings.Contains(loc, "logged-out") {
		t.Errorf("the provider's end_session: %d %q, want a redirect to its signed-out page", end.StatusCode, loc)
	}
}

// TestOIDCFailurePage: a sign-in that cannot complete ends on a page in
// the dashboard's layout that says why and links to start again.
func TestOIDCFailurePage(t *testing.T) {
	f, _ := oidcFixture(t)
	resp, err := http.Get(f.ts.URL + OIDCCallbackPath + "?state=forged&code=x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(b)
	if resp.StatusCode != 400 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(body, "No sign-in is in progress in this browser") || !strings.Contains(body, `<a href="/__login__">Start again</a>`) {
		t.Errorf("callback without a sign-in: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
}
