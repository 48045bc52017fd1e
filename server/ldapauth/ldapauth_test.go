package ldapauth

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/dais-dev/dais/internal/slapdtest"
	"github.com/dais-dev/dais/server/config"
	"github.com/go-ldap/ldap/v3"
)

// directory is the [LDAP] section for slapdtest's directory: a service
// account, groups below ou=Groups.
func directory(s *slapdtest.Server) *config.LDAP {
	l := config.Defaults().Default_LDAP
	l.ServerAddress = s.Addr
	l.BindDN, l.BindPassword = slapdtest.ServiceDN, slapdtest.ServicePass
	l.UserSearchBaseDN = slapdtest.PeopleDN
	l.UserObjectClass = "inetOrgPerson"
	l.GroupSearchBaseDN = slapdtest.GroupsDN
	l.UniqueIdAttribute = "entryUUID"
	return &l
}

func groupNames(u *User) []string {
	var n []string
	for _, g := range u.Groups {
		n = append(n, g.Name)
	}
	slices.Sort(n)
	return n
}

// TestAuthenticate (issue 15) signs in against a private slapd: double
// bind, attributes, groups by member, uniqueMember and memberUid, nested
// groups, and the refusals.
func TestAuthenticate(t *testing.T) {
	s := slapdtest.Start(t, "")
	ctx := context.Background()
	cfg := directory(s)

	u, err := Authenticate(ctx, cfg, nil, "alice", "alice-pw")
	if err != nil {
		t.Fatal(err)
	}
	if u.Username != "alice" || u.FirstName != "Alice" || u.LastName != "Analyst" || u.Email != "alice@example.com" || u.DN != slapdtest.UserDN("alice") {
		t.Errorf("alice: %+v", u)
	}
	if len(u.UniqueID) != 36 || strings.Count(u.UniqueID, "-") != 4 {
		t.Errorf("alice's entryUUID %q, want a UUID", u.UniqueID)
	}
	if got := groupNames(u); !slices.Equal(got, []string{"analysts", "staff"}) || !u.GroupsKnown {
		t.Errorf("alice's groups %v, want analysts (member) and staff (uniqueMember)", got)
	}
	for _, g := range u.Groups {
		if g.UniqueID != g.DN {
			t.Errorf("group %+v: want its DN as unique id by default", g)
		}
	}
	// The typed name's case is the directory's business; the account takes the directory's spelling.
	if u, err := Authenticate(ctx, cfg, nil, "  ALICE ", "alice-pw"); err != nil || u.Username != "alice" {
		t.Errorf("ALICE: %+v %v, want alice", u, err)
	}
	bob, err := Authenticate(ctx, cfg, nil, "bob", "bob-pw")
	if err != nil || !slices.Equal(groupNames(bob), []string{"publishers", "readers"}) {
		t.Errorf("bob: %v %v, want publishers (member) and readers (posixGroup memberUid)", bob, err)
	}

	nested := *cfg
	nested.NestedGroups = true
	if u, err := Authenticate(ctx, &nested, nil, "alice", "alice-pw"); err != nil || !slices.Equal(groupNames(u), []string{"analysts", "data-science", "staff"}) {
		t.Errorf("alice with NestedGroups: %v %v, want data-science (through analysts) too", u, err)
	}
	byClass := *cfg
	byClass.GroupObjectClass = "groupOfUniqueNames"
	if u, err := Authenticate(ctx, &byClass, nil, "alice", "alice-pw"); err != nil || !slices.Equal(groupNames(u), []string{"staff"}) {
		t.Errorf("alice with GroupObjectClass = groupOfUniqueNames: %v %v, want staff alone", u, err)
	}
	dnIDs := *cfg
	dnIDs.UniqueIdAttribute, dnIDs.GroupUniqueIdAttribute = "DN", "entryUUID"
	if u, err := Authenticate(ctx, &dnIDs, nil, "alice", "alice-pw"); err != nil || u.UniqueID != slapdtest.UserDN("alice") || u.Groups[0].UniqueID == u.Groups[0].DN {
		t.Errorf("UniqueIdAttribute = DN, GroupUniqueIdAttribute = entryUUID: %+v %v", u, err)
	}
	roles := *cfg
	roles.UserRoleAttribute = "employeeType"
	if u, err := Authenticate(ctx, &roles, nil, "bob", "bob-pw"); err != nil || !slices.Equal(u.Roles, []string{"contractor"}) {
		t.Errorf("bob's UserRoleAttribute employeeType: %+v %v, want [contractor]", u, err)
	}
	noGroups := *cfg
	noGroups.GroupSearchBaseDN = ""
	if u, err := Authenticate(ctx, &noGroups, nil, "alice", "alice-pw"); err != nil || u.GroupsKnown || len(u.Groups) != 0 {
		t.Errorf("without GroupSearchBaseDN: %+v %v, want no groups from the directory", u, err)
	}

	permit := *cfg
	permit.PermittedLoginGroup = []string{slapdtest.GroupDN("staff")}
	if _, err := Authenticate(ctx, &permit, nil, "alice", "alice-pw"); err != nil {
		t.Errorf("alice in PermittedLoginGroup staff (by DN): %v", err)
	}
	permit.PermittedLoginGroup = []string{"staff"}
	if _, err := Authenticate(ctx, &permit, nil, "bob", "bob-pw"); !errors.Is(err, ErrNotPermitted) {
		t.Errorf("bob outside PermittedLoginGroup: %v, want ErrNotPermitted", err)
	}

	for _, c := range []struct{ name, user, pw string }{
		{"wrong password", "alice", "bob-pw"},
		{"empty password (an unauthenticated bind would succeed)", "alice", ""},
		{"unknown user", "zed", "zed-pw"},
		{"empty user", "", "x"},
		{"a wildcard", "*", "alice-pw"},
		{"filter injection", "*)(uid=*", "alice-pw"},
		{"filter injection with an or", "alice)(|(uid=*", "alice-pw"},
		{"filter injection closing the and", "alice)(objectClass=*))(|(uid=x", "alice-pw"},
		{"a NUL", "alice\x00", "alice-pw"},
		{"the service account's password for a user", "alice", slapdtest.ServicePass},
	} {
		t.Run(c.name, func(t *testing.T) {
			if u, err := Authenticate(ctx, cfg, nil, c.user, c.pw); !errors.Is(err, ErrBadCredentials) {
				t.Errorf("Authenticate(%q): %+v %v, want ErrBadCredentials", c.user, u, err)
			}
		})
	}

	// The service account with a wrong password: an administrator's
	// error, said as such, not "wrong password" for the user.
	badSvc := *cfg
	badSvc.BindPassword = "nope"
	if _, err := Authenticate(ctx, &badSvc, nil, "alice", "alice-pw"); err == nil || errors.Is(err, ErrBadCredentials) || !strings.Contains(err.Error(), "BindPassword") {
		t.Errorf("wrong BindPassword: %v, want an error naming BindPassword", err)
	}
	if strings.Contains(errString(Authenticate(ctx, &badSvc, nil, "alice", "alice-pw")), "nope") {
		t.Error("the error shows the bind password")
	}
}

