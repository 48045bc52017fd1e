// Package ldapauth signs users in against an LDAP directory (OpenLDAP,
// Active Directory, ...) as Posit Connect's [LDAP "NAME"] sections
// describe: a service account (or the user, for a single bind) searches the
// user by name, the user's DN binds with the password typed, and the
// user's groups are searched. Every value typed by a user is escaped
// before it enters a filter or a DN.
package ldapauth

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dais-dev/dais/server/config"
	"github.com/go-ldap/ldap/v3"
)

// Timeout bounds the connection and each operation with the directory.
const Timeout = 10 * time.Second

// maxNesting bounds the nested group search (a cycle ends it sooner).
const maxNesting = 16

var (
	// ErrBadCredentials is a login the directory refuses: an unknown
	// user, a wrong or empty password, or an account the directory has
	// disabled. The user is told no more than that.
	ErrBadCredentials = errors.New("wrong username or password")
	// ErrUnavailable is a directory that cannot be reached or does not
	// answer in time.
	ErrUnavailable = errors.New("the directory cannot be reached")
	// ErrNotPermitted is a user outside LDAP.PermittedLoginGroup.
	ErrNotPermitted = errors.New("not a member of a group permitted to log in")
)

// User is what the directory says about a user who logged in.
type User struct {
	DN        string
	UniqueID  string
	Username  string
	FirstName string
	LastName  string
	Email     string
	// Groups are the user's groups (GroupsKnown: GroupSearchBaseDN is set).
	Groups      []Group
	GroupsKnown bool
	// Roles are the values of UserRoleAttribute.
	Roles []string
}

// Group is one of the user's groups.
type Group struct {
	DN, Name, UniqueID string
}

// Authenticate checks username and password against the directory that
// cfg describes and returns the user. log may be nil; with cfg.Logging it
// gets each step (never the password).
func Authenticate(ctx context.Context, cfg *config.LDAP, log *slog.Logger, username, password string) (*User, error) {
	if log == nil || !cfg.Logging {
		log = slog.New(slog.DiscardHandler)
	}
	username = strings.TrimSpace(username)
	// An empty password is an "unauthenticated bind", which directories
	// accept without checking anything: never send one.
	if username == "" || password == "" || len(username) > 255 || strings.ContainsAny(username, "\x00\r\n") {
		return nil, ErrBadCredentials
	}
	conn, err := dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close()

	single := strings.Contains(cfg.BindDN, config.UsernamePlaceholder)
	switch {
	case single:
		dn := strings.ReplaceAll(cfg.BindDN, config.UsernamePlaceholder, escapeDNValue(username))
		log.Info("LDAP single bind", "dn", dn)
		if err := conn.Bind(dn, password); err != nil {
			return nil, bindError(err)
		}
	case cfg.BindDN != "":
		log.Info("LDAP bind as the service account", "dn", cfg.BindDN)
		if err := conn.Bind(cfg.BindDN, cfg.BindPassword); err != nil {
			if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
				return nil, fmt.Errorf("bind as LDAP BindDN %s: the directory refused the service account's credentials (check BindDN and BindPassword): %w", cfg.BindDN, err)
			}
			return nil, wrapNetwork(fmt.Errorf("bind as LDAP BindDN %s: %w", cfg.BindDN, err))
		}
	default:
		log.Info("LDAP anonymous search")
	}

	entry, err := findUser(conn, cfg, log, username)
	if errors.Is(err, ErrBadCredentials) && !single {
		// A known name with a wrong password costs a search and a bind:
		// an unknown name costs the same, or the answer's time tells
		// which names exist. The DN exists nowhere, so no real account
		// counts a failed login (or gets locked) for it.
		log.Info("LDAP bind as no user, as long as a user's bind", "dn", absentDN(cfg))
		if err := conn.Bind(absentDN(cfg), password); err != nil && !errors.Is(bindError(err), ErrBadCredentials) {
			return nil, bindError(err)
		}
		return nil, ErrBadCredentials
	}
	if err != nil {
		return nil, err
	}
	if !single {
		log.Info("LDAP bind as the user", "dn", entry.DN)
		if err := conn.Bind(entry.DN, password); err != nil {
			return nil, bindError(err)
		}
		// Groups are searched with the search identity again: a user may
		// not read the groups.
		if cfg.BindDN != "" {
			if err := conn.Bind(cfg.BindDN, cfg.BindPassword); err != nil {
				return nil, wrapNetwork(fmt.Errorf("bind as LDAP BindDN %s again: %w", cfg.BindDN, err))
			}
		} else if err := conn.UnauthenticatedBind(""); err != nil {
			return nil, wrapNetwork(fmt.Errorf("LDAP anonymous bind: %w", err))
		}
	}

	u := &User{
		DN:        entry.DN,
		UniqueID:  attrValue(entry, cfg.UniqueIdAttribute),
		Username:  entry.GetAttributeValue(cfg.UsernameAttribute),
		FirstName: entry.GetAttributeValue(cfg.UserFirstNameAttribute),
		LastName:  entry.GetAttributeValue(cfg.UserLastNameAttribute),
		Email:     entry.GetAttributeValue(cfg.UserEmailAttribute),
	}
	if u.UniqueID == "" {
		return nil, fmt.Errorf("LDAP user %s has no %s (LDAP.UniqueIdAttribute)", entry.DN, cfg.UniqueIdAttribute)
	}
	if cfg.UserRoleAttribute != "" {
		u.Roles = entry.GetAttributeValues(cfg.UserRoleAttribute)
	}
	if cfg.GroupSearchBaseDN != "" {
		u.GroupsKnown = true
		u.Groups, err = findGroups(conn, cfg, log, entry, u.Username)
		if err != nil {
			return nil, err
		}
	}
	if len(cfg.PermittedLoginGroup) > 0 && !permitted(cfg.PermittedLoginGroup, u.Groups) {
		log.Info("LDAP user not in PermittedLoginGroup", "dn", entry.DN)
		return nil, ErrNotPermitted
	}
	log.Info("LDAP login", "dn", entry.DN, "groups", len(u.Groups))
	return u, nil
}

