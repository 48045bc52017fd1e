package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/gcfg.v1"
	"gopkg.in/gcfg.v1/scanner"
	"gopkg.in/gcfg.v1/token"
)

// Loaded is a resolved configuration and what was noticed on the way.
type Loaded struct {
	Config *Config
	// Warnings are non-fatal findings (unknown sections and keys, ignored
	// environment variables), each naming its file:line or variable.
	Warnings []string
	// Origins maps "section.key" (lower case; "section.NAME.key" for named
	// subsections, NAME as written, and "section.NAME" for where the
	// subsection first appeared) to where its value came from: "default",
	// "FILE:LINE" (the main or the migration file) or "env VAR".
	Origins map[string]string
	// Files are the files that were read, main file first.
	Files []string
	// ConsumedEnv names the environment variables that set configuration
	// (sorted). dais-init removes them from its child's environment so that
	// no secret reaches content processes.
	ConsumedEnv []string
}

// Origin returns where the key "Section.Key" (any case) got its value, or "".
func (l *Loaded) Origin(key string) string {
	return l.Origins[originKey(key)]
}

// ProblemsError is returned by Load when the configuration cannot be used.
// It lists every problem found, not only the first.
type ProblemsError struct {
	// Problems each name a file:line or an environment variable and the fix.
	Problems []string
	// Warnings found on the way, as Loaded.Warnings would have held them.
	Warnings []string
}

func (e *ProblemsError) Error() string {
	if len(e.Problems) == 1 {
		return "invalid configuration: " + e.Problems[0]
	}
	return fmt.Sprintf("invalid configuration, %d problems:\n  %s", len(e.Problems), strings.Join(e.Problems, "\n  "))
}

// MigrationPath is the migration file read after path: "x.gcfg" ->
// "x-migration.gcfg", in the same directory.
func MigrationPath(path string) string {
	return strings.TrimSuffix(path, ".gcfg") + "-migration.gcfg"
}

// Load reads defaults, then the file at path, then the migration file beside
// it (when it exists), then the environment (KEY=VALUE strings, as os.Environ
// returns), then validates. path may be empty: defaults and environment only.
//
// A configuration with problems returns a *ProblemsError listing all of them.
func Load(path string, environ []string) (*Loaded, error) {
	var main, mig *source
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read configuration file: %w (pass --config FILE, or create it)", err)
		}
		main = &source{name: path, src: b}
		mp := MigrationPath(path)
		b, err = os.ReadFile(mp)
		switch {
		case err == nil:
			mig = &source{name: mp, src: b}
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("read migration file: %w", err)
		}
	}
	return load(main, mig, environ)
}

// source is one file's name and contents.
type source struct {
	name string
	src  []byte
}

// entry is one section header or one assignment, from a file or from the environment.
type entry struct {
	section, sub string
	hasSub       bool
	header       bool   // a [section] line, no key
	name         string // key as written
	blank        bool   // "Key" with no "=": true for bools, clears lists
	value        string // unquoted
	origin       string // "FILE:LINE" or "env VAR"
}

// loader applies entries to a Config and collects what it notices.
type loader struct {
	cfg      *Config
	l        *Loaded
	problems []string
}

func load(main, mig *source, environ []string) (*Loaded, error) {
	cfg := Defaults()
	ld := &loader{cfg: cfg, l: &Loaded{Config: cfg, Origins: map[string]string{}}}
	for _, k := range Keys {
		if !k.Named {
			ld.l.Origins[originKey(k.String())] = "default"
		}
	}
	for _, s := range []*source{main, mig} {
		if s == nil {
			continue
		}
		ld.l.Files = append(ld.l.Files, s.name)
		entries, problems := scanSource(s.name, s.src)
		ld.problems = append(ld.problems, problems...)
		ld.apply(entries)
	}
	entries, consumed, warnings := envEntries(environ)
	ld.l.ConsumedEnv = consumed
	ld.l.Warnings = append(ld.l.Warnings, warnings...)
	ld.apply(entries)

	vp, vw := validate(cfg, ld.l.Origins)
	ld.problems = append(ld.problems, vp...)
	ld.l.Warnings = append(ld.l.Warnings, vw...)
	if len(ld.problems) > 0 {
		return nil, &ProblemsError{Problems: ld.problems, Warnings: ld.l.Warnings}
	}
	return ld.l, nil
}

