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
