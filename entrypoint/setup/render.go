package setup

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/dais-dev/dais/server/admin"
	"github.com/dais-dev/dais/server/config"
)

// loadConfig reads the base file plus the environment. A missing base file
// is an error unless it is the default path, where defaults + environment
// are used (and said so).
func loadConfig(log *slog.Logger, o *options, environ []string, version string) (*config.Loaded, error) {
	path := o.Config
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && path == config.DefaultPath {
		log.Warn("no base configuration file: using the defaults and CONNECT_* variables; mount one at "+config.DefaultPath+" or pass --config", keyPath, path)
		path = ""
	}
	if path != "" {
		// Upgrade step: settings a newer dais renamed are written under their
		// new names to <config>-migration.gcfg, which config.Load reads next.
		// dais serve only ever sees the rendered file, so it must happen here.
		// A read-only mounted config cannot take the file: that is logged.
		if m, err := admin.MigrateConfig(path, version); err != nil {
			log.Warn("configuration migration skipped: "+err.Error(), keyPath, path)
		} else {
			m.Log(log.With("component", "upgrade"), path)
		}
	}
	l, err := config.Load(path, environ)
	if err != nil {
		return nil, err
	}
	for _, w := range l.Warnings {
		log.Warn("configuration: " + w)
	}
	return l, nil
}

// renderedDir is the directory of dais-init's default rendered
// configuration. The image makes it owned by uid 999 and group 0, mode
// 0770, so that a server started with --user 999 (or an arbitrary uid in
// group 0, as OpenShift does) can render there; a server started as root
// takes it back (owner root, mode 0700), so that the content's user owns
// nothing there.
const renderedDir = "/run/dais"

// render writes the resolved configuration atomically with mode 0600.
func render(l *config.Loaded, path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create the directory of the rendered configuration: %w: pass --rendered (DAIS_INIT_RENDERED) with a writable path", err)
	}
	if dir == renderedDir && os.Geteuid() == 0 {
		if err := os.Lchown(dir, 0, 0); err != nil {
			return fmt.Errorf("make %s root's: %w", dir, err)
		}
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("make %s root's: %w", dir, err)
		}
	}
	if err := config.WriteFileAtomic(path, config.Render(l.Config), 0o600); err != nil {
		return fmt.Errorf("%w: pass --rendered (DAIS_INIT_RENDERED) with a writable path", err)
	}
	return nil
}
