package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var migrationFS embed.FS

// versionTable is goose's bookkeeping table.
const versionTable = "goose_db_version"

func migrations(dialect string) fs.FS {
	sub, err := fs.Sub(migrationFS, path.Join("migrations", dialect))
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}

// SchemaVersion is the highest schema version this binary knows, the same
// for both dialects.
func SchemaVersion() int64 {
	return maxMigration(DialectSQLite)
}

func maxMigration(dialect string) int64 {
	v := migrationVersions(dialect)
	if len(v) == 0 {
		return 0
	}
	return v[len(v)-1]
}

// migrationVersions lists the versions of dialect's migrations, in order.
// They need not be consecutive: each engineer numbers from the range the
// project gave them.
func migrationVersions(dialect string) []int64 {
	entries, err := fs.ReadDir(migrations(dialect), ".")
	if err != nil {
		panic(err)
	}
	var versions []int64
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		if !ok {
			continue
		}
		v, err := strconv.ParseInt(num, 10, 64)
		if err == nil {
			versions = append(versions, v)
		}
	}
	sort.Slice(versions, func(i, j int) bool { return versions[i] < versions[j] })
	return versions
}

// SchemaTooNewError is returned (wrapping ErrSchemaTooNew) for a database
// migrated by a newer dais.
type SchemaTooNewError struct {
	Database int64  // the database's schema version
	Binary   int64  // this binary's
	Where    string // the file or the redacted URL
	Backups  string // directory of automatic backups, SQLite only
	// Backup is the newest automatic pre-upgrade backup at this binary's
	// schema version, when there is one (SQLite only).
	Backup string
}

func (e *SchemaTooNewError) Error() string {
	msg := fmt.Sprintf("database %s has schema version %d, newer than this dais (schema version %d): "+
		"it was upgraded by a newer dais; run that newer dais, or restore a backup taken with this dais version (dais restore --from FILE)",
		e.Where, e.Database, e.Binary)
	switch {
	case e.Backup != "":
		msg += fmt.Sprintf("; the automatic backup taken before the upgrade, %s, is at this version: with dais stopped, "+
			"delete %s-wal and %s-shm and copy it over %s (changes made since the upgrade are lost)", e.Backup, e.Where, e.Where, e.Where)
	case e.Backups != "":
		msg += "; automatic pre-upgrade backups of the database are in " + e.Backups
	}
	return msg
}

func (e *SchemaTooNewError) Unwrap() error { return ErrSchemaTooNew }

