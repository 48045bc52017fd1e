package store_test

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/store"
)

// ReadSchemaVersion reads without migrating; DropAll leaves an empty
// database that Open initializes again from scratch.
func TestReadVersionAndDropAll(t *testing.T) {
	for _, provider := range []string{"sqlite", "postgres"} {
		t.Run(provider, func(t *testing.T) {
			ctx := context.Background()
			cfg := config.Defaults()
			cfg.Server.DataDir = t.TempDir()
			var countTables func() int
			if provider == "postgres" {
				dsn := freshSchema(t)
				cfg.Database.Provider = "postgres"
				cfg.Postgres.URL = dsn
				u, _ := url.Parse(dsn)
				schema := u.Query().Get("search_path")
				countTables = func() int {
					db, err := sql.Open("pgx", dsn)
					if err != nil {
						t.Fatal(err)
					}
					defer db.Close()
					var n int
					if err := db.QueryRow(`SELECT count(*) FROM information_schema.tables WHERE table_schema = $1`, schema).Scan(&n); err != nil {
						t.Fatal(err)
					}
					return n
				}
			} else {
				countTables = func() int {
					db, err := sql.Open("sqlite", filepath.Join(cfg.SQLiteDir(), "dais.db"))
					if err != nil {
						t.Fatal(err)
					}
					defer db.Close()
					var n int
					if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`).Scan(&n); err != nil {
						t.Fatal(err)
					}
					return n
				}
			}
			v, err := store.ReadSchemaVersion(ctx, cfg)
			if err != nil || v != 0 {
				t.Fatalf("version of a fresh database = %d, %v; want 0", v, err)
			}
			s, err := store.Open(ctx, cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.CreateUser(ctx, &store.User{Username: "u", Role: store.RoleViewer}); err != nil {
				t.Fatal(err)
			}
			s.Close()
			v, err = store.ReadSchemaVersion(ctx, cfg)
			if err != nil || v != store.SchemaVersion() {
				t.Fatalf("version = %d, %v; want %d", v, err, store.SchemaVersion())
			}
			if n := countTables(); n < 10 {
				t.Fatalf("%d tables after Open", n)
			}
			if err := store.DropAll(ctx, cfg, nil); err != nil {
				t.Fatal(err)
			}
			if n := countTables(); n != 0 {
				t.Fatalf("%d tables left after DropAll", n)
			}
			s, err = store.Open(ctx, cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := s.UserByUsername(ctx, "u"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("user after DropAll and Open: %v, want ErrNotFound", err)
			}
		})
	}
}
