// Package config holds dais's configuration: the Posit Connect compatible
// gcfg schema, its defaults, the file + migration file + environment overlay,
// validation, provenance of each value, and which keys reload on HUP.
package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultPath is where the image and the systemd unit keep the main file.
const DefaultPath = "/etc/rstudio-connect/rstudio-connect.gcfg"

// DefaultDataDir is Posit Connect's default data directory. dais-init refuses
// it inside a container, where it is on the container's writable layer.
const DefaultDataDir = "/var/lib/rstudio-connect"

// DefaultLandlockConnectPorts is Sandbox.LandlockConnectPorts's default:
// the well-known ports and the usual database, cache and HTTP ports
// (sandbox.DefaultConnectPorts, which must stay equal).
const DefaultLandlockConnectPorts = "21,22,25,53,80,88,110,143,389,443,445,465,587,636,873,993,995,1025,1433,1521,2181,3268,3269,3306,3939,5432,5439,5984,6379,7474,7687,8020,8080,8086,8123,8443,9000,9042,9092,9200,9418,10000,11211,21050,27017"

// Default bundle limits, Applications.BundleMaxSize and BundleMaxFiles.
const (
	DefaultBundleMaxSize  int64 = 2 << 30
	DefaultBundleMaxFiles       = 100_000
)

// Retention defaults: Server.AuditLogRetention and Server.UsageRetention.
const (
	DefaultAuditLogRetention = 365 * 24 * time.Hour
	DefaultUsageRetention    = 90 * 24 * time.Hour
)

// DefaultDataDirReserve is Server.DataDirReserve's default, 256 MiB.
const DefaultDataDirReserve int64 = 256 << 20

// Default request body bounds, HTTP.BodyTimeout and HTTP.UploadMinRate.
const (
	DefaultBodyTimeout         = 10 * time.Second
	DefaultUploadMinRate int64 = 16 << 10
)

// Config is the whole configuration. Section and key names follow Posit
// Connect; gcfg matches them case-insensitively.
type Config struct {
	Server         Server
	HTTP           HTTP
	Database       Database
	SQLite         SQLite
	Postgres       Postgres
	Cluster        Cluster
	Authentication Authentication
	Authorization  Authorization
	ProxyAuth      ProxyAuth
	OAuth2         OAuth2
	Licensing      Licensing
	Python         Runtime
	R              Runtime
	Quarto         Runtime
	Applications   Applications
	Scheduler      Scheduler
	Sandbox        Sandbox
	Git            Git
	Logging        Logging
	// LDAP holds the directories users sign in with, [LDAP "NAME"]
	// (Authentication.Provider = ldap), tried in name order.
	LDAP map[string]*LDAP
	// Default_LDAP is what a new [LDAP "NAME"] section starts from (gcfg
	// copies it); not a section of the file.
	Default_LDAP LDAP
	// RPackageRepository holds named repositories, [RPackageRepository "CRAN"].
	RPackageRepository map[string]*RPackageRepository
}

// Server is the [Server] section.
type Server struct {
	// DataDir holds bundles, renders, logs and (by default) the database.
	// Default /var/lib/rstudio-connect; the image sets /data.
	DataDir string
	// Address is the public URL of the server, used in links given to clients.
	// Default empty (derived from the request).
	Address string
	// SenderEmail is the From address of mail. Default empty.
	SenderEmail string
	// PublicWarning is an HTML snippet shown on every page, logged in or not. Reloadable.
	PublicWarning string
	// LoggedInWarning is an HTML snippet shown on the dashboard. Reloadable.
	LoggedInWarning string
	// DataDirReserve is the free space, in bytes, kept on DataDir's volume:
	// below it uploads, deploys and renders are refused (507), so that
	// the database does not run out first. 0 turns it off. Default 256 MiB.
	// Reloadable. dais only.
	DataDirReserve int64
	// StopTimeout bounds graceful shutdown: in-flight requests, app processes
	// and renders together. Default 60s; keep below compose's stop_grace_period.
	StopTimeout Duration
	// AuditLogRetention is how long audit log entries are kept. Default
	// 8760h (a year); 0 keeps them forever. Reloadable. dais only.
	AuditLogRetention Duration
	// UsageRetention is how long content visits and Shiny sessions are
	// kept. Default 2160h (90 days); 0 keeps them forever. Reloadable. dais only.
	UsageRetention Duration
}

