package config

import (
	"fmt"

	"gopkg.in/gcfg.v1"
)

// Loaded is a resolved configuration and what was noticed on the way.
type Loaded struct {
	Config *Config
	// Warnings are non-fatal findings (unknown keys, deprecated names).
	Warnings []string
	// Origins maps "section.key" (lower case) to where its value came from:
	// "default", "FILE:LINE", or "env CONNECT_X_Y".
	Origins map[string]string
	// Files are the files that were read, main file first.
	Files []string
}

// Load reads defaults, then path, then the migration file beside it, then the
// environment (KEY=VALUE strings, as os.Environ returns), then validates.
// path may be empty: defaults and environment only.
// TODO(config): migration file, environment overlay, provenance, validation.
func Load(path string, environ []string) (*Loaded, error) {
	cfg := Defaults()
	l := &Loaded{Config: cfg, Origins: map[string]string{}}
	if path != "" {
		if err := gcfg.FatalOnly(gcfg.ReadFileInto(cfg, path)); err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		l.Files = append(l.Files, path)
	}
	return l, nil
}