func errString(_ *User, err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestAuthenticateBinds: single bind ({username} in BindDN) and anonymous
// search, and a user renamed in the directory keeps the unique id.
func TestAuthenticateBinds(t *testing.T) {
	s := slapdtest.Start(t, "")
	ctx := context.Background()

	single := directory(s)
	single.BindDN, single.BindPassword = "uid={username},"+slapdtest.PeopleDN, ""
	u, err := Authenticate(ctx, single, nil, "carol", "carol-pw")
	if err != nil || u.Username != "carol" || !slices.Equal(groupNames(u), []string{"staff"}) {
		t.Fatalf("single bind: %+v %v", u, err)
	}
	if _, err := Authenticate(ctx, single, nil, "carol", "wrong"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("single bind, wrong password: %v", err)
	}
	// A name that would change the DN's meaning is escaped.
	if _, err := Authenticate(ctx, single, nil, "carol,ou=People", "carol-pw"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("single bind with a comma in the name: %v", err)
	}

	anon := directory(s)
	anon.BindDN, anon.BindPassword, anon.AnonymousBind = "", "", true
	if u, err := Authenticate(ctx, anon, nil, "bob", "bob-pw"); err != nil || u.Username != "bob" {
		t.Errorf("anonymous search: %+v %v", u, err)
	}

	// Rename carol to carla: same entryUUID.
	c := s.Admin()
	defer c.Close()
	if err := c.ModifyDN(ldap.NewModifyDNRequest(slapdtest.UserDN("carol"), "uid=carla", true, "")); err != nil {
		t.Fatal(err)
	}
	cfg := directory(s)
	renamed, err := Authenticate(ctx, cfg, nil, "carla", "carol-pw")
	if err != nil || renamed.UniqueID != u.UniqueID || renamed.Username != "carla" {
		t.Errorf("after the rename: %+v %v, want carla with unique id %s", renamed, err, u.UniqueID)
	}
}

// TestAuthenticateTLS: StartTLS and ldaps with the test CA; without it
// the server's certificate is refused (and ServerTLSInsecure skips the
// check).
func TestAuthenticateTLS(t *testing.T) {
	s := slapdtest.Start(t, "")
	ctx := context.Background()
	for _, c := range []struct {
		name   string
		set    func(*config.LDAP)
		wantOK bool
	}{
		{"StartTLS with the CA", func(l *config.LDAP) { l.StartTLS, l.TLSCACertificate = true, s.CAFile }, true},
		{"ldaps with the CA", func(l *config.LDAP) { l.TLS, l.ServerAddress, l.TLSCACertificate = true, s.TLSAddr, s.CAFile }, true},
		{"StartTLS without the CA", func(l *config.LDAP) { l.StartTLS = true }, false},
		{"ldaps without the CA", func(l *config.LDAP) { l.TLS, l.ServerAddress = true, s.TLSAddr }, false},
		{"ldaps, not checked", func(l *config.LDAP) { l.TLS, l.ServerAddress, l.ServerTLSInsecure = true, s.TLSAddr, true }, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := directory(s)
			c.set(cfg)
			u, err := Authenticate(ctx, cfg, nil, "alice", "alice-pw")
			switch {
			case c.wantOK && (err != nil || u.Username != "alice"):
				t.Errorf("%+v %v, want alice", u, err)
			case !c.wantOK && !errors.Is(err, ErrUnavailable):
				t.Errorf("%+v %v, want ErrUnavailable (certificate refused)", u, err)
			case !c.wantOK && !strings.Contains(err.Error(), "certificate"):
				t.Errorf("%v: want the reason (certificate)", err)
			}
		})
	}
}

