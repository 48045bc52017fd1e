package admin_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/admin"
	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/datalock"
	"github.com/dais-dev/dais/server/store"
	_ "github.com/jackc/pgx/v5/stdlib"
)

// seed creates a user and a content item in cfg's database and a few files
// in DataDir; it returns the content.
func seed(t *testing.T, cfg *config.Config) *store.Content {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	u := &store.User{Username: fmt.Sprintf("alice%d", rand.IntN(1e6)), Role: store.RolePublisher}
	if err := st.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	c := &store.Content{Name: "report", Title: "Quarterly", OwnerID: u.ID, AccessType: store.AccessAll}
	if err := st.CreateContent(ctx, c); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"apps/1/1/bundle.tar.gz":  "not really a tarball",
		"apps/1/1/out/index.html": "<h1>hello</h1>",
		"env/manifest.json":       `{"r":"4.3"}`,
	} {
		p := filepath.Join(cfg.Server.DataDir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("out/index.html", filepath.Join(cfg.Server.DataDir, "apps/1/1/current")); err != nil {
		t.Fatal(err)
	}
	return c
}

func sqliteConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg := config.Defaults()
	cfg.Server.DataDir = filepath.Join(t.TempDir(), "data")
	return cfg
}

func contentOf(t *testing.T, cfg *config.Config, guid string) *store.Content {
	t.Helper()
	st, err := store.Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := st.ContentByGUID(context.Background(), guid)
	if err != nil {
		t.Fatalf("content %s after restore: %v", guid, err)
	}
	return c
}

func checkFiles(t *testing.T, dataDir string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, "apps/1/1/current"))
	if err != nil || string(b) != "<h1>hello</h1>" {
		t.Errorf("restored symlinked file = %q, %v", b, err)
	}
	fi, err := os.Stat(filepath.Join(dataDir, "env/manifest.json"))
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("restored file mode = %v, %v; want 0640", fi, err)
	}
}

