// Package store holds dais's domain types and the Store interface that the
// server codes against, with one implementation over database/sql for two
// dialects: SQLite (modernc.org/sqlite, sqlite.go) and PostgreSQL (pgx,
// postgres.go); the SQL they share is in sqldb.go. Schema migrations are
// embedded SQL run by pressly/goose, one set per dialect (migrations/).
// Open picks the dialect from the configuration. (The dialects live in this
// package, not in sub-packages, so that Open can reach them without an
// import cycle or a registration step.)
//
// Tests of other packages get a fresh store from storetest.SQLite or
// storetest.Postgres; storetest.Run is the conformance suite.
//
// Conventions every implementation keeps (the conformance suite in
// store/storetest checks them):
//   - Lookups of a missing row return an error wrapping ErrNotFound.
//   - A unique constraint hit (username, content name per owner, API key
//     hash, ...) returns an error wrapping ErrConflict.
//   - Times are stored with microsecond precision in UTC; a zero time.Time
//     means "not set" (NULL).
//   - Create* methods fill in the generated fields (ID, GUID, CreatedAt) of
//     the value they are given.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Sentinel errors callers branch on.
var (
	// ErrNotFound: the row does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a unique value (username, key hash, ...) is taken.
	ErrConflict = errors.New("already exists")
	// ErrSchemaTooNew: the database was migrated by a newer dais than this one.
	ErrSchemaTooNew = errors.New("database schema is newer than this dais")
)

// Roles of a user, as Posit Connect names them.
const (
	RoleViewer        = "viewer"
	RolePublisher     = "publisher"
	RoleAdministrator = "administrator"
)

// Access types of content, as Posit Connect names them.
const (
	AccessAll      = "all"       // anyone, without login
	AccessLoggedIn = "logged_in" // any logged-in user
	AccessACL      = "acl"       // the owner, admins and the users in the ACL
)

// Roles in a content ACL.
const (
	PermViewer = "viewer"
	PermOwner  = "owner" // a collaborator: may deploy and change settings
)

// Task kinds.
const (
	TaskDeploy  = "deploy"
	TaskRender  = "render"
	TaskRestore = "restore"
)

// Render statuses.
const (
	RenderQueued    = "queued"
	RenderRunning   = "running"
	RenderSucceeded = "succeeded"
	RenderFailed    = "failed"
)

// User is an account. Passwords are hashed by the caller (bcrypt).
type User struct {
	ID           int64
	GUID         string // filled by CreateUser when empty
	Username     string // unique
	FirstName    string
	LastName     string
	Email        string
	Role         string // RoleViewer, RolePublisher or RoleAdministrator
	PasswordHash string // empty: cannot log in with a password
	Locked       bool
	// Provider is the authentication provider that made the account:
	// "password" (the default) or "proxy", ... (config Authentication.Provider).
	Provider string
	// UniqueID is the provider's own, unchanging id of the user, unique per
	// provider; "" for password users and for accounts created ahead of
	// their first login. A rename in the identity provider keeps it.
	UniqueID    string
	CreatedAt   time.Time
	UpdatedAt   time.Time
	LastLoginAt time.Time // zero: never
}

// UserFilter selects users for ListUsers. Zero values select everything.
type UserFilter struct {
	Prefix string // username, first or last name starting with it (case-insensitive)
	Role   string
	Start  int // offset, for paging
	Count  int // page size; 0 = no limit
}

// APIKey is an API key, stored as the hex sha256 of the random secret.
type APIKey struct {
	ID         int64
	UserID     int64
	Name       string
	Hash       string // hex sha256 of the key; unique
	Prefix     string // first characters of the key, to show in lists
	CreatedAt  time.Time
	LastUsedAt time.Time // zero: never used
}

// Session is a logged-in browser session, keyed by the hash of its cookie token.
type Session struct {
	TokenHash string
	UserID    int64
	CreatedAt time.Time
	ExpiresAt time.Time
	// IDToken is the ID token of an OpenID Connect sign-in ("" for
	// others), the id_token_hint of a logout at the provider.
	IDToken string
}

