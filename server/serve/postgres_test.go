package serve

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// postgresSchemaURL makes an empty schema on DAIS_TEST_POSTGRES_URL,
// dropped after the test, and returns a URL selecting it. Without the
// variable the test is skipped, unless CI=true, where it fails.
func postgresSchemaURL(t *testing.T) string {
	t.Helper()
	base := os.Getenv("DAIS_TEST_POSTGRES_URL")
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("DAIS_TEST_POSTGRES_URL is not set; CI must provide PostgreSQL (see scripts/test-env.sh)")
		}
		t.Skip("DAIS_TEST_POSTGRES_URL not set: no PostgreSQL to test against")
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "dais_serve_" + hex.EncodeToString(b)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		t.Fatalf("create schema on DAIS_TEST_POSTGRES_URL: %v", err)
	}
	t.Cleanup(func() {
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
	u.RawQuery = q.Encode()
	return u.String()
}

// TestServeOnPostgres: accounts made with the CLI on PostgreSQL work
// against the server; two servers share one database (no SQLite lock).
func TestServeOnPostgres(t *testing.T) {
	dsn := postgresSchemaURL(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.gcfg")
	text := fmt.Sprintf("[Server]\nDataDir = %s\n[HTTP]\nListen = 127.0.0.1:0\n[Database]\nProvider = postgres\n[Postgres]\nURL = %q\n", filepath.Join(dir, "data"), dsn)
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runDais(t, "pg-password\n", "users", "add", "--config", cfgPath, "--role", "publisher", "pat"); code != 0 {
		t.Fatalf("users add on PostgreSQL: %d %s%s", code, out, errOut)
	}
	code, out, errOut := runDais(t, "", "keys", "create", "--config", cfgPath, "--user", "pat")
	if code != 0 {
		t.Fatalf("keys create on PostgreSQL: %d %s%s", code, out, errOut)
	}
	key := strings.TrimSpace(out)
	a, b := startDais(t, cfgPath), startDais(t, cfgPath)
	for _, p := range []*daisProc{a, b} {
		req, _ := http.NewRequest("GET", p.url("/__api__/v1/user"), nil)
		req.Header.Set("Authorization", "Key "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET /__api__/v1/user on %s: %d", p.addr, resp.StatusCode)
		}
	}
	for _, p := range []*daisProc{a, b} {
		p.signal(syscall.SIGTERM)
		if code := p.waitExit(10 * time.Second); code != 0 {
			t.Fatalf("exit %d after TERM", code)
		}
	}
}
