package store_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/dais-dev/dais/server/store"
)

// Every migration goes down and up again cleanly, in both dialects, and
// the store works after the round trip.
func TestMigrationsDownUp(t *testing.T) {
	for _, dialect := range []string{store.DialectSQLite, store.DialectPostgres} {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			var s store.Store
			var db *sql.DB
			var err error
			if dialect == store.DialectSQLite {
				path := filepath.Join(t.TempDir(), "dais.db")
				s, err = store.OpenSQLite(ctx, path, nil)
				if err == nil {
					db, err = sql.Open("sqlite", path)
				}
			} else {
				dsn := freshSchema(t)
				s, err = store.OpenPostgres(ctx, dsn, nil)
				if err == nil {
					db, err = sql.Open("pgx", dsn)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			defer db.Close()
			for _, v := range store.PreviousSchemaVersions() {
				if err := store.MigrateDBTo(ctx, db, dialect, v); err != nil {
					t.Fatalf("down to %d: %v", v, err)
				}
				if got, err := s.DatabaseVersion(ctx); err != nil || got != v {
					t.Fatalf("version after down = %d, %v; want %d", got, err, v)
				}
			}
			if err := store.MigrateDBTo(ctx, db, dialect, store.SchemaVersion()); err != nil {
				t.Fatalf("up again: %v", err)
			}
			u := &store.User{Username: "roundtrip", Role: store.RoleViewer}
			if err := s.CreateUser(ctx, u); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Setting(ctx, "x"); err == nil {
				t.Fatal("setting present after round trip")
			}
		})
	}
}
