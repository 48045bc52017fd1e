package admin_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dais-dev/dais/server/admin"
	"github.com/dais-dev/dais/server/config"
)

// A renamed setting in the main file is written under its new name to the
// migration file (same mode), which config.Load then applies; the log says
// what to move where, at every start until it is done.
func TestMigrateConfig(t *testing.T) {
	for _, tc := range []struct {
		name      string
		main, mig string
		written   int
		wantDir   string // SQLite.Dir after Load
		wantLog   []string
	}{
		{
			name:    "old name written",
			main:    "[Server]\nDataDir = /srv/dais\n[Database]\nProvider = sqlite\nDir = \"/srv/old db\"\n",
			written: 1, wantDir: "/srv/old db",
			wantLog: []string{"Database.Dir is now SQLite.Dir", "sets SQLite.Dir: move them into"},
		},
		{
			name:    "new name already in main file",
			main:    "[Database]\nDir = /old\n[SQLite]\nDir = /new\n",
			written: 0, wantDir: "/new",
			wantLog: []string{"Database.Dir is now SQLite.Dir"},
		},
		{
			name:    "already migrated",
			main:    "[Database]\nDir = /old\n",
			mig:     "[SQLite]\nDir = /moved\n",
			written: 0, wantDir: "/moved",
			wantLog: []string{"Database.Dir is now SQLite.Dir", "sets SQLite.Dir"},
		},
		{
			name:    "nothing to do",
			main:    "[Server]\nDataDir = /srv/dais\n",
			written: 0, wantDir: "/srv/dais/db",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "rstudio-connect.gcfg")
			if err := os.WriteFile(path, []byte(tc.main), 0o640); err != nil {
				t.Fatal(err)
			}
			if tc.mig != "" {
				if err := os.WriteFile(config.MigrationPath(path), []byte(tc.mig), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			m, err := admin.MigrateConfig(path, "test")
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Written) != tc.written {
				t.Errorf("written = %v, want %d", m.Written, tc.written)
			}
			if tc.written > 0 {
				fi, err := os.Stat(config.MigrationPath(path))
				if err != nil || fi.Mode().Perm() != 0o640 {
					t.Errorf("migration file mode = %v, %v; want the main file's 0640", fi, err)
				}
			}
			l, err := config.Load(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := l.Config.SQLiteDir(); got != tc.wantDir {
				t.Errorf("SQLite dir after Load = %q, want %q", got, tc.wantDir)
			}
			var logs bytes.Buffer
			m.Log(slog.New(slog.NewTextHandler(&logs, nil)), path)
			for _, w := range tc.wantLog {
				if !strings.Contains(logs.String(), w) {
					t.Errorf("log lacks %q:\n%s", w, logs.String())
				}
			}
			if len(tc.wantLog) == 0 && logs.Len() > 0 {
				t.Errorf("nothing to migrate but logged:\n%s", logs.String())
			}
			// A second start writes nothing more.
			again, err := admin.MigrateConfig(path, "test")
			if err != nil || len(again.Written) != 0 {
				t.Errorf("second run wrote %v, %v", again.Written, err)
			}
		})
	}
}

// A file gcfg cannot read is an error naming the file, and nothing is written.
func TestMigrateConfigBadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.gcfg")
	os.WriteFile(path, []byte("[Database\nDir = /x\n"), 0o600)
	if _, err := admin.MigrateConfig(path, "test"); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("MigrateConfig of a broken file: %v", err)
	}
	if _, err := os.Stat(config.MigrationPath(path)); err == nil {
		t.Error("migration file written for a broken main file")
	}
}
