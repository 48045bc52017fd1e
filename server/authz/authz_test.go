package authz

import (
	"context"
	"errors"
	"testing"

	"github.com/dais-dev/dais/server/store"
)

// perms is a fake of the store's permission lookup.
type perms func(contentID int64) ([]store.Permission, error)

func (p perms) Permissions(_ context.Context, id int64) ([]store.Permission, error) { return p(id) }

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
