package web

import (
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/store"
)

// proxyFixture is newFixture with Authentication.Provider = proxy,
// trusting trusted (the test client connects from 127.0.0.1).
func proxyFixture(t *testing.T, trusted ...string) *fixture {
	f := newFixture(t)
	cfg := *f.srv.Config()
	cfg.Authentication.Provider = ProviderProxy
	cfg.ProxyAuth = config.ProxyAuth{UsernameHeader: "X-Auth-Username", UniqueIdHeader: "X-Auth-Id", GroupsHeader: "X-Auth-Groups",
		RoleHeader: "X-Auth-Role", EmailHeader: "X-Auth-Email", TrustedProxies: trusted, LogoutURL: "https://sso.example.com/logout"}
	cfg.Authorization = config.Authorization{DefaultUserRole: store.RoleViewer, UserRoleMapping: true, PublisherRoleMapping: []string{"pub"}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	f.srv.SetConfig(&cfg)
	return f
}

func TestProxyAuth(t *testing.T) {
	f := proxyFixture(t, "127.0.0.0/8")
	me := func(hdr map[string]string) answer { t.Helper(); return f.do(t, "GET", "/__api__/v1/user", "", "", hdr) }

	a := me(map[string]string{"X-Auth-Username": "zoe", "X-Auth-Id": "z-1", "X-Auth-Groups": "eng, ops", "X-Auth-Role": "pub", "X-Auth-Email": "zoe@example.com"})
	if a.status != 200 || !strings.Contains(a.body, `"username":"zoe"`) || !strings.Contains(a.body, `"user_role":"publisher"`) {
		t.Fatalf("trusted proxy login = %d %s, want zoe as publisher (RoleHeader mapped)", a.status, a.body)
	}
	zoe, err := f.st.UserByUniqueID(context.Background(), ProviderProxy, "z-1")
	if err != nil || zoe.Email != "zoe@example.com" {
		t.Fatalf("provisioned account: %+v %v", zoe, err)
	}
	gs, _ := f.st.UserGroups(context.Background(), zoe.ID)
	var names []string
	for _, g := range gs {
		names = append(names, g.Name)
	}
	if !reflect.DeepEqual(names, []string{"eng", "ops"}) {
		t.Errorf("zoe's groups = %v, want [eng ops]", names)
	}
	// Renamed at the proxy: the same account.
	a = me(map[string]string{"X-Auth-Username": "zoe.b", "X-Auth-Id": "z-1", "X-Auth-Role": "pub"})
	if a.status != 200 || !strings.Contains(a.body, `"username":"zoe.b"`) {
		t.Fatalf("rename = %d %s", a.status, a.body)
	}
	if u, _ := f.st.User(context.Background(), zoe.ID); u.Username != "zoe.b" {
		t.Errorf("renamed account's username = %q", u.Username)
	}
	// Duplicate headers: a generic failure.
	req, _ := http.NewRequest("GET", f.ts.URL+"/__api__/v1/user", nil)
	req.Header.Add("X-Auth-Username", "zoe.b")
	req.Header.Add("X-Auth-Username", "administrator1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("duplicate username header = %d, want 401", resp.StatusCode)
	}
	// API keys keep working; no header: anonymous.
	if a := f.do(t, "GET", "/__api__/v1/user", f.keys[store.RolePublisher], "", nil); a.status != 200 || !strings.Contains(a.body, "publisher1") {
		t.Errorf("API key under proxy = %d %s", a.status, a.body)
	}
	if a := me(nil); a.status != 401 {
		t.Errorf("no header = %d %s, want 401", a.status, a.body)
	}
	// A password account's name is not taken over through the proxy.
	if a := me(map[string]string{"X-Auth-Username": "administrator1"}); a.status != 403 {
		t.Errorf("proxy login as a password account = %d %s, want 403", a.status, a.body)
	}
	// Password login is off; logout goes to LogoutURL; the login page says where to sign in.
	if a := f.do(t, "POST", "/__login__", "", "username=administrator1&password=pw-administrator", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}); a.status != 403 {
		t.Errorf("password login under proxy = %d %s, want 403", a.status, a.body)
	}
	if a := f.do(t, "POST", "/__logout__", "", "", map[string]string{"X-Auth-Username": "zoe.b", "X-Auth-Id": "z-1"}); a.status != 303 || a.header.Get("Location") != "https://sso.example.com/logout" {
		t.Errorf("logout = %d %s, want 303 to LogoutURL", a.status, a.header.Get("Location"))
	}
	if a := f.do(t, "GET", "/__login__", "", "", nil); a.status != 401 || !strings.Contains(a.body, "single sign-on") {
		t.Errorf("login page under proxy = %d %s", a.status, a.body)
	}
	// Locked at dais: refused even within the remembered window.
	u, _ := f.st.User(context.Background(), zoe.ID)
	u.Locked = true
	if err := f.st.UpdateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	if a := me(map[string]string{"X-Auth-Username": "zoe.b", "X-Auth-Id": "z-1", "X-Auth-Role": "pub"}); a.status != 403 || !strings.Contains(a.body, "locked") {
		t.Errorf("locked account = %d %s, want 403 locked", a.status, a.body)
	}
}

// TestProxyAuthUntrusted: headers from a peer not in TrustedProxies are
// removed: the request is anonymous, whoever it names.
func TestProxyAuthUntrusted(t *testing.T) {
	f := proxyFixture(t, "10.9.9.9")
	a := f.do(t, "GET", "/__api__/v1/user", "", "", map[string]string{"X-Auth-Username": "administrator1"})
	if a.status != 401 {
		t.Fatalf("spoofed header from an untrusted peer = %d %s, want 401", a.status, a.body)
	}
	if _, err := f.st.UserByUniqueID(context.Background(), ProviderProxy, "administrator1"); err == nil {
		t.Error("an untrusted header provisioned an account")
	}
}
