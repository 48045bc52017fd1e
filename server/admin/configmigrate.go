package admin

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/dais-dev/dais/server/config"
	"gopkg.in/gcfg.v1"
)

// Rename is a setting a dais version renamed: a value found under Old in
// the main file is written under New to the migration file.
type Rename struct {
	Old, New string // "Section.Key"
	Why      string // one line for the migration file's comment
}

// Renames is the table of renamed settings, oldest first.
var Renames = []Rename{
	// Connect 1.5 moved the SQLite directory from [Database] to [SQLite]
	// when PostgreSQL support came; old files still carry Database.Dir.
	{Old: "Database.Dir", New: "SQLite.Dir", Why: "the SQLite directory moved from [Database] Dir to [SQLite] Dir"},
}

// ConfigMigration is what MigrateConfig did and found.
type ConfigMigration struct {
	MigrationFile string
	// Written are the renames written to the migration file by this call.
	Written []Rename
	// Pending are the renamed settings still in the main file (written
	// now or before): the admin should delete them there.
	Pending []Rename
	// Keys are the settings the migration file holds: the admin should
	// move them into the main file and delete the migration file.
	Keys []string
}

// MigrateConfig writes, for every setting of the main file at path that a
// newer dais renamed, its new name with the same value to
// config.MigrationPath(path), with the main file's permissions (and owner,
// when run as root). A setting the main or the migration file already sets
// under its new name is left alone. config.Load reads the migration file
// after the main file. version is written in the file's comment.
func MigrateConfig(path, version string) (*ConfigMigration, error) {
	res := &ConfigMigration{MigrationFile: config.MigrationPath(path)}
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	var keys []string
	for _, r := range Renames {
		keys = append(keys, r.Old, r.New)
	}
	mainVals, err := readKeys(path, keys)
	if err != nil {
		return nil, err
	}
	migVals := map[string]string{}
	if _, err := os.Stat(res.MigrationFile); err == nil {
		if migVals, err = readKeys(res.MigrationFile, keys); err != nil {
			return nil, err
		}
	}
	var add strings.Builder
	for _, r := range Renames {
		old, ok := mainVals[strings.ToLower(r.Old)]
		if !ok {
			continue
		}
		res.Pending = append(res.Pending, r)
		_, inMain := mainVals[strings.ToLower(r.New)]
		_, inMig := migVals[strings.ToLower(r.New)]
		if inMain || inMig {
			continue
		}
		sec, name, _ := strings.Cut(r.New, ".")
		fmt.Fprintf(&add, "\n; %s: %s was %s in %s\n[%s]\n%s = %s\n", r.New, r.Why, r.Old, path, sec, name, quote(old))
		res.Written = append(res.Written, r)
	}
	if len(res.Written) > 0 {
		prev, err := os.ReadFile(res.MigrationFile)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("read %s: %w", res.MigrationFile, err)
		}
		var b strings.Builder
		if len(prev) == 0 {
			fmt.Fprintf(&b, "; Settings renamed by a newer dais, written by dais %s on %s.\n"+
				"; dais reads this file after %s. Move these settings into that file,\n"+
				"; delete their old names there, then delete this file.\n",
				version, time.Now().UTC().Format(time.DateOnly), path)
		}
		b.Write(prev)
		b.WriteString(add.String())
		if err := config.WriteFileAtomic(res.MigrationFile, []byte(b.String()), info.Mode().Perm()); err != nil {
			return nil, err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
			_ = os.Chown(res.MigrationFile, int(st.Uid), int(st.Gid))
		}
	}
	if _, err := os.Stat(res.MigrationFile); err == nil {
		all, err := fileKeys(res.MigrationFile)
		if err != nil {
			return nil, err
		}
		res.Keys = all
	}
	return res, nil
}

// Log reports what the admin has to do, one warning per item, at every
// start until the migration file is gone.
func (m *ConfigMigration) Log(log *slog.Logger, mainPath string) {
	for _, r := range m.Written {
		log.Warn("configuration migrated: renamed setting written to the migration file",
			"old", r.Old, "new", r.New, "file", m.MigrationFile)
	}
	for _, r := range m.Pending {
		log.Warn(fmt.Sprintf("configuration: %s is now %s; delete %s from %s (its value is in %s until you move it)",
			r.Old, r.New, r.Old, mainPath, m.MigrationFile))
	}
	if len(m.Keys) > 0 {
		log.Warn(fmt.Sprintf("configuration: the migration file %s sets %s: move them into %s and delete %s",
			m.MigrationFile, strings.Join(m.Keys, ", "), mainPath, m.MigrationFile))
	}
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// readKeys reads the "Section.Key" keys from a gcfg file with gcfg itself
// (into a struct built for them), returning lower-case key -> last value.
// Other sections and keys are ignored.
func readKeys(path string, keys []string) (map[string]string, error) {
	sections := map[string][]string{}
	var order []string
	for _, k := range keys {
		sec, name, _ := strings.Cut(k, ".")
		if _, ok := sections[sec]; !ok {
			order = append(order, sec)
		}
		sections[sec] = append(sections[sec], name)
	}
	strT := reflect.TypeOf([]string(nil))
	var secFields []reflect.StructField
	for _, sec := range order {
		var fields []reflect.StructField
		seen := map[string]bool{}
		for _, name := range sections[sec] {
			if seen[name] {
				continue
			}
			seen[name] = true
			fields = append(fields, reflect.StructField{Name: name, Type: strT})
		}
		secFields = append(secFields, reflect.StructField{Name: sec, Type: reflect.StructOf(fields)})
	}
	v := reflect.New(reflect.StructOf(secFields))
	if err := gcfg.FatalOnly(gcfg.ReadFileInto(v.Interface(), path)); err != nil {
		return nil, fmt.Errorf("read %s: %w (run dais config check --config %s)", path, err, path)
	}
	out := map[string]string{}
	for _, sec := range order {
		sv := v.Elem().FieldByName(sec)
		for _, name := range sections[sec] {
			if vals := sv.FieldByName(name).Interface().([]string); len(vals) > 0 {
				out[strings.ToLower(sec+"."+name)] = vals[len(vals)-1]
			}
		}
	}
	return out, nil
}

// fileKeys lists the known settings a gcfg file sets, as "Section.Key".
func fileKeys(path string) ([]string, error) {
	var names []string
	for _, k := range config.Keys {
		if !k.Named {
			names = append(names, k.String())
		}
	}
	vals, err := readKeys(path, names)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, k := range names {
		if _, ok := vals[strings.ToLower(k)]; ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out, nil
}