// apply sets one layer's entries (one file, or the environment). Within a
// layer a list key accumulates its values; a layer that sets a list replaces
// the earlier layers' list.
func (ld *loader) apply(entries []entry) {
	listSet := map[string]bool{}
	var skipped *entry // header of an unknown or misnamed section: its keys are ignored
	for i, e := range entries {
		if e.header {
			skipped = nil
			if !ld.header(e) {
				skipped = &entries[i]
			}
			continue
		}
		if skipped != nil && strings.EqualFold(skipped.section, e.section) && skipped.sub == e.sub {
			continue
		}
		k, ok := LookupKey(e.section, e.name)
		if !ok {
			ld.warn(e.origin, "unknown key %s.%s (ignored)%s", canonicalSection(e.section), e.name, suggest(e.section, e.name))
			continue
		}
		var sub *string
		if k.Named {
			sub = &e.sub
		}
		okey := originKey(k.String())
		if k.Named {
			okey = namedOriginKey(k.Section, e.sub, k.Name)
		}
		if k.Type == TypeList && !k.Named && !listSet[okey] {
			listSet[okey] = true
			k.field(ld.cfg).Set(reflect.Zero(k.field(ld.cfg).Type()))
		}
		if err := ld.gcfgSet(k.Section, sub, k.Name, e.blank, e.value); err != nil {
			ld.problem(e.origin, "%s: %s", k, err)
			continue
		}
		ld.l.Origins[okey] = e.origin
	}
}

// header checks a section header and, for named subsections, creates the
// subsection. It reports whether the section's keys should be read.
func (ld *loader) header(e entry) bool {
	canon, named, ok := lookupSection(e.section)
	switch {
	case !ok:
		ld.warn(e.origin, "unknown section [%s] (ignored with its keys)", e.section)
		return false
	case named && !e.hasSub:
		ld.warn(e.origin, "section [%s] needs a name, as in [%s \"CRAN\"] (ignored with its keys)", canon, canon)
		return false
	case !named && e.hasSub:
		ld.warn(e.origin, "section [%s] takes no name: write [%s] (ignored with its keys)", canon, canon)
		return false
	}
	if named {
		if err := ld.gcfgSet(canon, &e.sub, "", false, ""); err != nil {
			ld.problem(e.origin, "[%s %s]: %s", canon, quoteSubsection(e.sub), err)
			return false
		}
		if _, seen := ld.l.Origins[namedOriginKey(canon, e.sub, "")]; !seen {
			ld.l.Origins[namedOriginKey(canon, e.sub, "")] = e.origin
		}
	}
	return true
}

// gcfgSet has gcfg set one value, so types and error texts are gcfg's.
// name "" only creates a named subsection.
func (ld *loader) gcfgSet(section string, sub *string, name string, blank bool, value string) error {
	var b strings.Builder
	b.WriteString("[" + section)
	if sub != nil {
		b.WriteString(" " + quoteSubsection(*sub))
	}
	b.WriteString("]\n")
	if name != "" {
		b.WriteString(name)
		if !blank {
			b.WriteString(" = " + quoteValue(value))
		}
		b.WriteString("\n")
	}
	err := gcfg.ReadStringInto(ld.cfg, b.String())
	if err == nil || gcfg.FatalOnly(err) == nil {
		return nil
	}
	return errors.New(gcfgMessage(err))
}

// gcfgMessage strips gcfg's location suffix (we name file:line instead) and
// makes its terse messages say what to write.
func gcfgMessage(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, " at section \""); i >= 0 {
		msg = msg[:i]
	}
	// A scanner error in the text we built: its line:col means nothing to the user.
	msg = scannerPos.ReplaceAllString(msg, "")
	switch {
	case strings.Contains(msg, "blank value not supported"):
		return "needs a value: write Key = value"
	case strings.HasPrefix(msg, "failed to parse bool"):
		return msg + ": write true or false (yes/no, on/off, 1/0)"
	case strings.HasPrefix(msg, "failed to parse") && strings.Contains(msg, " as int"):
		return msg + ": write a whole number, without a unit (0x for hexadecimal)"
	}
	return msg
}

var scannerPos = regexp.MustCompile(`^\d+:\d+: `)

func (ld *loader) warn(origin, format string, args ...any) {
	ld.l.Warnings = append(ld.l.Warnings, origin+": "+fmt.Sprintf(format, args...))
}

func (ld *loader) problem(origin, format string, args ...any) {
	ld.problems = append(ld.problems, origin+": "+fmt.Sprintf(format, args...))
}

// canonicalSection spells a known section as the reference does.
func canonicalSection(s string) string {
	if c, _, ok := lookupSection(s); ok {
		return c
	}
	return s
}

// suggest names a key of the same section that differs from name only by
// hyphens/underscores or a one-letter typo, as " (did you mean X?)".
func suggest(section, name string) string {
	for _, k := range Keys {
		if strings.EqualFold(k.Section, section) && closeTo(strings.ToLower(k.Name), strings.ToLower(name)) {
			return fmt.Sprintf("; did you mean %s?", k.Name)
		}
	}
	return ""
}

