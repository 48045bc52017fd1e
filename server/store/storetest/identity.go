package storetest

import (
	"reflect"
	"testing"

	"github.com/dais-dev/dais/server/store"
)

// testUserIdentity: a provider's users are found by their unique id, a
// rename keeps the account, and a provider's groups are synced at login
// without touching local groups.
func testUserIdentity(t *testing.T, s store.Store) {
	c := ctx(t)
	pw := mkUser(t, s, "pat", store.RolePublisher)
	eq(t, "default provider", pw.Provider, store.ProviderPassword)
	got, err := s.User(c, pw.ID)
	must(t, err)
	eq(t, "stored provider", got.Provider, store.ProviderPassword)
	eq(t, "no unique id", got.UniqueID, "")
	// Several users without a unique id coexist.
	mkUser(t, s, "quinn", store.RoleViewer)

	u := &store.User{Username: "alice", Provider: "proxy", UniqueID: "id-1"}
	must(t, s.CreateUser(c, u))
	wantErr(t, s.CreateUser(c, &store.User{Username: "alice2", Provider: "proxy", UniqueID: "id-1"}), store.ErrConflict, "same unique id")
	must(t, s.CreateUser(c, &store.User{Username: "alice3", Provider: "oauth2", UniqueID: "id-1"}))
	got, err = s.UserByUniqueID(c, "proxy", "id-1")
	must(t, err)
	eq(t, "by unique id", got.ID, u.ID)
	got.Username = "alice.smith" // renamed in the identity provider
	must(t, s.UpdateUser(c, got))
	got, err = s.UserByUniqueID(c, "proxy", "id-1")
	must(t, err)
	eq(t, "renamed", got.Username, "alice.smith")
	_, err = s.UserByUniqueID(c, "proxy", "id-2")
	wantErr(t, err, store.ErrNotFound, "unknown unique id")

	counts, err := s.UserProviders(c)
	must(t, err)
	if want := map[string]int{"password": 2, "proxy": 1, "oauth2": 1}; !reflect.DeepEqual(counts, want) {
		t.Fatalf("UserProviders = %v, want %v", counts, want)
	}

	local := &store.Group{Name: "local-team"}
	must(t, s.CreateGroup(c, local))
	must(t, s.AddGroupMember(c, local.ID, u.ID))
	taken := &store.Group{Name: "taken"}
	must(t, s.CreateGroup(c, taken))

	skipped, err := s.SyncProviderGroups(c, u.ID, "proxy", []store.Group{
		{UniqueID: "eng", Name: "eng"}, {UniqueID: "ops", Name: "ops"}, {UniqueID: "taken", Name: "taken"}})
	must(t, err)
	if !reflect.DeepEqual(skipped, []string{"taken"}) {
		t.Fatalf("skipped = %v, want [taken]", skipped)
	}
	gs, err := s.UserGroups(c, u.ID)
	must(t, err)
	if got, want := groupNames(gs), []string{"eng", "local-team", "ops"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("groups after first sync = %v, want %v", got, want)
	}
	// Next login: ops left, eng renamed in the provider, sales joined.
	skipped, err = s.SyncProviderGroups(c, u.ID, "proxy", []store.Group{
		{UniqueID: "eng", Name: "engineering"}, {UniqueID: "sales", Name: "sales"}})
	must(t, err)
	eq(t, "nothing skipped", len(skipped), 0)
	gs, err = s.UserGroups(c, u.ID)
	must(t, err)
	if got, want := groupNames(gs), []string{"engineering", "local-team", "sales"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("groups after second sync = %v, want %v", got, want)
	}
	ops, err := s.GroupByUniqueID(c, "proxy", "ops")
	must(t, err)
	eq(t, "a remote group stays after its last member left", ops.Name, "ops")
	// An empty list leaves the provider's groups; the local one stays.
	_, err = s.SyncProviderGroups(c, u.ID, "proxy", nil)
	must(t, err)
	gs, err = s.UserGroups(c, u.ID)
	must(t, err)
	if got, want := groupNames(gs), []string{"local-team"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("groups after empty sync = %v, want %v", got, want)
	}
	_, err = s.SyncProviderGroups(c, u.ID, store.GroupProviderLocal, nil)
	if err == nil {
		t.Fatal("SyncProviderGroups accepted the local provider")
	}
}