// absentRDN names the entry an unknown user's password is bound to: a
// random value made once per process, which no directory holds.
var absentRDN = func() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "cn=dais-absent-" + hex.EncodeToString(b)
}()

// absentDN is a DN below UserSearchBaseDN that no entry has.
func absentDN(cfg *config.LDAP) string {
	if cfg.UserSearchBaseDN == "" {
		return absentRDN
	}
	return absentRDN + "," + cfg.UserSearchBaseDN
}

// dial connects with ldap:// or ldaps://, then StartTLS when asked.
func dial(ctx context.Context, cfg *config.LDAP) (*ldap.Conn, error) {
	tc, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	scheme := "ldap://"
	if cfg.TLS {
		scheme = "ldaps://"
	}
	d := &net.Dialer{Timeout: Timeout}
	if dl, ok := ctx.Deadline(); ok {
		d.Deadline = dl
	}
	conn, err := ldap.DialURL(scheme+cfg.ServerAddress, ldap.DialWithDialer(d), ldap.DialWithTLSConfig(tc))
	if err != nil {
		return nil, fmt.Errorf("%w: connect to %s: %v", ErrUnavailable, cfg.ServerAddress, err)
	}
	conn.SetTimeout(Timeout)
	if cfg.StartTLS {
		if err := conn.StartTLS(tc); err != nil {
			conn.Close()
			return nil, fmt.Errorf("%w: StartTLS with %s: %v", ErrUnavailable, cfg.ServerAddress, err)
		}
	}
	return conn, nil
}