// Content is a deployed item: an app, API or document. Pointer fields are
// nil when the server default applies.
type Content struct {
	ID                 int64 // numeric id of the legacy API (/__api__/applications/{id})
	GUID               string
	Name               string // unique per owner
	Title              string
	Description        string
	OwnerID            int64
	AccessType         string // AccessAll, AccessLoggedIn or AccessACL; default AccessACL
	AppMode            string // manifest metadata.appmode; empty until the first deploy
	MinProcesses       *int
	MaxProcesses       *int
	MaxConnsPerProcess *int
	IdleTimeout        *int // seconds
	InitTimeout        *int // seconds
	// ConnectionTimeout and ReadTimeout are Connect's connection_timeout
	// and read_timeout, in seconds; 0: never; nil: [Scheduler]'s.
	ConnectionTimeout *int
	ReadTimeout       *int
	BundleID          *int64 // the active bundle; nil before the first deploy
	// RVersion, PyVersion and QuartoVersion are the versions the last
	// deploy used ("" for a runtime it did not use).
	RVersion      string
	PyVersion     string
	QuartoVersion string
	// RVersionWanted, PyVersionWanted and QuartoVersionWanted are versions
	// asked for through the API, used by the next deploys instead of the
	// manifest's; "": the manifest's.
	RVersionWanted      string
	PyVersionWanted     string
	QuartoVersionWanted string
	RunAs               string // empty: Applications.RunAs
	// Locked content is not served, deployed or changed (but for
	// unlocking); LockedMessage is shown to its visitors.
	Locked        bool
	LockedMessage string
	// OutboundNetwork lets the content's processes reach the outside; nil:
	// Applications.OutboundNetwork.
	OutboundNetwork *bool
	// Connect's resource fields: MemoryLimit and MemoryRequest in bytes,
	// CPULimit and CPURequest in CPUs; nil: the server's defaults. The
	// limits are enforced; the requests are stored and shown.
	MemoryRequest *int64
	MemoryLimit   *int64
	CPURequest    *float64
	CPULimit      *float64
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// ContentFilter selects content for ListContent. Zero values select everything.
type ContentFilter struct {
	Name    string // exact name
	OwnerID int64
	Search  string // substring of name or title (case-insensitive)
	// Words are substrings that must each be in the name or the title
	// (case-insensitive): a search of several words.
	Words   []string
	AppMode string
	// VisibleTo, a user id, keeps only what that (non-admin) user may see:
	// access all or logged_in, owned by them, or them (or a group of
	// theirs) in the ACL. 0: all.
	VisibleTo int64
	TagID     int64 // content with this tag
	// Deployed keeps content with an active bundle only.
	Deployed bool
	// Sort orders the list: "" or "id" (oldest first), "name", "title"
	// (the title, else the name), "updated" (most recently changed or
	// deployed first), "created" (newest first).
	Sort  string
	Start int // offset, for paging
	Count int // page size; 0 = no limit
}

// EnvVar is one change to a content's environment: Value nil deletes Name.
type EnvVar struct {
	Name  string
	Value *string
}

// Permission is one entry of a content's ACL: it names a user (UserID)
// or a group (GroupID), never both; a group's members get its role.
type Permission struct {
	ID        int64
	ContentID int64
	UserID    int64  // 0 for a group's permission
	GroupID   int64  // 0 for a user's permission
	Role      string // PermViewer or PermOwner
}

// Bundle is an uploaded archive of a content. The active one is Content.BundleID.
type Bundle struct {
	ID        int64
	ContentID int64
	Path      string          // the archive (and, beside it, the unpacked tree) under DataDir
	Size      int64           // bytes of the archive
	Manifest  json.RawMessage // manifest.json; nil until read
	CreatedAt time.Time
}

// Task is a long-running operation (deploy, render) whose output clients poll.
type Task struct {
	ID         string // random; filled by CreateTask when empty
	ContentID  int64  // 0: not tied to content
	BundleID   int64  // 0: none
	UserID     int64  // who started it; 0: the server
	Kind       string // TaskDeploy, TaskRender, ...
	Finished   bool
	Code       int    // exit code: 0 success
	Error      string // non-empty on failure
	Result     json.RawMessage
	Node       string // the server (hostname) running it
	CreatedAt  time.Time
	FinishedAt time.Time // zero until finished
}

// TaskFilter selects tasks for ListTasks. Zero values select everything.
type TaskFilter struct {
	ContentID  int64
	Kind       string
	Node       string
	Unfinished bool // only tasks not finished
	Count      int  // newest first; 0 = no limit
}

// TaskOutputLine is one line of a task's output.
type TaskOutputLine struct {
	Index int // 0-based, increasing per task
	Line  string
}

// Render is one rendering of a document, with its output kept under OutputDir.
type Render struct {
	ID         int64
	ContentID  int64
	BundleID   int64
	TaskID     string
	Status     string // RenderQueued, RenderRunning, RenderSucceeded, RenderFailed
	OutputDir  string
	Node       string
	Error      string
	CreatedAt  time.Time
	StartedAt  time.Time // zero until running
	FinishedAt time.Time // zero until done
}

// Schedule runs a content's render periodically: either Cron (a robfig/cron
// expression), or IntervalSeconds > 0, or Kind (one of Connect's schedule
// types, with Spec its JSON parameters and StartAt the time it counts
// from), evaluated in Timezone (server/schedule).
type Schedule struct {
	ID              int64
	ContentID       int64
	Cron            string
	IntervalSeconds int64
	Kind            string    // Connect's type: minute, hour, day, ...; "" for Cron or IntervalSeconds
	Spec            string    // Connect's schedule: {"N": 1}, {"Days": [1, 3]}, ...
	StartAt         time.Time // the first run, and what Kind counts from
	Email           bool      // Connect's email flag, kept for its clients (dais sends no mail)
	Timezone        string    // IANA name; empty = UTC
	Enabled         bool
	NextRunAt       time.Time
	LastRunAt       time.Time // zero: never
	LastNode        string    // the node that claimed the last run
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// Job is one process the server started for a content (app process, render).
type Job struct {
	ID        int64
	Key       string // random, unique; filled by CreateJob when empty
	ContentID int64
	BundleID  int64
	Tag       string // "run_app", "render", "restore", ...
	PID       int
	Node      string
	LogPath   string
	ExitCode  *int // nil while running or unknown
	// ExitReason says why dais ended the process, when it knows
	// ("killed: over its 256 MB memory limit"); "" otherwise.
	ExitReason string
	StartedAt  time.Time
	EndedAt    time.Time // zero while running
}

// Store is the persistent state of dais. It is safe for concurrent use, and
// several dais servers may share one PostgreSQL store.
type Store interface {
	GroupStore
	TagStore
	VanityStore

	// Users.
	CreateUser(ctx context.Context, u *User) error
	User(ctx context.Context, id int64) (*User, error)
	UserByGUID(ctx context.Context, guid string) (*User, error)
	UserByUsername(ctx context.Context, username string) (*User, error)
	// UserByUniqueID finds a provider's user by the provider's id.
	UserByUniqueID(ctx context.Context, provider, uniqueID string) (*User, error)
	// UserProviders counts the users of each provider.
	UserProviders(ctx context.Context) (map[string]int, error)
	// SyncProviderGroups makes the user's memberships in the groups of
	// provider exactly groups, creating the groups it lacks (by their
	// provider's UniqueID) and renaming those whose Name changed;
	// memberships in local groups and other providers' groups stay. A
	// group whose name is taken by another group is left out and its name
	// returned in skipped.
	SyncProviderGroups(ctx context.Context, userID int64, provider string, groups []Group) (skipped []string, err error)
	// ListUsers returns a page of users ordered by username and the total
	// number matching the filter.
	ListUsers(ctx context.Context, f UserFilter) ([]User, int, error)
	// UpdateUser writes every field but ID, GUID and CreatedAt.
	UpdateUser(ctx context.Context, u *User) error
	DeleteUser(ctx context.Context, id int64) error

	// API keys.
	CreateAPIKey(ctx context.Context, k *APIKey) error
	// APIKeyByHash is the authentication lookup.
	APIKeyByHash(ctx context.Context, hash string) (*APIKey, error)
	ListAPIKeys(ctx context.Context, userID int64) ([]APIKey, error)
	TouchAPIKey(ctx context.Context, id int64, at time.Time) error
	DeleteAPIKey(ctx context.Context, id int64) error

	// Sessions.
	CreateSession(ctx context.Context, s *Session) error
	// Session returns ErrNotFound for a missing or expired (at now) session.
	Session(ctx context.Context, tokenHash string, now time.Time) (*Session, error)
	DeleteSession(ctx context.Context, tokenHash string) error
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error)

	// Content.
	CreateContent(ctx context.Context, c *Content) error
	Content(ctx context.Context, id int64) (*Content, error)
	ContentByGUID(ctx context.Context, guid string) (*Content, error)
	// ListContent returns a page ordered by id and the total matching the filter.
	ListContent(ctx context.Context, f ContentFilter) ([]Content, int, error)
	// UpdateContent writes every field but ID, GUID, CreatedAt; sets UpdatedAt.
	UpdateContent(ctx context.Context, c *Content) error
	// SetContentBundle activates a bundle of the content (nil: none).
	SetContentBundle(ctx context.Context, contentID int64, bundleID *int64) error
	// DeleteContent removes the content and everything hanging off it.
	DeleteContent(ctx context.Context, id int64) error

	// Content environment variables. Values are secrets: the API lists names only.
	UpdateEnvironment(ctx context.Context, contentID int64, vars []EnvVar) error
	Environment(ctx context.Context, contentID int64) (map[string]string, error)
	EnvironmentNames(ctx context.Context, contentID int64) ([]string, error) // sorted

	// Content ACL.
	// SetPermission adds the user or group to the ACL or changes its role; fills p.ID.
	SetPermission(ctx context.Context, p *Permission) error
	Permissions(ctx context.Context, contentID int64) ([]Permission, error)
	// ContentPermissions returns the ACLs of several content items at
	// once, by content id (items without one are absent): a list's access
	// check without a query per item.
	ContentPermissions(ctx context.Context, contentIDs []int64) (map[int64][]Permission, error)
	Permission(ctx context.Context, id int64) (*Permission, error)
	DeletePermission(ctx context.Context, id int64) error

	// Bundles.
	CreateBundle(ctx context.Context, b *Bundle) error
	Bundle(ctx context.Context, id int64) (*Bundle, error)
	// ListBundles returns a content's bundles, newest first.
	ListBundles(ctx context.Context, contentID int64) ([]Bundle, error)
	SetBundleManifest(ctx context.Context, id int64, manifest json.RawMessage) error
	DeleteBundle(ctx context.Context, id int64) error

	// Tasks.
	CreateTask(ctx context.Context, t *Task) error
	Task(ctx context.Context, id string) (*Task, error)
	ListTasks(ctx context.Context, f TaskFilter) ([]Task, error)
	// AppendTaskOutput adds lines after the task's last line.
	AppendTaskOutput(ctx context.Context, taskID string, lines ...string) error
	// TaskOutput returns the lines with Index >= from, in order.
	TaskOutput(ctx context.Context, taskID string, from int) ([]TaskOutputLine, error)
	// FinishTask marks the task finished (once: a finished task is left as is
	// and ErrConflict returned).
	FinishTask(ctx context.Context, id string, code int, errMsg string, result json.RawMessage, at time.Time) error
	// FailUnfinishedTasks finishes every unfinished task of kind (all kinds
	// when empty) started on node (all nodes when empty) with code 1 and
	// errMsg, and returns how many it changed. Used on stop and on start.
	// With SQLite (one server) pass node "": a container's hostname changes
	// from one run to the next.
	FailUnfinishedTasks(ctx context.Context, node, kind, errMsg string, at time.Time) (int64, error)

	// Renders.
	CreateRender(ctx context.Context, r *Render) error
	Render(ctx context.Context, id int64) (*Render, error)
	// ListRenders returns a content's renders, newest first; count 0 = all.
	ListRenders(ctx context.Context, contentID int64, count int) ([]Render, error)
	// UpdateRender writes Status, OutputDir, Node, Error, StartedAt, FinishedAt, TaskID.
	UpdateRender(ctx context.Context, r *Render) error
	// LatestRender returns the newest render of the content with the status.
	LatestRender(ctx context.Context, contentID int64, status string) (*Render, error)
	// FailRunningRenders marks queued and running renders of node (all
	// nodes when empty) failed with errMsg: a hard kill left them so.
	// With SQLite pass node "" (see FailUnfinishedTasks).
	FailRunningRenders(ctx context.Context, node, errMsg string, at time.Time) (int64, error)

	// Schedules.
	CreateSchedule(ctx context.Context, s *Schedule) error
	Schedule(ctx context.Context, id int64) (*Schedule, error)
	// ListSchedules returns the schedules of a content (all when 0), by id.
	ListSchedules(ctx context.Context, contentID int64) ([]Schedule, error)
	// UpdateSchedule writes Cron, IntervalSeconds, Kind, Spec, StartAt,
	// Email, Timezone, Enabled, NextRunAt.
	UpdateSchedule(ctx context.Context, s *Schedule) error
	DeleteSchedule(ctx context.Context, id int64) error
	// DueSchedules returns the enabled schedules with NextRunAt <= now.
	DueSchedules(ctx context.Context, now time.Time) ([]Schedule, error)
	// ClaimSchedule is an atomic compare-and-swap: when the schedule is
	// enabled and its NextRunAt still equals expected, it sets NextRunAt to
	// next, LastRunAt to now and LastNode to node and returns true. Exactly
	// one of several servers racing for the same run wins. The caller
	// computes next as the first time after now (not after expected), so a
	// schedule missed during downtime runs once, not once per missed slot;
	// next not after now is an error (the run could be claimed again).
	ClaimSchedule(ctx context.Context, id int64, expected, next, now time.Time, node string) (bool, error)

	// Jobs (processes).
	CreateJob(ctx context.Context, j *Job) error
	Job(ctx context.Context, key string) (*Job, error)
	// ListJobs returns a content's jobs, newest first; count 0 = all.
	ListJobs(ctx context.Context, contentID int64, count int) ([]Job, error)
	// RunningJobs returns the jobs of every content not ended yet (on any
	// node), by content then oldest first: the server's load.
	RunningJobs(ctx context.Context) ([]Job, error)
	// FinishJob records the end of a job's process.
	// reason is why dais ended it, when it knows ("" otherwise).
	FinishJob(ctx context.Context, key string, exitCode int, reason string, at time.Time) error

	// Server-wide settings (name -> value), shared by every node.
	// Setting returns ErrNotFound for a name never set.
	Setting(ctx context.Context, name string) (string, error)
	SetSetting(ctx context.Context, name, value string) error
	// SetSettingIfAbsent stores value unless name is set, and returns the
	// stored value: the first of several racing nodes wins.
	SetSettingIfAbsent(ctx context.Context, name, value string) (string, error)

	// Tokens of R rsconnect's token authentication (tokens.go).
	TokenStore
	// Git-backed content (repositories.go).
	RepositoryStore
	// The nodes of a cluster and its locks (nodes.go).
	NodeStore
	// The audit log and the usage the proxy records (usage.go).
	UsageStore

	// DatabaseVersion is the schema version the database is at.
	DatabaseVersion(ctx context.Context) (int64, error)
	// Dialect is "sqlite" or "postgres".
	Dialect() string
	Ping(ctx context.Context) error
	Close() error
}

// SQLiteStore is what a SQLite store offers beyond Store, for backups.
type SQLiteStore interface {
	Store
	// Path is the database file.
	Path() string
	// Backup writes a consistent online snapshot to dest (VACUUM INTO);
	// dest must not exist.
	Backup(ctx context.Context, dest string) error
	// IntegrityCheck runs PRAGMA integrity_check and returns its findings as an error.
	IntegrityCheck(ctx context.Context) error
}
