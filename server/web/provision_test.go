package web

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/store/storetest"
)

func TestMapRole(t *testing.T) {
	az := config.Authorization{UserRoleGroupMapping: true,
		ViewerRoleMapping: []string{"staff"}, PublisherRoleMapping: []string{"Eng"}, AdministratorRoleMapping: []string{"ops", "root"}}
	for _, tc := range []struct {
		groups      []string
		restrictive bool
		want        string
		ok          bool
	}{
		{[]string{"staff"}, false, store.RoleViewer, true},
		{[]string{"eng"}, false, store.RolePublisher, true}, // case-insensitive
		{[]string{"staff", "eng", "ops"}, false, store.RoleAdministrator, true},
		{[]string{"staff", "eng", "ops"}, true, store.RoleViewer, true},
		{[]string{"eng", "root"}, true, store.RolePublisher, true},
		{[]string{"sales"}, false, "", false},
		{nil, false, "", false},
	} {
		az.UserRoleMappingRestrictive = tc.restrictive
		got, ok := MapRole(az, tc.groups, []string{"administrator"})
		if got != tc.want || ok != tc.ok {
			t.Errorf("MapRole(%v, restrictive %v) = %q %v, want %q %v", tc.groups, tc.restrictive, got, ok, tc.want, tc.ok)
		}
	}
	// UserRoleMapping maps role values, not groups.
	rm := config.Authorization{UserRoleMapping: true, PublisherRoleMapping: []string{"pub"}}
	if got, ok := MapRole(rm, []string{"pub"}, nil); ok {
		t.Errorf("role mapping used groups: %q", got)
	}
	if got, _ := MapRole(rm, nil, []string{"pub"}); got != store.RolePublisher {
		t.Errorf("role mapping of role value pub = %q, want publisher", got)
	}
	if _, ok := MapRole(config.Authorization{PublisherRoleMapping: []string{"pub"}}, []string{"pub"}, []string{"pub"}); ok {
		t.Error("mapping applied with both mapping modes off")
	}
}

func groupsOf(t *testing.T, st store.Store, u *store.User) []string {
	t.Helper()
	gs, err := st.UserGroups(context.Background(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, g := range gs {
		out = append(out, g.Name)
	}
	return out
}

func TestProvision(t *testing.T) {
	ctx := context.Background()
	st := storetest.SQLite(t)
	az := config.Authorization{DefaultUserRole: store.RolePublisher}

	// First account of an empty server: administrator.
	first, err := Provision(ctx, st, nil, az, Identity{Provider: "proxy", UniqueID: "u1", Username: "ann", GroupsKnown: true, Groups: []string{"eng"}})
	if err != nil {
		t.Fatal(err)
	}
	if first.Role != store.RoleAdministrator || first.Provider != "proxy" || first.UniqueID != "u1" {
		t.Fatalf("first account = %+v, want an administrator of proxy with unique id u1", first)
	}
	// Next ones: DefaultUserRole; groups synced.
	bob, err := Provision(ctx, st, nil, az, Identity{Provider: "proxy", UniqueID: "u2", Username: "bob", Email: "bob@example.com",
		GroupsKnown: true, Groups: []string{"eng", "ops", "eng", " "}})
	if err != nil {
		t.Fatal(err)
	}
	if bob.Role != store.RolePublisher {
		t.Fatalf("bob's role = %s, want publisher (DefaultUserRole)", bob.Role)
	}
	if got := groupsOf(t, st, bob); !reflect.DeepEqual(got, []string{"eng", "ops"}) {
		t.Fatalf("bob's groups = %v", got)
	}
	// A rename at the provider keeps the account, its key and its groups follow the provider.
	_, key, err := NewAPIKey()
	if err != nil {
		t.Fatal(err)
	}
	key.UserID, key.Name = bob.ID, "k"
	if err := st.CreateAPIKey(ctx, &key); err != nil {
		t.Fatal(err)
	}
	bob2, err := Provision(ctx, st, nil, az, Identity{Provider: "proxy", UniqueID: "u2", Username: "robert", GroupsKnown: true, Groups: []string{"ops"}})
	if err != nil {
		t.Fatal(err)
	}
	if bob2.ID != bob.ID || bob2.Username != "robert" || bob2.Email != "bob@example.com" {
		t.Fatalf("renamed account = %+v, want id %d named robert, email kept", bob2, bob.ID)
	}
	if got := groupsOf(t, st, bob2); !reflect.DeepEqual(got, []string{"ops"}) {
		t.Fatalf("robert's groups = %v, want [ops]", got)
	}
	keys, err := st.ListAPIKeys(ctx, bob.ID)
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys after rename = %v, %v", keys, err)
	}
	// GroupsKnown false leaves memberships alone.
	if _, err := Provision(ctx, st, nil, az, Identity{Provider: "proxy", UniqueID: "u2", Username: "robert"}); err != nil {
		t.Fatal(err)
	}
	if got := groupsOf(t, st, bob2); !reflect.DeepEqual(got, []string{"ops"}) {
		t.Fatalf("groups changed without a groups header: %v", got)
	}
	// Another account's username: refused, no account taken over.
	var le *LoginError
	if _, err := Provision(ctx, st, nil, az, Identity{Provider: "proxy", UniqueID: "u3", Username: "robert"}); !errors.As(err, &le) {
		t.Fatalf("login as another account's username: err %v, want a LoginError", err)
	}
	// A password account of the same name is not taken over either.
	pw := &store.User{Username: "carol", PasswordHash: "x"}
	if err := st.CreateUser(ctx, pw); err != nil {
		t.Fatal(err)
	}
	if _, err := Provision(ctx, st, nil, az, Identity{Provider: "proxy", UniqueID: "u4", Username: "carol"}); !errors.As(err, &le) {
		t.Fatalf("login onto a password account: err %v, want a LoginError", err)
	}
	// An account made ahead of the first login is claimed by it.
	pre := &store.User{Username: "dan", Provider: "proxy", Role: store.RoleViewer}
	if err := st.CreateUser(ctx, pre); err != nil {
		t.Fatal(err)
	}
	dan, err := Provision(ctx, st, nil, az, Identity{Provider: "proxy", UniqueID: "u5", Username: "dan"})
	if err != nil || dan.ID != pre.ID || dan.UniqueID != "u5" {
		t.Fatalf("pre-created account: %+v, %v", dan, err)
	}
	// Reserved and bad usernames.
	for _, name := range []string{"", "connect", "Content", "a/b"} {
		if _, err := Provision(ctx, st, nil, az, Identity{Provider: "proxy", Username: name}); !errors.As(err, &le) {
			t.Errorf("username %q: err %v, want a LoginError", name, err)
		}
	}
	// Locked accounts are refused.
	dan.Locked = true
	if err := st.UpdateUser(ctx, dan); err != nil {
		t.Fatal(err)
	}
	if _, err := Provision(ctx, st, nil, az, Identity{Provider: "proxy", UniqueID: "u5", Username: "dan"}); !errors.As(err, &le) || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("locked account: err %v", err)
	}
}

