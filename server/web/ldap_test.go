package web

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/dais-dev/dais/internal/slapdtest"
	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/store"

	"github.com/dais-dev/dais/internal/syncbuf"
)

// ldapFixture is a server with Authentication.Provider = ldap against a
// private slapd, publishers mapped from the directory's group
// "publishers"; logs has the server's log.
func ldapFixture(t *testing.T) (*fixture, *slapdtest.Server, *syncbuf.Buffer) {
	t.Helper()
	s := slapdtest.Start(t, "")
	f := newFixture(t)
	logs := &syncbuf.Buffer{}
	f.srv.log = slog.New(slog.NewTextHandler(logs, nil))
	cfg := *f.srv.Config()
	cfg.Authentication.Provider = ProviderLDAP
	l := config.Defaults().Default_LDAP
	l.ServerAddress, l.StartTLS, l.TLSCACertificate = s.Addr, true, s.CAFile
	l.BindDN, l.BindPassword = slapdtest.ServiceDN, slapdtest.ServicePass
	l.UserSearchBaseDN, l.UserObjectClass, l.UniqueIdAttribute = slapdtest.PeopleDN, "inetOrgPerson", "entryUUID"
	l.GroupSearchBaseDN, l.NestedGroups = slapdtest.GroupsDN, true
	cfg.LDAP = map[string]*config.LDAP{"corp": &l}
	cfg.Authorization.UserRoleGroupMapping = true
	cfg.Authorization.PublisherRoleMapping = []string{slapdtest.GroupDN("publishers")}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	f.srv.SetConfig(&cfg)
	return f, s, logs
}

