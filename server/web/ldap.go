package web

import (
	"context"
	"errors"
	"net/http"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/ldapauth"
	"github.com/dais-dev/dais/server/store"
)

// ProviderLDAP is Authentication.Provider = ldap: the login form's name
// and password are checked against the [LDAP "NAME"] directories.
const ProviderLDAP = "ldap"

// ldapLogin checks a login form against the directories in name order:
// the first that knows the name and password signs the user in. It
// returns the account, or the status and message for the form.
func (s *Server) ldapLogin(ctx context.Context, cfg *config.Config, username, password string) (*store.User, int, string) {
	var unavailable bool
	for _, name := range cfg.LDAPNames() {
		l := cfg.LDAP[name]
		lu, err := ldapauth.Authenticate(ctx, l, s.log.With("ldap", name), username, password)
		switch {
		case errors.Is(err, ldapauth.ErrBadCredentials):
			continue
		case errors.Is(err, ldapauth.ErrNotPermitted):
			s.log.Warn("LDAP login refused: not in LDAP.PermittedLoginGroup", "ldap", name, logKeyUser, username)
			return nil, http.StatusForbidden, "Your account may not log in to this server; ask an administrator."
		case errors.Is(err, ldapauth.ErrUnavailable):
			s.log.Error("LDAP directory cannot be reached", "ldap", name, logKeyErr, err)
			unavailable = true
			continue
		case err != nil:
			s.log.Error("LDAP login", "ldap", name, logKeyUser, username, logKeyErr, err)
			unavailable = true
			continue
		}
		id := Identity{Provider: ProviderLDAP, UniqueID: lu.UniqueID, Username: lu.Username, FirstName: lu.FirstName,
			LastName: lu.LastName, Email: lu.Email, GroupsKnown: lu.GroupsKnown, Roles: lu.Roles, NoRegister: !l.RegisterOnFirstLogin}
		for _, g := range lu.Groups {
			id.Groups = append(id.Groups, g.Name)
			id.GroupIDs = append(id.GroupIDs, g.UniqueID)
			id.GroupDNs = append(id.GroupDNs, g.DN)
		}
		u, err := Provision(ctx, s.store, s.log, cfg.Authorization, id)
		var le *LoginError
		switch {
		case errors.As(err, &le):
			s.log.Warn("LDAP login refused", "ldap", name, logKeyUser, lu.Username, logKeyErr, err)
			return nil, http.StatusForbidden, le.Msg
		case err != nil:
			s.log.Error("LDAP login", "ldap", name, logKeyUser, lu.Username, logKeyErr, err)
			return nil, http.StatusServiceUnavailable, "Cannot sign you in now; try again."
		}
		return u, 0, ""
	}
	if unavailable {
		return nil, http.StatusServiceUnavailable, "The directory (LDAP) cannot be reached now, so you cannot log in; try again in a moment."
	}
	s.log.Info("LDAP login refused: wrong username or password", logKeyUser, username)
	return nil, http.StatusUnauthorized, "Wrong username or password."
}