// HTTP is the [HTTP] section.
type HTTP struct {
	// Listen is the address the HTTP server binds. Default ":3939".
	Listen string
	// BodyTimeout bounds how long a small request body (a login form,
	// JSON) may take to arrive whole, and is the grace before
	// UploadMinRate applies to large ones. Default 10s. Reloadable. dais only.
	BodyTimeout Duration
	// UploadMinRate is the slowest, in bytes per second averaged from the
	// start, that a large request body (a bundle upload, a request to
	// content) may arrive. Default 16384. Reloadable. dais only.
	UploadMinRate int64
}

// Database is the [Database] section.
type Database struct {
	// Provider is "sqlite" (default) or "postgres".
	Provider string
}

// SQLite is the [SQLite] section.
type SQLite struct {
	// Dir holds the SQLite database. Default "<Server.DataDir>/db".
	Dir string
}

// Postgres is the [Postgres] section.
type Postgres struct {
	// URL is a libpq-style postgres:// URL. Required when Provider = postgres.
	URL string
	// Password, when set, replaces the URL's password. Secret: redacted in
	// `config print`; also read from CONNECT_POSTGRES_PASSWORD.
	Password string
}

// Cluster is the [Cluster] section: several dais nodes on one PostgreSQL
// (dais only; Posit Connect has none). Ignored with SQLite.
type Cluster struct {
	// HeartbeatInterval is how often a node records that it is alive, by
	// the database's clock. Default 5s.
	HeartbeatInterval Duration
	// DeadAfter is how long a node may miss its heartbeats before another
	// node declares it dead and fails its work. Default 30s; at least
	// three HeartbeatIntervals.
	DeadAfter Duration
	// DrainDelay is how long a stopping node answers /__ping__ and
	// /__ready__ with 503, still serving, before it closes its listener,
	// so that load balancers stop sending it requests first. Part of
	// Server.StopTimeout, of which it takes at most half. Default 5s; 0
	// turns it off. Reloadable.
	DrainDelay Duration
}

// Authentication is the [Authentication] section.
type Authentication struct {
	// Provider is "password" (default), "proxy" (ProxyAuth), "oauth2"
	// (OAuth2) or "ldap" (LDAP).
	Provider string
}

// LDAP is one [LDAP "NAME"] section: with Authentication.Provider = ldap,
// users sign in with a directory's username and password
// (docs/authentication.md). Key names are Posit Connect's.
type LDAP struct {
	// ServerAddress is the directory, host:port. Required.
	ServerAddress string
	// TLS connects with ldaps; StartTLS upgrades a plain connection.
	// Either way the certificate is checked against TLSCACertificate (a
	// PEM file) or the system's CAs, unless ServerTLSInsecure.
	TLS               bool
	StartTLS          bool
	TLSCACertificate  string
	ServerTLSInsecure bool
	// BindDN and BindPassword are the service account that searches for
	// users and groups (double bind). A BindDN with {username} is a
	// single bind: the user's own credentials search. AnonymousBind
	// searches without credentials. BindPassword is secret: redacted by
	// config print, never logged.
	BindDN        string
	BindPassword  string
	AnonymousBind bool
	// UserSearchBaseDN is where users are searched (subtree). Required.
	UserSearchBaseDN string
	// UserObjectClass and UserFilterBase narrow the user search; empty:
	// any entry.
	UserObjectClass string
	UserFilterBase  string
	// The user's attributes. Defaults uid, givenName, sn, mail; DN for
	// the unique id (the entry's DN; entryUUID or objectGUID survive
	// renames).
	UsernameAttribute      string
	UserFirstNameAttribute string
	UserLastNameAttribute  string
	UserEmailAttribute     string
	UniqueIdAttribute      string
	// UserRoleAttribute holds role values for Authorization.UserRoleMapping.
	UserRoleAttribute string
	// GroupSearchBaseDN is where groups are searched; empty: no groups
	// come from the directory.
	GroupSearchBaseDN string
	// GroupObjectClass and GroupFilterBase narrow the group search.
	GroupObjectClass string
	GroupFilterBase  string
	// GroupNameAttribute (default cn) and GroupUniqueIdAttribute (default
	// DN) name and identify a group.
	GroupNameAttribute     string
	GroupUniqueIdAttribute string
	// NestedGroups also gives the groups of the user's groups, to any
	// depth (dais only). Default false.
	NestedGroups bool
	// RegisterOnFirstLogin creates the account at a user's first login;
	// false lets in only accounts made ahead (dais users add, the API).
	// Default true.
	RegisterOnFirstLogin bool
	// PermittedLoginGroup, when set, lets in only members of these groups
	// (names or DNs; the key repeated).
	PermittedLoginGroup []string
	// Logging logs each step of a login (never the password). Default false.
	Logging bool
}