// ldapLoginForm posts the login form and returns the status and the
// session cookie ("" for none) and the page.
func ldapLoginForm(t *testing.T, f *fixture, user, password string) (int, string, string) {
	t.Helper()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.PostForm(f.ts.URL+"/__login__", url.Values{"username": {user}, "password": {password}, "next": {"/connect/"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		if c.Name == SessionCookie && c.Value != "" {
			return resp.StatusCode, c.Value, string(b)
		}
	}
	return resp.StatusCode, "", string(b)
}

// TestLDAPLogin (issue 15): the login form against a directory: the
// account is made with the directory's attributes and groups (nested
// too) and the mapped role; wrong passwords, unknown users, filter
// injection, a locked account and a directory that is down are refused
// with a clear page, and sessions already open keep working.
func TestLDAPLogin(t *testing.T) {
	f, slapd, logs := ldapFixture(t)
	ctx := context.Background()
	if form := f.do(t, "GET", "/__login__", "", "", nil); form.status != 200 || !strings.Contains(form.body, "directory account") {
		t.Errorf("the login form: %d, want it to say which account to use", form.status)
	}

	status, session, _ := ldapLoginForm(t, f, "alice", "alice-pw")
	if status != http.StatusSeeOther || session == "" {
		t.Fatalf("alice's login: %d, session %q", status, session)
	}
	me := f.do(t, "GET", "/__api__/v1/user", "", "", map[string]string{"Cookie": SessionCookie + "=" + session})
	if me.status != 200 || !strings.Contains(me.body, `"username":"alice"`) {
		t.Fatalf("alice's session: %d %s", me.status, me.body)
	}
	alice, err := f.st.UserByUsername(ctx, "alice")
	if err != nil || alice.Provider != ProviderLDAP || len(alice.UniqueID) != 36 || alice.Email != "alice@example.com" || alice.Role != store.RoleViewer {
		t.Fatalf("alice's account: %+v %v", alice, err)
	}
	groups, err := f.st.UserGroups(ctx, alice.ID)
	var gs []string
	for _, g := range groups {
		gs = append(gs, g.Name)
	}
	slices.Sort(gs)
	if err != nil || !slices.Equal(gs, []string{"analysts", "data-science", "staff"}) {
		t.Errorf("alice's groups %v %v, want analysts, data-science (nested) and staff", gs, err)
	}
	if status, session, _ := ldapLoginForm(t, f, "bob", "bob-pw"); status != http.StatusSeeOther || session == "" {
		t.Errorf("bob's login: %d", status)
	} else if bob, err := f.st.UserByUsername(ctx, "bob"); err != nil || bob.Role != store.RolePublisher {
		t.Errorf("bob, in cn=publishers (mapped by DN): %+v %v, want a publisher", bob, err)
	}

	for _, c := range []struct {
		name, user, pw string
		status         int
		msg            string
	}{
		{"wrong password", "alice", "wrong", 401, "Wrong username or password."},
		{"unknown user", "zed", "zed-pw", 401, "Wrong username or password."},
		{"empty password", "alice", "", 401, "Wrong username or password."},
		{"filter injection", "*)(uid=*", "alice-pw", 401, "Wrong username or password."},
		{"filter injection with an or", "admin)(|(uid=*", "alice-pw", 401, "Wrong username or password."},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, session, page := ldapLoginForm(t, f, c.user, c.pw)
			if status != c.status || session != "" || !strings.Contains(page, c.msg) {
				t.Errorf("%d, session %q, page has %q: %v; want %d", status, session, c.msg, strings.Contains(page, c.msg), c.status)
			}
		})
	}

	// Locked in dais: the directory says yes, dais says no.
	carol, _, _ := ldapLoginForm(t, f, "carol", "carol-pw")
	if carol != http.StatusSeeOther {
		t.Fatalf("carol's first login: %d", carol)
	}
	cu, _ := f.st.UserByUsername(ctx, "carol")
	cu.Locked = true
	if err := f.st.UpdateUser(ctx, cu); err != nil {
		t.Fatal(err)
	}
	if status, session, page := ldapLoginForm(t, f, "carol", "carol-pw"); status != http.StatusForbidden || session != "" || !strings.Contains(page, "locked") {
		t.Errorf("locked carol: %d %q, want 403 saying locked", status, session)
	}

	// The directory goes down: a clear 503 page; alice's session and API keys go on.
	slapd.Stop()
	status, session2, page := ldapLoginForm(t, f, "alice", "alice-pw")
	if status != http.StatusServiceUnavailable || session2 != "" || !strings.Contains(page, "cannot be reached") {
		t.Errorf("directory down: %d, want 503 saying the directory cannot be reached", status)
	}
	if me := f.do(t, "GET", "/__api__/v1/user", "", "", map[string]string{"Cookie": SessionCookie + "=" + session}); me.status != 200 {
		t.Errorf("alice's session while the directory is down: %d", me.status)
	}
	if me := f.do(t, "GET", "/__api__/v1/user", f.keys["publisher"], "", nil); me.status != 200 {
		t.Errorf("an API key while the directory is down: %d", me.status)
	}
	slapd.Restart()
	if status, _, _ := ldapLoginForm(t, f, "alice", "alice-pw"); status != http.StatusSeeOther {
		t.Errorf("directory back: %d", status)
	}
	for _, secret := range []string{"alice-pw", slapdtest.ServicePass, "bob-pw", "carol-pw"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the log has the password %q", secret)
		}
	}
	if !strings.Contains(logs.String(), "LDAP directory cannot be reached") {
		t.Errorf("no log line for the directory down:\n%s", logs.String())
	}
}

// TestLDAPSkippedGroupLogged: a directory group whose name a local group
// has is left out, and the log says so.
func TestLDAPSkippedGroupLogged(t *testing.T) {
	f, _, logs := ldapFixture(t)
	if err := f.st.CreateGroup(context.Background(), &store.Group{Name: "staff"}); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := ldapLoginForm(t, f, "alice", "alice-pw"); status != http.StatusSeeOther {
		t.Fatalf("login: %d", status)
	}
	if !bytes.Contains([]byte(logs.String()), []byte("provider groups left out")) || !strings.Contains(logs.String(), "staff") {
		t.Errorf("log:\n%s\nwant a line naming the skipped group staff", logs.String())
	}
}

