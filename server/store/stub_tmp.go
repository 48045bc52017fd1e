package store

import (
	"context"
	"errors"
	"log/slog"
)

// OpenSQLite opens (creating it if needed) and migrates the SQLite database at path.
func OpenSQLite(ctx context.Context, path string, logger *slog.Logger) (SQLiteStore, error) {
	return nil, errors.New("not implemented yet")
}

// OpenPostgres opens and migrates the PostgreSQL database at url.
func OpenPostgres(ctx context.Context, url string, logger *slog.Logger) (Store, error) {
	return nil, errors.New("not implemented yet")
}

// SchemaVersion is the highest schema version this binary knows.
func SchemaVersion() int64 { return 1 }
