package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/dais-dev/dais/server/config"
	"github.com/pressly/goose/v3"
)

// openRaw opens cfg's database without migrating it. exists is false for a
// SQLite file that is not there (nothing is opened then).
func openRaw(ctx context.Context, cfg *config.Config) (db *sql.DB, dialect, where string, exists bool, err error) {
	switch cfg.Database.Provider {
	case "", DialectSQLite:
		path := SQLitePath(cfg)
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, DialectSQLite, path, false, nil
		}
		db, err := sql.Open("sqlite", sqliteDSN(path))
		if err != nil {
			return nil, "", "", false, fmt.Errorf("open database %s: %w", path, err)
		}
		return db, DialectSQLite, path, true, nil
	case DialectPostgres, "postgresql":
		dsn, err := PostgresURL(cfg)
		if err != nil {
			return nil, "", "", false, err
		}
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			return nil, "", "", false, fmt.Errorf("open database %s: %w", redactURL(dsn), err)
		}
		if err := db.PingContext(ctx); err != nil {
			db.Close()
			return nil, "", "", false, fmt.Errorf("connect to database %s (check Postgres.URL and Postgres.Password): %w", redactURL(dsn), err)
		}
		return db, DialectPostgres, redactURL(dsn), true, nil
	default:
		return nil, "", "", false, fmt.Errorf("unknown Database.Provider %q: use sqlite or postgres", cfg.Database.Provider)
	}
}

// ReadSchemaVersion returns the schema version of cfg's database without
// migrating or otherwise changing it: 0 for a database dais never
// initialized (or a SQLite file that does not exist yet). Compare it with
// SchemaVersion() to tell an upgrade (lower) from a downgrade (higher).
func ReadSchemaVersion(ctx context.Context, cfg *config.Config) (int64, error) {
	db, dialect, _, exists, err := openRaw(ctx, cfg)
	if err != nil || !exists {
		return 0, err
	}
	defer db.Close()
	return readVersion(ctx, db, dialect)
}

// DropAll removes every table dais created in cfg's database (all
// migrations down, then goose's version table), for `dais purge` on
// PostgreSQL. A database at a newer schema than this binary's is refused
// (this dais does not know how to undo the newer migrations).
func DropAll(ctx context.Context, cfg *config.Config, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	db, dialect, where, exists, err := openRaw(ctx, cfg)
	if err != nil || !exists {
		return err
	}
	defer db.Close()
	current, err := readVersion(ctx, db, dialect)
	if err != nil {
		return err
	}
	if current > maxMigration(dialect) {
		return &SchemaTooNewError{Database: current, Binary: maxMigration(dialect), Where: where}
	}
	if current > 0 {
		gd := goose.DialectSQLite3
		if dialect == DialectPostgres {
			gd = goose.DialectPostgres
		}
		p, err := goose.NewProvider(gd, db, migrations(dialect), goose.WithDisableGlobalRegistry(true))
		if err != nil {
			return fmt.Errorf("prepare migrations: %w", err)
		}
		if _, err := p.DownTo(ctx, 0); err != nil {
			return fmt.Errorf("drop dais tables in %s: %w", where, err)
		}
	}
	if _, err := db.ExecContext(ctx, `DROP TABLE IF EXISTS `+versionTable); err != nil {
		return fmt.Errorf("drop %s in %s: %w", versionTable, where, err)
	}
	logger.Info("dropped dais tables", slog.String(logKeyDialect, dialect), slog.String(logKeyPath, where),
		slog.Int64(logKeyFrom, current))
	return nil
}
