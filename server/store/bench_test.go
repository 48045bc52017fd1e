package store_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/store"
)

// BenchmarkStore measures the hot paths of the store against the peer, the
// same statement run as a prepared raw database/sql query on the same
// database ("raw/..."), for SQLite and (with DAIS_TEST_POSTGRES_URL) PostgreSQL.
func BenchmarkStore(b *testing.B) {
	ctx := context.Background()
	type env struct {
		name string
		s    store.Store
		raw  *sql.DB
		ph   func(int) string
	}
	var envs []env
	path := filepath.Join(b.TempDir(), "dais.db")
	s, err := store.OpenSQLite(ctx, path, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	raw, err := sql.Open("sqlite", store.SQLiteDSN(path))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { raw.Close() })
	envs = append(envs, env{"sqlite", s, raw, func(int) string { return "?" }})
	if os.Getenv("DAIS_TEST_POSTGRES_URL") != "" {
		dsn := freshSchema(b)
		ps, err := store.OpenPostgres(ctx, dsn, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { ps.Close() })
		praw, err := sql.Open("pgx", dsn)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { praw.Close() })
		envs = append(envs, env{"postgres", ps, praw, func(n int) string { return "$" + string(rune('0'+n)) }})
	}
	for _, e := range envs {
		u := &store.User{Username: "bench", Role: store.RolePublisher}
		must(b, e.s.CreateUser(ctx, u))
		must(b, e.s.CreateAPIKey(ctx, &store.APIKey{UserID: u.ID, Hash: "benchhash"}))
		c := &store.Content{Name: "bench", OwnerID: u.ID}
		must(b, e.s.CreateContent(ctx, c))
		task := &store.Task{ContentID: c.ID, Kind: store.TaskDeploy}
		must(b, e.s.CreateTask(ctx, task))
		t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		sc := &store.Schedule{ContentID: c.ID, IntervalSeconds: 60, Enabled: true, NextRunAt: t0}
		must(b, e.s.CreateSchedule(ctx, sc))

		b.Run(e.name+"/APIKeyByHash", func(b *testing.B) {
			for range 50 { // warm the pool and the page cache
				e.s.APIKeyByHash(ctx, "benchhash")
			}
			for b.Loop() {
				if _, err := e.s.APIKeyByHash(ctx, "benchhash"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(e.name+"/raw/APIKeyByHash", func(b *testing.B) {
			stmt, err := e.raw.PrepareContext(ctx, `SELECT id, user_id, name, hash, prefix, created_at, last_used_at FROM api_keys WHERE hash = `+e.ph(1))
			must(b, err)
			defer stmt.Close()
			for range 50 {
				stmt.QueryRowContext(ctx, "benchhash").Scan()
			}
			for b.Loop() {
				var id, uid int64
				var n, h, p string
				var ca, lu sql.NullInt64
				if err := stmt.QueryRowContext(ctx, "benchhash").Scan(&id, &uid, &n, &h, &p, &ca, &lu); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(e.name+"/ContentByGUID", func(b *testing.B) {
			for b.Loop() {
				if _, err := e.s.ContentByGUID(ctx, c.GUID); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(e.name+"/AppendTaskOutput", func(b *testing.B) {
			for b.Loop() {
				if err := e.s.AppendTaskOutput(ctx, task.ID, "a line of deploy output"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(e.name+"/raw/InsertLine", func(b *testing.B) {
			_, err := e.raw.ExecContext(ctx, `CREATE TABLE bench_lines (idx BIGINT PRIMARY KEY, line TEXT NOT NULL)`)
			must(b, err)
			defer e.raw.ExecContext(ctx, `DROP TABLE bench_lines`)
			stmt, err := e.raw.PrepareContext(ctx, `INSERT INTO bench_lines (idx, line) VALUES (`+e.ph(1)+`, `+e.ph(2)+`)`)
			must(b, err)
			defer stmt.Close()
			i := 0
			for b.Loop() {
				i++
				if _, err := stmt.ExecContext(ctx, i, "a line of deploy output"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(e.name+"/ClaimSchedule", func(b *testing.B) {
			cur, err := e.s.Schedule(ctx, sc.ID)
			must(b, err)
			expected := cur.NextRunAt
			for b.Loop() {
				next := expected.Add(time.Minute)
				ok, err := e.s.ClaimSchedule(ctx, sc.ID, expected, next, expected, "bench")
				if err != nil || !ok {
					b.Fatalf("claim: %v %v", ok, err)
				}
				expected = next
			}
		})
	}
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkOpenSQLite: opening a new (migrating) and an existing database,
// part of dais serve's cold start.
func BenchmarkOpenSQLite(b *testing.B) {
	ctx := context.Background()
	b.Run("new", func(b *testing.B) {
		for b.Loop() {
			s, err := store.OpenSQLite(ctx, filepath.Join(b.TempDir(), "dais.db"), nil)
			if err != nil {
				b.Fatal(err)
			}
			s.Close()
		}
	})
	b.Run("existing", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "dais.db")
		s, err := store.OpenSQLite(ctx, path, nil)
		must(b, err)
		s.Close()
		for b.Loop() {
			s, err := store.OpenSQLite(ctx, path, nil)
			if err != nil {
				b.Fatal(err)
			}
			s.Close()
		}
	})
	b.Run("raw", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "dais.db")
		s, err := store.OpenSQLite(ctx, path, nil)
		must(b, err)
		s.Close()
		for b.Loop() {
			db, err := sql.Open("sqlite", store.SQLiteDSN(path))
			must(b, err)
			must(b, db.PingContext(ctx))
			db.Close()
		}
	})
}
