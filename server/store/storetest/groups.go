package storetest

import (
	"slices"
	"testing"

	"github.com/dais-dev/dais/server/store"
)

func groupNames(gs []store.Group) []string {
	var out []string
	for _, g := range gs {
		out = append(out, g.Name)
	}
	return out
}

func usernames(us []store.User) []string {
	var out []string
	for _, u := range us {
		out = append(out, u.Username)
	}
	return out
}

func testGroups(t *testing.T, s store.Store) {
	c := ctx(t)
	owner := mkUser(t, s, "gowner", store.RolePublisher)
	a := mkUser(t, s, "ga", store.RoleViewer)
	b := mkUser(t, s, "gb", store.RolePublisher)

	g := &store.Group{Name: "Data Science", OwnerID: owner.ID, CreatedAt: T0}
	must(t, s.CreateGroup(c, g))
	if g.ID == 0 || len(g.GUID) != 36 {
		t.Fatalf("CreateGroup filled id %d, guid %q", g.ID, g.GUID)
	}
	eq(t, "provider of a new group", g.Provider, store.GroupProviderLocal)
	eq(t, "unique id of a local group", g.UniqueID, g.GUID)
	got, err := s.GroupByGUID(c, g.GUID)
	must(t, err)
	if *got != (store.Group{ID: g.ID, GUID: g.GUID, Name: "Data Science", OwnerID: owner.ID, Provider: "local", UniqueID: g.GUID, CreatedAt: us(T0), UpdatedAt: us(T0)}) {
		t.Fatalf("GroupByGUID = %+v", got)
	}
	wantErr(t, s.CreateGroup(c, &store.Group{Name: "Data Science"}), store.ErrConflict, "duplicate group name")

	// A provider's group: found by the provider's id, which survives a rename.
	ldap := &store.Group{Name: "engineers", Provider: "ldap", UniqueID: "cn=engineers,dc=example"}
	must(t, s.CreateGroup(c, ldap))
	eq(t, "provider group owner", ldap.OwnerID, int64(0))
	wantErr(t, s.CreateGroup(c, &store.Group{Name: "eng2", Provider: "ldap", UniqueID: ldap.UniqueID}), store.ErrConflict, "duplicate unique id")
	ldap.Name = "Engineering"
	must(t, s.UpdateGroup(c, ldap))
	got, err = s.GroupByUniqueID(c, "ldap", "cn=engineers,dc=example")
	must(t, err)
	eq(t, "renamed provider group", got.Name, "Engineering")
	_, err = s.GroupByUniqueID(c, "local", "cn=engineers,dc=example")
	wantErr(t, err, store.ErrNotFound, "unique id of another provider")
	got, err = s.Group(c, ldap.ID)
	must(t, err)
	eq(t, "Group by id", got.GUID, ldap.GUID)
	wantErr(t, s.UpdateGroup(c, &store.Group{ID: 99999, Name: "x"}), store.ErrNotFound, "update missing group")
	ldap.Name = "Data Science"
	wantErr(t, s.UpdateGroup(c, ldap), store.ErrConflict, "rename onto a taken name")

	// Listing: by name, prefix case-insensitive, paged with the total.
	must(t, s.CreateGroup(c, &store.Group{Name: "data_engineering"}))
	must(t, s.CreateGroup(c, &store.Group{Name: "Marketing"}))
	for _, tc := range []struct {
		f     store.GroupFilter
		want  []string
		total int
	}{
		{store.GroupFilter{}, []string{"Data Science", "data_engineering", "Engineering", "Marketing"}, 4},
		{store.GroupFilter{Prefix: "DATA"}, []string{"Data Science", "data_engineering"}, 2},
		{store.GroupFilter{Prefix: "data_"}, []string{"data_engineering"}, 1}, // _ is literal
		{store.GroupFilter{Start: 1, Count: 2}, []string{"data_engineering", "Engineering"}, 4},
		{store.GroupFilter{OwnerID: owner.ID}, []string{"Data Science"}, 1},
		{store.GroupFilter{OwnerID: owner.ID, Prefix: "eng"}, nil, 0},
		{store.GroupFilter{OwnerID: b.ID}, nil, 0},
	} {
		gs, total, err := s.ListGroups(c, tc.f)
		must(t, err)
		if !slices.Equal(groupNames(gs), tc.want) || total != tc.total {
			t.Fatalf("ListGroups(%+v) = %v, %d; want %v, %d", tc.f, groupNames(gs), total, tc.want, tc.total)
		}
	}

	// Members.
	must(t, s.AddGroupMember(c, g.ID, b.ID))
	must(t, s.AddGroupMember(c, g.ID, a.ID))
	must(t, s.AddGroupMember(c, ldap.ID, a.ID))
	wantErr(t, s.AddGroupMember(c, g.ID, a.ID), store.ErrConflict, "member twice")
	wantErr(t, s.AddGroupMember(c, g.ID, 99999), store.ErrConflict, "missing user")
	members, err := s.GroupMembers(c, g.ID)
	must(t, err)
	if !slices.Equal(usernames(members), []string{"ga", "gb"}) || members[0].Email != "ga@example.org" {
		t.Fatalf("GroupMembers = %+v", members)
	}
	gs, err := s.UserGroups(c, a.ID)
	must(t, err)
	if !slices.Equal(groupNames(gs), []string{"Data Science", "Engineering"}) {
		t.Fatalf("UserGroups = %v", groupNames(gs))
	}
	must(t, s.RemoveGroupMember(c, g.ID, a.ID))
	wantErr(t, s.RemoveGroupMember(c, g.ID, a.ID), store.ErrNotFound, "remove a non-member")
	members, err = s.GroupMembers(c, g.ID)
	must(t, err)
	if !slices.Equal(usernames(members), []string{"gb"}) {
		t.Fatalf("GroupMembers after removal = %v", usernames(members))
	}

	// A deleted user leaves their groups; a deleted owner leaves the group ownerless.
	must(t, s.DeleteUser(c, b.ID))
	members, err = s.GroupMembers(c, g.ID)
	must(t, err)
	eq(t, "members after user delete", len(members), 0)
	must(t, s.DeleteUser(c, owner.ID))
	got, err = s.Group(c, g.ID)
	must(t, err)
	eq(t, "owner after owner delete", got.OwnerID, int64(0))

	must(t, s.DeleteGroup(c, ldap.ID))
	wantErr(t, s.DeleteGroup(c, ldap.ID), store.ErrNotFound, "delete group twice")
	gs, err = s.UserGroups(c, a.ID)
	must(t, err)
	eq(t, "groups after group delete", len(gs), 0)
}

