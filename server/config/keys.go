package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Type is the value type of a key, as the reference documents it.
type Type string

// The key types.
const (
	TypeString   Type = "string"
	TypeBool     Type = "bool"
	TypeInt      Type = "integer"
	TypeDuration Type = "duration"
	TypeList     Type = "list of strings"
	TypeNumber   Type = "number"
)

// Key describes one configuration key. The Keys table drives loading
// (environment variable names), `dais config print`, redaction, reload
// classes and docs/configuration.md.
type Key struct {
	// Section and Name are the canonical spellings, e.g. "Server", "DataDir".
	Section, Name string
	Type          Type
	// Named is set for keys of named subsections, [RPackageRepository "NAME"].
	Named bool
	// Reloadable keys take effect on SIGHUP; all others need a restart.
	Reloadable bool
	// Secret values are redacted in `dais config print`.
	Secret bool
	// Doc says what the key does, in one or two sentences.
	Doc string
}

// String is "Section.Name".
func (k Key) String() string { return k.Section + "." + k.Name }

// EnvVar is the environment variable that sets the key. For named
// subsections the subsection name sits between section and key:
// CONNECT_RPACKAGEREPOSITORY_<NAME>_URL.
func (k Key) EnvVar() string {
	if k.Named {
		return EnvPrefix + strings.ToUpper(k.Section) + "_<NAME>_" + strings.ToUpper(k.Name)
	}
	return EnvPrefix + strings.ToUpper(k.Section) + "_" + strings.ToUpper(k.Name)
}

// Default is the key's default value, formatted as `config print` shows it.
func (k Key) Default() string {
	if k.Named {
		// A named section starts from Config.Default_<Section>, when there is one.
		d := reflect.ValueOf(Defaults()).Elem().FieldByName("Default_" + k.Section)
		if !d.IsValid() {
			return ""
		}
		return formatValue(d.FieldByName(k.Name))
	}
	return formatValue(k.field(Defaults()))
}

// field is the key's value in c. It must not be called for named keys.
func (k Key) field(c *Config) reflect.Value {
	return reflect.ValueOf(c).Elem().FieldByName(k.Section).FieldByName(k.Name)
}

// EnvPrefix starts every configuration environment variable.
const EnvPrefix = "CONNECT_"

