package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dais-dev/dais/server/store"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"
)

// SQLite opens a fresh SQLite store in a temporary directory, closed at
// the end of the test.
func SQLite(t testing.TB) store.SQLiteStore {
	t.Helper()
	s, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "dais.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Postgres opens a store on a fresh schema of the test PostgreSQL (see
// PostgresURL), closed at the end of the test.
func Postgres(t testing.TB) store.Store {
	t.Helper()
	s, err := store.OpenPostgres(context.Background(), PostgresURL(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// PostgresURL creates an empty schema on the test PostgreSQL named by
// DAIS_TEST_POSTGRES_URL, dropped at the end of the test, and returns a URL
// whose search_path selects it: give it to several stores (or dais
// servers, as Postgres.URL) to share one database. Without
// DAIS_TEST_POSTGRES_URL the test is skipped, unless CI=true, where it fails.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("DAIS_TEST_POSTGRES_URL")
	ci := os.Getenv("CI") == "true"
	if base == "" {
		if ci {
			t.Fatal("DAIS_TEST_POSTGRES_URL is not set; CI must provide PostgreSQL (scripts/test-env.sh)")
		}
		t.Skip("DAIS_TEST_POSTGRES_URL not set: no PostgreSQL to test against")
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := "dais_test_" + hex.EncodeToString(b)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		admin.Close()
		if !ci && strings.Contains(err.Error(), "connect") {
			t.Skipf("PostgreSQL at DAIS_TEST_POSTGRES_URL unreachable: %v", err)
		}
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		defer admin.Close()
		if _, err := admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	if _, bench := t.(*testing.B); !bench {
		// Tests need no durability; commits that do not wait for the disk
		// keep suites fast on a busy machine. Benchmarks keep it.
		q.Set("synchronous_commit", "off")
	}
	u.RawQuery = q.Encode()
	return u.String()
}