// Back up, purge, restore: same content with the same ids, same files.
func TestBackupPurgeRestoreSQLite(t *testing.T) {
	ctx := context.Background()
	cfg := sqliteConfig(t)
	c := seed(t, cfg)
	out := filepath.Join(t.TempDir(), "b.tar.gz")
	m, err := admin.Backup(ctx, admin.BackupOptions{Config: cfg, Out: out, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if m.SchemaVersion != store.SchemaVersion() || m.Provider != "sqlite" || len(m.Files) < 5 {
		t.Fatalf("manifest = %+v", m)
	}
	for _, f := range m.Files {
		if strings.Contains(f.Path, "/db/") || strings.HasSuffix(f.Path, datalock.FileName) {
			t.Errorf("backup holds %s: the SQLite directory and locks must be left out", f.Path)
		}
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("backup file mode = %v, %v; want 0600 (it holds secrets)", fi, err)
	}
	if _, err := admin.Backup(ctx, admin.BackupOptions{Config: cfg, Out: out}); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("backup over an existing file: %v, want a refusal", err)
	}

	if err := admin.Purge(ctx, admin.PurgeOptions{Config: cfg}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cfg.Server.DataDir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("DataDir after purge: %v, want gone", err)
	}

	asked := ""
	if _, err := admin.Restore(ctx, admin.RestoreOptions{Config: cfg, From: out, Confirm: func(w string) bool { asked = w; return true }}); err != nil {
		t.Fatal(err)
	}
	if asked != "" {
		t.Errorf("restore into an empty place asked %q", asked)
	}
	got := contentOf(t, cfg, c.GUID)
	if got.ID != c.ID || got.Title != c.Title || got.Name != c.Name {
		t.Errorf("restored content = %+v, want %+v", got, c)
	}
	checkFiles(t, cfg.Server.DataDir)

	// Restoring over existing data asks; "no" changes nothing.
	if _, err := admin.Restore(ctx, admin.RestoreOptions{Config: cfg, From: out, Confirm: func(w string) bool { asked = w; return false }}); !errors.Is(err, admin.ErrNotConfirmed) {
		t.Errorf("restore answered no: %v", err)
	}
	if !strings.Contains(asked, store.SQLitePath(cfg)) {
		t.Errorf("confirmation %q does not name the database", asked)
	}
}

// A running server (the data lock held) makes restore and purge refuse;
// backup works.
func TestRefusedWhileServing(t *testing.T) {
	ctx := context.Background()
	cfg := sqliteConfig(t)
	seed(t, cfg)
	release, err := datalock.Acquire(cfg.SQLiteDir())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	out := filepath.Join(t.TempDir(), "b.tar.gz")
	if _, err := admin.Backup(ctx, admin.BackupOptions{Config: cfg, Out: out}); err != nil {
		t.Fatalf("backup while serving: %v", err)
	}
	if _, err := admin.Restore(ctx, admin.RestoreOptions{Config: cfg, From: out}); !errors.Is(err, admin.ErrServerRunning) {
		t.Errorf("restore while serving: %v, want ErrServerRunning", err)
	}
	if err := admin.Purge(ctx, admin.PurgeOptions{Config: cfg}); !errors.Is(err, admin.ErrServerRunning) {
		t.Errorf("purge while serving: %v, want ErrServerRunning", err)
	}
	if _, err := os.Stat(store.SQLitePath(cfg)); err != nil {
		t.Errorf("database after refused purge: %v", err)
	}
}

// rewrite copies a backup archive, letting edit change members.
func rewrite(t *testing.T, src, dst string, edit func(name string, body []byte) []byte) {
	t.Helper()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var buf bytes.Buffer
	gw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gw)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		body = edit(hdr.Name, body)
		hdr.Size = int64(len(body))
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	tw.Close()
	gw.Close()
	if err := os.WriteFile(dst, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A damaged backup or one from a newer schema is refused before anything
// is touched, with a message that says why.
func TestRestoreRefusals(t *testing.T) {
	ctx := context.Background()
	cfg := sqliteConfig(t)
	c := seed(t, cfg)
	good := filepath.Join(t.TempDir(), "b.tar.gz")
	if _, err := admin.Backup(ctx, admin.BackupOptions{Config: cfg, Out: good, Version: "9.9.9"}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		edit func(string, []byte) []byte
		want string
	}{
		{"flipped byte", func(n string, b []byte) []byte {
			if strings.HasSuffix(n, "index.html") {
				b = append([]byte{}, b...)
				b[0] ^= 1
			}
			return b
		}, "checksum mismatch"},
		{"newer schema", func(n string, b []byte) []byte {
			if n == "manifest.json" {
				var m map[string]any
				json.Unmarshal(b, &m)
				m["schema_version"] = 999
				b, _ = json.Marshal(m)
			}
			return b
		}, "schema version 999, newer than this dais"},
		{"no manifest", func(n string, b []byte) []byte {
			if n == "manifest.json" {
				return []byte("{")
			}
			return b
		}, "manifest.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".tar.gz")
			rewrite(t, good, bad, tc.edit)
			// Change the live data, so a restore that touched it would show.
			marker := filepath.Join(cfg.Server.DataDir, "marker")
			os.WriteFile(marker, []byte("x"), 0o600)
			_, err := admin.Restore(ctx, admin.RestoreOptions{Config: cfg, From: bad})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("restore of a bad backup: %v, want %q", err, tc.want)
			}
			if _, err := os.Stat(marker); err != nil {
				t.Errorf("refused restore touched DataDir: %v", err)
			}
			contentOf(t, cfg, c.GUID)
		})
	}
	// The provider must match.
	pg := *cfg
	pg.Database.Provider = "postgres"
	pg.Postgres.URL = "postgres://nobody@127.0.0.1:1/none"
	if _, err := admin.Restore(ctx, admin.RestoreOptions{Config: &pg, From: good}); err == nil || !strings.Contains(err.Error(), "Database.Provider = sqlite") {
		t.Errorf("restore of a SQLite backup into postgres: %v", err)
	}
}