// Keys is every key dais knows, in the order of the reference.
var Keys = []Key{
	{Section: "Server", Name: "DataDir", Type: TypeString,
		Doc: "Directory for bundles, rendered output, logs and (by default) the SQLite database. " +
			"Must be an absolute path on a persistent volume; the image sets `/data`."},
	{Section: "Server", Name: "DataDirReserve", Type: TypeInt, Reloadable: true,
		Doc: "Free space, in bytes, kept on the volume of `DataDir` (`268435456` is 256 MiB): below it uploads, deploys " +
			"and renders are refused with 507 and a message naming the volume, and `/__ready__` and `dais health` report " +
			"\"degraded: data volume full\", so that the database does not run out of space first. `0` turns it off " +
			"(dais only; Connect has no such key)."},
	{Section: "Server", Name: "Address", Type: TypeString,
		Doc: "Public URL of the server (`https://connect.example.com/`), used in links given to clients. Empty: derived from each request."},
	{Section: "Server", Name: "SenderEmail", Type: TypeString,
		Doc: "From address of mail the server sends. Empty: no mail."},
	{Section: "Server", Name: "PublicWarning", Type: TypeString, Reloadable: true,
		Doc: "HTML snippet shown on every page, logged in or not."},
	{Section: "Server", Name: "LoggedInWarning", Type: TypeString, Reloadable: true,
		Doc: "HTML snippet shown on the dashboard to logged-in users."},
	{Section: "Server", Name: "StopTimeout", Type: TypeDuration, Reloadable: true,
		Doc: "Bound on a graceful stop: in-flight requests, app processes and renders together. " +
			"Keep it below the container runtime's stop grace period."},
	{Section: "Server", Name: "AuditLogRetention", Type: TypeDuration, Reloadable: true,
		Doc: "How long entries of the audit log (`GET /__api__/v1/audit_logs`) are kept; older ones are deleted hourly. " +
			"`8760h` is a year; `0` keeps them forever (dais only; Connect keeps its audit log forever)."},
	{Section: "Server", Name: "UsageRetention", Type: TypeDuration, Reloadable: true,
		Doc: "How long content visits and Shiny sessions (`GET /__api__/v1/instrumentation/...`) are kept; older ones are " +
			"deleted hourly (an open session stays). `2160h` is 90 days; `0` keeps them forever (dais only)."},
	{Section: "HTTP", Name: "Listen", Type: TypeString,
		Doc: "Address the HTTP server binds, `host:port` or `:port`."},
	{Section: "HTTP", Name: "BodyTimeout", Type: TypeDuration, Reloadable: true,
		Doc: "How long a small request body (the login form, a JSON document) may take to arrive, whole; a slower client " +
			"is cut off with 408. Also the grace before `UploadMinRate` applies (dais only; Connect has no such key)."},
	{Section: "HTTP", Name: "UploadMinRate", Type: TypeInt, Reloadable: true,
		Doc: "Slowest rate, in bytes per second averaged from the start, at which a large request body (a bundle upload, " +
			"a request to content) may arrive; a slower client is cut off (dais only; Connect has no such key)."},
	{Section: "Database", Name: "Provider", Type: TypeString,
		Doc: "`sqlite` (embedded, one server) or `postgres` (needs `Postgres.URL`; required for several servers)."},
	{Section: "SQLite", Name: "Dir", Type: TypeString,
		Doc: "Directory of the SQLite database. Empty: `<Server.DataDir>/db`. Must be on a local filesystem."},
	{Section: "Postgres", Name: "URL", Type: TypeString, Secret: true,
		Doc: "PostgreSQL connection URL, `postgres://user@host:5432/db?sslmode=...`. Required when `Database.Provider = postgres`. " +
			"A password in the URL is redacted by `dais config print`."},
	{Section: "Postgres", Name: "Password", Type: TypeString, Secret: true,
		Doc: "PostgreSQL password; replaces the one in the URL. Prefer the environment variable to writing it in a file."},
	{Section: "Cluster", Name: "HeartbeatInterval", Type: TypeDuration,
		Doc: "With several nodes on one PostgreSQL (dais only; ignored with SQLite): how often a node records that it is alive, " +
			"timed by the database's clock, so that nodes need not agree on the time. See docs/ha.md."},
	{Section: "Cluster", Name: "DeadAfter", Type: TypeDuration,
		Doc: "How long a node may miss its heartbeats before another node declares it dead: its deploys and renders fail with a message " +
			"saying so, its processes are forgotten, and its name is free again. At least three `HeartbeatInterval`s; the same on every node."},
	{Section: "Cluster", Name: "DrainDelay", Type: TypeDuration, Reloadable: true,
		Doc: "How long a stopping node (SIGTERM) answers `/__ping__` and `/__ready__` with 503 while still serving, before it closes " +
			"its listener, so that load balancers send it nothing new. Part of `Server.StopTimeout`, of which it takes at most half. `0` turns it off; ignored with SQLite."},
	{Section: "Authentication", Name: "Provider", Type: TypeString,
		Doc: "How users log in: `password` (accounts and passwords in dais), `proxy` (a trusted front end names the user in headers, `[ProxyAuth]`), " +
			"`oauth2` (OpenID Connect, `[OAuth2]`) or `ldap` (a directory, `[LDAP \"NAME\"]`). " +
			"Changing it on a server that has accounts is refused at start. See docs/authentication.md."},
	{Section: "Authorization", Name: "DefaultUserRole", Type: TypeString,
		Doc: "Role of an account created at its first login: `viewer` or `publisher`. The first account of an empty server is an administrator " +
			"unless a role mapping is on."},
	{Section: "Authorization", Name: "UserRoleGroupMapping", Type: TypeBool,
		Doc: "Give users the role whose `*RoleMapping` key names one of their groups from the provider, at each login. Not with `UserRoleMapping`."},
	{Section: "Authorization", Name: "UserRoleMapping", Type: TypeBool,
		Doc: "Give users the role whose `*RoleMapping` key names a value of the provider's role attribute (`ProxyAuth.RoleHeader`, ...), " +
			"at each login. Not with `UserRoleGroupMapping`."},
	{Section: "Authorization", Name: "ViewerRoleMapping", Type: TypeList,
		Doc: "Groups (or role values) that make a user a viewer; the key repeated for several."},
	{Section: "Authorization", Name: "PublisherRoleMapping", Type: TypeList,
		Doc: "Groups (or role values) that make a user a publisher; the key repeated for several."},
	{Section: "Authorization", Name: "AdministratorRoleMapping", Type: TypeList,
		Doc: "Groups (or role values) that make a user an administrator; the key repeated for several."},
	{Section: "Authorization", Name: "UserRoleMappingRestrictive", Type: TypeBool,
		Doc: "When a user matches several roles, give the least privileged one (default: the most privileged)."},
	{Section: "ProxyAuth", Name: "UsernameHeader", Type: TypeString,
		Doc: "With `Provider = proxy`: the request header that names the user."},
	{Section: "ProxyAuth", Name: "UniqueIdHeader", Type: TypeString,
		Doc: "The header with the user's unchanging id at the identity provider; a rename keeps the account. Empty: the username is the id."},
	{Section: "ProxyAuth", Name: "FirstNameHeader", Type: TypeString,
		Doc: "The header with the user's first name; empty: not read."},
	{Section: "ProxyAuth", Name: "LastNameHeader", Type: TypeString,
		Doc: "The header with the user's last name; empty: not read."},
	{Section: "ProxyAuth", Name: "EmailHeader", Type: TypeString,
		Doc: "The header with the user's e-mail address; empty: not read."},
	{Section: "ProxyAuth", Name: "RoleHeader", Type: TypeString,
		Doc: "The header with the user's role values, for `Authorization.UserRoleMapping`; comma-separated or repeated."},
	{Section: "ProxyAuth", Name: "GroupsHeader", Type: TypeString,
		Doc: "The header with the user's groups, comma-separated or repeated; synced at each login. Empty: groups are not read."},
	{Section: "ProxyAuth", Name: "LoginURL", Type: TypeString,
		Doc: "Where a browser that needs to log in is sent (the proxy's login page). Empty: a page saying to sign in through the proxy."},
	{Section: "ProxyAuth", Name: "LogoutURL", Type: TypeString,
		Doc: "Where a browser is sent to log out (the proxy's logout). Empty: a page saying to close the browser or log out at the proxy."},
	{Section: "ProxyAuth", Name: "TrustedProxies", Type: TypeList,
		Doc: "Addresses (`10.0.0.5`, `10.0.0.0/24`) of the proxies whose headers are honoured; the key repeated for several. From any other peer the headers are " +
			"stripped and logged. Required with `Provider = proxy` (dais only: Connect trusts the network)."},
	{Section: "OAuth2", Name: "ClientId", Type: TypeString,
		Doc: "With `Provider = oauth2`: the client id registered at the OpenID Connect provider. Required."},
	{Section: "OAuth2", Name: "ClientSecret", Type: TypeString, Secret: true,
		Doc: "The client secret. Required unless `ClientSecretFile` is set; redacted by `dais config print` and never logged. Prefer `CONNECT_OAUTH2_CLIENTSECRET` or `ClientSecretFile` to writing it in the file."},
	{Section: "OAuth2", Name: "ClientSecretFile", Type: TypeString,
		Doc: "A file holding the client secret (a Docker or Kubernetes secret), instead of `ClientSecret`; read at each sign-in, so a rotated secret needs no restart. " +
			"Surrounding white space is ignored."},
	{Section: "OAuth2", Name: "OpenIDConnectIssuer", Type: TypeString,
		Doc: "The provider's issuer URL (`https://login.example.com/realms/team`); dais reads `/.well-known/openid-configuration` below it. Must be `https://` (`http://` only on loopback). Required."},
	{Section: "OAuth2", Name: "RequireUsernameClaim", Type: TypeBool,
		Doc: "Refuse a login whose token and userinfo lack `UsernameClaim`; otherwise the e-mail address, then the unique id, is the username."},
	{Section: "OAuth2", Name: "UniqueIdClaim", Type: TypeString,
		Doc: "The claim with the user's unchanging id; renames keep the account."},
	{Section: "OAuth2", Name: "UsernameClaim", Type: TypeString,
		Doc: "The claim with the username."},
	{Section: "OAuth2", Name: "EmailClaim", Type: TypeString,
		Doc: "The claim with the e-mail address."},
	{Section: "OAuth2", Name: "FirstNameClaim", Type: TypeString,
		Doc: "The claim with the first name."},
	{Section: "OAuth2", Name: "LastNameClaim", Type: TypeString,
		Doc: "The claim with the last name."},
	{Section: "OAuth2", Name: "GroupsClaim", Type: TypeString,
		Doc: "The claim with the user's groups (a list, or one string); synced at each login. Empty: groups are not read."},
	{Section: "OAuth2", Name: "CustomScope", Type: TypeList,
		Doc: "Scopes asked for beside `openid`, `profile` and `email` (e.g. `groups`); the key repeated for several."},
	{Section: "OAuth2", Name: "LogoutAtProvider", Type: TypeBool,
		Doc: "Log out at the provider too: dais's logout sends the browser to the provider's `end_session_endpoint` (from discovery) with the " +
			"sign-in's ID token as `id_token_hint`, and the provider shows its own signed-out page (dais only; Connect ends its own session alone)."},
	{Section: "LDAP", Name: "ServerAddress", Type: TypeString, Named: true,
		Doc: "With `Provider = ldap`: the directory server, `host:port` (`ldap.example.com:389`, or `:636` with `TLS`). Required."},
	{Section: "LDAP", Name: "TLS", Type: TypeBool, Named: true,
		Doc: "Connect with TLS from the start (ldaps)."},
	{Section: "LDAP", Name: "StartTLS", Type: TypeBool, Named: true,
		Doc: "Upgrade the plain connection with StartTLS before anything is sent; not with `TLS`."},
	{Section: "LDAP", Name: "TLSCACertificate", Type: TypeString, Named: true,
		Doc: "A PEM file of the CA certificates that sign the server's certificate (with `TLS` or `StartTLS`); empty: the system's CAs."},
	{Section: "LDAP", Name: "ServerTLSInsecure", Type: TypeBool, Named: true,
		Doc: "Do not check the server's TLS certificate. For tests only: anyone on the path can read the passwords."},
	{Section: "LDAP", Name: "BindDN", Type: TypeString, Named: true,
		Doc: "The service account that searches users and groups (double bind), like `cn=dais,ou=Services,dc=example,dc=com`. " +
			"With `{username}` in it (`{username}@example.com`, `uid={username},ou=People,dc=example,dc=com`) it is a single bind: " +
			"the user's own credentials do the search. Empty with `AnonymousBind = false`: required."},
	{Section: "LDAP", Name: "BindPassword", Type: TypeString, Named: true, Secret: true,
		Doc: "The service account's password; redacted by `dais config print`, never logged. Prefer `CONNECT_LDAP_<NAME>_BINDPASSWORD` to a file."},
	{Section: "LDAP", Name: "AnonymousBind", Type: TypeBool, Named: true,
		Doc: "Search users and groups without credentials (the directory must allow it)."},
	{Section: "LDAP", Name: "UserSearchBaseDN", Type: TypeString, Named: true,
		Doc: "Where users are searched (the whole subtree), like `ou=People,dc=example,dc=com`. Required."},
	{Section: "LDAP", Name: "UserObjectClass", Type: TypeString, Named: true,
		Doc: "The object class of users (`inetOrgPerson`, `posixAccount`, Active Directory's `user`); empty: any."},
	{Section: "LDAP", Name: "UserFilterBase", Type: TypeString, Named: true,
		Doc: "An LDAP filter every user must also match, like `(!(loginDisabled=TRUE))`; empty: none."},
	{Section: "LDAP", Name: "UsernameAttribute", Type: TypeString, Named: true,
		Doc: "The attribute with the username (`uid`; Active Directory: `sAMAccountName`). A login searches it for the name typed, escaped."},
	{Section: "LDAP", Name: "UserFirstNameAttribute", Type: TypeString, Named: true,
		Doc: "The attribute with the first name."},
	{Section: "LDAP", Name: "UserLastNameAttribute", Type: TypeString, Named: true,
		Doc: "The attribute with the last name."},
	{Section: "LDAP", Name: "UserEmailAttribute", Type: TypeString, Named: true,
		Doc: "The attribute with the e-mail address."},
	{Section: "LDAP", Name: "UniqueIdAttribute", Type: TypeString, Named: true,
		Doc: "The attribute with the user's unchanging id: `DN` (the entry's DN, which a rename changes), " +
			"`entryUUID` (OpenLDAP) or `objectGUID` (Active Directory), which renames keep."},
	{Section: "LDAP", Name: "UserRoleAttribute", Type: TypeString, Named: true,
		Doc: "The attribute with the user's role values, for `Authorization.UserRoleMapping`; empty: not read."},
	{Section: "LDAP", Name: "GroupSearchBaseDN", Type: TypeString, Named: true,
		Doc: "Where groups are searched, like `ou=Groups,dc=example,dc=com`. A user's groups are those whose `member`, `uniqueMember` " +
			"or `memberUid` names the user, and those the user's `memberOf` names below this base; synced at each login. Empty: no groups from the directory."},
	{Section: "LDAP", Name: "GroupObjectClass", Type: TypeString, Named: true,
		Doc: "The object class of groups (`groupOfNames`, `groupOfUniqueNames`, `posixGroup`, Active Directory's `group`); empty: any."},
	{Section: "LDAP", Name: "GroupFilterBase", Type: TypeString, Named: true,
		Doc: "An LDAP filter every group must also match; empty: none."},
	{Section: "LDAP", Name: "GroupNameAttribute", Type: TypeString, Named: true,
		Doc: "The attribute with the group's name."},
	{Section: "LDAP", Name: "GroupUniqueIdAttribute", Type: TypeString, Named: true,
		Doc: "The attribute with the group's unchanging id: `DN`, `entryUUID` or `objectGUID`; a group renamed in the directory is renamed in dais."},
	{Section: "LDAP", Name: "NestedGroups", Type: TypeBool, Named: true,
		Doc: "Also give users the groups their groups are members of, to any depth (dais only)."},
	{Section: "LDAP", Name: "RegisterOnFirstLogin", Type: TypeBool, Named: true,
		Doc: "Create the account at a user's first login; `false` lets in only accounts made ahead (`dais users add`, the API), which the first login takes over."},
	{Section: "LDAP", Name: "PermittedLoginGroup", Type: TypeList, Named: true,
		Doc: "Only members of these groups (names or DNs; the key repeated) may log in; empty: everyone the directory knows."},
	{Section: "LDAP", Name: "Logging", Type: TypeBool, Named: true,
		Doc: "Log each step of a login: the searches, their filters and results (never a password)."},
	{Section: "Licensing", Name: "LicenseType", Type: TypeString,
		Doc: "`none`, or `remote` to hold a floating license lease from a license server while running."},
	{Section: "Licensing", Name: "LicenseServer", Type: TypeString,
		Doc: "Floating license server, `host:port` or a URL. Also read from `RSC_LICENSE_SERVER`, as Posit Connect's images do."},
	{Section: "Python", Name: "Enabled", Type: TypeBool, Doc: "Run Python content."},
	{Section: "Python", Name: "Executable", Type: TypeList,
		Doc: "Python installations: absolute paths, the key repeated for several (comma-separated in the environment variable). `/opt/python/*` is scanned too."},
	{Section: "R", Name: "Enabled", Type: TypeBool, Doc: "Run R content."},
	{Section: "R", Name: "Executable", Type: TypeList,
		Doc: "R installations: absolute paths, the key repeated for several (comma-separated in the environment variable). `/opt/R/*` is scanned too."},
	{Section: "Quarto", Name: "Enabled", Type: TypeBool, Doc: "Render Quarto content."},
	{Section: "Quarto", Name: "Executable", Type: TypeList,
		Doc: "Quarto installations: absolute paths, the key repeated for several (comma-separated in the environment variable). `/opt/quarto/*` is scanned too."},
	{Section: "Applications", Name: "RunAs", Type: TypeString,
		Doc: "Unix user that content processes run as. It must exist and not be root: `dais serve` refuses to start " +
			"otherwise (exit 78), naming the fix."},
	{Section: "Applications", Name: "BundleMaxSize", Type: TypeInt, Reloadable: true,
		Doc: "Most bytes a bundle may hold unpacked (a plain integer: `2147483648` is 2 GiB). " +
			"A larger bundle fails its deploy before filling the disk. Read at each deploy."},
	{Section: "Applications", Name: "BundleMaxFiles", Type: TypeInt, Reloadable: true,
		Doc: "Most entries (files, directories, links) a bundle may hold unpacked. Read at each deploy."},
	{Section: "Applications", Name: "OutboundNetwork", Type: TypeBool, Reloadable: true,
		Doc: "Whether content processes may open connections to the outside (a database on the Docker network, an HTTPS API), " +
			"from their own network namespace through slirp4netns; `false` leaves them their own loopback only. Either way they reach no " +
			"other content's port and none of the container's loopback. An administrator can override it per content (`outbound_network` " +
			"of `/__api__/v1/content/{guid}`). Namespaces sandbox mode only; read at each process start (dais only)."},
	{Section: "Scheduler", Name: "MinProcesses", Type: TypeInt, Reloadable: true,
		Doc: "Processes kept running per app or API, even when idle. Applies to processes started after a reload."},
	{Section: "Scheduler", Name: "MaxProcesses", Type: TypeInt, Reloadable: true,
		Doc: "Most processes per app or API. Applies to processes started after a reload."},
	{Section: "Scheduler", Name: "IdleTimeout", Type: TypeDuration, Reloadable: true,
		Doc: "How long an idle process above `MinProcesses` lives before it is stopped."},
	{Section: "Scheduler", Name: "InitTimeout", Type: TypeDuration, Reloadable: true,
		Doc: "How long a new process has to accept connections before it counts as failed."},
	{Section: "Scheduler", Name: "ConnectionTimeout", Type: TypeDuration, Reloadable: true,
		Doc: "How long a request or WebSocket to an app or API may go without data sent or received across it before the proxy ends it: " +
			"a request still waiting for the app's answer gets 504 and the server log names the content; a WebSocket is closed. `0`: never " +
			"(not recommended; a request then lasts as long as its client stays connected). A content's `connection_timeout` overrides it. " +
			"Applies to requests that start after a reload."},
	{Section: "Scheduler", Name: "ReadTimeout", Type: TypeDuration, Reloadable: true,
		Doc: "How long a WebSocket to an app (or a request body still arriving) may go without data received from the client before the " +
			"proxy closes it; `0`: never, so that a dashboard that only pushes updates stays open without any interaction. " +
			"A content's `read_timeout` overrides it. Applies to requests that start after a reload."},
	{Section: "Scheduler", Name: "MemoryLimit", Type: TypeInt, Reloadable: true,
		Doc: "Memory, in bytes, each process of a content may use when the content sets no `memory_limit`; `0`: no limit. " +
			"A process over it is killed, and its log and the server's say so (`killed: over its 256 MB memory limit`). " +
			"Enforced by a memory cgroup; see `dais sandbox selftest` for what is in force. Applies to processes started after a reload."},
	{Section: "Scheduler", Name: "MaxMemoryLimit", Type: TypeInt, Reloadable: true,
		Doc: "Most a content's `memory_limit` may ask, in bytes; `0`: no maximum. The API refuses more with 400, naming it."},
	{Section: "Scheduler", Name: "CPULimit", Type: TypeNumber, Reloadable: true,
		Doc: "CPUs each process of a content may use when the content sets no `cpu_limit` (`0.5` is half a CPU); `0`: no limit. " +
			"Enforced by a CPU cgroup's quota where one is in force."},
	{Section: "Scheduler", Name: "MaxCPULimit", Type: TypeNumber, Reloadable: true,
		Doc: "Most a content's `cpu_limit` may ask, in CPUs; `0`: no maximum."},
	{Section: "Sandbox", Name: "Mode", Type: TypeString,
		Doc: "How content processes are sandboxed (dais only): `namespaces` (mount, user and PID namespaces; needs CAP_SYS_ADMIN, " +
			"`--cap-add SYS_ADMIN` in Docker), `landlock` (Landlock rulesets, no privilege needed; Linux 6.12 or later), " +
			"or `auto`: namespaces when they work, else Landlock. The server logs the mode it chose and why. See docs/sandbox.md."},
	{Section: "Sandbox", Name: "LandlockConnectPorts", Type: TypeString,
		Doc: "TCP ports that content may connect to in Landlock mode, as ports and ranges (`1-1023,5432`). " +
			"It must leave out the kernel's ephemeral range (`net.ipv4.ip_local_port_range`), where content ports are allocated, " +
			"so that content cannot reach another content's process. Each port costs about 0.4 µs of CPU at every process start (1,000 ports: about 0.4 ms, a tenth of a start); the default names the usual services' ports (docs/sandbox.md)."},
	{Section: "Sandbox", Name: "ProcessLimit", Type: TypeInt, Reloadable: true,
		Doc: "Most processes and threads one content process may have with all its children (dais only): a fork bomb stops there " +
			"while the server and other content go on. Enforced by a pids cgroup; without one (no CAP_SYS_ADMIN), by RLIMIT_NPROC, " +
			"which counts every process of the user content runs as. Applies to processes started after a reload."},
	{Section: "Sandbox", Name: "TmpSize", Type: TypeInt, Reloadable: true,
		Doc: "Size, in bytes, of each content process's private /tmp (a tmpfs, in memory, counted in its memory limit) " +
			"in namespaces mode (dais only). Landlock mode's private TMPDIR is a directory under the container's /tmp, bounded on disk to the same size."},
	{Section: "Sandbox", Name: "WorkDirLimit", Type: TypeInt, Reloadable: true,
		Doc: "Most bytes a content's work directory may hold (dais only; 0: no limit). No one file may grow over it (RLIMIT_FSIZE), " +
			"and the server measures the directory every 5 seconds while the content runs: over the limit, its processes are killed " +
			"and the process log and the job's exit_reason say so. Applies to processes started after a reload."},
	{Section: "Git", Name: "Executable", Type: TypeString, Reloadable: true,
		Doc: "The git program that clones and polls git-backed content (the image has Debian's `git`)."},
	{Section: "Git", Name: "PollingFrequency", Type: TypeDuration, Reloadable: true,
		Doc: "How often the branch of each git-backed content with polling on is checked; a moved branch is deployed again."},
	{Section: "Git", Name: "CommandTimeout", Type: TypeDuration, Reloadable: true,
		Doc: "Deadline of every git command (dais only); a clone or check that takes longer fails, and the next poll tries again."},
	{Section: "Git", Name: "MaxConcurrentChecks", Type: TypeInt, Reloadable: true,
		Doc: "Most branch checks run at once (dais only)."},
	{Section: "Git", Name: "CredentialsFile", Type: TypeString, Reloadable: true,
		Doc: "Credentials for repositories whose URL carries none (dais only): a file in git's credential-store format, " +
			"one `https://USER:TOKEN@HOST` line per host, read at each use; keep it mode 0600. " +
			"Credentials never reach content, task logs, the server log or the API's answers."},
	{Section: "Logging", Name: "ServiceLogLevel", Type: TypeString, Reloadable: true,
		Doc: "Server log level: `DEBUG`, `INFO`, `WARN` or `ERROR`."},
	{Section: "Logging", Name: "ServiceLogFormat", Type: TypeString, Reloadable: true,
		Doc: "Server log format: `TEXT` or `JSON`."},
	{Section: "Logging", Name: "AccessLog", Type: TypeBool, Reloadable: true,
		Doc: "Log one line per HTTP request."},
	{Section: "RPackageRepository", Name: "URL", Type: TypeString, Named: true,
		Doc: "URL of a CRAN-like repository used when restoring R packages, in `[RPackageRepository \"NAME\"]`."},
}

