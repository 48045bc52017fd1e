package store_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/dais-dev/dais/server/store"
)

// wantedVersionsMigration is 00003_wanted_versions.sql.
const wantedVersionsMigration = 3

// Upgrading across 00003 moves the versions of never-deployed content (set
// through the API, so requests) to the *_wanted columns, and keeps those
// of deployed content (what its last deploy used) where they are; going
// down puts a request back into the single column of the older schema.
func TestWantedVersionsMigration(t *testing.T) {
	for _, dialect := range []string{store.DialectSQLite, store.DialectPostgres} {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			var db *sql.DB
			var open func() (store.Store, error)
			var err error
			if dialect == store.DialectSQLite {
				path := filepath.Join(t.TempDir(), "dais.db")
				db, err = sql.Open("sqlite", store.SQLiteDSN(path))
				open = func() (store.Store, error) { return store.OpenSQLite(ctx, path, nil) }
			} else {
				dsn := freshSchema(t)
				db, err = sql.Open("pgx", dsn)
				open = func() (store.Store, error) { return store.OpenPostgres(ctx, dsn, nil) }
			}
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := store.MigrateDBTo(ctx, db, dialect, wantedVersionsMigration-1); err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{
				`INSERT INTO users (guid, username, role, created_at, updated_at) VALUES ('u-1', 'owner', 'publisher', 1, 1)`,
				`INSERT INTO content (guid, name, owner_id, r_version, py_version, quarto_version, created_at, updated_at)
					VALUES ('never-deployed', 'a', (SELECT id FROM users), '4.3', '3.12.1', '', 1, 1)`,
				`INSERT INTO content (guid, name, owner_id, bundle_id, r_version, py_version, quarto_version, created_at, updated_at)
					VALUES ('deployed', 'b', (SELECT id FROM users), 7, '', '3.11.4', '1.4.550', 1, 1)`,
			} {
				if _, err := db.ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}

			s, err := open() // migrates to the newest version
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			check := func(guid string, used, wanted [3]string) {
				t.Helper()
				c, err := s.ContentByGUID(ctx, guid)
				if err != nil {
					t.Fatal(err)
				}
				gotUsed := [3]string{c.RVersion, c.PyVersion, c.QuartoVersion}
				gotWanted := [3]string{c.RVersionWanted, c.PyVersionWanted, c.QuartoVersionWanted}
				if gotUsed != used || gotWanted != wanted {
					t.Errorf("%s after the upgrade: used %q, wanted %q; want used %q, wanted %q", guid, gotUsed, gotWanted, used, wanted)
				}
			}
			check("never-deployed", [3]string{}, [3]string{"4.3", "3.12.1", ""})
			check("deployed", [3]string{"", "3.11.4", "1.4.550"}, [3]string{})

			// A request made after the upgrade survives a downgrade as the
			// older schema's single value.
			c, err := s.ContentByGUID(ctx, "deployed")
			if err != nil {
				t.Fatal(err)
			}
			c.PyVersionWanted = "3.12"
			if err := s.UpdateContent(ctx, c); err != nil {
				t.Fatal(err)
			}
			if err := store.MigrateDBTo(ctx, db, dialect, wantedVersionsMigration-1); err != nil {
				t.Fatal(err)
			}
			for guid, want := range map[string][3]string{
				"never-deployed": {"4.3", "3.12.1", ""},
				"deployed":       {"", "3.12", "1.4.550"},
			} {
				var got [3]string
				if err := db.QueryRowContext(ctx, `SELECT r_version, py_version, quarto_version FROM content WHERE guid = '`+guid+`'`).
					Scan(&got[0], &got[1], &got[2]); err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("%s after the downgrade: %q, want %q", guid, got, want)
				}
			}
		})
	}
}