// A backup taken while writes go on restores to a database that passes
// SQLite's integrity check, with every row committed before the backup.
func TestBackupDuringWrites(t *testing.T) {
	ctx := context.Background()
	cfg := sqliteConfig(t)
	seed(t, cfg)
	st, err := store.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	u := &store.User{Username: "writer", Role: store.RolePublisher}
	if err := st.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	committed := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			c := &store.Content{Name: fmt.Sprintf("c%d", i), OwnerID: u.ID, AccessType: store.AccessACL}
			if err := st.CreateContent(ctx, c); err != nil {
				t.Error(err)
				return
			}
			p := filepath.Join(cfg.Server.DataDir, "apps", fmt.Sprint(c.ID), "bundle.tar.gz")
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, bytes.Repeat([]byte{byte(i)}, 4096), 0o600)
			mu.Lock()
			committed++
			mu.Unlock()
		}
	}()
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	before := committed
	mu.Unlock()
	out := filepath.Join(t.TempDir(), "b.tar.gz")
	_, err = admin.Backup(ctx, admin.BackupOptions{Config: cfg, Out: out})
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	other := sqliteConfig(t)
	if _, err := admin.Restore(ctx, admin.RestoreOptions{Config: other, From: out}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.CheckSQLiteFile(ctx, store.SQLitePath(other)); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", store.SQLitePath(other))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM content WHERE name LIKE 'c%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n < before || before == 0 {
		t.Errorf("restored %d written rows, %d were committed before the backup began", n, before)
	}
	t.Logf("%d rows committed before the backup, %d restored", before, n)
}

func requirePostgres(t *testing.T) string {
	t.Helper()
	u := os.Getenv("DAIS_TEST_POSTGRES_URL")
	if u == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("DAIS_TEST_POSTGRES_URL is not set (CI=true: PostgreSQL is required)")
		}
		t.Skip("DAIS_TEST_POSTGRES_URL is not set")
	}
	return u
}

// On PostgreSQL: pg_dump backup, purge drops dais's tables, restore brings
// the same rows back. Each run uses its own database.
func TestBackupPurgeRestorePostgres(t *testing.T) {
	base := requirePostgres(t)
	ctx := context.Background()
	admDB, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer admDB.Close()
	name := fmt.Sprintf("dais_admin_%d", rand.IntN(1e9))
	if _, err := admDB.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admDB.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)") })
	i := strings.LastIndex(base, "/")
	q := ""
	if j := strings.Index(base[i:], "?"); j >= 0 {
		q = base[i+j:]
	}
	cfg := sqliteConfig(t)
	cfg.Database.Provider = "postgres"
	cfg.Postgres.URL = base[:i+1] + name + q
	c := seed(t, cfg)

	out := filepath.Join(t.TempDir(), "b.tar.gz")
	m, err := admin.Backup(ctx, admin.BackupOptions{Config: cfg, Out: out, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Provider != "postgres" || m.SchemaVersion != store.SchemaVersion() {
		t.Fatalf("manifest = %+v", m)
	}
	// A server connected: restore and purge refuse.
	st, err := store.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Purge(ctx, admin.PurgeOptions{Config: cfg}); !errors.Is(err, admin.ErrServerRunning) {
		t.Errorf("purge with a connected server: %v, want ErrServerRunning", err)
	}
	st.Close()

	if err := admin.Purge(ctx, admin.PurgeOptions{Config: cfg}); err != nil {
		t.Fatal(err)
	}
	if v, err := store.ReadSchemaVersion(ctx, cfg); err != nil || v != 0 {
		t.Fatalf("schema version after purge = %d, %v; want 0 (tables dropped)", v, err)
	}
	if _, err := admin.Restore(ctx, admin.RestoreOptions{Config: cfg, From: out}); err != nil {
		t.Fatal(err)
	}
	got := contentOf(t, cfg, c.GUID)
	if got.ID != c.ID || got.Title != c.Title {
		t.Errorf("restored content = %+v, want %+v", got, c)
	}
	checkFiles(t, cfg.Server.DataDir)
	// New rows after the restore get new ids (sequences restored too).
	st, err = store.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n := &store.Content{Name: "after", OwnerID: c.OwnerID, AccessType: store.AccessACL}
	if err := st.CreateContent(ctx, n); err != nil {
		t.Fatalf("create content after restore: %v", err)
	}
	if n.ID <= c.ID {
		t.Errorf("new content id %d after restore, want > %d", n.ID, c.ID)
	}
}

// Without pg_dump the error names the package to install.
func TestPgDumpMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	cfg := sqliteConfig(t)
	cfg.Database.Provider = "postgres"
	cfg.Postgres.URL = "postgres://dais@127.0.0.1:1/dais"
	_, err := admin.Backup(context.Background(), admin.BackupOptions{Config: cfg, Out: filepath.Join(t.TempDir(), "b.tar.gz")})
	if err == nil || !strings.Contains(err.Error(), "apt-get install postgresql-client") {
		t.Errorf("backup without pg_dump: %v", err)
	}
}
