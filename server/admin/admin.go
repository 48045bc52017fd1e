// Package admin holds the server-management tasks behind `dais backup`,
// `dais restore` and `dais purge`, and the configuration migration a newer
// dais writes for the admin (<config>-migration.gcfg).
//
// A backup is a tar.gz:
//
//	database/dais.db     SQLite: a consistent snapshot (VACUUM INTO)
//	database/dais.sql    PostgreSQL: pg_dump of dais's tables (plain SQL)
//	data/...             Server.DataDir, without the SQLite directory and lock files
//	manifest.json        last: dais version, schema version, provider, sha256 of every file
//
// Restore reads the archive twice: once to verify every checksum against
// the manifest (nothing is touched before that passes), once to write.
package admin

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/datalock"
	"github.com/dais-dev/dais/server/store"
	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx", for the running-server check
)

// Archive member names.
const (
	manifestName = "manifest.json"
	sqliteMember = "database/dais.db"
	pgMember     = "database/dais.sql"
	dataPrefix   = "data/"
	// FormatVersion is the backup layout's version, in the manifest.
	FormatVersion = 1
)

// Providers, as in Database.Provider.
const (
	ProviderSQLite   = "sqlite"
	ProviderPostgres = "postgres"
)

// Log attribute keys.
const (
	logKeyPath  = "path"
	logKeyErr   = "err"
	logKeyFiles = "files"
	logKeyBytes = "bytes"
)

// ErrServerRunning: a dais server uses the data; stop it first.
var ErrServerRunning = errors.New("a dais server is using the data")

// Manifest describes a backup. It is the archive's last member.
type Manifest struct {
	Format        int       `json:"format"`
	DaisVersion   string    `json:"dais_version"`
	SchemaVersion int64     `json:"schema_version"`
	Provider      string    `json:"provider"` // sqlite or postgres
	CreatedAt     time.Time `json:"created_at"`
	DataDir       string    `json:"data_dir"` // Server.DataDir at backup time, for information
	Files         []File    `json:"files"`
}

// File is one archive member in the manifest.
type File struct {
	Path   string `json:"path"` // the archive member name
	Type   string `json:"type"` // file, dir or symlink
	Size   int64  `json:"size,omitempty"`
	SHA256 string `json:"sha256,omitempty"` // files only
	Target string `json:"target,omitempty"` // symlinks only
}

func provider(cfg *config.Config) (string, error) {
	switch strings.ToLower(cfg.Database.Provider) {
	case "", "sqlite":
		return ProviderSQLite, nil
	case "postgres", "postgresql":
		return ProviderPostgres, nil
	}
	return "", fmt.Errorf("unknown Database.Provider %q: use sqlite or postgres", cfg.Database.Provider)
}

// lockData refuses while a server uses cfg's data. For SQLite it takes the
// data directory lock that `dais serve` holds (and keeps it until release,
// so that no server starts meanwhile). For PostgreSQL it refuses while other
// sessions are connected to the database: a running dais holds some.
func lockData(ctx context.Context, cfg *config.Config, prov string) (release func(), err error) {
	if prov == ProviderSQLite {
		dir := cfg.SQLiteDir()
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			return func() {}, nil
		}
		rel, err := datalock.Acquire(dir)
		if err != nil {
			if errors.Is(err, datalock.ErrLocked) {
				return nil, fmt.Errorf("%w (%v): stop it first (systemctl stop dais, or docker stop the container)", ErrServerRunning, err)
			}
			return nil, err
		}
		return func() { _ = rel() }, nil
	}
	dsn, err := store.PostgresURL(cfg)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database (Postgres.URL): %w", err)
	}
	defer db.Close()
	var n int
	var apps sql.NullString
	err = db.QueryRowContext(ctx, `SELECT count(*), string_agg(DISTINCT COALESCE(NULLIF(application_name, ''), client_addr::text, 'local'), ', ')
		FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`).Scan(&n, &apps)
	if err != nil {
		return nil, fmt.Errorf("connect to database (check Postgres.URL and Postgres.Password): %w", err)
	}
	if n > 0 {
		return nil, fmt.Errorf("%w: %d other session(s) are connected to the database (%s); stop every dais using it first (systemctl stop dais, docker stop)",
			ErrServerRunning, n, apps.String)
	}
	return func() {}, nil
}

// pgTool finds pg_dump or psql, or names the package to install.
func pgTool(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found in PATH: install the PostgreSQL client tools (Debian/Ubuntu: apt-get install postgresql-client, same major version as the server or newer)", name)
	}
	return p, nil
}

// pgEnv turns a Postgres URL into a connection argument and environment
// without the password on the command line (where ps would show it).
func pgEnv(dsn string) (conn string, env []string) {
	env = os.Environ()
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn, env
	}
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn, env
	}
	if pw, ok := u.User.Password(); ok {
		env = append(env, "PGPASSWORD="+pw)
		u.User = url.User(u.User.Username())
	}
	return u.String(), env
}

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}
