package config

import (
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// attributeName is an LDAP attribute or object class: a name or an OID.
var attributeName = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9-]*|[0-9]+(\.[0-9]+)+)$`)

// UsernamePlaceholder in LDAP.BindDN makes a single bind: the user's own
// name and password bind, and search.
const UsernamePlaceholder = "{username}"

// LDAPNames are the [LDAP "NAME"] sections, in the order logins try them.
func (c *Config) LDAPNames() []string {
	var names []string
	for _, n := range sortedNames(c.LDAP) {
		if c.LDAP[n] != nil {
			names = append(names, n)
		}
	}
	return names
}

// validateLDAP checks every [LDAP "NAME"] section.
func validateLDAP(c *Config, origins map[string]string) (problems, warnings []string) {
	names := c.LDAPNames()
	if c.Authentication.Provider == "ldap" && len(names) == 0 {
		problems = append(problems, fmt.Sprintf("%s: Authentication.Provider = ldap needs a directory: add a section [LDAP \"NAME\"] with ServerAddress, BindDN, BindPassword and UserSearchBaseDN (docs/authentication.md)",
			where(origins, "Authentication.Provider")))
	}
	for _, n := range names {
		l := c.LDAP[n]
		at := func(key string) string {
			if w := origins[namedOriginKey("LDAP", n, key)]; w != "" {
				return w
			}
			if w := origins[namedOriginKey("LDAP", n, "")]; w != "" {
				return w
			}
			return "default"
		}
		bad := func(key string, value any, format string, args ...any) {
			full := "LDAP." + n + "." + key
			problems = append(problems, fmt.Sprintf("%s: %s = %s: %s", at(key), full, display(full, value), fmt.Sprintf(format, args...)))
		}
		warn := func(key, format string, args ...any) {
			warnings = append(warnings, fmt.Sprintf("%s: LDAP.%s.%s: %s", at(key), n, key, fmt.Sprintf(format, args...)))
		}

		if l.ServerAddress == "" {
			bad("ServerAddress", "", "required: the directory server, like ldap.example.com:389 (or :636 with TLS = true)")
		} else if host, port, err := net.SplitHostPort(l.ServerAddress); err != nil || host == "" || !validPort(port) {
			bad("ServerAddress", l.ServerAddress, "must be host:port, like ldap.example.com:389 (or :636 with TLS = true), without ldap://")
		}
		if l.TLS && l.StartTLS {
			bad("StartTLS", l.StartTLS, "TLS (ldaps) and StartTLS cannot both be on: use TLS with port 636, or StartTLS with port 389")
		}
		if l.TLSCACertificate != "" {
			if !absPath(l.TLSCACertificate) {
				bad("TLSCACertificate", l.TLSCACertificate, "must be an absolute path to a PEM file")
			} else if b, err := os.ReadFile(l.TLSCACertificate); err != nil {
				bad("TLSCACertificate", l.TLSCACertificate, "cannot read it: %v", err)
			} else if !x509.NewCertPool().AppendCertsFromPEM(b) {
				bad("TLSCACertificate", l.TLSCACertificate, "holds no PEM certificate (-----BEGIN CERTIFICATE-----)")
			}
			if !l.TLS && !l.StartTLS {
				warn("TLSCACertificate", "set but neither TLS nor StartTLS is on: it is not used, and passwords cross the network in clear text")
			}
		}
		if l.ServerTLSInsecure && (l.TLS || l.StartTLS) {
			warn("ServerTLSInsecure", "the server's certificate is not checked: anyone on the path can read the passwords; set TLSCACertificate instead")
		}
		single := strings.Contains(l.BindDN, UsernamePlaceholder)
		switch {
		case l.AnonymousBind && l.BindDN != "":
			bad("AnonymousBind", l.AnonymousBind, "cannot be on with BindDN set: search anonymously or as BindDN, not both")
		case l.BindDN == "" && !l.AnonymousBind:
			bad("BindDN", "", "required: the service account that searches users, like cn=dais,ou=Services,dc=example,dc=com, with BindPassword; or a single bind, uid={username},ou=People,dc=example,dc=com; or AnonymousBind = true")
		case l.BindDN != "" && !single:
			if _, err := ldap.ParseDN(l.BindDN); err != nil {
				bad("BindDN", l.BindDN, "not a DN (%v); write one like cn=dais,ou=Services,dc=example,dc=com", err)
			}
			if l.BindPassword == "" {
				bad("BindPassword", "", "required with BindDN (the service account's password); set it with %sLDAP_%s_BINDPASSWORD", EnvPrefix, strings.ToUpper(n))
			}
		}
		if single && l.BindPassword != "" {
			warn("BindPassword", "not used: BindDN has %s (a single bind with the user's own password)", UsernamePlaceholder)
		}
		for _, d := range []struct{ key, v string }{{"UserSearchBaseDN", l.UserSearchBaseDN}, {"GroupSearchBaseDN", l.GroupSearchBaseDN}} {
			if d.v == "" {
				continue
			}
			if _, err := ldap.ParseDN(d.v); err != nil {
				bad(d.key, d.v, "not a DN (%v); write one like ou=People,dc=example,dc=com", err)
			}
		}
		if l.UserSearchBaseDN == "" {
			bad("UserSearchBaseDN", "", "required: where users are searched, like ou=People,dc=example,dc=com")
		}
		for _, f := range []struct{ key, v string }{{"UserFilterBase", l.UserFilterBase}, {"GroupFilterBase", l.GroupFilterBase}} {
			if f.v == "" {
				continue
			}
			if _, err := ldap.CompileFilter(LDAPFilter(f.v)); err != nil {
				bad(f.key, f.v, "not an LDAP filter (%v); write one like (!(loginDisabled=TRUE))", err)
			}
		}
		for _, a := range []struct {
			key, v   string
			required bool
			dn       bool
		}{
			{"UserObjectClass", l.UserObjectClass, false, false},
			{"UsernameAttribute", l.UsernameAttribute, true, false},
			{"UserFirstNameAttribute", l.UserFirstNameAttribute, false, false},
			{"UserLastNameAttribute", l.UserLastNameAttribute, false, false},
			{"UserEmailAttribute", l.UserEmailAttribute, false, false},
			{"UniqueIdAttribute", l.UniqueIdAttribute, true, true},
			{"UserRoleAttribute", l.UserRoleAttribute, false, false},
			{"GroupObjectClass", l.GroupObjectClass, false, false},
			{"GroupNameAttribute", l.GroupNameAttribute, true, false},
			{"GroupUniqueIdAttribute", l.GroupUniqueIdAttribute, true, true},
		} {
			switch {
			case a.v == "" && a.required:
				bad(a.key, "", "must name an attribute")
			case a.v != "" && !attributeName.MatchString(a.v):
				bad(a.key, a.v, "not an attribute name; write one like uid, mail or entryUUID")
			}
		}
		if len(l.PermittedLoginGroup) > 0 && l.GroupSearchBaseDN == "" {
			bad("PermittedLoginGroup", strings.Join(l.PermittedLoginGroup, ", "), "needs GroupSearchBaseDN: groups are only read from the directory when it is set")
		}
		if l.NestedGroups && l.GroupSearchBaseDN == "" {
			warn("NestedGroups", "has no effect without GroupSearchBaseDN")
		}
		if l.UserRoleAttribute != "" && !c.Authorization.UserRoleMapping {
			warn("UserRoleAttribute", "is read only with Authorization.UserRoleMapping = true")
		}
	}
	return problems, warnings
}

// LDAPFilter puts parentheses around a filter written without them, as
// Connect's files sometimes do (objectClass=user).
func LDAPFilter(f string) string {
	f = strings.TrimSpace(f)
	if !strings.HasPrefix(f, "(") {
		f = "(" + f + ")"
	}
	return f
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n > 0 && n < 65536
}