// closeTo reports an edit distance of at most one, ignoring '-' and '_'.
func closeTo(a, b string) bool {
	clean := strings.NewReplacer("-", "", "_", "")
	a, b = clean.Replace(a), clean.Replace(b)
	if a == b {
		return true
	}
	if len(a) < len(b) {
		a, b = b, a
	}
	if len(a)-len(b) > 1 {
		return false
	}
	i := 0
	for i < len(b) && a[i] == b[i] {
		i++
	}
	if len(a) == len(b) {
		return a[i+1:] == b[i+1:]
	}
	return a[i+1:] == b[i:]
}

func originKey(key string) string { return strings.ToLower(key) }

// namedOriginKey is the Origins key of a named subsection's key,
// "section.NAME.key", or with name "" of its first header, "section.NAME".
func namedOriginKey(section, sub, name string) string {
	if name == "" {
		return strings.ToLower(section) + "." + sub
	}
	return strings.ToLower(section) + "." + sub + "." + strings.ToLower(name)
}

var utf8BOM = []byte("\ufeff")

// scanSource turns a gcfg file into entries with gcfg's own scanner, keeping
// each entry's line. Syntax errors are returned as problems; the rest of the
// line is skipped and reading goes on, so every error is reported at once.
func scanSource(name string, src []byte) ([]entry, []string) {
	src = bytes.TrimPrefix(src, utf8BOM)
	fset := token.NewFileSet()
	file := fset.AddFile(name, fset.Base(), len(src))
	var errs scanner.ErrorList
	var s scanner.Scanner
	s.Init(file, src, func(p token.Position, m string) { errs.Add(p, m) }, 0)

	var (
		out      []entry
		problems []string
		pos      token.Pos
		tok      token.Token
		lit      string
	)
	where := func(p token.Pos) string {
		ps := fset.Position(p)
		return fmt.Sprintf("%s:%d", ps.Filename, ps.Line)
	}
	// next scans one token; it reports false after a scanner error, which
	// it records.
	next := func() bool {
		pos, tok, lit = s.Scan()
		if errs.Len() == 0 {
			return true
		}
		for _, e := range errs {
			problems = append(problems, fmt.Sprintf("%s:%d: %s", e.Pos.Filename, e.Pos.Line, e.Msg))
			if e.Msg == "string not terminated" && tok == token.STRING {
				// The scanner ate the newline: the line is over.
				tok = token.EOL
			}
		}
		errs.Reset()
		return false
	}
	// skipLine drops the rest of a line that already has an error, and any
	// further scanner errors on it.
	skipLine := func() {
		for tok != token.EOL && tok != token.EOF {
			pos, tok, lit = s.Scan()
			errs.Reset()
		}
	}
	fail := func(p token.Pos, format string, args ...any) {
		problems = append(problems, where(p)+": "+fmt.Sprintf(format, args...))
		skipLine()
	}
	endOfLine := func() bool { return tok == token.EOL || tok == token.EOF || tok == token.COMMENT }

	inSection, badSection := false, false
	if !next() {
		skipLine()
	}
	for {
		switch tok {
		case token.EOF:
			return out, problems
		case token.EOL, token.COMMENT:
			if !next() {
				skipLine()
			}
		case token.LBRACK:
			start := pos
			inSection, badSection = false, true
			if !next() {
				skipLine()
				continue
			}
			if tok != token.IDENT {
				fail(pos, "expected a section name after '[', as in [Server]")
				continue
			}
			e := entry{header: true, section: lit, origin: where(start)}
			if !next() {
				skipLine()
				continue
			}
			if tok == token.STRING {
				sub, err := unquote(lit)
				if err != nil {
					fail(pos, "subsection name: %v", err)
					continue
				}
				if sub == "" {
					fail(pos, "empty subsection name: write [%s] without quotes", e.section)
					continue
				}
				e.sub, e.hasSub = sub, true
				if !next() {
					skipLine()
					continue
				}
			}
			if tok != token.RBRACK {
				fail(pos, "expected ']' to close the section header")
				continue
			}
			if !next() {
				skipLine()
				continue
			}
			if !endOfLine() {
				fail(pos, "expected the end of the line after the section header")
				continue
			}
			out = append(out, e)
			inSection, badSection = true, false
		case token.IDENT:
			if !inSection {
				if badSection {
					skipLine()
				} else {
					fail(pos, "%s is outside any section: put a [Section] header above it", lit)
				}
				continue
			}
			last := out[len(out)-1]
			e := entry{section: last.section, sub: last.sub, hasSub: last.hasSub, name: lit, origin: where(pos)}
			if !next() {
				skipLine()
				continue
			}
			if endOfLine() {
				e.blank = true
				out = append(out, e)
				continue
			}
			if tok != token.ASSIGN {
				fail(pos, "expected '=' after %s", e.name)
				continue
			}
			if !next() {
				skipLine()
				continue
			}
			v, err := unquote(lit)
			if err != nil {
				fail(pos, "%v", err)
				continue
			}
			e.value = v
			if !next() {
				skipLine()
				continue
			}
			if !endOfLine() {
				fail(pos, "expected the end of the line after the value")
				continue
			}
			out = append(out, e)
		default:
			fail(pos, "expected a [Section] header or a Key = value line")
		}
	}
}

