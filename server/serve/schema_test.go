package serve

import (
	"database/sql"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/store"

	_ "modernc.org/sqlite"
)

// TestFutureSchemaRefused: a database stamped by a newer dais stops
// dais serve at start with exit 78 and a message saying what to do.
func TestFutureSchemaRefused(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.gcfg")
	writeConfig(t, cfgPath, filepath.Join(dir, "data"))
	if code, out, errOut := runDais(t, "password\n", "users", "add", "--config", cfgPath, "alice"); code != 0 {
		t.Fatalf("users add: %d %s%s", code, out, errOut)
	}
	future := store.SchemaVersion() + 5
	db, err := sql.Open("sqlite", filepath.Join(dir, "data", "db", store.SQLiteFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO goose_db_version (version_id, is_applied) VALUES (?, 1)`, future); err != nil {
		t.Fatal(err)
	}
	db.Close()

	p := startDaisNoWait(t, cfgPath)
	if code := p.waitExit(15 * time.Second); code != 78 {
		t.Fatalf("exit %d, want 78; stderr:\n%s", code, p.stderr)
	}
	msg := p.stderr.String()
	for _, want := range []string{strconv.FormatInt(future, 10), strconv.FormatInt(store.SchemaVersion(), 10), "backup"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
}