// OAuth2 is the [OAuth2] section: with Authentication.Provider = oauth2,
// users sign in with OpenID Connect (docs/authentication.md).
type OAuth2 struct {
	ClientId string
	// ClientSecret is secret: redacted by config print, never logged.
	ClientSecret string
	// ClientSecretFile holds the client secret instead (a Docker or
	// Kubernetes secret), read at each sign-in.
	ClientSecretFile string
	// OpenIDConnectIssuer is the issuer URL; discovery at
	// <issuer>/.well-known/openid-configuration. https, or http on loopback.
	OpenIDConnectIssuer string
	// RequireUsernameClaim refuses a login without UsernameClaim.
	RequireUsernameClaim bool
	// The claims read: defaults sub, preferred_username, email,
	// given_name, family_name, groups ("" turns groups off).
	UniqueIdClaim  string
	UsernameClaim  string
	EmailClaim     string
	FirstNameClaim string
	LastNameClaim  string
	GroupsClaim    string
	// CustomScope adds scopes to openid, profile and email (multi-valued).
	CustomScope []string
	// LogoutAtProvider makes logout end the provider's session too, at
	// its end_session_endpoint. Default false. dais only.
	LogoutAtProvider bool
}

// ProxyAuth is the [ProxyAuth] section: with Authentication.Provider =
// proxy, a trusted front end authenticates users and names them in
// request headers (docs/authentication.md).
type ProxyAuth struct {
	// UsernameHeader names the user. Default "X-Auth-Username".
	UsernameHeader string
	// UniqueIdHeader carries the user's unchanging id; empty: the username is the id.
	UniqueIdHeader  string
	FirstNameHeader string
	LastNameHeader  string
	EmailHeader     string
	// RoleHeader carries role values for Authorization.UserRoleMapping.
	RoleHeader string
	// GroupsHeader carries the user's groups, comma-separated or repeated.
	GroupsHeader string
	// LoginURL and LogoutURL are where dais sends a browser to log in or
	// out (the proxy's pages); empty: a page that says to sign in through
	// the proxy.
	LoginURL  string
	LogoutURL string
	// TrustedProxies are the addresses (IPs or CIDRs) whose headers are
	// honoured; from any other peer they are stripped and logged. dais
	// only: Connect trusts the network.
	TrustedProxies []string
}

// Authorization is the [Authorization] section: the role of users that a
// provider brings (docs/authentication.md).
type Authorization struct {
	// DefaultUserRole is the role of a new account: "viewer" (default) or
	// "publisher".
	DefaultUserRole string
	// UserRoleGroupMapping maps the user's groups to a role with the
	// *RoleMapping keys; UserRoleMapping maps the values of the
	// provider's role attribute, header or claim. At most one is on.
	UserRoleGroupMapping bool
	UserRoleMapping      bool
	// ViewerRoleMapping, PublisherRoleMapping and AdministratorRoleMapping
	// list the group names (or role values) of each role (multi-valued).
	ViewerRoleMapping        []string
	PublisherRoleMapping     []string
	AdministratorRoleMapping []string
	// UserRoleMappingRestrictive: on several matches the least privileged
	// role wins (default: the most privileged).
	UserRoleMappingRestrictive bool
}

// RoleMappingOn says whether roles come from a mapping (groups or a role
// value) rather than from the dashboard.
func (a Authorization) RoleMappingOn() bool { return a.UserRoleGroupMapping || a.UserRoleMapping }

// Licensing is the [Licensing] section.
type Licensing struct {
	// LicenseType is "none" (default) or "remote" (a floating lease).
	LicenseType string
	// LicenseServer is the floating license server, host:port or a URL.
	// Also read from RSC_LICENSE_SERVER for compatibility.
	LicenseServer string
}

// Runtime is the [R], [Python] and [Quarto] sections.
type Runtime struct {
	// Enabled turns the runtime on. Default true.
	Enabled bool
	// Executable lists installations (multi-valued); /opt/<lang>/* is scanned too.
	Executable []string
}

