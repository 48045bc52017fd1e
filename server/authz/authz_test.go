package authz

import (
	"context"
	"errors"
	"testing"

	"github.com/dais-dev/dais/server/store"
)

// perms is a fake of the store's permission lookup; nobody is in a group.
type perms func(contentID int64) ([]store.Permission, error)

func (p perms) Permissions(_ context.Context, id int64) ([]store.Permission, error) { return p(id) }
func (p perms) UserGroups(context.Context, int64) ([]store.Group, error)            { return nil, nil }

// acl is a fake store with permissions and group memberships.
type acl struct {
	perms     []store.Permission
	groups    map[int64][]int64 // user id -> group ids
	groupErr  error
	groupAsks int
}

func (a *acl) Permissions(context.Context, int64) ([]store.Permission, error) { return a.perms, nil }
func (a *acl) UserGroups(_ context.Context, uid int64) ([]store.Group, error) {
	a.groupAsks++
	var out []store.Group
	for _, id := range a.groups[uid] {
		out = append(out, store.Group{ID: id})
	}
	return out, a.groupErr
}

func TestContent(t *testing.T) {
	owner := &store.User{ID: 1, Role: store.RolePublisher}
	admin := &store.User{ID: 2, Role: store.RoleAdministrator}
	collab := &store.User{ID: 3, Role: store.RolePublisher}
	granted := &store.User{ID: 4, Role: store.RoleViewer}
	viewerAsOwner := &store.User{ID: 5, Role: store.RoleViewer}
	other := &store.User{ID: 6, Role: store.RolePublisher}
	acl := perms(func(int64) ([]store.Permission, error) {
		return []store.Permission{
			{UserID: collab.ID, Role: store.PermOwner},
			{UserID: granted.ID, Role: store.PermViewer},
			{UserID: viewerAsOwner.ID, Role: store.PermOwner}, // a viewer cannot edit, whatever the ACL says
		}, nil
	})
	tests := []struct {
		name   string
		u      *store.User
		access string
		want   Access
	}{
		{"owner", owner, store.AccessACL, Editor},
		{"administrator", admin, store.AccessACL, Editor},
		{"collaborator", collab, store.AccessACL, Editor},
		{"granted viewer", granted, store.AccessACL, Viewer},
		{"viewer with owner permission", viewerAsOwner, store.AccessACL, Viewer},
		{"other on acl", other, store.AccessACL, None},
		{"other on logged_in", other, store.AccessLoggedIn, Viewer},
		{"anonymous on logged_in", nil, store.AccessLoggedIn, None},
		{"anonymous on all", nil, store.AccessAll, Viewer},
		{"other on all", other, store.AccessAll, Viewer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &store.Content{ID: 7, OwnerID: owner.ID, AccessType: tt.access}
			got, err := Content(context.Background(), acl, tt.u, c)
			if err != nil || got != tt.want {
				t.Fatalf("Content = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	broken := perms(func(int64) ([]store.Permission, error) { return nil, errors.New("database down") })
	if _, err := Content(context.Background(), broken, other, &store.Content{OwnerID: owner.ID, AccessType: store.AccessAll}); err == nil {
		t.Error("a failed permission lookup was not reported")
	}
}

func TestContentGroups(t *testing.T) {
	owner := &store.User{ID: 1, Role: store.RolePublisher}
	pubMember := &store.User{ID: 2, Role: store.RolePublisher}
	viewerMember := &store.User{ID: 3, Role: store.RoleViewer}
	outsider := &store.User{ID: 4, Role: store.RolePublisher}
	both := &store.User{ID: 5, Role: store.RolePublisher} // viewer by name, owner through a group
	const editors, readers = 10, 11
	st := &acl{
		perms: []store.Permission{
			{GroupID: editors, Role: store.PermOwner},
			{GroupID: readers, Role: store.PermViewer},
			{UserID: both.ID, Role: store.PermViewer},
		},
		groups: map[int64][]int64{
			pubMember.ID:    {editors},
			viewerMember.ID: {editors, readers},
			outsider.ID:     {99},
			both.ID:         {editors},
		},
	}
	c := &store.Content{ID: 7, OwnerID: owner.ID, AccessType: store.AccessACL}
	for _, tt := range []struct {
		name string
		u    *store.User
		want Access
	}{
		{"publisher in an owner group", pubMember, Editor},
		{"viewer in an owner group gets only view", viewerMember, Viewer},
		{"user in another group", outsider, None},
		{"the best of a user and a group permission", both, Editor},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Content(context.Background(), st, tt.u, c)
			if err != nil || got != tt.want {
				t.Fatalf("Content = %v, %v; want %v", got, err, tt.want)
			}
		})
	}

	// Removed from the group: the access goes with the next check.
	st.groups[pubMember.ID] = nil
	if got, _ := Content(context.Background(), st, pubMember, c); got != None {
		t.Errorf("after leaving the group: %v, want None", got)
	}

	// Without group permissions the memberships are not read.
	userOnly := &acl{perms: []store.Permission{{UserID: both.ID, Role: store.PermViewer}}}
	if _, err := Content(context.Background(), userOnly, outsider, c); err != nil || userOnly.groupAsks != 0 {
		t.Errorf("memberships read %d times for an ACL without groups (err %v)", userOnly.groupAsks, err)
	}

	broken := &acl{perms: st.perms, groupErr: errors.New("database down")}
	if _, err := Content(context.Background(), broken, outsider, c); err == nil {
		t.Error("a failed membership lookup was not reported")
	}
}

func TestHasRole(t *testing.T) {
	pub := &store.User{Role: store.RolePublisher}
	for role, want := range map[string]bool{store.RoleViewer: true, store.RolePublisher: true, store.RoleAdministrator: false, "king": false} {
		if got := HasRole(pub, role); got != want {
			t.Errorf("publisher HasRole(%s) = %v, want %v", role, got, want)
		}
	}
	if HasRole(nil, store.RoleViewer) {
		t.Error("anonymous has the viewer role")
	}
	if ValidRole("king") || !ValidRole(store.RoleAdministrator) {
		t.Error("ValidRole")
	}
}

// multiACL is a fake store with an ACL per content item.
type multiACL struct {
	perms  map[int64][]store.Permission // content id -> ACL
	groups map[int64][]int64            // user id -> group ids
	asks   int                          // ContentPermissions calls
}

func (m *multiACL) Permissions(_ context.Context, id int64) ([]store.Permission, error) {
	return m.perms[id], nil
}
func (m *multiACL) UserGroups(_ context.Context, uid int64) ([]store.Group, error) {
	var out []store.Group
	for _, id := range m.groups[uid] {
		out = append(out, store.Group{ID: id})
	}
	return out, nil
}
func (m *multiACL) ContentPermissions(_ context.Context, ids []int64) (map[int64][]store.Permission, error) {
	m.asks++
	out := map[int64][]store.Permission{}
	for _, id := range ids {
		if p := m.perms[id]; p != nil {
			out[id] = p
		}
	}
	return out, nil
}

// TestListMatchesContent: a list's rule answers as Content does, for
// every user and item, with one read of the ACLs.
func TestListMatchesContent(t *testing.T) {
	users := []*store.User{
		nil,
		{ID: 1, Role: store.RolePublisher},
		{ID: 2, Role: store.RoleAdministrator},
		{ID: 3, Role: store.RoleViewer},
		{ID: 4, Role: store.RolePublisher},
		{ID: 5, Role: store.RoleViewer},
	}
	st := &multiACL{
		perms: map[int64][]store.Permission{
			11: {{UserID: 3, Role: store.PermViewer}, {UserID: 4, Role: store.PermOwner}},
			12: {{GroupID: 20, Role: store.PermOwner}},
			13: {{GroupID: 21, Role: store.PermViewer}, {UserID: 5, Role: store.PermOwner}},
			15: {{UserID: 4, Role: store.PermViewer}, {GroupID: 20, Role: store.PermOwner}},
		},
		groups: map[int64][]int64{3: {20}, 4: {20, 21}, 5: {21}},
	}
	var items []store.Content
	id := int64(10)
	for _, access := range []string{store.AccessACL, store.AccessLoggedIn, store.AccessAll} {
		for _, owner := range []int64{1, 4} {
			id++
			items = append(items, store.Content{ID: id, OwnerID: owner, AccessType: access})
		}
	}
	ctx := context.Background()
	for _, u := range users {
		st.asks = 0
		rule, err := List(ctx, st, u, items)
		if err != nil {
			t.Fatal(err)
		}
		if st.asks > 1 {
			t.Errorf("user %v: %d reads of the ACLs for one list", u, st.asks)
		}
		for i := range items {
			want, err := Content(ctx, st, u, &items[i])
			if err != nil {
				t.Fatal(err)
			}
			if got := rule.Content(&items[i]); got != want {
				t.Errorf("user %+v, item %+v: List says %v, Content %v", u, items[i], got, want)
			}
		}
	}
}

// TestGroup: who may change a group: its owner (any role, as the API
// always allowed) and administrators; a provider's group nobody here;
// a local group without an owner administrators.
func TestGroup(t *testing.T) {
	admin := &store.User{ID: 1, Role: store.RoleAdministrator}
	pub := &store.User{ID: 2, Role: store.RolePublisher}
	other := &store.User{ID: 3, Role: store.RolePublisher}
	local := func(owner int64) *store.Group {
		return &store.Group{ID: 9, OwnerID: owner, Provider: store.GroupProviderLocal}
	}
	ldap := &store.Group{ID: 10, Provider: "ldap"}
	for _, c := range []struct {
		name string
		u    *store.User
		g    *store.Group
		want error
	}{
		{"owner", pub, local(2), nil},
		{"administrator, another's group", admin, local(2), nil},
		{"administrator, a group without an owner", admin, local(0), nil},
		{"another publisher", other, local(2), ErrGroupNotOwned},
		{"a publisher, a group without an owner", pub, local(0), ErrGroupNotOwned},
		{"anonymous", nil, local(0), ErrGroupNotOwned},
		{"administrator, a provider's group", admin, ldap, ErrGroupFromProvider},
		{"publisher, a provider's group", pub, ldap, ErrGroupNotOwned},
	} {
		if err := Group(c.u, c.g); !errors.Is(err, c.want) || (err == nil) != (c.want == nil) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}
