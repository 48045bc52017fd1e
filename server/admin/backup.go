package admin

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/datalock"
	"github.com/dais-dev/dais/server/store"
)

// BackupOptions configure Backup.
type BackupOptions struct {
	Config  *config.Config
	Out     string // the archive to write; must not exist
	Version string // this dais's version, for the manifest
	Logger  *slog.Logger
	// Progress, when set, is told the total byte count once and then each
	// chunk copied (a progress bar on a terminal).
	Progress Progress
}

// Progress receives the progress of a long copy.
type Progress interface {
	Start(total int64)
	io.Writer // bytes done
	Finish()
}

// Backup writes a consistent backup of cfg's database and DataDir to
// o.Out while a server may be running. The database is snapshotted first,
// then the files are copied: every file the snapshot refers to is complete
// by then. A file that changes size or vanishes during the copy (an upload
// in progress, not yet in the snapshot) is left out with a warning.
func Backup(ctx context.Context, o BackupOptions) (*Manifest, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := o.Config
	prov, err := provider(cfg)
	if err != nil {
		return nil, err
	}
	if abs, err := filepath.Abs(o.Out); err == nil {
		o.Out = abs
	}
	if _, err := os.Lstat(o.Out); err == nil {
		return nil, fmt.Errorf("backup file %s exists: choose a new name for --out, or delete it", o.Out)
	}
	if err := os.MkdirAll(filepath.Dir(o.Out), 0o700); err != nil {
		return nil, fmt.Errorf("create the directory of %s: %w", o.Out, err)
	}
	// The staging file holds password hashes and secrets, as the backup does.
	tmpDir, err := os.MkdirTemp(filepath.Dir(o.Out), ".dais-backup-*")
	if err != nil {
		return nil, fmt.Errorf("create a temporary directory beside %s: %w", o.Out, err)
	}
	defer os.RemoveAll(tmpDir)

	m := &Manifest{Format: FormatVersion, DaisVersion: o.Version, Provider: prov,
		CreatedAt: time.Now().UTC().Truncate(time.Second), DataDir: cfg.Server.DataDir}

	// 1. The database.
	dbFile, dbMember := "", ""
	switch prov {
	case ProviderSQLite:
		src := store.SQLitePath(cfg)
		if _, err := os.Stat(src); err != nil {
			return nil, fmt.Errorf("no database at %s: %w (check --config, Server.DataDir and SQLite.Dir)", src, err)
		}
		dbFile, dbMember = filepath.Join(tmpDir, "dais.db"), sqliteMember
		if err := store.BackupSQLiteFile(ctx, src, dbFile); err != nil {
			return nil, err
		}
		if m.SchemaVersion, err = store.CheckSQLiteFile(ctx, dbFile); err != nil {
			return nil, fmt.Errorf("the database snapshot fails its check: %w", err)
		}
	case ProviderPostgres:
		dbFile, dbMember = filepath.Join(tmpDir, "dais.sql"), pgMember
		if m.SchemaVersion, err = pgDump(ctx, cfg, dbFile); err != nil {
			return nil, err
		}
	}

	// 2. The files of DataDir.
	part := o.Out + ".part"
	files, total, err := listData(cfg, o.Out, part, tmpDir)
	if err != nil {
		return nil, err
	}
	dbInfo, err := os.Stat(dbFile)
	if err != nil {
		return nil, err
	}
	total += dbInfo.Size()

	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", part, err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(part)
		}
	}()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	w := &archiveWriter{tw: tw, m: m, progress: o.Progress}
	if o.Progress != nil {
		o.Progress.Start(total)
	}
	if err := w.addFile(dbMember, dbFile, dbInfo); err != nil {
		return nil, fmt.Errorf("write the database to the backup: %w", err)
	}
	skipped := 0
	for _, d := range files {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		err := w.add(dataPrefix+d.rel, d.path)
		if errors.Is(err, errChanged) {
			skipped++
			log.Warn("file changed during the backup, left out (not part of the database snapshot)", logKeyPath, d.path)
			continue
		}
		if err != nil {
			return nil, err
		}
	}
	if o.Progress != nil {
		o.Progress.Finish()
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := tw.WriteHeader(&tar.Header{Name: manifestName, Mode: 0o600, Size: int64(len(mb)), ModTime: m.CreatedAt, Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(mb); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("write %s: %w", part, err)
	}
	if err := gz.Close(); err != nil {
		return nil, fmt.Errorf("write %s: %w", part, err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("write %s: %w", part, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write %s: %w", part, err)
	}
	if err := os.Rename(part, o.Out); err != nil {
		return nil, fmt.Errorf("write %s: %w", o.Out, err)
	}
	ok = true
	log.Info("backup written", logKeyPath, o.Out, logKeyFiles, len(m.Files), "schema_version", m.SchemaVersion,
		"provider", prov, "skipped", skipped)
	return m, nil
}

type dataFile struct{ rel, path string }

// listData lists DataDir's entries to back up, sorted, and their total size.
// The SQLite directory (the snapshot stands for it), lock files and
// sockets are left out, and so are the paths in skip (the backup being written).
func listData(cfg *config.Config, skip ...string) ([]dataFile, int64, error) {
	root := filepath.Clean(cfg.Server.DataDir)
	sqliteDir := filepath.Clean(cfg.SQLiteDir())
	var out []dataFile
	var total int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // vanished meanwhile, or no DataDir yet
			}
			return fmt.Errorf("read %s: %w (check Server.DataDir and its permissions)", p, err)
		}
		if p == root {
			return nil
		}
		for _, s := range skip {
			if abs, err := filepath.Abs(p); err == nil && abs == s || p == s {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		if d.IsDir() && p == sqliteDir {
			return filepath.SkipDir
		}
		name := d.Name()
		if name == datalock.FileName || strings.HasSuffix(name, ".migrate-lock") || strings.HasPrefix(name, ".dais-backup-") {
			return nil
		}
		t := d.Type()
		if !(t.IsRegular() || t.IsDir() || t&fs.ModeSymlink != 0) {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if t.IsRegular() {
			if fi, err := d.Info(); err == nil {
				total += fi.Size()
			}
		}
		out = append(out, dataFile{rel: filepath.ToSlash(rel), path: p})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].rel < out[j].rel })
	return out, total, err
}

var errChanged = errors.New("file changed during the backup")

type archiveWriter struct {
	tw       *tar.Writer
	m        *Manifest
	progress Progress
}

func (w *archiveWriter) add(name, path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return errChanged
	}
	if err != nil {
		return err
	}
	switch {
	case fi.IsDir():
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name = name + "/"
		if err := w.tw.WriteHeader(hdr); err != nil {
			return err
		}
		w.m.Files = append(w.m.Files, File{Path: name, Type: "dir"})
		return nil
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(path)
		if err != nil {
			return errChanged
		}
		hdr, err := tar.FileInfoHeader(fi, target)
		if err != nil {
			return err
		}
		hdr.Name = name
		if err := w.tw.WriteHeader(hdr); err != nil {
			return err
		}
		w.m.Files = append(w.m.Files, File{Path: name, Type: "symlink", Target: target})
		return nil
	}
	return w.addFile(name, path, fi)
}