// Applications is the [Applications] section.
type Applications struct {
	// RunAs is the user content processes run as. Default "rstudio-connect".
	RunAs string
	// BundleMaxSize bounds the uncompressed size of an unpacked bundle, in
	// bytes. Default 2 GiB. Reloadable: read at each deploy.
	BundleMaxSize int64
	// BundleMaxFiles bounds the entries (files, directories, links) of an
	// unpacked bundle. Default 100000. Reloadable: read at each deploy.
	BundleMaxFiles int
	// OutboundNetwork lets content processes open connections to the
	// outside (databases, APIs) from their own network namespace, through
	// slirp4netns; false leaves them their loopback alone. A content's
	// outbound_network overrides it. Default true. Reloadable: read at each
	// process start. dais only.
	OutboundNetwork bool
}

// Scheduler is the [Scheduler] section: process pool defaults per content.
// All reloadable; they apply to processes started after the reload.
type Scheduler struct {
	// MinProcesses kept running per content. Default 0.
	MinProcesses int
	// MaxProcesses per content. Default 3.
	MaxProcesses int
	// IdleTimeout before an idle process above MinProcesses stops. Default 120s.
	IdleTimeout Duration
	// InitTimeout for a new process to accept connections. Default 60s.
	InitTimeout Duration
	// ConnectionTimeout is how long a proxied request or WebSocket may go
	// without data sent or received across it before the proxy ends it
	// (504, or the WebSocket closed); 0: never. Default 1h, as Connect.
	// Read at each request.
	ConnectionTimeout Duration
	// ReadTimeout is how long a WebSocket (or a request body still
	// arriving) may go without data received from the client before the
	// proxy ends it; 0: never. Default 1h, as Connect. Read at each request.
	ReadTimeout Duration
	// MemoryLimit is the memory, in bytes, each content process may use
	// when its content sets no memory_limit; 0 (default): no limit.
	MemoryLimit int64
	// MaxMemoryLimit is the most a content's memory_limit may ask; 0: no
	// maximum.
	MaxMemoryLimit int64
	// CPULimit is the CPUs each content process may use when its content
	// sets no cpu_limit; 0 (default): no limit.
	CPULimit float64
	// MaxCPULimit is the most a content's cpu_limit may ask; 0: no maximum.
	MaxCPULimit float64
}

// Sandbox is the [Sandbox] section (dais only; Posit Connect has none).
type Sandbox struct {
	// Mode is how content is sandboxed: "auto" (default), "namespaces" or
	// "landlock".
	Mode string
	// LandlockConnectPorts are the TCP ports Landlock-confined content may
	// connect to: ports and ranges, "1-1023,5432". Default
	// sandbox.DefaultConnectPorts.
	LandlockConnectPorts string
	// ProcessLimit is the most processes (threads included) one content
	// process may have running with its children. Default
	// DefaultProcessLimit. dais only.
	ProcessLimit int
	// TmpSize bounds each content process's private /tmp, in bytes.
	// Default DefaultTmpSize. dais only.
	TmpSize int64
	// WorkDirLimit bounds what a content's work directory holds, in bytes;
	// 0: no limit. Default DefaultWorkDirLimit. dais only.
	WorkDirLimit int64
}

// DefaultProcessLimit is Sandbox.ProcessLimit's default: room for a
// multi-worker app and its compilers, far from a fork bomb's thousands.
const DefaultProcessLimit = 512

// MinProcessLimit is the smallest Sandbox.ProcessLimit: an R or Python
// app's own threads need a few dozen.
const MinProcessLimit = 32

// MinMemoryLimit is the smallest memory limit a server or content may set,
// 16 MiB: below it no R or Python process starts.
const MinMemoryLimit int64 = 16 << 20

// DefaultTmpSize is Sandbox.TmpSize's default, 1 GiB.
const DefaultTmpSize int64 = 1 << 30

// DefaultWorkDirLimit is Sandbox.WorkDirLimit's default, 10 GiB: a content
// cannot fill the data volume that the database shares.
const DefaultWorkDirLimit int64 = 10 << 30

// Logging is the [Logging] section. Reloadable.
type Logging struct {
	// ServiceLogLevel is DEBUG, INFO (default), WARN or ERROR.
	ServiceLogLevel string
	// ServiceLogFormat is TEXT (default) or JSON.
	ServiceLogFormat string
	// AccessLog turns the access log on. Default true.
	AccessLog bool
}

