package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/store"
)

// Identity is what an authentication provider says about the user of a
// login: who they are (Provider and UniqueID, which never change) and
// what they are called now.
type Identity struct {
	Provider string // config Authentication.Provider: "proxy", ...
	// UniqueID is the provider's unchanging id of the user; "" means the
	// username is the id.
	UniqueID  string
	Username  string
	FirstName string
	LastName  string
	Email     string
	// Groups are the names of the user's groups at the provider (each
	// also its id there); GroupsKnown says the provider sends groups, so
	// that memberships are synced: false leaves them as they are.
	Groups      []string
	GroupsKnown bool
	// GroupIDs, when set, are the groups' unchanging ids at the provider
	// (in the order of Groups); GroupDNs their LDAP DNs, which role
	// mappings may name as well as the names.
	GroupIDs []string
	GroupDNs []string
	// Roles are the values of the provider's role attribute, header or
	// claim, for Authorization.UserRoleMapping.
	Roles []string
	// NoRegister refuses a login that would create an account
	// (LDAP.RegisterOnFirstLogin = false): only accounts made ahead log in.
	NoRegister bool
}

// reservedUsernames are the names Posit Connect refuses for accounts:
// they are paths of its dashboard.
var reservedUsernames = map[string]bool{
	"connect": true, "apps": true, "users": true, "groups": true, "setpassword": true, "user-completion": true,
	"confirm": true, "recent": true, "reports": true, "plots": true, "unpublished": true, "settings": true,
	"metrics": true, "tokens": true, "help": true, "login": true, "welcome": true, "register": true,
	"resetpassword": true, "content": true,
}

// LoginError is a login the provider vouched for but dais refuses; its
// message is for the user.
type LoginError struct{ Msg string }

func (e *LoginError) Error() string { return e.Msg }

// checkUsername refuses names an account may not have.
func checkUsername(name string) error {
	switch {
	case name == "":
		return &LoginError{"the identity provider sent no username"}
	case strings.ContainsAny(name, "/\x00\r\n") || len(name) > 255:
		return &LoginError{fmt.Sprintf("username %q is not allowed: it may not contain '/' or control characters, or be longer than 255", name)}
	case reservedUsernames[strings.ToLower(name)]:
		return &LoginError{fmt.Sprintf("username %q is reserved (a path of the dashboard); ask your administrator to rename the account in the identity provider", name)}
	}
	return nil
}

// MapRole is the role that az's mapping gives to a user with these groups
// (UserRoleGroupMapping) or role values (UserRoleMapping); ok is false when
// no mapping is on or nothing matched.
func MapRole(az config.Authorization, groups, roles []string) (role string, ok bool) {
	var values []string
	switch {
	case az.UserRoleGroupMapping:
		values = groups
	case az.UserRoleMapping:
		values = roles
	default:
		return "", false
	}
	has := map[string]bool{}
	for _, v := range values {
		has[strings.ToLower(strings.TrimSpace(v))] = true
	}
	matches := func(names []string) bool {
		for _, n := range names {
			if has[strings.ToLower(strings.TrimSpace(n))] {
				return true
			}
		}
		return false
	}
	order := []struct {
		role  string
		names []string
	}{
		{store.RoleAdministrator, az.AdministratorRoleMapping},
		{store.RolePublisher, az.PublisherRoleMapping},
		{store.RoleViewer, az.ViewerRoleMapping},
	}
	if az.UserRoleMappingRestrictive {
		order[0], order[2] = order[2], order[0]
	}
	for _, o := range order {
		if matches(o.names) {
			return o.role, true
		}
	}
	return "", false
}