func tlsConfig(cfg *config.LDAP) (*tls.Config, error) {
	host, _, err := net.SplitHostPort(cfg.ServerAddress)
	if err != nil {
		return nil, fmt.Errorf("LDAP.ServerAddress %q: %w", cfg.ServerAddress, err)
	}
	tc := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.ServerTLSInsecure}
	if cfg.TLSCACertificate != "" {
		b, err := os.ReadFile(cfg.TLSCACertificate)
		if err != nil {
			return nil, fmt.Errorf("read LDAP.TLSCACertificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("LDAP.TLSCACertificate %s holds no PEM certificate", cfg.TLSCACertificate)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// findUser searches the one entry whose UsernameAttribute is username.
func findUser(conn *ldap.Conn, cfg *config.LDAP, log *slog.Logger, username string) (*ldap.Entry, error) {
	filter := "(" + cfg.UsernameAttribute + "=" + ldap.EscapeFilter(username) + ")"
	if cfg.UserObjectClass != "" {
		filter += "(objectClass=" + ldap.EscapeFilter(cfg.UserObjectClass) + ")"
	}
	if cfg.UserFilterBase != "" {
		filter += config.LDAPFilter(cfg.UserFilterBase)
	}
	filter = "(&" + filter + ")"
	attrs := []string{cfg.UsernameAttribute, cfg.UserFirstNameAttribute, cfg.UserLastNameAttribute, cfg.UserEmailAttribute, "memberOf"}
	if !strings.EqualFold(cfg.UniqueIdAttribute, "DN") {
		attrs = append(attrs, cfg.UniqueIdAttribute)
	}
	if cfg.UserRoleAttribute != "" {
		attrs = append(attrs, cfg.UserRoleAttribute)
	}
	req := ldap.NewSearchRequest(cfg.UserSearchBaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2, int(Timeout/time.Second), false,
		filter, nonEmpty(attrs), nil)
	log.Info("LDAP user search", "base", cfg.UserSearchBaseDN, "filter", filter)
	res, err := conn.Search(req)
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			return nil, fmt.Errorf("LDAP user search: LDAP.UserSearchBaseDN %s does not exist: %w", cfg.UserSearchBaseDN, err)
		}
		return nil, wrapNetwork(fmt.Errorf("LDAP user search: %w", err))
	}
	switch {
	case res == nil || len(res.Entries) == 0:
		log.Info("LDAP user not found", "filter", filter)
		return nil, ErrBadCredentials
	case len(res.Entries) > 1 || ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded):
		return nil, fmt.Errorf("LDAP user search %s found more than one entry; make LDAP.UsernameAttribute unique or narrow LDAP.UserFilterBase", filter)
	}
	return res.Entries[0], nil
}

// findGroups returns the groups below GroupSearchBaseDN whose member,
// uniqueMember or memberUid names the user, those the user's memberOf
// names, and with NestedGroups the groups of those groups.
func findGroups(conn *ldap.Conn, cfg *config.LDAP, log *slog.Logger, user *ldap.Entry, username string) ([]Group, error) {
	base, err := ldap.ParseDN(cfg.GroupSearchBaseDN)
	if err != nil {
		return nil, fmt.Errorf("LDAP.GroupSearchBaseDN: %w", err)
	}
	attrs := []string{cfg.GroupNameAttribute}
	if !strings.EqualFold(cfg.GroupUniqueIdAttribute, "DN") {
		attrs = append(attrs, cfg.GroupUniqueIdAttribute)
	}
	narrow := ""
	if cfg.GroupObjectClass != "" {
		narrow += "(objectClass=" + ldap.EscapeFilter(cfg.GroupObjectClass) + ")"
	}
	if cfg.GroupFilterBase != "" {
		narrow += config.LDAPFilter(cfg.GroupFilterBase)
	}
	search := func(base string, scope int, filter string) ([]*ldap.Entry, error) {
		req := ldap.NewSearchRequest(base, scope, ldap.NeverDerefAliases, 0, int(Timeout/time.Second), false, filter, attrs, nil)
		log.Info("LDAP group search", "base", base, "filter", filter)
		res, err := conn.SearchWithPaging(req, 500)
		if err != nil {
			if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
				return nil, nil
			}
			return nil, wrapNetwork(fmt.Errorf("LDAP group search: %w", err))
		}
		return res.Entries, nil
	}
	found := map[string]Group{} // by lower-case DN
	var order []string
	add := func(entries []*ldap.Entry) (added []string) {
		for _, e := range entries {
			k := strings.ToLower(e.DN)
			if _, ok := found[k]; ok {
				continue
			}
			g := Group{DN: e.DN, Name: e.GetAttributeValue(cfg.GroupNameAttribute), UniqueID: attrValue(e, cfg.GroupUniqueIdAttribute)}
			if g.Name == "" || g.UniqueID == "" {
				log.Info("LDAP group without a name or unique id skipped", "dn", e.DN)
				continue
			}
			found[k] = g
			order = append(order, k)
			added = append(added, e.DN)
		}
		return added
	}
	memberFilter := func(dns []string) string {
		var b strings.Builder
		for _, dn := range dns {
			v := ldap.EscapeFilter(dn)
			b.WriteString("(member=" + v + ")(uniqueMember=" + v + ")")
		}
		return b.String()
	}
	direct := memberFilter([]string{user.DN}) + "(memberUid=" + ldap.EscapeFilter(username) + ")"
	entries, err := search(cfg.GroupSearchBaseDN, ldap.ScopeWholeSubtree, "(&"+narrow+"(|"+direct+"))")
	if err != nil {
		return nil, err
	}
	frontier := add(entries)
	for _, dn := range user.GetAttributeValues("memberOf") {
		d, err := ldap.ParseDN(dn)
		if err != nil || !base.AncestorOfFold(d) && !base.EqualFold(d) {
			continue
		}
		if _, ok := found[strings.ToLower(dn)]; ok {
			continue
		}
		filter := "(objectClass=*)"
		if narrow != "" {
			filter = "(&" + narrow + ")"
		}
		entries, err := search(dn, ldap.ScopeBaseObject, filter)
		if err != nil {
			return nil, err
		}
		frontier = append(frontier, add(entries)...)
	}
	for depth := 0; cfg.NestedGroups && len(frontier) > 0 && depth < maxNesting; depth++ {
		entries, err := search(cfg.GroupSearchBaseDN, ldap.ScopeWholeSubtree, "(&"+narrow+"(|"+memberFilter(frontier)+"))")
		if err != nil {
			return nil, err
		}
		frontier = add(entries)
	}
	groups := make([]Group, 0, len(order))
	for _, k := range order {
		groups = append(groups, found[k])
	}
	return groups, nil
}