func testGroupPermissions(t *testing.T, s store.Store) {
	c := ctx(t)
	owner := mkUser(t, s, "gpowner", store.RolePublisher)
	member := mkUser(t, s, "gpmember", store.RoleViewer)
	outsider := mkUser(t, s, "gpoutsider", store.RoleViewer)
	ct := mkContent(t, s, owner.ID, "group-app")
	mkContent(t, s, owner.ID, "other-app") // in no ACL: nobody but its owner sees it
	g := &store.Group{Name: "readers"}
	must(t, s.CreateGroup(c, g))
	must(t, s.AddGroupMember(c, g.ID, member.ID))

	gp := &store.Permission{ContentID: ct.ID, GroupID: g.ID, Role: store.PermViewer}
	must(t, s.SetPermission(c, gp))
	up := &store.Permission{ContentID: ct.ID, UserID: member.ID, Role: store.PermViewer}
	must(t, s.SetPermission(c, up))
	if gp.ID == up.ID {
		t.Fatal("a user's and a group's permission share an id")
	}
	// Setting the group's again changes its role and keeps its id.
	gp2 := &store.Permission{ContentID: ct.ID, GroupID: g.ID, Role: store.PermOwner}
	must(t, s.SetPermission(c, gp2))
	eq(t, "upserted group permission id", gp2.ID, gp.ID)
	if err := s.SetPermission(c, &store.Permission{ContentID: ct.ID, UserID: member.ID, GroupID: g.ID, Role: store.PermViewer}); err == nil {
		t.Fatal("SetPermission accepted a user and a group at once")
	}
	if err := s.SetPermission(c, &store.Permission{ContentID: ct.ID, Role: store.PermViewer}); err == nil {
		t.Fatal("SetPermission accepted no principal")
	}
	wantErr(t, s.SetPermission(c, &store.Permission{ContentID: ct.ID, GroupID: 99999, Role: store.PermViewer}), store.ErrConflict, "permission of a missing group")
	ps, err := s.Permissions(c, ct.ID)
	must(t, err)
	want := []store.Permission{
		{ID: gp.ID, ContentID: ct.ID, GroupID: g.ID, Role: store.PermOwner},
		{ID: up.ID, ContentID: ct.ID, UserID: member.ID, Role: store.PermViewer},
	}
	if !slices.Equal(ps, want) {
		t.Fatalf("Permissions = %+v, want %+v", ps, want)
	}
	p, err := s.Permission(c, gp.ID)
	must(t, err)
	eq(t, "group permission", *p, want[0])
	gps, err := s.GroupPermissions(c, g.ID)
	must(t, err)
	if !slices.Equal(gps, want[:1]) {
		t.Fatalf("GroupPermissions = %+v, want %+v", gps, want[:1])
	}

	// Visibility through the group, gone with the membership.
	must(t, s.DeletePermission(c, up.ID))
	visible := func(u int64) []int64 {
		cs, _, err := s.ListContent(c, store.ContentFilter{VisibleTo: u})
		must(t, err)
		var ids []int64
		for _, x := range cs {
			ids = append(ids, x.ID)
		}
		return ids
	}
	if got := visible(member.ID); !slices.Equal(got, []int64{ct.ID}) {
		t.Fatalf("visible to a group member = %v, want [%d]", got, ct.ID)
	}
	if got := visible(outsider.ID); len(got) != 0 {
		t.Fatalf("visible to an outsider = %v", got)
	}
	must(t, s.RemoveGroupMember(c, g.ID, member.ID))
	if got := visible(member.ID); len(got) != 0 {
		t.Fatalf("visible after leaving the group = %v", got)
	}

	// Deleting the group removes its permissions.
	must(t, s.DeleteGroup(c, g.ID))
	ps, err = s.Permissions(c, ct.ID)
	must(t, err)
	eq(t, "permissions after group delete", len(ps), 0)
}