// TestAuthenticateDown: a directory that is down is ErrUnavailable, not
// a wrong password; Logging logs the steps and never the password.
func TestAuthenticateDown(t *testing.T) {
	s := slapdtest.Start(t, "")
	cfg := directory(s)
	cfg.Logging = true
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	if _, err := Authenticate(context.Background(), cfg, log, "alice", "alice-pw"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "LDAP user search") || strings.Contains(logs.String(), "alice-pw") || strings.Contains(logs.String(), slapdtest.ServicePass) {
		t.Errorf("Logging = true logs:\n%s\nwant the search, and no password", logs.String())
	}
	s.Stop()
	if _, err := Authenticate(context.Background(), cfg, nil, "alice", "alice-pw"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("directory down: %v, want ErrUnavailable", err)
	}
	s.Restart()
	if _, err := Authenticate(context.Background(), cfg, nil, "alice", "alice-pw"); err != nil {
		t.Errorf("directory back: %v", err)
	}
}

// TestAuthenticateSameWork: an unknown name and a known name with a wrong
// password ask the same of the directory (kind, order and result of each
// operation, read from slapd's log), so the time of the answer does not
// tell which names exist; for each way of searching.
func TestAuthenticateSameWork(t *testing.T) {
	s := slapdtest.Start(t, "")
	ctx := context.Background()
	ops := func(t *testing.T, cfg *config.LDAP, user, pw string) []string {
		t.Helper()
		mark := s.LogMark()
		if _, err := Authenticate(ctx, cfg, nil, user, pw); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("Authenticate(%q): %v, want ErrBadCredentials", user, err)
		}
		return s.Operations(t, mark)
	}
	anon := directory(s)
	anon.BindDN, anon.BindPassword, anon.AnonymousBind = "", "", true
	single := directory(s)
	single.BindDN, single.BindPassword = "uid={username},"+slapdtest.PeopleDN, ""
	for name, cfg := range map[string]*config.LDAP{"service account": directory(s), "anonymous search": anon, "single bind": single} {
		t.Run(name, func(t *testing.T) {
			known := ops(t, cfg, "alice", "wrong-pw")
			unknown := ops(t, cfg, "zed", "wrong-pw")
			if !slices.Equal(known, unknown) {
				t.Errorf("directory operations differ:\nalice, a wrong password: %v\nzed, unknown:            %v", known, unknown)
			}
			if !slices.Contains(known, "BIND err=49") {
				t.Errorf("operations %v: want the refused bind (err=49) of the password", known)
			}
		})
	}
	// The bind that stands in for an unknown user's is to a DN no entry
	// has, so no real account counts a failed login for it.
	c := s.Admin()
	defer c.Close()
	_, err := c.Search(ldap.NewSearchRequest(absentDN(directory(s)), ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", nil, nil))
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		t.Errorf("search of absentDN %s: %v, want no such object", absentDN(directory(s)), err)
	}
}

func TestEscapeDNValue(t *testing.T) {
	for in, want := range map[string]string{
		"carol":           "carol",
		"a,b":             `a\,b`,
		`x"+<>;=\`:        `x\"\+\<\>\;\=\\`,
		"#lead":           `\#lead`,
		" both ":          `\ both\ `,
		"carol,ou=People": `carol\,ou\=People`,
	} {
		if got := escapeDNValue(in); got != want {
			t.Errorf("escapeDNValue(%q) = %q, want %q", in, got, want)
		}
	}
}