// permitted says whether one of groups is named (by name or DN) in allowed.
func permitted(allowed []string, groups []Group) bool {
	for _, a := range allowed {
		a = strings.TrimSpace(a)
		for _, g := range groups {
			if strings.EqualFold(a, g.Name) || strings.EqualFold(a, g.DN) {
				return true
			}
			if x, err := ldap.ParseDN(a); err == nil && len(x.RDNs) > 0 {
				if y, err := ldap.ParseDN(g.DN); err == nil && x.EqualFold(y) {
					return true
				}
			}
		}
	}
	return false
}

// attrValue is an attribute as text: the DN for "DN", Active Directory's
// binary objectGUID as its usual string, other binary values in hex.
func attrValue(e *ldap.Entry, name string) string {
	if strings.EqualFold(name, "DN") {
		return e.DN
	}
	b := e.GetRawAttributeValue(name)
	if strings.EqualFold(name, "objectGUID") && len(b) == 16 {
		return fmt.Sprintf("%08x-%04x-%04x-%x-%x",
			uint32(b[3])<<24|uint32(b[2])<<16|uint32(b[1])<<8|uint32(b[0]),
			uint16(b[5])<<8|uint16(b[4]), uint16(b[7])<<8|uint16(b[6]), b[8:10], b[10:16])
	}
	if !utf8.Valid(b) {
		return hex.EncodeToString(b)
	}
	return string(b)
}

// escapeDNValue escapes a username for the {username} of a single bind's
// DN (RFC 4514: , + " \ < > ; = and leading # or space, trailing space).
func escapeDNValue(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case strings.ContainsRune(`,+"\<>;=`, r),
			i == 0 && (r == '#' || r == ' '),
			i == len(s)-1 && r == ' ':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// bindError turns a refused bind into ErrBadCredentials (as the directory
// does for a wrong password, or a locked or disabled account), and a
// broken connection into ErrUnavailable.
func bindError(err error) error {
	switch {
	case ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials),
		ldap.IsErrorWithCode(err, ldap.LDAPResultInappropriateAuthentication),
		ldap.IsErrorWithCode(err, ldap.LDAPResultUnwillingToPerform),
		ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights),
		ldap.IsErrorWithCode(err, ldap.LDAPResultConstraintViolation):
		return ErrBadCredentials
	}
	return wrapNetwork(fmt.Errorf("LDAP bind: %w", err))
}

// wrapNetwork marks a lost or timed-out connection as ErrUnavailable.
func wrapNetwork(err error) error {
	if ldap.IsErrorAnyOf(err, ldap.ErrorNetwork, ldap.LDAPResultTimeout, ldap.LDAPResultBusy, ldap.LDAPResultUnavailable, ldap.LDAPResultServerDown) {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return err
}

func nonEmpty(xs []string) []string {
	var out []string
	for _, x := range xs {
		if x != "" {
			out = append(out, x)
		}
	}
	return out
}
