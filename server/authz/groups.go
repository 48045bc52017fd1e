package authz

import (
	"errors"

	"github.com/dais-dev/dais/server/store"
)

var (
	// ErrGroupNotOwned: only a group's owner and administrators change it.
	ErrGroupNotOwned = errors.New("only its owner and administrators may change a group")
	// ErrGroupFromProvider: a provider's group changes at the provider.
	ErrGroupFromProvider = errors.New("the group comes from an authentication provider")
)

// Group tells whether u may change g (rename it, give it away, delete
// it, add or remove members): nil for an administrator or g's owner when
// g is local. A local group may have no owner (its owner's account was
// deleted): an administrator still manages it. The API's group routes
// and the groups pages both ask it.
func Group(u *store.User, g *store.Group) error {
	if u == nil || !HasRole(u, store.RoleAdministrator) && (g.OwnerID == 0 || g.OwnerID != u.ID) {
		return ErrGroupNotOwned
	}
	if g.Provider != store.GroupProviderLocal {
		return ErrGroupFromProvider
	}
	return nil
}
