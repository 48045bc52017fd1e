package store

import (
	"context"
	"database/sql"

	"github.com/pressly/goose/v3"
)

// MigrateSQLiteTo brings the SQLite database at path to exactly version,
// without backups: tests use it to make databases of older versions.
func MigrateSQLiteTo(ctx context.Context, path string, version int64) error {
	db, err := sql.Open("sqlite", sqliteDSN(path))
	if err != nil {
		return err
	}
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectSQLite3, db, migrations(DialectSQLite), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return err
	}
	_, err = p.UpTo(ctx, version)
	return err
}

// ApplySQLiteVersions applies exactly the given migrations to the SQLite
// database at path, in that order (a database that missed one of them).
func ApplySQLiteVersions(ctx context.Context, path string, versions ...int64) error {
	db, err := sql.Open("sqlite", sqliteDSN(path))
	if err != nil {
		return err
	}
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectSQLite3, db, migrations(DialectSQLite), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return err
	}
	for _, v := range versions {
		if _, err := p.ApplyVersion(ctx, v, true); err != nil {
			return err
		}
	}
	return nil
}

// PreviousSchemaVersions lists the versions of the migrations before the
// last, newest first, then 0 (the empty database).
func PreviousSchemaVersions() []int64 {
	v := migrationVersions(DialectSQLite)
	out := []int64{}
	for i := len(v) - 2; i >= 0; i-- {
		out = append(out, v[i])
	}
	return append(out, 0)
}

// PostgresSchemaVersion is the last PostgreSQL migration.
func PostgresSchemaVersion() int64 { return maxMigration(DialectPostgres) }

// MigrateDBTo moves db up or down to exactly version.
func MigrateDBTo(ctx context.Context, db *sql.DB, dialect string, version int64) error {
	gd := goose.DialectSQLite3
	if dialect == DialectPostgres {
		gd = goose.DialectPostgres
	}
	p, err := goose.NewProvider(gd, db, migrations(dialect), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return err
	}
	cur, err := readVersion(ctx, db, dialect)
	if err != nil {
		return err
	}
	if cur > version {
		_, err = p.DownTo(ctx, version)
	} else {
		_, err = p.UpTo(ctx, version)
	}
	return err
}

// SQLiteDSN is the connection string the store uses for path.
var SQLiteDSN = sqliteDSN

var RedactURL = redactURL
