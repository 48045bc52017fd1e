package store

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // registers driver "pgx"
)

// OpenPostgres opens the PostgreSQL database at dsn (a postgres:// URL) and
// migrates it to this binary's schema. Several servers may do so at once: the
// migration takes an advisory lock. A database at a newer schema is refused
// with an error wrapping ErrSchemaTooNew.
func OpenPostgres(ctx context.Context, dsn string, logger *slog.Logger) (Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	where := redactURL(dsn)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %s (Postgres.URL): %w", where, err)
	}
	db.SetMaxOpenConns(20)
	db.SetMaxIdleConns(5)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to database %s (check Postgres.URL and Postgres.Password): %w", where, err)
	}
	if err := migrate(ctx, db, DialectPostgres, where, "", logger, nil); err != nil {
		db.Close()
		return nil, err
	}
	return &sqlDB{db: db, dialect: DialectPostgres}, nil
}

var kvPassword = regexp.MustCompile(`password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)`)

// redactURL hides a connection string's password, for messages.
func redactURL(s string) string {
	if !strings.HasPrefix(s, "postgres://") && !strings.HasPrefix(s, "postgresql://") {
		return kvPassword.ReplaceAllString(s, "password=xxxxx")
	}
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable Postgres.URL)"
	}
	return u.Redacted()
}