// Provision finds or makes the account of a login a provider vouched for,
// as Connect does: by the provider's unique id (a rename keeps the
// account), else an account made ahead of the login (same provider and
// username, no unique id yet), else a new one (auto-provisioning) with the
// mapped role, or DefaultUserRole, or administrator for the first account
// of an empty server when no mapping is on. At each login the names and
// email are refreshed, the role re-mapped when a mapping is on, and the
// provider's groups synced. A locked account is refused.
// Groups left out because a local group has their name are logged to log
// (which may be nil).
func Provision(ctx context.Context, st store.Store, log *slog.Logger, az config.Authorization, id Identity) (*store.User, error) {
	if err := checkUsername(id.Username); err != nil {
		return nil, err
	}
	if id.UniqueID == "" {
		id.UniqueID = id.Username
	}
	mapped, mappedOK := MapRole(az, append(slices.Clone(id.Groups), id.GroupDNs...), id.Roles)
	u, err := st.UserByUniqueID(ctx, id.Provider, id.UniqueID)
	if errors.Is(err, store.ErrNotFound) {
		u, err = st.UserByUsername(ctx, id.Username)
		switch {
		case err == nil && (u.Provider != id.Provider || u.UniqueID != ""):
			return nil, &LoginError{fmt.Sprintf("username %q belongs to another account on this server; ask your administrator", id.Username)}
		case errors.Is(err, store.ErrNotFound):
			u = nil
			err = nil
		}
	}
	if err != nil {
		return nil, err
	}
	if u == nil && id.NoRegister {
		return nil, &LoginError{fmt.Sprintf("there is no account %q on this server, and accounts are not created at first login here; ask an administrator to add it", id.Username)}
	}
	if u == nil {
		role := az.DefaultUserRole
		if role == "" {
			role = store.RoleViewer
		}
		if mappedOK {
			role = mapped
		} else if !az.RoleMappingOn() {
			if _, total, err := st.ListUsers(ctx, store.UserFilter{Count: 1}); err != nil {
				return nil, err
			} else if total == 0 {
				role = store.RoleAdministrator
			}
		}
		u = &store.User{Username: id.Username, FirstName: id.FirstName, LastName: id.LastName, Email: id.Email,
			Role: role, Provider: id.Provider, UniqueID: id.UniqueID}
		if err := st.CreateUser(ctx, u); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return nil, &LoginError{fmt.Sprintf("username %q belongs to another account on this server; ask your administrator", id.Username)}
			}
			return nil, err
		}
	} else {
		if u.Locked {
			return nil, &LoginError{"account " + u.Username + " is locked"}
		}
		u.Username, u.UniqueID = id.Username, id.UniqueID
		if id.FirstName != "" || id.LastName != "" {
			u.FirstName, u.LastName = id.FirstName, id.LastName
		}
		if id.Email != "" {
			u.Email = id.Email
		}
		if az.RoleMappingOn() {
			u.Role = az.DefaultUserRole
			if mappedOK {
				u.Role = mapped
			}
		}
		if err := st.UpdateUser(ctx, u); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return nil, &LoginError{fmt.Sprintf("username %q belongs to another account on this server; ask your administrator", id.Username)}
			}
			return nil, err
		}
	}
	if id.GroupsKnown {
		gs := make([]store.Group, 0, len(id.Groups))
		seen := map[string]bool{}
		for i, g := range id.Groups {
			if g = strings.TrimSpace(g); g != "" && !seen[g] {
				seen[g] = true
				uid := g
				if i < len(id.GroupIDs) && id.GroupIDs[i] != "" {
					uid = id.GroupIDs[i]
				}
				gs = append(gs, store.Group{Name: g, UniqueID: uid})
			}
		}
		skipped, err := st.SyncProviderGroups(ctx, u.ID, id.Provider, gs)
		if err != nil {
			return nil, err
		}
		if len(skipped) > 0 && log != nil {
			log.Warn("provider groups left out: a local group has the name; rename one of them", logKeyUser, u.Username, "groups", strings.Join(skipped, ", "))
		}
	}
	return u, nil
}

// CheckProvider refuses to serve with a provider other than the one the
// server's accounts came from: Connect does not support changing it, as
// the old accounts would be orphaned. The error is one line for the log.
func CheckProvider(ctx context.Context, st store.Store, provider string) error {
	counts, err := st.UserProviders(ctx)
	if err != nil {
		return err
	}
	var others []string
	n := 0
	for p, c := range counts {
		if p != provider {
			others = append(others, fmt.Sprintf("%d %s", c, p))
			n += c
		}
	}
	if n == 0 {
		return nil
	}
	sort.Strings(others)
	return fmt.Errorf("Authentication.Provider = %s, but this server has accounts of another provider (%s); changing the provider of a server with users is not supported, as in Posit Connect: set Authentication.Provider back, or start with an empty database",
		provider, strings.Join(others, ", "))
}
