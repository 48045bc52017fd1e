package admin

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/datalock"
	"github.com/dais-dev/dais/server/store"
)

// RestoreOptions configure Restore.
type RestoreOptions struct {
	Config *config.Config
	From   string // the backup archive
	Logger *slog.Logger
	// Confirm is asked, with a description of what will be replaced, when
	// there is data to replace. nil: go ahead.
	Confirm func(what string) bool
}

// ErrNotConfirmed: the admin answered no.
var ErrNotConfirmed = errors.New("not confirmed")

// ErrBackupTooNew: the backup's schema is newer than this dais's.
var ErrBackupTooNew = errors.New("backup is from a newer dais")

// Verify reads the whole archive at path and checks every member against
// the manifest: checksums, sizes, nothing missing, nothing extra. It
// returns the manifest.
func Verify(path string) (*Manifest, error) {
	m, err := readManifest(path)
	if err != nil {
		return nil, err
	}
	want := map[string]File{}
	for _, f := range m.Files {
		want[f.Path] = f
	}
	seen := map[string]bool{}
	err = walkArchive(path, func(hdr *tar.Header, r io.Reader) error {
		name := strings.TrimSuffix(hdr.Name, "/")
		if name == manifestName {
			return nil
		}
		f, ok := want[name]
		if !ok {
			return fmt.Errorf("%s is not in the backup's manifest", name)
		}
		seen[name] = true
		if f.Type != "file" {
			return nil
		}
		h := sha256.New()
		n, err := io.Copy(h, r)
		if err != nil {
			return err
		}
		if n != f.Size || hex.EncodeToString(h.Sum(nil)) != f.SHA256 {
			return fmt.Errorf("%s: checksum mismatch (the backup is damaged)", name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("verify backup %s: %w", path, err)
	}
	for _, f := range m.Files {
		if !seen[f.Path] {
			return nil, fmt.Errorf("verify backup %s: %s is in the manifest but not in the archive (the backup is damaged)", path, f.Path)
		}
	}
	return m, nil
}

func readManifest(path string) (*Manifest, error) {
	var m *Manifest
	err := walkArchive(path, func(hdr *tar.Header, r io.Reader) error {
		if hdr.Name != manifestName {
			return nil
		}
		m = new(Manifest)
		if err := json.NewDecoder(r).Decode(m); err != nil {
			return fmt.Errorf("read %s: %w", manifestName, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read backup %s: %w (is it a file written by dais backup?)", path, err)
	}
	if m == nil {
		return nil, fmt.Errorf("read backup %s: no %s in it (the backup is incomplete, or not written by dais backup)", path, manifestName)
	}
	if m.Format != FormatVersion {
		return nil, fmt.Errorf("backup %s has layout version %d; this dais reads version %d: use the dais version that wrote it (%s)",
			path, m.Format, FormatVersion, m.DaisVersion)
	}
	return m, nil
}

func walkArchive(path string, fn func(*tar.Header, io.Reader) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(hdr, tr); err != nil {
			return err
		}
	}
}

// Restore replaces cfg's database and DataDir content with the backup's.
// It refuses while a server uses the data, verifies the whole archive
// before touching anything, and refuses a backup from a newer schema or
// another Database.Provider.
func Restore(ctx context.Context, o RestoreOptions) (*Manifest, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := o.Config
	prov, err := provider(cfg)
	if err != nil {
		return nil, err
	}
	m, err := Verify(o.From)
	if err != nil {
		return nil, err
	}
	if m.SchemaVersion > store.SchemaVersion() {
		return nil, fmt.Errorf("%w: %s has schema version %d, newer than this dais (schema version %d); restore it with dais %s or newer",
			ErrBackupTooNew, o.From, m.SchemaVersion, store.SchemaVersion(), m.DaisVersion)
	}
	if m.Provider != prov {
		return nil, fmt.Errorf("backup %s is of a %s database but Database.Provider is %s: restore it into a server configured with Database.Provider = %s",
			o.From, m.Provider, prov, m.Provider)
	}
	release, err := lockData(ctx, cfg, prov)
	if err != nil {
		return nil, err
	}
	defer release()

	if o.Confirm != nil {
		if what := existing(ctx, cfg, prov); what != "" && !o.Confirm(what) {
			return nil, ErrNotConfirmed
		}
	}

	// The database first: a failure there leaves the files as they were.
	switch prov {
	case ProviderSQLite:
		if err := restoreSQLite(ctx, cfg, o.From); err != nil {
			return nil, err
		}
	case ProviderPostgres:
		if err := restorePostgres(ctx, cfg, o.From, log); err != nil {
			return nil, err
		}
	}
	if err := clearData(cfg); err != nil {
		return nil, err
	}
	if err := extractData(cfg, o.From); err != nil {
		return nil, err
	}
	log.Info("backup restored", logKeyPath, o.From, logKeyFiles, len(m.Files), "schema_version", m.SchemaVersion,
		"dais_version", m.DaisVersion)
	return m, nil
}

// existing describes the data a restore would replace, "" when none.
func existing(ctx context.Context, cfg *config.Config, prov string) string {
	var parts []string
	if prov == ProviderSQLite {
		if _, err := os.Stat(store.SQLitePath(cfg)); err == nil {
			parts = append(parts, "the database "+store.SQLitePath(cfg))
		}
	} else if v, err := store.ReadSchemaVersion(ctx, cfg); err == nil && v > 0 {
		parts = append(parts, "dais's tables in the PostgreSQL database")
	}
	if entries, err := os.ReadDir(cfg.Server.DataDir); err == nil {
		n := 0
		for _, e := range entries {
			if p := filepath.Join(cfg.Server.DataDir, e.Name()); p != filepath.Clean(cfg.SQLiteDir()) {
				n++
			}
		}
		if n > 0 {
			parts = append(parts, "the content of "+cfg.Server.DataDir)
		}
	}
	return strings.Join(parts, " and ")
}

func extractMember(archive, member, dest string, mode os.FileMode) error {
	found := false
	err := walkArchive(archive, func(hdr *tar.Header, r io.Reader) error {
		if hdr.Name != member {
			return nil
		}
		found = true
		f, err := os.OpenFile(dest, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, r); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
	if err == nil && !found {
		err = fmt.Errorf("no %s in the backup", member)
	}
	return err
}

func restoreSQLite(ctx context.Context, cfg *config.Config, archive string) error {
	dbPath := store.SQLitePath(cfg)
	if err := os.MkdirAll(filepath.Dir(dbPath), 0o700); err != nil {
		return fmt.Errorf("create %s (SQLite.Dir): %w", filepath.Dir(dbPath), err)
	}
	tmp := dbPath + ".restore"
	os.Remove(tmp)
	if err := extractMember(archive, sqliteMember, tmp, 0o600); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("restore the database: %w", err)
	}
	if _, err := store.CheckSQLiteFile(ctx, tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("restore the database: %w", err)
	}
	// The old database's WAL must not be replayed into the restored one.
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Remove(dbPath + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("restore the database: remove %s: %w", dbPath+suffix, err)
		}
	}
	if err := os.Rename(tmp, dbPath); err != nil {
		return fmt.Errorf("restore the database: %w", err)
	}
	return nil
}

func restorePostgres(ctx context.Context, cfg *config.Config, archive string, log *slog.Logger) error {
	bin, err := pgTool("psql")
	if err != nil {
		return err
	}
	tmpDir, err := os.MkdirTemp("", "dais-restore-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmpDir)
	dump := filepath.Join(tmpDir, "dais.sql")
	if err := extractMember(archive, pgMember, dump, 0o600); err != nil {
		return fmt.Errorf("restore the database: %w", err)
	}
	if err := store.DropAll(ctx, cfg, log); err != nil {
		return fmt.Errorf("restore the database: %w", err)
	}
	dsn, err := store.PostgresURL(cfg)
	if err != nil {
		return err
	}
	conn, env := pgEnv(dsn)
	cmd := exec.CommandContext(ctx, bin, "--quiet", "--no-psqlrc", "--single-transaction", "--set=ON_ERROR_STOP=1",
		"--file="+dump, "--dbname="+conn)
	cmd.Env = env
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("restore the database with psql: %w: %s (the database now has no dais tables; fix the cause and run dais restore again)",
			err, strings.TrimSpace(string(out)))
	}
	return nil
}

// clearData empties DataDir, keeping the SQLite directory (restored
// already) and the lock file.
func clearData(cfg *config.Config) error {
	root := cfg.Server.DataDir
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s (Server.DataDir): %w", root, err)
	}
	for _, e := range entries {
		p := filepath.Join(root, e.Name())
		if filepath.Clean(p) == filepath.Clean(cfg.SQLiteDir()) || e.Name() == datalock.FileName {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("clear %s: %w", p, err)
		}
	}
	return nil
}

// extractData writes the archive's data/ members into DataDir, through an
// os.Root so that no member can land outside it.
func extractData(cfg *config.Config, archive string) error {
	if err := os.MkdirAll(cfg.Server.DataDir, 0o755); err != nil {
		return fmt.Errorf("create %s (Server.DataDir): %w", cfg.Server.DataDir, err)
	}
	root, err := os.OpenRoot(cfg.Server.DataDir)
	if err != nil {
		return fmt.Errorf("open %s (Server.DataDir): %w", cfg.Server.DataDir, err)
	}
	defer root.Close()
	asRoot := os.Geteuid() == 0
	type dirMode struct {
		name string
		hdr  *tar.Header
	}
	var dirs []dirMode
	err = walkArchive(archive, func(hdr *tar.Header, r io.Reader) error {
		if !strings.HasPrefix(hdr.Name, dataPrefix) {
			return nil
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, dataPrefix))
		if name == "." || name == ".." || strings.HasPrefix(name, "../") || path.IsAbs(name) {
			return fmt.Errorf("unsafe member %q", hdr.Name)
		}
		if dir := path.Dir(name); dir != "." {
			if err := root.MkdirAll(dir, 0o755); err != nil {
				return err
			}
		}
		mode := os.FileMode(hdr.Mode).Perm()
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(name, 0o700); err != nil {
				return err
			}
			dirs = append(dirs, dirMode{name, hdr})
			return nil
		case tar.TypeSymlink:
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return err
			}
			if asRoot {
				return root.Lchown(name, hdr.Uid, hdr.Gid)
			}
			return nil
		case tar.TypeReg:
			f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, r); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			if err := root.Chmod(name, mode); err != nil {
				return err
			}
			if asRoot {
				if err := root.Lchown(name, hdr.Uid, hdr.Gid); err != nil {
					return err
				}
			}
			return root.Chtimes(name, hdr.ModTime, hdr.ModTime)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("restore files into %s: %w", cfg.Server.DataDir, err)
	}
	// Directory modes and owners last: a read-only directory would have
	// refused its files.
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		if err := root.Chmod(d.name, os.FileMode(d.hdr.Mode).Perm()); err != nil {
			return fmt.Errorf("restore files into %s: %w", cfg.Server.DataDir, err)
		}
		if asRoot {
			if err := root.Lchown(d.name, d.hdr.Uid, d.hdr.Gid); err != nil {
				return fmt.Errorf("restore files into %s: %w", cfg.Server.DataDir, err)
			}
		}
		_ = root.Chtimes(d.name, d.hdr.ModTime, d.hdr.ModTime)
	}
	return nil
}
