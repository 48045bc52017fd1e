package store

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/dais-dev/dais/server/config"
)

// SQLiteFile is the database file's name inside SQLite.Dir.
const SQLiteFile = "dais.db"

// SQLitePath is the SQLite database file of cfg: <SQLite.Dir>/dais.db.
func SQLitePath(cfg *config.Config) string {
	return filepath.Join(cfg.SQLiteDir(), SQLiteFile)
}

// PostgresURL is cfg's Postgres.URL with Postgres.Password, when set,
// replacing the URL's password. Postgres.URL may also be a libpq
// key=value string ("host=db user=dais dbname=dais").
func PostgresURL(cfg *config.Config) (string, error) {
	if cfg.Postgres.URL == "" {
		return "", fmt.Errorf("Database.Provider = postgres needs Postgres.URL (for example postgres://dais@db:5432/dais)")
	}
	if cfg.Postgres.Password == "" {
		return cfg.Postgres.URL, nil
	}
	if !strings.HasPrefix(cfg.Postgres.URL, "postgres://") && !strings.HasPrefix(cfg.Postgres.URL, "postgresql://") {
		// key=value form: a later key wins in pgx's parser.
		pw := strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(cfg.Postgres.Password)
		return cfg.Postgres.URL + " password='" + pw + "'", nil
	}
	u, err := url.Parse(cfg.Postgres.URL)
	if err != nil {
		return "", fmt.Errorf("parse Postgres.URL: %w (want postgres://USER@HOST:PORT/DB)", err)
	}
	user := ""
	if u.User != nil {
		user = u.User.Username()
	}
	u.User = url.UserPassword(user, cfg.Postgres.Password)
	return u.String(), nil
}

// Open opens the store cfg names (Database.Provider), migrates it up to this
// binary's schema version and returns it. An existing SQLite database is
// backed up beside itself (<SQLite.Dir>/backups) before an upgrade. A
// database at a newer schema version is refused with ErrSchemaTooNew.
func Open(ctx context.Context, cfg *config.Config, logger *slog.Logger) (Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	switch cfg.Database.Provider {
	case "", "sqlite":
		return OpenSQLite(ctx, SQLitePath(cfg), logger)
	case "postgres", "postgresql":
		u, err := PostgresURL(cfg)
		if err != nil {
			return nil, err
		}
		return OpenPostgres(ctx, u, logger)
	default:
		return nil, fmt.Errorf("unknown Database.Provider %q: use sqlite or postgres", cfg.Database.Provider)
	}
}
