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

// A migration numbered below the database's version (numbers are given out
// in ranges, and one range's migration may be merged after a higher one)
// is applied all the same when the store opens the database.
func TestMigrationOutOfOrder(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "dais.db")
	versions := store.PreviousSchemaVersions() // newest first, then 0
	if len(versions) < 3 {
		t.Skip("fewer than three migrations")
	}
	// Every migration but 4 (per-content network and limits), in order.
	var without []int64
	for i := len(versions) - 2; i >= 0; i-- {
		if versions[i] != 4 {
			without = append(without, versions[i])
		}
	}
	without = append(without, store.SchemaVersion())
	if err := store.ApplySQLiteVersions(ctx, path, without...); err != nil {
		t.Fatal(err)
	}
	s, err := store.OpenSQLite(ctx, path, nil)
	if err != nil {
		t.Fatalf("open a database that missed migration 4: %v", err)
	}
	defer s.Close()
	u := &store.User{Username: "owner", Role: store.RolePublisher}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	off, limit := false, int64(256<<20)
	c := &store.Content{Name: "app", OwnerID: u.ID, OutboundNetwork: &off, MemoryLimit: &limit}
	if err := s.CreateContent(ctx, c); err != nil {
		t.Fatalf("migration 4 was not applied: %v", err)
	}
	got, err := s.Content(ctx, c.ID)
	if err != nil || got.OutboundNetwork == nil || *got.OutboundNetwork || got.MemoryLimit == nil || *got.MemoryLimit != limit {
		t.Fatalf("content = %+v, %v", got, err)
	}
}