// Git is the [Git] section: git-backed content.
type Git struct {
	// Executable is the git program. Default "git" (found on PATH).
	Executable string
	// PollingFrequency is how often the branches of git-backed content
	// with polling on are checked. Default 15m.
	PollingFrequency Duration
	// CommandTimeout bounds every git command (ls-remote, clone). Default 5m. dais only.
	CommandTimeout Duration
	// MaxConcurrentChecks bounds the branch checks run at once. Default 2. dais only.
	MaxConcurrentChecks int
	// CredentialsFile holds credentials for repositories whose URL has
	// none, in git's credential-store format: one https://user:token@host
	// line per host. Default empty. dais only.
	CredentialsFile string
}

// RPackageRepository is a named [RPackageRepository "NAME"] section.
type RPackageRepository struct {
	// URL of the CRAN-like repository.
	URL string
}

// Defaults returns the configuration before any file is read.
func Defaults() *Config {
	return &Config{
		Server: Server{DataDir: DefaultDataDir, DataDirReserve: DefaultDataDirReserve, StopTimeout: Duration(60 * time.Second),
			AuditLogRetention: Duration(DefaultAuditLogRetention), UsageRetention: Duration(DefaultUsageRetention)},
		HTTP:           HTTP{Listen: ":3939", BodyTimeout: Duration(DefaultBodyTimeout), UploadMinRate: DefaultUploadMinRate},
		Database:       Database{Provider: "sqlite"},
		Cluster:        Cluster{HeartbeatInterval: Duration(5 * time.Second), DeadAfter: Duration(30 * time.Second), DrainDelay: Duration(5 * time.Second)},
		Authentication: Authentication{Provider: "password"},
		Authorization:  Authorization{DefaultUserRole: "viewer"},
		ProxyAuth:      ProxyAuth{UsernameHeader: "X-Auth-Username"},
		OAuth2: OAuth2{UniqueIdClaim: "sub", UsernameClaim: "preferred_username", EmailClaim: "email",
			FirstNameClaim: "given_name", LastNameClaim: "family_name", GroupsClaim: "groups"},
		Default_LDAP: LDAP{UsernameAttribute: "uid", UserFirstNameAttribute: "givenName", UserLastNameAttribute: "sn",
			UserEmailAttribute: "mail", UniqueIdAttribute: "DN", GroupNameAttribute: "cn", GroupUniqueIdAttribute: "DN",
			RegisterOnFirstLogin: true},
		Licensing: Licensing{LicenseType: "none"},
		Python:    Runtime{Enabled: true},
		R:         Runtime{Enabled: true},
		Quarto:    Runtime{Enabled: true},
		Applications: Applications{
			RunAs:           "rstudio-connect",
			BundleMaxSize:   DefaultBundleMaxSize,
			BundleMaxFiles:  DefaultBundleMaxFiles,
			OutboundNetwork: true,
		},
		Scheduler: Scheduler{
			MaxProcesses: 3,
			IdleTimeout:  Duration(120 * time.Second),
			InitTimeout:  Duration(60 * time.Second),
			// Connect's defaults.
			ConnectionTimeout: Duration(time.Hour),
			ReadTimeout:       Duration(time.Hour),
		},
		Sandbox: Sandbox{Mode: "auto", LandlockConnectPorts: DefaultLandlockConnectPorts, ProcessLimit: DefaultProcessLimit, TmpSize: DefaultTmpSize, WorkDirLimit: DefaultWorkDirLimit},
		Git:     Git{Executable: "git", PollingFrequency: Duration(15 * time.Minute), CommandTimeout: Duration(5 * time.Minute), MaxConcurrentChecks: 2},
		Logging: Logging{ServiceLogLevel: "INFO", ServiceLogFormat: "TEXT", AccessLog: true},
	}
}

// SQLiteDir is SQLite.Dir, or <DataDir>/db when unset.
func (c *Config) SQLiteDir() string {
	if c.SQLite.Dir != "" {
		return c.SQLite.Dir
	}
	return c.Server.DataDir + "/db"
}

// Duration is a time.Duration written as Go and Posit Connect write it:
// "90s", "5m", "1h30m", "500ms". A bare integer is nanoseconds, as in
// Connect's files (1000000000 is one second); validation refuses timeouts
// under a second, which catches a forgotten unit.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalText lets gcfg read durations.
func (d *Duration) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		*d = Duration(time.Duration(n))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: want a value with a unit, like 90s, 5m or 1h30m", s)
	}
	*d = Duration(v)
	return nil
}