// LookupKey finds a key by section and name, case-insensitively as gcfg
// matches them.
func LookupKey(section, name string) (Key, bool) {
	for _, k := range Keys {
		if strings.EqualFold(k.Section, section) && strings.EqualFold(k.Name, name) {
			return k, true
		}
	}
	return Key{}, false
}

// lookupSection returns the canonical spelling of a section and whether its
// keys live in named subsections.
func lookupSection(section string) (canonical string, named, ok bool) {
	for _, k := range Keys {
		if strings.EqualFold(k.Section, section) {
			return k.Section, k.Named, true
		}
	}
	return "", false, false
}

// Reloadable reports whether the key named "Section.Key" (or
// "Section.NAME.Key" for named subsections) takes effect on SIGHUP. Unknown
// keys are not reloadable.
func Reloadable(name string) bool {
	parts := strings.Split(name, ".")
	if len(parts) < 2 {
		return false
	}
	k, ok := LookupKey(parts[0], parts[len(parts)-1])
	return ok && k.Reloadable
}

// formatValue renders a value the way `config print` and the reference show it.
func formatValue(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case Duration:
		return formatDuration(x.Std())
	case []string:
		return strings.Join(x, ", ")
	}
	panic(fmt.Sprintf("config: no format for %s", v.Type()))
}

// formatDuration writes whole hours, minutes or seconds without the zero
// parts time.Duration.String adds ("2m" rather than "2m0s").
func formatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}
