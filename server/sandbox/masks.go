//go:build !dais_sandbox_exec

package sandbox

import (
	"path/filepath"

	"github.com/dais-dev/dais/server/config"
)

// This file, the CLI, the self-test and the probe are left out of the
// dais-sandbox-exec helper (built with -tags dais_sandbox_exec): they bring
// in the configuration package and its dependencies (net, regexp, gob, ...),
// whose initialisation every sandbox start would pay.

// DefaultMasks are the paths hidden from every content process: the data
// directory, the SQLite directory, the configuration directory, the
// configuration dais-init renders (/run/dais), Docker and compose secrets
// (/run/secrets), /home and /var/tmp. extra (e.g. the directory of the file
// given to `dais serve --config`) is added. Absent paths are skipped by Spec.
func DefaultMasks(cfg *config.Config, extra ...string) []string {
	m := []string{cfg.Server.DataDir}
	if cfg.Database.Provider != "postgres" {
		m = append(m, cfg.SQLiteDir())
	}
	m = append(m, filepath.Dir(config.DefaultPath), "/run/dais", "/run/secrets", "/home", "/var/tmp")
	return append(m, extra...)
}