// unquote decodes a gcfg value or subsection literal: quotes delimit,
// backslash escapes \\ \" \n \t, and a backslash before a newline continues
// the line. It is gcfg's rule, returning an error where gcfg would panic.
func unquote(s string) (string, error) {
	var u strings.Builder
	q, esc := false, false
	for _, c := range s {
		if esc {
			esc = false
			switch c {
			case '\\', '"':
				u.WriteRune(c)
			case 'n':
				u.WriteRune('\n')
			case 't':
				u.WriteRune('\t')
			case '\n':
				if q {
					return "", errors.New("invalid escape sequence")
				}
			default:
				return "", errors.New("invalid escape sequence: use \\\\ \\\" \\n or \\t")
			}
			continue
		}
		switch c {
		case '"':
			q = !q
		case '\\':
			esc = true
		default:
			u.WriteRune(c)
		}
	}
	if q {
		return "", errors.New("missing closing quote")
	}
	if esc {
		return "", errors.New("invalid escape sequence at the end of the value")
	}
	return u.String(), nil
}

// quoteValue writes s as a gcfg value that reads back as s.
func quoteValue(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}

// quoteSubsection writes s as a gcfg subsection name (only \\ and \" escape there).
func quoteSubsection(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

// RSCLicenseServer is the variable Posit Connect's images use for the
// floating license server; it sets Licensing.LicenseServer.
const RSCLicenseServer = "RSC_LICENSE_SERVER"

// envEntries turns CONNECT_<SECTION>_<KEY> variables (and RSC_LICENSE_SERVER)
// into entries. The first of duplicate names wins, as getenv does. List keys
// take a comma-separated value; an empty value clears the list.
func envEntries(environ []string) (entries []entry, consumed, warnings []string) {
	vars := map[string]string{}
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		if _, dup := vars[name]; !dup {
			vars[name] = value
		}
	}
	names := make([]string, 0, len(vars))
	for n := range vars {
		if strings.HasPrefix(n, EnvPrefix) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	// RSC_LICENSE_SERVER first, so an explicit CONNECT_LICENSING_LICENSESERVER wins.
	if v, ok := vars[RSCLicenseServer]; ok {
		entries = append(entries, entry{section: "Licensing", name: "LicenseServer", value: v, origin: "env " + RSCLicenseServer})
		consumed = append(consumed, RSCLicenseServer)
	}
	for _, n := range names {
		k, sub, ok := envKey(n)
		if !ok {
			warnings = append(warnings, fmt.Sprintf("env %s: not a configuration key (ignored); names are %s<SECTION>_<KEY>, e.g. %s", n, EnvPrefix, Keys[0].EnvVar()))
			continue
		}
		consumed = append(consumed, n)
		e := entry{section: k.Section, sub: sub, hasSub: k.Named, name: k.Name, origin: "env " + n}
		if k.Named {
			entries = append(entries, entry{header: true, section: k.Section, sub: sub, hasSub: true, origin: e.origin})
		}
		if k.Type != TypeList {
			e.value = vars[n]
			entries = append(entries, e)
			continue
		}
		var items []string
		for _, it := range strings.Split(vars[n], ",") {
			if it = strings.TrimSpace(it); it != "" {
				items = append(items, it)
			}
		}
		if len(items) == 0 {
			e.blank = true
			entries = append(entries, e)
		}
		for _, it := range items {
			e.value = it
			entries = append(entries, e)
		}
	}
	sort.Strings(consumed)
	return entries, consumed, warnings
}

// envKey maps CONNECT_SECTION_KEY (any case after the prefix) to a key, and
// CONNECT_SECTION_NAME_KEY to a named subsection's key and NAME.
func envKey(name string) (k Key, sub string, ok bool) {
	rest := name[len(EnvPrefix):]
	for _, key := range Keys {
		p := key.Section + "_"
		if len(rest) <= len(p) || !strings.EqualFold(rest[:len(p)], p) {
			continue
		}
		tail := rest[len(p):]
		if !key.Named {
			if strings.EqualFold(tail, key.Name) {
				return key, "", true
			}
			continue
		}
		i := strings.LastIndex(tail, "_")
		if i > 0 && strings.EqualFold(tail[i+1:], key.Name) {
			return key, tail[:i], true
		}
	}
	return Key{}, "", false
}

// absPath is used by validation and by tests.
var absPath = filepath.IsAbs