// addFile copies a regular file, hashing what it writes. A file whose size
// differs from fi's when read is reported as errChanged, before anything
// is written.
func (w *archiveWriter) addFile(name, path string, fi os.FileInfo) error {
	// Content may swap the file for a FIFO or a link meanwhile: such an
	// open must neither block nor follow (fstat below sees what it got).
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ELOOP) {
		return errChanged
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	now, err := f.Stat()
	if err != nil {
		return err
	}
	if now.Size() != fi.Size() || !now.Mode().IsRegular() {
		return errChanged
	}
	hdr, err := tar.FileInfoHeader(now, "")
	if err != nil {
		return err
	}
	hdr.Name = name
	if err := w.tw.WriteHeader(hdr); err != nil {
		return err
	}
	h := sha256.New()
	var dst io.Writer = io.MultiWriter(w.tw, h)
	if w.progress != nil {
		dst = io.MultiWriter(dst, w.progress)
	}
	n, err := io.Copy(dst, io.LimitReader(f, hdr.Size))
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if n < hdr.Size {
		// Truncated while we read it: the header promised more. The archive
		// cannot be fixed up after the fact; fail rather than pad.
		return fmt.Errorf("%s shrank while being backed up (%d of %d bytes): run dais backup again", path, n, hdr.Size)
	}
	w.m.Files = append(w.m.Files, File{Path: name, Type: "file", Size: n, SHA256: hex.EncodeToString(h.Sum(nil))})
	return nil
}

// pgDump dumps dais's tables (those in the connection's current schema) as
// plain SQL into dest, and returns the schema version.
func pgDump(ctx context.Context, cfg *config.Config, dest string) (int64, error) {
	bin, err := pgTool("pg_dump")
	if err != nil {
		return 0, err
	}
	version, err := store.ReadSchemaVersion(ctx, cfg)
	if err != nil {
		return 0, err
	}
	if version == 0 {
		return 0, fmt.Errorf("the PostgreSQL database has no dais tables: nothing to back up (check Postgres.URL)")
	}
	dsn, err := store.PostgresURL(cfg)
	if err != nil {
		return 0, err
	}
	tables, err := pgTables(ctx, dsn)
	if err != nil {
		return 0, err
	}
	conn, env := pgEnv(dsn)
	args := []string{"--no-owner", "--no-privileges", "--format=plain", "--file=" + dest}
	for _, t := range tables {
		args = append(args, "--table="+t)
	}
	args = append(args, "--dbname="+conn)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("pg_dump: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return version, nil
}

// pgTables names the tables of the connection's current schema, quoted
// for pg_dump --table.
func pgTables(ctx context.Context, dsn string) ([]string, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT quote_ident(table_schema) || '.' || quote_ident(table_name)
		FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("list dais tables: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}
