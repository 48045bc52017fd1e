package admin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/store"
)

// PurgeOptions configure Purge.
type PurgeOptions struct {
	Config     *config.Config
	ConfigPath string // removed with IncludeConfig, with its migration file
	// IncludeConfig removes the configuration file too.
	IncludeConfig bool
	Logger        *slog.Logger
	// Confirm is asked with the list of what will be removed; nil: go ahead.
	Confirm func(what string) bool
}

// PurgePlan lists what Purge removes, for the confirmation question.
func PurgePlan(o PurgeOptions) []string {
	cfg := o.Config
	var out []string
	out = append(out, "the data directory "+cfg.Server.DataDir+" (bundles, render output, logs)")
	if prov, _ := provider(cfg); prov == ProviderPostgres {
		out = append(out, "dais's tables in the PostgreSQL database "+redacted(cfg))
	} else if !within(cfg.SQLiteDir(), cfg.Server.DataDir) {
		out = append(out, "the SQLite directory "+cfg.SQLiteDir()+" (the database and its automatic backups)")
	} else {
		out = append(out, "the SQLite database in "+cfg.SQLiteDir()+" with its automatic backups")
	}
	if o.IncludeConfig && o.ConfigPath != "" {
		out = append(out, "the configuration "+o.ConfigPath+" and "+config.MigrationPath(o.ConfigPath))
	}
	return out
}

func redacted(cfg *config.Config) string {
	u, err := store.PostgresURL(cfg)
	if err != nil {
		return "(Postgres.URL)"
	}
	conn, _ := pgEnv(u)
	return conn
}

// Purge removes everything dais stored: DataDir, the SQLite directory (or,
// for PostgreSQL, dais's tables) and, with IncludeConfig, the
// configuration. It refuses while a server uses the data. A directory that
// is a mount point (the container's /data volume) is emptied, not removed.
func Purge(ctx context.Context, o PurgeOptions) error {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := o.Config
	prov, err := provider(cfg)
	if err != nil {
		return err
	}
	for _, dir := range []string{cfg.Server.DataDir, cfg.SQLiteDir()} {
		if c := filepath.Clean(dir); !filepath.IsAbs(c) || c == "/" || strings.Count(c, "/") < 1 {
			return fmt.Errorf("refusing to purge %q: not an absolute directory below / (check Server.DataDir and SQLite.Dir)", dir)
		}
	}
	release, err := lockData(ctx, cfg, prov)
	if err != nil {
		return err
	}
	defer release()
	if o.Confirm != nil && !o.Confirm(strings.Join(PurgePlan(o), "\n")) {
		return ErrNotConfirmed
	}
	if prov == ProviderPostgres {
		if err := store.DropAll(ctx, cfg, log); err != nil {
			return fmt.Errorf("drop dais's tables: %w", err)
		}
	}
	// The SQLite directory last: its lock keeps a server from starting
	// while the rest goes.
	sqliteDir := filepath.Clean(cfg.SQLiteDir())
	keep := ""
	if prov == ProviderSQLite {
		keep = sqliteDir
	}
	if err := removeTree(cfg.Server.DataDir, keep); err != nil {
		return err
	}
	// With PostgreSQL an SQLite directory outside DataDir is not dais's
	// data (and one inside went with DataDir's content).
	if prov == ProviderSQLite {
		if err := removeTree(sqliteDir, ""); err != nil {
			return err
		}
	}
	removeIfEmpty(cfg.Server.DataDir)
	if o.IncludeConfig && o.ConfigPath != "" {
		for _, p := range []string{o.ConfigPath, config.MigrationPath(o.ConfigPath)} {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove %s: %w", p, err)
			}
		}
	}
	log.Info("purged", "data_dir", cfg.Server.DataDir, "sqlite_dir", sqliteDir, "provider", prov, "config_removed", o.IncludeConfig)
	return nil
}

// removeTree removes dir's content (keeping the subdirectory keep, when
// set) and then dir itself unless it is a mount point or keep is inside.
func removeTree(dir, keep string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("purge %s: %w", dir, err)
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if keep != "" && filepath.Clean(p) == keep {
			continue
		}
		if keep != "" && e.IsDir() && within(keep, p) {
			if err := removeTree(p, keep); err != nil {
				return err
			}
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("purge %s: %w", p, err)
		}
	}
	if keep == "" {
		removeIfEmpty(dir)
	}
	return nil
}

// removeIfEmpty removes an empty directory; a mount point (EBUSY) or a
// directory that still holds something stays.
func removeIfEmpty(dir string) {
	if err := os.Remove(dir); err != nil && !errors.Is(err, syscall.EBUSY) {
		_ = err // not empty, or not ours to remove: left in place
	}
}
