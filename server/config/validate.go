package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Validate checks c as Load does, normalising the spelling of enumerated
// values (Database.Provider = Postgres -> postgres). It is for
// configurations built in code; Load already validates what it returns.
func (c *Config) Validate() error {
	problems, _ := validate(c, nil)
	if len(problems) > 0 {
		return &ProblemsError{Problems: problems}
	}
	return nil
}

// minTimeout is the shortest timeout that is not a mistake: a bare number in
// a duration is nanoseconds, as in Posit Connect.
const minTimeout = time.Second

// MaxProxyTimeout is the longest Scheduler.ConnectionTimeout or ReadTimeout
// (and content connection_timeout or read_timeout) that is not a mistake
// (milliseconds written for seconds): a week. 0, never, is allowed.
const MaxProxyTimeout = 7 * 24 * time.Hour

var headerName = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+.^_|~-]+$`)

// LoopbackHost says whether host (no port) is a loopback name or address.
func LoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// ParseTrusted reads one ProxyAuth.TrustedProxies entry: an IP address
// (a single-address prefix) or a CIDR.
func ParseTrusted(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("not a CIDR")
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("not an IP address")
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

var userName = regexp.MustCompile(`^[a-z_][a-z0-9_.-]*\$?$`)

// validate checks values that parsed but are not usable. origins (may be nil)
// names where each value came from, so messages point at the line to fix.
func validate(c *Config, origins map[string]string) (problems, warnings []string) {
	bad := func(key string, value any, format string, args ...any) {
		where := origins[originKey(key)]
		if where == "" {
			where = "default"
		}
		problems = append(problems, fmt.Sprintf("%s: %s = %s: %s", where, key, display(key, value), fmt.Sprintf(format, args...)))
	}
	oneOf := func(key string, v *string, upper bool, allowed ...string) {
		norm := strings.ToLower(*v)
		if upper {
			norm = strings.ToUpper(*v)
		}
		for _, a := range allowed {
			if norm == a {
				*v = norm
				return
			}
		}
		bad(key, *v, "must be one of %s", strings.Join(allowed, ", "))
	}

	if !absPath(c.Server.DataDir) {
		bad("Server.DataDir", c.Server.DataDir, "must be an absolute path, like /data")
	}
	if c.Server.Address != "" {
		if u, err := url.Parse(c.Server.Address); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("Server.Address", c.Server.Address, "must be an http:// or https:// URL, like https://connect.example.com/, or empty")
		}
	}
	if c.Server.SenderEmail != "" {
		if _, err := mail.ParseAddress(c.Server.SenderEmail); err != nil {
			bad("Server.SenderEmail", c.Server.SenderEmail, "not a mail address (%v); write one like connect@example.com, or leave it empty", err)
		}
	}
	if c.Server.AuditLogRetention < 0 {
		bad("Server.AuditLogRetention", c.Server.AuditLogRetention, "must be 0 (keep forever) or a duration, like 8760h")
	}
	if c.Server.UsageRetention < 0 {
		bad("Server.UsageRetention", c.Server.UsageRetention, "must be 0 (keep forever) or a duration, like 2160h")
	}
	if c.Server.DataDirReserve < 0 {
		bad("Server.DataDirReserve", c.Server.DataDirReserve, "must be 0 (off) or more bytes, like 268435456 (256 MiB)")
	}
	if c.Server.StopTimeout.Std() < minTimeout {
		bad("Server.StopTimeout", c.Server.StopTimeout, "must be at least 1s; write a unit, like 60s (a bare number is nanoseconds)")
	}

	if err := checkListen(c.HTTP.Listen); err != nil {
		bad("HTTP.Listen", c.HTTP.Listen, "%v; write host:port or :port, like :3939", err)
	}
	if c.HTTP.BodyTimeout.Std() < minTimeout {
		bad("HTTP.BodyTimeout", c.HTTP.BodyTimeout, "must be at least 1s; write a unit, like 10s (a bare number is nanoseconds)")
	}
	if c.HTTP.UploadMinRate < 1 {
		bad("HTTP.UploadMinRate", c.HTTP.UploadMinRate, "must be 1 or more bytes per second, like 16384")
	}

	oneOf("Database.Provider", &c.Database.Provider, false, "sqlite", "postgres")
	if c.SQLite.Dir != "" && !absPath(c.SQLite.Dir) {
		bad("SQLite.Dir", c.SQLite.Dir, "must be an absolute path, or empty for <Server.DataDir>/db")
	}
	if c.Cluster.HeartbeatInterval.Std() < minTimeout {
		bad("Cluster.HeartbeatInterval", c.Cluster.HeartbeatInterval, "must be at least 1s; write a unit, like 5s (a bare number is nanoseconds)")
	} else if c.Cluster.DeadAfter.Std() < 3*c.Cluster.HeartbeatInterval.Std() {
		bad("Cluster.DeadAfter", c.Cluster.DeadAfter, "must be at least three Cluster.HeartbeatIntervals (%v), like 30s", 3*c.Cluster.HeartbeatInterval.Std())
	}
	if c.Cluster.DrainDelay < 0 {
		bad("Cluster.DrainDelay", c.Cluster.DrainDelay, "must be 0 (off) or more, like 5s")
	}
	if c.Postgres.URL != "" {
		if u, err := url.Parse(c.Postgres.URL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			bad("Postgres.URL", c.Postgres.URL, "must be a postgres:// URL, like postgres://connect@db.example.com:5432/connect?sslmode=require")
		}
	} else if c.Database.Provider == "postgres" {
		bad("Postgres.URL", c.Postgres.URL, "required when Database.Provider = postgres; set it in [Postgres] or with %s", EnvPrefix+"POSTGRES_URL")
	}

	switch strings.ToLower(c.Authentication.Provider) {
	case "password", "proxy", "oauth2", "ldap":
		c.Authentication.Provider = strings.ToLower(c.Authentication.Provider)
	default:
		bad("Authentication.Provider", c.Authentication.Provider, "dais has password, proxy, oauth2 (OpenID Connect) and ldap authentication; set Provider = password, proxy, oauth2 or ldap")
	}
	if c.OAuth2.OpenIDConnectIssuer != "" {
		if u, err := url.Parse(c.OAuth2.OpenIDConnectIssuer); err != nil || u.Host == "" || !(u.Scheme == "https" || u.Scheme == "http" && LoopbackHost(u.Hostname())) {
			bad("OAuth2.OpenIDConnectIssuer", c.OAuth2.OpenIDConnectIssuer, "must be an https:// URL, like https://login.example.com/realms/team (http:// only on loopback)")
		}
	}
	if c.Authentication.Provider == "oauth2" {
		if c.OAuth2.ClientId == "" {
			bad("OAuth2.ClientId", "", "required with Authentication.Provider = oauth2: the client id registered at the provider")
		}
		switch {
		case c.OAuth2.ClientSecret == "" && c.OAuth2.ClientSecretFile == "":
			bad("OAuth2.ClientSecret", "", "required with Authentication.Provider = oauth2; set it with %s, or name a file holding it in OAuth2.ClientSecretFile", EnvPrefix+"OAUTH2_CLIENTSECRET")
		case c.OAuth2.ClientSecret != "" && c.OAuth2.ClientSecretFile != "":
			bad("OAuth2.ClientSecretFile", c.OAuth2.ClientSecretFile, "OAuth2.ClientSecret is set too: set one of them")
		case c.OAuth2.ClientSecretFile != "":
			if !absPath(c.OAuth2.ClientSecretFile) {
				bad("OAuth2.ClientSecretFile", c.OAuth2.ClientSecretFile, "must be an absolute path, like /run/secrets/oauth2-client-secret")
			} else if _, err := c.OAuth2.Secret(); err != nil {
				bad("OAuth2.ClientSecretFile", c.OAuth2.ClientSecretFile, "%v", err)
			}
		}
		if c.OAuth2.OpenIDConnectIssuer == "" {
			bad("OAuth2.OpenIDConnectIssuer", "", "required with Authentication.Provider = oauth2, like https://login.example.com/realms/team")
		}
		if c.OAuth2.UniqueIdClaim == "" {
			bad("OAuth2.UniqueIdClaim", "", "must name a claim, like sub")
		}
		if c.OAuth2.UsernameClaim == "" {
			bad("OAuth2.UsernameClaim", "", "must name a claim, like preferred_username")
		}
	}
	for _, h := range []struct{ key, v string }{
		{"ProxyAuth.UsernameHeader", c.ProxyAuth.UsernameHeader}, {"ProxyAuth.UniqueIdHeader", c.ProxyAuth.UniqueIdHeader},
		{"ProxyAuth.FirstNameHeader", c.ProxyAuth.FirstNameHeader}, {"ProxyAuth.LastNameHeader", c.ProxyAuth.LastNameHeader},
		{"ProxyAuth.EmailHeader", c.ProxyAuth.EmailHeader}, {"ProxyAuth.RoleHeader", c.ProxyAuth.RoleHeader},
		{"ProxyAuth.GroupsHeader", c.ProxyAuth.GroupsHeader},
	} {
		if h.v != "" && !headerName.MatchString(h.v) {
			bad(h.key, h.v, "not a header name; write one like X-Auth-Username")
		}
	}
	for _, h := range []struct{ key, v string }{{"ProxyAuth.LoginURL", c.ProxyAuth.LoginURL}, {"ProxyAuth.LogoutURL", c.ProxyAuth.LogoutURL}} {
		if h.v == "" {
			continue
		}
		if u, err := url.Parse(h.v); err != nil || !(u.Scheme == "https" || u.Scheme == "http") && !(u.Scheme == "" && u.Host == "" && strings.HasPrefix(u.Path, "/")) {
			bad(h.key, h.v, "must be an http(s):// URL or a path starting with /, like https://sso.example.com/login")
		}
	}
	for _, p := range c.ProxyAuth.TrustedProxies {
		if _, err := ParseTrusted(p); err != nil {
			bad("ProxyAuth.TrustedProxies", p, "%v; write an IP address or a CIDR, like 10.0.0.5 or 10.0.0.0/24", err)
		}
	}
	if c.Authentication.Provider == "proxy" {
		if c.ProxyAuth.UsernameHeader == "" {
			bad("ProxyAuth.UsernameHeader", "", "required with Authentication.Provider = proxy; like X-Auth-Username")
		}
		if len(c.ProxyAuth.TrustedProxies) == 0 {
			bad("ProxyAuth.TrustedProxies", "", "required with Authentication.Provider = proxy: name the proxy's addresses, like 10.0.0.5 or 10.0.0.0/24, so that nobody else can set the headers")
		}
	}

	lp, lw := validateLDAP(c, origins)
	problems = append(problems, lp...)
	warnings = append(warnings, lw...)

	oneOf("Authorization.DefaultUserRole", &c.Authorization.DefaultUserRole, false, "viewer", "publisher")
	if c.Authorization.UserRoleGroupMapping && c.Authorization.UserRoleMapping {
		bad("Authorization.UserRoleMapping", c.Authorization.UserRoleMapping,
			"Authorization.UserRoleGroupMapping and Authorization.UserRoleMapping cannot both be on: map roles from groups or from a role value, not both; turn one off")
	}
	if !c.Authorization.RoleMappingOn() && len(c.Authorization.ViewerRoleMapping)+len(c.Authorization.PublisherRoleMapping)+len(c.Authorization.AdministratorRoleMapping) > 0 {
		warnings = append(warnings, "Authorization: *RoleMapping keys are set but neither UserRoleGroupMapping nor UserRoleMapping is on: they are ignored")
	}

	oneOf("Sandbox.Mode", &c.Sandbox.Mode, false, "auto", "namespaces", "landlock")
	if c.Git.PollingFrequency.Std() < time.Second {
		bad("Git.PollingFrequency", c.Git.PollingFrequency, "must be at least 1s; write a unit, like 15m (a bare number is nanoseconds)")
	}
	if c.Git.CommandTimeout.Std() < time.Second {
		bad("Git.CommandTimeout", c.Git.CommandTimeout, "must be at least 1s; write a unit, like 5m (a bare number is nanoseconds)")
	}
	if c.Git.MaxConcurrentChecks < 1 {
		bad("Git.MaxConcurrentChecks", c.Git.MaxConcurrentChecks, "must be 1 or more")
	}
	if !validPorts(c.Sandbox.LandlockConnectPorts) {
		bad("Sandbox.LandlockConnectPorts", c.Sandbox.LandlockConnectPorts, "must list TCP ports and ranges, like 1-1023,5432")
	}

	oneOf("Licensing.LicenseType", &c.Licensing.LicenseType, false, "none", "remote")
	if c.Licensing.LicenseType == "remote" && c.Licensing.LicenseServer == "" {
		// Posit Connect's files say "remote" and leave the server to the
		// environment; a check of the file alone is not an error.
		warnings = append(warnings, fmt.Sprintf("%s: Licensing.LicenseType = remote but no license server is set: dais serve will not start until %s or Licensing.LicenseServer names one",
			where(origins, "Licensing.LicenseType"), RSCLicenseServer))
	}

	for _, r := range []struct {
		name, example string
		rt            *Runtime
	}{
		{"Python", "/opt/python/3.12.4/bin/python3", &c.Python},
		{"R", "/opt/R/4.4.1/bin/R", &c.R},
		{"Quarto", "/opt/quarto/1.5.57/bin/quarto", &c.Quarto},
	} {
		for _, x := range r.rt.Executable {
			if !absPath(x) {
				bad(r.name+".Executable", x, "must be an absolute path, like %s", r.example)
			}
		}
	}

	if !userName.MatchString(c.Applications.RunAs) {
		bad("Applications.RunAs", c.Applications.RunAs, "must be a Unix user name, like rstudio-connect")
	}
	if c.Applications.BundleMaxSize < 1 {
		bad("Applications.BundleMaxSize", c.Applications.BundleMaxSize, "must be 1 or more bytes, like 2147483648 (2 GiB)")
	}
	if c.Applications.BundleMaxFiles < 1 {
		bad("Applications.BundleMaxFiles", c.Applications.BundleMaxFiles, "must be 1 or more, like 100000")
	}

	s := &c.Scheduler
	if s.MinProcesses < 0 {
		bad("Scheduler.MinProcesses", s.MinProcesses, "must be 0 or more")
	}
	if s.MaxProcesses < 1 {
		bad("Scheduler.MaxProcesses", s.MaxProcesses, "must be 1 or more")
	} else if s.MinProcesses > s.MaxProcesses {
		bad("Scheduler.MinProcesses", s.MinProcesses, "must not exceed Scheduler.MaxProcesses = %d (%s)", s.MaxProcesses, where(origins, "Scheduler.MaxProcesses"))
	}
	if s.IdleTimeout.Std() < minTimeout {
		bad("Scheduler.IdleTimeout", s.IdleTimeout, "must be at least 1s; write a unit, like 120s (a bare number is nanoseconds)")
	}
	if s.InitTimeout.Std() < minTimeout {
		bad("Scheduler.InitTimeout", s.InitTimeout, "must be at least 1s; write a unit, like 60s (a bare number is nanoseconds)")
	}
	for _, t := range []struct {
		key string
		d   Duration
	}{{"Scheduler.ConnectionTimeout", s.ConnectionTimeout}, {"Scheduler.ReadTimeout", s.ReadTimeout}} {
		if t.d != 0 && (t.d.Std() < minTimeout || t.d.Std() > MaxProxyTimeout) {
			bad(t.key, t.d, "must be 0 (never) or from 1s to %s; write a unit, like 1h (a bare number is nanoseconds)", MaxProxyTimeout)
		}
	}
	if s.MemoryLimit < 0 || (s.MemoryLimit > 0 && s.MemoryLimit < MinMemoryLimit) {
		bad("Scheduler.MemoryLimit", s.MemoryLimit, "must be 0 (no limit) or at least %d bytes (16 MiB), like 1073741824 for 1 GiB", MinMemoryLimit)
	}
	if s.MaxMemoryLimit < 0 {
		bad("Scheduler.MaxMemoryLimit", s.MaxMemoryLimit, "must be 0 (no maximum) or more")
	} else if s.MaxMemoryLimit > 0 && s.MemoryLimit > s.MaxMemoryLimit {
		bad("Scheduler.MemoryLimit", s.MemoryLimit, "must not exceed Scheduler.MaxMemoryLimit = %d (%s)", s.MaxMemoryLimit, where(origins, "Scheduler.MaxMemoryLimit"))
	}
	if s.CPULimit < 0 || s.CPULimit != s.CPULimit {
		bad("Scheduler.CPULimit", s.CPULimit, "must be 0 (no limit) or a number of CPUs, like 0.5")
	}
	if s.MaxCPULimit < 0 || s.MaxCPULimit != s.MaxCPULimit {
		bad("Scheduler.MaxCPULimit", s.MaxCPULimit, "must be 0 (no maximum) or a number of CPUs, like 2")
	} else if s.MaxCPULimit > 0 && s.CPULimit > s.MaxCPULimit {
		bad("Scheduler.CPULimit", s.CPULimit, "must not exceed Scheduler.MaxCPULimit = %g (%s)", s.MaxCPULimit, where(origins, "Scheduler.MaxCPULimit"))
	}
	if c.Sandbox.ProcessLimit < MinProcessLimit {
		bad("Sandbox.ProcessLimit", c.Sandbox.ProcessLimit, "must be at least %d, like %d", MinProcessLimit, DefaultProcessLimit)
	}
	if c.Sandbox.TmpSize < 1<<20 {
		bad("Sandbox.TmpSize", c.Sandbox.TmpSize, "must be at least 1048576 bytes (1 MiB), like %d for 1 GiB", DefaultTmpSize)
	}
	if c.Sandbox.WorkDirLimit != 0 && c.Sandbox.WorkDirLimit < 1<<20 {
		bad("Sandbox.WorkDirLimit", c.Sandbox.WorkDirLimit, "must be 0 (no limit) or at least 1048576 bytes (1 MiB), like %d for 10 GiB", DefaultWorkDirLimit)
	}

	if c.Logging.ServiceLogLevel != "" && strings.EqualFold(c.Logging.ServiceLogLevel, "WARNING") {
		c.Logging.ServiceLogLevel = "WARN"
	}
	oneOf("Logging.ServiceLogLevel", &c.Logging.ServiceLogLevel, true, "DEBUG", "INFO", "WARN", "ERROR")
	oneOf("Logging.ServiceLogFormat", &c.Logging.ServiceLogFormat, true, "TEXT", "JSON")

	names := make([]string, 0, len(c.RPackageRepository))
	for n := range c.RPackageRepository {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		key := "RPackageRepository." + n + ".URL"
		r := c.RPackageRepository[n]
		if r == nil {
			continue
		}
		if u, err := url.Parse(r.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			w := origins[namedOriginKey("RPackageRepository", n, "URL")]
			if w == "" {
				// Never set: point at the section header.
				w = origins[namedOriginKey("RPackageRepository", n, "")]
				if w == "" {
					w = "default"
				}
				problems = append(problems, fmt.Sprintf("%s: [RPackageRepository %s] has no URL: add URL = https://... to the section", w, quoteSubsection(n)))
				continue
			}
			problems = append(problems, fmt.Sprintf("%s: %s = %s: must be an http:// or https:// URL, like https://cloud.r-project.org", w, key, strconv.Quote(r.URL)))
		}
	}
	return problems, warnings
}

func where(origins map[string]string, key string) string {
	if w := origins[originKey(key)]; w != "" {
		return w
	}
	return "default"
}

// Secret is the client secret: ClientSecret, or what ClientSecretFile
// holds (read now, white space trimmed).
func (o OAuth2) Secret() (string, error) {
	if o.ClientSecretFile == "" {
		return o.ClientSecret, nil
	}
	b, err := os.ReadFile(o.ClientSecretFile)
	if err != nil {
		return "", fmt.Errorf("read OAuth2.ClientSecretFile: %w", err)
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return "", fmt.Errorf("OAuth2.ClientSecretFile %s is empty", o.ClientSecretFile)
	}
	return secret, nil
}

// display quotes a value for a message, and hides secrets.
func display(key string, v any) string {
	var s string
	switch x := v.(type) {
	case Duration:
		return formatDuration(x.Std())
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	default:
		s = fmt.Sprint(v)
	}
	parts := strings.Split(key, ".")
	if k, ok := LookupKey(parts[0], parts[len(parts)-1]); ok && k.Secret && key != "Postgres.URL" && s != "" {
		return redacted
	}
	switch key {
	case "Postgres.Password":
		return redacted
	case "Postgres.URL":
		s = RedactURL(s)
	}
	return strconv.Quote(s)
}

func checkListen(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("not host:port")
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("bad host %q", host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("bad port %q: want a number from 0 to 65535", port)
	}
	return nil
}

// Level is ServiceLogLevel as a slog.Level (INFO when unset or unknown).
func (l Logging) Level() slog.Level {
	switch strings.ToUpper(l.ServiceLogLevel) {
	case "DEBUG":
		return slog.LevelDebug
	case "WARN", "WARNING":
		return slog.LevelWarn
	case "ERROR":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// ConnString is URL with Password, when set, put in as the password.
func (p Postgres) ConnString() (string, error) {
	if p.Password == "" {
		return p.URL, nil
	}
	u, err := url.Parse(p.URL)
	if err != nil {
		return "", fmt.Errorf("parse Postgres.URL: %w", err)
	}
	name := ""
	if u.User != nil {
		name = u.User.Username()
	}
	u.User = url.UserPassword(name, p.Password)
	return u.String(), nil
}

const redacted = "(redacted)"

// RedactURL replaces the password of a URL, if it has one.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		if strings.Contains(s, "@") {
			return redacted // unparsable, and may hold a password
		}
		return s
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
		return u.String()
	}
	return s
}

// validPorts tells whether s is a list of ports and ranges ("1-1023,5432").
func validPorts(s string) bool {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
	if len(fields) == 0 {
		return false
	}
	for _, f := range fields {
		a, b, isRange := strings.Cut(f, "-")
		if !isRange {
			b = a
		}
		first, err1 := strconv.ParseUint(a, 10, 16)
		last, err2 := strconv.ParseUint(b, 10, 16)
		if err1 != nil || err2 != nil || first == 0 || last < first {
			return false
		}
	}
	return true
}