// readVersion returns the schema version of db: 0 for a database goose never touched.
func readVersion(ctx context.Context, db *sql.DB, dialect string) (int64, error) {
	var exists bool
	var err error
	switch dialect {
	case DialectSQLite:
		var n int
		err = db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, versionTable).Scan(&n)
		exists = n > 0
	default:
		err = db.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, versionTable).Scan(&exists)
	}
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT MAX(version_id) FROM `+versionTable+` WHERE is_applied`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v.Int64, nil
}

// pendingMigrations counts this binary's migrations not applied to db (0
// for a database goose never touched: then every one is pending). Numbers
// are given out in ranges, so one may be lower than the database's version
// and still be new to it.
func pendingMigrations(ctx context.Context, db *sql.DB, dialect string, current int64) (int, error) {
	known := migrationVersions(dialect)
	if current == 0 {
		return len(known), nil
	}
	rows, err := db.QueryContext(ctx, `SELECT version_id FROM `+versionTable+` WHERE is_applied`)
	if err != nil {
		return 0, fmt.Errorf("read applied migrations: %w", err)
	}
	defer rows.Close()
	applied := map[int64]bool{}
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return 0, fmt.Errorf("read applied migrations: %w", err)
		}
		applied[v] = true
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read applied migrations: %w", err)
	}
	n := 0
	for _, v := range known {
		if !applied[v] {
			n++
		}
	}
	return n, nil
}

// migrate brings db up to this binary's schema. before, when not nil, runs
// first when an existing database (version > 0) is about to be upgraded.
func migrate(ctx context.Context, db *sql.DB, dialect, where, backups string, logger *slog.Logger, before func(old int64) error) error {
	target := maxMigration(dialect)
	current, err := readVersion(ctx, db, dialect)
	if err != nil {
		return err
	}
	if current > target {
		// A newer dais migrated the database. Its notes say whether all of
		// its migrations are additive: then this one may serve beside it.
		newest, additive, err := schemaCompat(ctx, db, dialect, target)
		if err != nil {
			return err
		}
		if !additive {
			return &SchemaTooNewError{Database: current, Binary: target, Where: where, Backups: backups, Backup: newestBackup(backups, target)}
		}
		logger.Info("a newer dais migrated the database with additive migrations only: this one serves beside it",
			logKeyFrom, target, logKeyTo, newest)
	}
	pending, err := pendingMigrations(ctx, db, dialect, current)
	if err != nil {
		return err
	}
	if pending == 0 {
		return recordNotes(ctx, db, dialect)
	}
	if current > 0 && before != nil {
		if err := before(current); err != nil {
			return err
		}
	}
	// Out of order: a migration numbered below the database's version
	// (from another engineer's range, merged later) is applied too.
	opts := []goose.ProviderOption{goose.WithDisableGlobalRegistry(true), goose.WithAllowOutofOrder(true)}
	gd := goose.DialectSQLite3
	if dialect == DialectPostgres {
		gd = goose.DialectPostgres
		// Several servers may start at once on one PostgreSQL: an advisory
		// lock (per schema, so that unrelated schemas do not wait on each
		// other), polled every second.
		var schema string
		if err := db.QueryRowContext(ctx, `SELECT COALESCE(current_schema(), '')`).Scan(&schema); err != nil {
			return fmt.Errorf("migration lock: %w", err)
		}
		h := fnv.New64a()
		h.Write([]byte("dais-migrations:" + schema))
		locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(int64(h.Sum64()>>1)), lock.WithLockTimeout(1, 600))
		if err != nil {
			return fmt.Errorf("migration lock: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(gd, db, migrations(dialect), opts...)
	if err != nil {
		return fmt.Errorf("prepare migrations: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate database %s from schema version %d to %d: %w", where, current, target, err)
	}
	for _, r := range results {
		logger.Info("database migrated", slog.String(logKeyDialect, dialect),
			slog.Int64(logKeyVersion, r.Source.Version), slog.Duration(logKeyDuration, r.Duration))
	}
	return recordNotes(ctx, db, dialect)
}

// additiveMarker starts a migration file that an older dais can live with.
const additiveMarker = "-- dais:additive"

// additiveMigrations tells, for each of this binary's migrations, whether
// its file says it is additive.
func additiveMigrations(dialect string) map[int64]bool {
	out := map[int64]bool{}
	entries, err := fs.ReadDir(migrations(dialect), ".")
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil {
			continue
		}
		b, err := fs.ReadFile(migrations(dialect), e.Name())
		if err != nil {
			panic(err)
		}
		out[v] = strings.HasPrefix(string(b), additiveMarker+"\n")
	}
	return out
}

// hasTable tells whether the database has the table.
func hasTable(ctx context.Context, db *sql.DB, dialect, table string) (bool, error) {
	var exists bool
	var err error
	switch dialect {
	case DialectSQLite:
		var n int
		err = db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, table).Scan(&n)
		exists = n > 0
	default:
		err = db.QueryRowContext(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists)
	}
	return exists, err
}

// recordNotes writes, for each of this binary's migrations, whether it is
// additive, for older nodes to read (schemaCompat).
func recordNotes(ctx context.Context, db *sql.DB, dialect string) error {
	if ok, err := hasTable(ctx, db, dialect, "schema_notes"); err != nil || !ok {
		return err
	}
	q := `INSERT INTO schema_notes (version, additive) VALUES (?, ?) ON CONFLICT (version) DO UPDATE SET additive = excluded.additive`
	if dialect == DialectPostgres {
		q = `INSERT INTO schema_notes (version, additive) VALUES ($1, $2) ON CONFLICT (version) DO UPDATE SET additive = excluded.additive`
	}
	for v, additive := range additiveMigrations(dialect) {
		if _, err := db.ExecContext(ctx, q, v, additive); err != nil {
			return fmt.Errorf("record schema notes: %w", err)
		}
	}
	return nil
}

// schemaCompat returns the database's schema version and whether every
// applied migration above mine is noted additive by the dais that applied
// it (false when any is not, or has no note).
func schemaCompat(ctx context.Context, db *sql.DB, dialect string, mine int64) (newest int64, additive bool, err error) {
	if newest, err = readVersion(ctx, db, dialect); err != nil {
		return 0, false, err
	}
	if newest <= mine {
		return newest, true, nil
	}
	if ok, err := hasTable(ctx, db, dialect, "schema_notes"); err != nil || !ok {
		return newest, false, err
	}
	q := `SELECT count(*) FROM ` + versionTable + ` v WHERE v.is_applied AND v.version_id > ?
		AND NOT EXISTS (SELECT 1 FROM schema_notes n WHERE n.version = v.version_id AND n.additive)`
	if dialect == DialectPostgres {
		q = strings.Replace(q, "?", "$1", 1)
	}
	var n int
	if err := db.QueryRowContext(ctx, q, mine).Scan(&n); err != nil {
		return newest, false, fmt.Errorf("read schema notes: %w", err)
	}
	return newest, n == 0, nil
}

// Log attribute keys.
const (
	logKeyDialect  = "dialect"
	logKeyVersion  = "schema_version"
	logKeyDuration = "duration"
	logKeyPath     = "path"
	logKeyFrom     = "from_version"
	logKeyTo       = "to_version"
)
