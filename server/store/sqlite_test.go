package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/store/storetest"

	_ "modernc.org/sqlite"
)

func TestSQLiteConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return storetest.SQLite(t) })
}

// Two Store instances on one SQLite file (two processes would be the same):
// one winner per scheduled run.
func TestSQLiteClaimRaceTwoInstances(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dais.db")
	var stores []store.Store
	for range 2 {
		s, err := store.OpenSQLite(context.Background(), path, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores = append(stores, s)
	}
	storetest.RunClaimRace(t, stores)
}

func TestOpenFromConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Defaults()
	cfg.Server.DataDir = dir
	s, err := store.Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Dialect() != store.DialectSQLite {
		t.Fatalf("dialect %q", s.Dialect())
	}
	fi, err := os.Stat(filepath.Join(dir, "db", "dais.db"))
	if err != nil {
		t.Fatalf("database not in <DataDir>/db: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("new database has mode %v, want 0600", fi.Mode().Perm())
	}
	var journal string
	sq := s.(store.SQLiteStore)
	db, err := sql.Open("sqlite", sq.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&journal); err != nil {
		t.Fatal(err)
	}
	if journal != "wal" {
		t.Fatalf("journal_mode = %q, want wal", journal)
	}

	cfg.Database.Provider = "mysql"
	if _, err := store.Open(context.Background(), cfg, nil); err == nil || !strings.Contains(err.Error(), "Database.Provider") {
		t.Fatalf("unknown provider: err = %v, want one naming Database.Provider", err)
	}
}

// stampVersion records version as applied in the goose table of the SQLite file.
func stampVersion(t *testing.T, path string, version int64) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`INSERT INTO goose_db_version (version_id, is_applied) VALUES (?, 1)`, version); err != nil {
		t.Fatal(err)
	}
}

func TestSQLiteRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dais.db")
	s, err := store.OpenSQLite(context.Background(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	future := store.SchemaVersion() + 7
	stampVersion(t, path, future)
	// The newer dais backed up the database at our version before upgrading.
	bdir := store.BackupsDir(path)
	if err := os.MkdirAll(bdir, 0o700); err != nil {
		t.Fatal(err)
	}
	older := filepath.Join(bdir, fmt.Sprintf("dais-%d-20260101T000000Z.db", store.SchemaVersion()))
	newest := filepath.Join(bdir, fmt.Sprintf("dais-%d-20260102T000000Z.db", store.SchemaVersion()))
	other := filepath.Join(bdir, fmt.Sprintf("dais-%d-20260103T000000Z.db", store.SchemaVersion()-1))
	for i, p := range []string{older, newest, other} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		mt := time.Now().Add(time.Duration(i-3) * time.Hour)
		os.Chtimes(p, mt, mt)
	}

	_, err = store.OpenSQLite(context.Background(), path, nil)
	if !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("err = %v, want ErrSchemaTooNew", err)
	}
	msg := err.Error()
	for _, want := range []string{
		fmt.Sprintf("schema version %d", future),
		fmt.Sprintf("(schema version %d)", store.SchemaVersion()),
		"dais restore --from",
		path,
		"automatic backup taken before the upgrade, " + newest,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, older) || strings.Contains(msg, other) {
		t.Errorf("message %q names a backup that is not the newest at version %d", msg, store.SchemaVersion())
	}
	t.Log(msg)
	// Refusing did not change the database.
	v, err := store.CheckSQLiteFile(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if v != future {
		t.Fatalf("version after refusal = %d, want %d", v, future)
	}
}
