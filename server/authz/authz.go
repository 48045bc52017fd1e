// Package authz is dais's one authorization rule: what a user's role lets
// them do, and what a user may do with one content. The API and the
// dashboard's pages both ask it, so that a page never shows what the API
// would refuse, nor the other way round.
package authz

import (
	"context"

	"github.com/dais-dev/dais/server/store"
)

// roleRank orders the roles; a higher rank may do what a lower one may.
var roleRank = map[string]int{
	store.RoleViewer:        1,
	store.RolePublisher:     2,
	store.RoleAdministrator: 3,
}

// ValidRole tells whether role is one of viewer, publisher, administrator.
func ValidRole(role string) bool { return roleRank[role] > 0 }

// HasRole tells whether u may act with role (administrators may do
// everything publishers may, publishers everything viewers may).
func HasRole(u *store.User, role string) bool {
	return u != nil && roleRank[u.Role] >= roleRank[role] && roleRank[role] > 0
}

// Access is what a user may do with one content.
type Access int

const (
	// None: the content is hidden (the API answers 404, as if it did not exist).
	None Access = iota
	// Viewer may see it: open its URL, read its settings.
	Viewer
	// Editor may deploy it and change its settings: its owner, a
	// collaborator (a publisher with the owner permission) or an administrator.
	Editor
)

// Permissions is what the rule reads from the store.
type Permissions interface {
	Permissions(ctx context.Context, contentID int64) ([]store.Permission, error)
	UserGroups(ctx context.Context, userID int64) ([]store.Group, error)
}

// Content tells what u (nil: anonymous) may do with c. A permission that
// names a group gives its role to each member, read at every call: a
// user removed from the group loses the access at once.
func Content(ctx context.Context, st Permissions, u *store.User, c *store.Content) (Access, error) {
	if u != nil {
		if u.Role == store.RoleAdministrator || u.ID == c.OwnerID {
			return Editor, nil
		}
		perms, err := st.Permissions(ctx, c.ID)
		if err != nil {
			return None, err
		}
		var member map[int64]bool // the user's groups, read when a permission names a group
		for _, p := range perms {
			if p.GroupID != 0 && member == nil {
				if member, err = groupsOf(ctx, st, u); err != nil {
					return None, err
				}
			}
		}
		return decide(u, c, perms, member), nil
	}
	return decide(nil, c, nil, nil), nil
}

func groupsOf(ctx context.Context, st Permissions, u *store.User) (map[int64]bool, error) {
	gs, err := st.UserGroups(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	member := make(map[int64]bool, len(gs))
	for _, g := range gs {
		member[g.ID] = true
	}
	return member, nil
}

// ListPermissions is what List reads from the store.
type ListPermissions interface {
	Permissions
	ContentPermissions(ctx context.Context, contentIDs []int64) (map[int64][]store.Permission, error)
}

// Rule is one user's access to a list of content items, read in two
// queries (the user's groups and the items' permissions) where Content
// reads them item by item: the same rule, for lists.
type Rule struct {
	u      *store.User
	perms  map[int64][]store.Permission
	member map[int64]bool
}

// List reads what Rule.Content needs to tell u's access to each of items.
func List(ctx context.Context, st ListPermissions, u *store.User, items []store.Content) (*Rule, error) {
	r := &Rule{u: u}
	if u == nil || u.Role == store.RoleAdministrator {
		return r, nil
	}
	var ids []int64
	for i := range items {
		if items[i].OwnerID != u.ID {
			ids = append(ids, items[i].ID)
		}
	}
	if len(ids) == 0 {
		return r, nil
	}
	var err error
	if r.perms, err = st.ContentPermissions(ctx, ids); err != nil {
		return nil, err
	}
	if r.member, err = groupsOf(ctx, st, u); err != nil {
		return nil, err
	}
	return r, nil
}

// Content is Content's answer for c, one of the items List was given.
func (r *Rule) Content(c *store.Content) Access {
	return decide(r.u, c, r.perms[c.ID], r.member)
}

// decide is the rule: perms are c's permissions, member the groups of u
// (needed when a permission names a group).
func decide(u *store.User, c *store.Content, perms []store.Permission, member map[int64]bool) Access {
	if u != nil {
		if u.Role == store.RoleAdministrator || u.ID == c.OwnerID {
			return Editor
		}
		best := None
		for _, p := range perms {
			match := (p.UserID != 0 && p.UserID == u.ID) || (p.GroupID != 0 && member[p.GroupID])
			if !match {
				continue
			}
			a := Viewer
			if p.Role == store.PermOwner && HasRole(u, store.RolePublisher) {
				a = Editor
			}
			best = max(best, a)
		}
		if best != None {
			return best
		}
	}
	switch c.AccessType {
	case store.AccessAll:
		return Viewer
	case store.AccessLoggedIn:
		if u != nil {
			return Viewer
		}
	}
	return None
}