// TestLDAPRegisterOnFirstLogin: with RegisterOnFirstLogin = false only an
// account made ahead logs in, and its first login takes it over.
func TestLDAPRegisterOnFirstLogin(t *testing.T) {
	f, _, _ := ldapFixture(t)
	cfg := *f.srv.Config()
	l := *cfg.LDAP["corp"]
	l.RegisterOnFirstLogin = false
	cfg.LDAP = map[string]*config.LDAP{"corp": &l}
	f.srv.SetConfig(&cfg)
	if status, session, page := ldapLoginForm(t, f, "alice", "alice-pw"); status != http.StatusForbidden || session != "" || !strings.Contains(page, "no account") {
		t.Errorf("alice without an account: %d %q, want 403 saying there is no account", status, session)
	}
	if err := f.st.CreateUser(context.Background(), &store.User{Username: "alice", Role: store.RolePublisher, Provider: ProviderLDAP}); err != nil {
		t.Fatal(err)
	}
	if status, session, _ := ldapLoginForm(t, f, "alice", "alice-pw"); status != http.StatusSeeOther || session == "" {
		t.Errorf("alice with an account made ahead: %d", status)
	}
	if u, err := f.st.UserByUsername(context.Background(), "alice"); err != nil || len(u.UniqueID) != 36 {
		t.Errorf("the account made ahead after the login: %+v %v, want the directory's entryUUID", u, err)
	}
}

// TestLDAPSections: several [LDAP "NAME"] sections are tried in name
// order: a directory that is down or does not know the user is passed
// over; PermittedLoginGroup refuses with 403; UserRoleAttribute with
// Authorization.UserRoleMapping gives the role.
func TestLDAPSections(t *testing.T) {
	f, _, _ := ldapFixture(t)
	cfg := *f.srv.Config()
	corp := *cfg.LDAP["corp"]
	down := corp
	down.ServerAddress = "127.0.0.1:1" // nothing listens
	other := corp
	other.UserSearchBaseDN = "ou=Services," + slapdtest.BaseDN // knows no people
	corp.UserRoleAttribute = "employeeType"
	corp.PermittedLoginGroup = []string{"staff", "publishers"}
	cfg.LDAP = map[string]*config.LDAP{"a-down": &down, "b-other": &other, "c-corp": &corp}
	cfg.Authorization.UserRoleGroupMapping, cfg.Authorization.UserRoleMapping = false, true
	cfg.Authorization.PublisherRoleMapping = []string{"staff"}
	cfg.Authorization.ViewerRoleMapping = []string{"contractor"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	f.srv.SetConfig(&cfg)

	if status, session, _ := ldapLoginForm(t, f, "alice", "alice-pw"); status != http.StatusSeeOther || session == "" {
		t.Fatalf("alice through the third section: %d", status)
	}
	if u, err := f.st.UserByUsername(context.Background(), "alice"); err != nil || u.Role != store.RolePublisher {
		t.Errorf("alice (employeeType staff): %+v %v, want a publisher", u, err)
	}
	if status, _, _ := ldapLoginForm(t, f, "bob", "bob-pw"); status != http.StatusSeeOther {
		t.Errorf("bob (in publishers): %d", status)
	} else if u, err := f.st.UserByUsername(context.Background(), "bob"); err != nil || u.Role != store.RoleViewer {
		t.Errorf("bob (employeeType contractor): %+v %v, want a viewer", u, err)
	}
	// carol is in staff; take staff out of the permitted groups.
	corp.PermittedLoginGroup = []string{"publishers"}
	if status, session, page := ldapLoginForm(t, f, "carol", "carol-pw"); status != http.StatusForbidden || session != "" || !strings.Contains(page, "may not log in") {
		t.Errorf("carol outside PermittedLoginGroup: %d %q, want 403", status, session)
	}
	// A wrong password while a directory is down: that directory may be
	// the user's, so the page says it cannot be reached (503), not 401.
	if status, _, page := ldapLoginForm(t, f, "alice", "wrong"); status != http.StatusServiceUnavailable || !strings.Contains(page, "cannot be reached") {
		t.Errorf("wrong password with a directory down: %d, want 503", status)
	}
}