func TestProvisionRoleMapping(t *testing.T) {
	ctx := context.Background()
	st := storetest.SQLite(t)
	az := config.Authorization{DefaultUserRole: store.RoleViewer, UserRoleGroupMapping: true,
		PublisherRoleMapping: []string{"eng"}, AdministratorRoleMapping: []string{"admins"}}
	// With a mapping on, the first account is not made administrator.
	u, err := Provision(ctx, st, nil, az, Identity{Provider: "proxy", Username: "eve", GroupsKnown: true, Groups: []string{"sales"}})
	if err != nil || u.Role != store.RoleViewer {
		t.Fatalf("first account with mapping: %+v, %v; want viewer", u, err)
	}
	u, err = Provision(ctx, st, nil, az, Identity{Provider: "proxy", Username: "eve", GroupsKnown: true, Groups: []string{"eng", "admins"}})
	if err != nil || u.Role != store.RoleAdministrator {
		t.Fatalf("eve in admins: %+v, %v; want administrator", u, err)
	}
	// Left the group at the provider: the role follows at the next login.
	u, err = Provision(ctx, st, nil, az, Identity{Provider: "proxy", Username: "eve", GroupsKnown: true, Groups: []string{"eng"}})
	if err != nil || u.Role != store.RolePublisher {
		t.Fatalf("eve in eng only: %+v, %v; want publisher", u, err)
	}
}

func TestCheckProvider(t *testing.T) {
	ctx := context.Background()
	st := storetest.SQLite(t)
	if err := CheckProvider(ctx, st, "proxy"); err != nil {
		t.Fatalf("empty server refused: %v", err)
	}
	if err := st.CreateUser(ctx, &store.User{Username: "admin", PasswordHash: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := CheckProvider(ctx, st, "password"); err != nil {
		t.Fatalf("same provider refused: %v", err)
	}
	err := CheckProvider(ctx, st, "proxy")
	if err == nil || !strings.Contains(err.Error(), "Authentication.Provider = proxy") || !strings.Contains(err.Error(), "1 password") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("changed provider: err %v, want one line naming the key and the accounts", err)
	}
}
