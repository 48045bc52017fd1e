package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/store/storetest"

	_ "github.com/jackc/pgx/v5/stdlib"
)

func freshSchema(t testing.TB) string { return storetest.PostgresURL(t) }

func openPostgres(t *testing.T, dsn string) store.Store {
	t.Helper()
	s, err := store.OpenPostgres(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestPostgresConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openPostgres(t, freshSchema(t)) })
}

// Two servers (two Store instances, two connection pools) on one
// PostgreSQL race for due schedules: exactly one wins each run.
func TestPostgresClaimRaceTwoServers(t *testing.T) {
	dsn := freshSchema(t)
	a, b := openPostgres(t, dsn), openPostgres(t, dsn)
	storetest.RunClaimRace(t, []store.Store{a, b})
}

// Several servers starting at once on an empty database: migrations run
// once (goose's advisory lock), every server opens.
func TestPostgresConcurrentMigrate(t *testing.T) {
	dsn := freshSchema(t)
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			s, err := store.OpenPostgres(context.Background(), dsn, nil)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	s := openPostgres(t, dsn)
	v, err := s.DatabaseVersion(context.Background())
	if err != nil || v != store.SchemaVersion() {
		t.Fatalf("version %d, %v; want %d", v, err, store.SchemaVersion())
	}
}

func TestPostgresRefusesNewerSchema(t *testing.T) {
	dsn := freshSchema(t)
	openPostgres(t, dsn).Close()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	future := store.SchemaVersion() + 3
	if _, err := db.Exec(`INSERT INTO goose_db_version (version_id, is_applied) VALUES ($1, true)`, future); err != nil {
		t.Fatal(err)
	}
	_, err = store.OpenPostgres(context.Background(), dsn, nil)
	if !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("err = %v, want ErrSchemaTooNew", err)
	}
	for _, want := range []string{fmt.Sprintf("schema version %d", future), fmt.Sprintf("(schema version %d)", store.SchemaVersion()), "dais restore --from"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
	if u, _ := url.Parse(dsn); u.User != nil {
		if pw, ok := u.User.Password(); ok && strings.Contains(err.Error(), pw) {
			t.Errorf("message %q shows the database password", err)
		}
	}
}

// Open with Database.Provider = postgres; Postgres.Password replaces the URL's.
func TestOpenPostgresFromConfig(t *testing.T) {
	dsn := freshSchema(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	u.User = url.UserPassword(u.User.Username(), "wrong-password")
	cfg := config.Defaults()
	cfg.Database.Provider = "postgres"
	cfg.Postgres.URL = u.String()

	if _, err := store.Open(context.Background(), cfg, nil); err == nil {
		t.Fatal("Open with a wrong password succeeded")
	} else if strings.Contains(err.Error(), "wrong-password") || !strings.Contains(err.Error(), "Postgres.Password") {
		t.Fatalf("error %q should name Postgres.Password and hide the password", err)
	}
	cfg.Postgres.Password = pw
	s, err := store.Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Dialect() != store.DialectPostgres {
		t.Fatalf("dialect %q", s.Dialect())
	}
}

// Two nodes (two Store instances) on one PostgreSQL: a cluster lock is
// held by one at a time.
func TestPostgresClusterLockTwoServers(t *testing.T) {
	dsn := freshSchema(t)
	storetest.RunClusterLock(t, openPostgres(t, dsn), openPostgres(t, dsn))
}
