package store_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/store"
)

// An existing database at an older schema is backed up beside itself, then
// migrated; the backup is the old database, intact; five backups are kept.
func TestSQLiteUpgradeBackup(t *testing.T) {
	if store.SchemaVersion() < 2 {
		t.Skip("needs two schema versions")
	}
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "dais.db")
	old := store.PreviousSchemaVersions()[0]

	// Older backups already there: six, oldest first.
	bdir := store.BackupsDir(path)
	if err := os.MkdirAll(bdir, 0o700); err != nil {
		t.Fatal(err)
	}
	var stale []string
	for i := range 6 {
		p := filepath.Join(bdir, fmt.Sprintf("dais-%d-2020010%dT000000Z.db", old, i))
		if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
		mt := time.Now().Add(-time.Duration(10-i) * time.Hour)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
		stale = append(stale, p)
	}

	if err := store.MigrateSQLiteTo(ctx, path, old); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	s, err := store.OpenSQLite(ctx, path, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v, err := s.DatabaseVersion(ctx)
	if err != nil || v != store.SchemaVersion() {
		t.Fatalf("version after open = %d, %v; want %d", v, err, store.SchemaVersion())
	}

	backups, _ := filepath.Glob(filepath.Join(bdir, fmt.Sprintf("dais-%d-*.db", old)))
	if len(backups) != store.KeepUpgradeBackups {
		t.Fatalf("%d backups kept (%v), want %d", len(backups), backups, store.KeepUpgradeBackups)
	}
	var fresh string
	for _, b := range backups {
		if !strings.Contains(b, "-2020") {
			fresh = b
		}
	}
	if fresh == "" {
		t.Fatalf("no new backup among %v", backups)
	}
	for _, gone := range stale[:2] {
		if _, err := os.Stat(gone); err == nil {
			t.Errorf("oldest backup %s not pruned", gone)
		}
	}
	bv, err := store.CheckSQLiteFile(ctx, fresh)
	if err != nil {
		t.Fatal(err)
	}
	if bv != old {
		t.Fatalf("backup at version %d, want %d", bv, old)
	}
	if !strings.Contains(logs.String(), "database backed up before upgrade") || !strings.Contains(logs.String(), fresh) {
		t.Fatalf("upgrade backup not logged with its path:\n%s", logs.String())
	}

	// Opening again: no migration, no new backup.
	s.Close()
	s2, err := store.OpenSQLite(ctx, path, logger)
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
	again, _ := filepath.Glob(filepath.Join(bdir, "dais-*.db"))
	if len(again) != store.KeepUpgradeBackups {
		t.Fatalf("reopening made a backup: %v", again)
	}

	// A new database is not backed up.
	empty := filepath.Join(t.TempDir(), "dais.db")
	s3, err := store.OpenSQLite(ctx, empty, nil)
	if err != nil {
		t.Fatal(err)
	}
	s3.Close()
	if _, err := os.Stat(store.BackupsDir(empty)); err == nil {
		t.Fatal("a new database got a backup directory")
	}
}

// Backup is a consistent snapshot taken while writes go on; it passes the
// integrity check and holds the data committed before it began.
func TestSQLiteOnlineBackup(t *testing.T) {
	ctx := context.Background()
	s, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "dais.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u := &store.User{Username: "before", Role: store.RoleAdministrator}
	if err := s.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	task := &store.Task{Kind: store.TaskDeploy}
	if err := s.CreateTask(ctx, task); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	done := make(chan error)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if err := s.AppendTaskOutput(ctx, task.ID, fmt.Sprint("line ", i)); err != nil {
				done <- err
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	dest := filepath.Join(t.TempDir(), "snap.db")
	berr := s.Backup(ctx, dest)
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if berr != nil {
		t.Fatal(berr)
	}
	if err := s.Backup(ctx, dest); err == nil {
		t.Fatal("Backup overwrote an existing file")
	}
	if err := s.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
	v, err := store.CheckSQLiteFile(ctx, dest)
	if err != nil {
		t.Fatal(err)
	}
	if v != store.SchemaVersion() {
		t.Fatalf("snapshot version %d", v)
	}
	snap, err := store.OpenSQLite(ctx, dest, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	if _, err := snap.UserByUsername(ctx, "before"); err != nil {
		t.Fatalf("snapshot lacks data written before it: %v", err)
	}
	lines, err := snap.TaskOutput(ctx, task.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range lines {
		if l.Index != i {
			t.Fatalf("snapshot has a gap in task output at %d", i)
		}
	}

	// The file-level helpers, as dais backup uses them with no open store.
	dest2 := filepath.Join(t.TempDir(), "snap2.db")
	if err := store.BackupSQLiteFile(ctx, s.Path(), dest2); err != nil {
		t.Fatal(err)
	}
	if _, err := store.CheckSQLiteFile(ctx, dest2); err != nil {
		t.Fatal(err)
	}
	// A damaged file fails the check.
	bad := filepath.Join(t.TempDir(), "bad.db")
	raw, _ := os.ReadFile(dest2)
	for i := 4096; i < len(raw) && i < 4096*4; i++ {
		raw[i] ^= 0x5a
	}
	os.WriteFile(bad, raw, 0o600)
	if _, err := store.CheckSQLiteFile(ctx, bad); err == nil {
		t.Fatal("a damaged database passed the check")
	}
}

func TestSchemaVersionSameForBothDialects(t *testing.T) {
	if store.SchemaVersion() < 1 {
		t.Fatal("no migrations embedded")
	}
	if got := store.PostgresSchemaVersion(); got != store.SchemaVersion() {
		t.Fatalf("postgres migrations end at %d, sqlite at %d: add the missing migration", got, store.SchemaVersion())
	}
}
