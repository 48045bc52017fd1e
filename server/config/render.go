package config

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
)

// sections lists the section names in reference order.
func sections() []string {
	var out []string
	for _, k := range Keys {
		if len(out) == 0 || out[len(out)-1] != k.Section {
			out = append(out, k.Section)
		}
	}
	return out
}

// Render writes cfg as a gcfg file that Load reads back to the same Config:
// every key, defaults included, secrets included (write it mode 0600).
func Render(cfg *Config) []byte {
	var b strings.Builder
	b.WriteString("; Effective dais configuration, written by dais. Edit the source file, not this one.\n")
	for _, sec := range sections() {
		if _, named, _ := lookupSection(sec); named {
			continue
		}
		fmt.Fprintf(&b, "\n[%s]\n", sec)
		for _, k := range Keys {
			if k.Section != sec {
				continue
			}
			v := k.field(cfg)
			if k.Type == TypeList {
				for _, x := range v.Interface().([]string) {
					fmt.Fprintf(&b, "%s = %s\n", k.Name, quoteValue(x))
				}
				continue
			}
			fmt.Fprintf(&b, "%s = %s\n", k.Name, gcfgValue(k, v))
		}
	}
	for _, sec := range sections() {
		if _, named, _ := lookupSection(sec); !named {
			continue
		}
		subs := namedSubsections(cfg, sec)
		for _, n := range sortedNames(subs) {
			fmt.Fprintf(&b, "\n[%s %s]\n", sec, quoteSubsection(n))
			for _, k := range Keys {
				if k.Section != sec || !subs[n].IsValid() {
					continue
				}
				v := subs[n].FieldByName(k.Name)
				if k.Type == TypeList {
					for _, x := range v.Interface().([]string) {
						fmt.Fprintf(&b, "%s = %s\n", k.Name, quoteValue(x))
					}
					continue
				}
				fmt.Fprintf(&b, "%s = %s\n", k.Name, gcfgValue(k, v))
			}
		}
	}
	return []byte(b.String())
}

// namedSubsections returns the [Section "NAME"] structs of cfg by NAME; a
// subsection that is nil maps to the zero Value.
func namedSubsections(cfg *Config, section string) map[string]reflect.Value {
	m := reflect.ValueOf(cfg).Elem().FieldByName(section)
	out := map[string]reflect.Value{}
	for it := m.MapRange(); it.Next(); {
		var v reflect.Value
		if !it.Value().IsNil() {
			v = it.Value().Elem()
		}
		out[it.Key().String()] = v
	}
	return out
}

func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// WriteFileAtomic replaces path with data so that readers see the old file or
// the new one, never a part: a temporary file in the same directory, written,
// fsynced, given mode, renamed over path, and the directory fsynced.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		// Best effort: some filesystems refuse to sync a directory.
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// Print writes the effective configuration, one key a line with the origin of
// its value, secrets redacted. It is the output of `dais config print`.
func (l *Loaded) Print(w io.Writer) error {
	type line struct{ text, origin string }
	var lines []line // origin "" for section headers and blank lines
	for _, sec := range sections() {
		if _, named, _ := lookupSection(sec); named {
			continue
		}
		lines = append(lines, line{text: "[" + sec + "]"})
		for _, k := range Keys {
			if k.Section == sec {
				lines = append(lines, line{k.Name + " = " + printValue(k, k.field(l.Config)), l.Origins[originKey(k.String())]})
			}
		}
		lines = append(lines, line{})
	}
	for _, sec := range sections() {
		if _, named, _ := lookupSection(sec); !named {
			continue
		}
		subs := namedSubsections(l.Config, sec)
		for _, n := range sortedNames(subs) {
			lines = append(lines, line{text: "[" + sec + " " + quoteSubsection(n) + "]"})
			for _, k := range Keys {
				if k.Section != sec || !subs[n].IsValid() {
					continue
				}
				origin := l.Origins[namedOriginKey(sec, n, k.Name)]
				if origin == "" {
					origin = "default"
				}
				lines = append(lines, line{k.Name + " = " + printValue(k, subs[n].FieldByName(k.Name)), origin})
			}
			lines = append(lines, line{})
		}
	}
	// Origins line up in one column, except after a line longer than
	// maxAligned (a long port list or URL), which would push every
	// other line's origin far to the right.
	const maxAligned = 88
	width := 0
	for _, x := range lines {
		if x.origin != "" && len(x.text) <= maxAligned {
			width = max(width, len(x.text))
		}
	}
	var b strings.Builder
	for _, x := range lines[:len(lines)-1] {
		if x.origin == "" {
			b.WriteString(x.text + "\n")
			continue
		}
		fmt.Fprintf(&b, "%-*s  ; %s\n", width, x.text, x.origin)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// printValue is a value as `config print` shows it: quoted like gcfg, a
// list as several quoted values, secrets redacted.
func printValue(k Key, v reflect.Value) string {
	switch {
	case k.Type == TypeList:
		xs := v.Interface().([]string)
		if len(xs) == 0 {
			return "(none)"
		}
		q := make([]string, len(xs))
		for i, x := range xs {
			q[i] = quoteValue(x)
		}
		return strings.Join(q, ", ")
	case k.String() == "Postgres.URL":
		return quoteValue(RedactURL(v.String()))
	case k.Secret && v.String() != "":
		return redacted
	}
	return gcfgValue(k, v)
}

// gcfgValue writes a single value as gcfg reads it back: strings quoted,
// numbers, booleans and durations bare.
func gcfgValue(k Key, v reflect.Value) string {
	if k.Type == TypeString {
		return quoteValue(v.String())
	}
	return formatValue(v)
}

// Diff lists the keys ("Section.Key", "RPackageRepository.NAME.URL") whose
// values differ between old and new, split by reload class: reloadable keys
// apply on SIGHUP, the others need a restart.
func Diff(old, new *Config) (reloadable, restartRequired []string) {
	for _, k := range Keys {
		if k.Named {
			continue
		}
		o, n := k.field(old).Interface(), k.field(new).Interface()
		same := reflect.DeepEqual(o, n)
		if k.Type == TypeList {
			same = slices.Equal(o.([]string), n.([]string))
		}
		if !same {
			if k.Reloadable {
				reloadable = append(reloadable, k.String())
			} else {
				restartRequired = append(restartRequired, k.String())
			}
		}
	}
	for _, sec := range sections() {
		if _, named, _ := lookupSection(sec); !named {
			continue
		}
		os, ns := namedSubsections(old, sec), namedSubsections(new, sec)
		names := map[string]bool{}
		for n := range os {
			names[n] = true
		}
		for n := range ns {
			names[n] = true
		}
		for _, n := range sortedNames(names) {
			for _, k := range Keys {
				if k.Section != sec {
					continue
				}
				o, nw := os[n], ns[n]
				if !o.IsValid() || !nw.IsValid() || !reflect.DeepEqual(o.FieldByName(k.Name).Interface(), nw.FieldByName(k.Name).Interface()) {
					restartRequired = append(restartRequired, sec+"."+n+"."+k.Name)
				}
			}
		}
	}
	return reloadable, restartRequired
}
