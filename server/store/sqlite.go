package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers driver "sqlite"
)

// KeepUpgradeBackups is how many automatic pre-upgrade backups are kept.
const KeepUpgradeBackups = 5

// BackupsDir is where automatic pre-upgrade backups of the SQLite database
// at dbPath go: <dir of dbPath>/backups.
func BackupsDir(dbPath string) string {
	return filepath.Join(filepath.Dir(dbPath), "backups")
}

type sqliteDB struct {
	sqlDB
	path string
}

// sqliteDSN opens path with WAL, a busy timeout, foreign keys, and
// transactions that take the write lock at BEGIN (no upgrade deadlocks).
func sqliteDSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

// OpenSQLite opens (creating it if needed) the SQLite database at path and
// migrates it to this binary's schema. Before upgrading an existing
// database it writes a backup to BackupsDir(path) (the newest
// KeepUpgradeBackups are kept). A database at a newer schema is refused with
// an error wrapping ErrSchemaTooNew.
func OpenSQLite(ctx context.Context, path string, logger *slog.Logger) (SQLiteStore, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create database directory (SQLite.Dir): %w", err)
	}
	// One process at a time opens and migrates: the first connection to a
	// new database switches it to WAL, which needs the database alone and
	// fails at once with "database is locked" (no busy wait) when another
	// process is opening it too.
	unlock, err := lockFile(path + ".migrate-lock")
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	defer unlock()
	_, statErr := os.Stat(path)
	db, err := sql.Open("sqlite", sqliteDSN(path))
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	// database/sql keeps 2 idle connections by default: under concurrent
	// requests SQLite connections were opened and closed per request
	// (4,500 -> 918 req/s from 1 to 32 clients). WAL lets readers share.
	db.SetMaxIdleConns(16)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s := &sqliteDB{sqlDB: sqlDB{db: db, dialect: DialectSQLite}, path: path}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if errors.Is(statErr, os.ErrNotExist) {
		// It holds password hashes and content secrets; SQLite gives its
		// -wal and -shm files the same mode.
		if err := os.Chmod(path, 0o600); err != nil {
			db.Close()
			return nil, fmt.Errorf("restrict permissions of new database %s: %w", path, err)
		}
	}
	backup := func(old int64) error {
		dest, err := s.upgradeBackup(ctx, old, logger)
		if err != nil {
			return fmt.Errorf("back up %s before upgrading its schema from version %d: %w", path, old, err)
		}
		logger.Info("database backed up before upgrade", slog.String(logKeyPath, dest),
			slog.Int64(logKeyFrom, old), slog.Int64(logKeyTo, SchemaVersion()))
		return nil
	}
	err = migrate(ctx, db, DialectSQLite, path, BackupsDir(path), logger, backup)
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *sqliteDB) Path() string { return s.path }

func (s *sqliteDB) Backup(ctx context.Context, dest string) error {
	if _, err := os.Stat(dest); err == nil {
		return fmt.Errorf("back up database to %s: the file exists; choose a new name", dest)
	}
	if _, err := s.db.ExecContext(ctx, `VACUUM INTO ?`, dest); err != nil {
		return fmt.Errorf("back up database to %s: %w", dest, err)
	}
	return nil
}

func (s *sqliteDB) IntegrityCheck(ctx context.Context) error {
	return integrityCheck(ctx, s.db, s.path)
}

func integrityCheck(ctx context.Context, db *sql.DB, path string) error {
	rows, err := db.QueryContext(ctx, `PRAGMA integrity_check`)
	if err != nil {
		return fmt.Errorf("integrity check of %s: %w", path, err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return fmt.Errorf("integrity check of %s: %w", path, err)
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("integrity check of %s: %w", path, err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("integrity check of %s failed: %s", path, strings.Join(problems, "; "))
	}
	return nil
}

// CheckSQLiteFile runs an integrity check on the SQLite database file at
// path (a backup, say) without migrating or changing it, and returns its
// schema version.
func CheckSQLiteFile(ctx context.Context, path string) (int64, error) {
	if _, err := os.Stat(path); err != nil {
		return 0, fmt.Errorf("check database: %w", err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	if err := integrityCheck(ctx, db, path); err != nil {
		return 0, err
	}
	return readVersion(ctx, db, DialectSQLite)
}

// BackupSQLiteFile writes a consistent snapshot of the SQLite database at
// src to dest (VACUUM INTO), while a server may be using src. dest must not exist.
func BackupSQLiteFile(ctx context.Context, src, dest string) error {
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("back up database: %w", err)
	}
	if _, err := os.Stat(dest); err == nil {
		return fmt.Errorf("back up database to %s: the file exists; choose a new name", dest)
	}
	db, err := sql.Open("sqlite", "file:"+src+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("open %s: %w", src, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dest); err != nil {
		return fmt.Errorf("back up %s to %s: %w", src, dest, err)
	}
	return nil
}

// upgradeBackup snapshots the database into BackupsDir before a migration
// and prunes old snapshots.
func (s *sqliteDB) upgradeBackup(ctx context.Context, old int64, logger *slog.Logger) (string, error) {
	dir := BackupsDir(s.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	stamp := time.Now().UTC().Format("20060102T150405Z")
	dest := filepath.Join(dir, fmt.Sprintf("dais-%d-%s.db", old, stamp))
	for i := 1; ; i++ {
		if _, err := os.Stat(dest); errors.Is(err, os.ErrNotExist) {
			break
		}
		dest = filepath.Join(dir, fmt.Sprintf("dais-%d-%s-%d.db", old, stamp, i))
	}
	if err := s.Backup(ctx, dest); err != nil {
		return "", err
	}
	pruneBackups(dir, KeepUpgradeBackups, logger)
	return dest, nil
}

// newestBackup is the newest automatic backup in dir of a database at
// schema version, or "".
func newestBackup(dir string, version int64) string {
	if dir == "" {
		return ""
	}
	matches, _ := filepath.Glob(filepath.Join(dir, fmt.Sprintf("dais-%d-*.db", version)))
	newest, newestMod := "", time.Time{}
	for _, m := range matches {
		fi, err := os.Stat(m)
		if err == nil && (newest == "" || fi.ModTime().After(newestMod)) {
			newest, newestMod = m, fi.ModTime()
		}
	}
	return newest
}

// pruneBackups removes all but the newest keep dais-*.db files in dir.
func pruneBackups(dir string, keep int, logger *slog.Logger) {
	matches, err := filepath.Glob(filepath.Join(dir, "dais-*.db"))
	if err != nil || len(matches) <= keep {
		return
	}
	type file struct {
		path string
		mod  time.Time
	}
	var files []file
	for _, m := range matches {
		fi, err := os.Stat(m)
		if err != nil {
			continue
		}
		files = append(files, file{m, fi.ModTime()})
	}
	sort.Slice(files, func(i, j int) bool {
		if !files[i].mod.Equal(files[j].mod) {
			return files[i].mod.After(files[j].mod)
		}
		return files[i].path > files[j].path
	})
	for _, f := range files[min(keep, len(files)):] {
		if err := os.Remove(f.path); err != nil {
			logger.Warn("remove old database backup", slog.String(logKeyPath, f.path), slog.Any("error", err))
		}
	}
}
