// Package runtime finds the R, Python and Quarto installations on the
// server and picks the one a bundle asks for.
//
// Installations come from the configuration (`[R] Executable`,
// `[Python] Executable`, `[Quarto] Executable`, each multi-valued) and from
// scanning the conventional trees /opt/R/*/bin/R, /opt/python/*/bin/python3
// and /opt/quarto/*/bin/quarto (Finder.Roots changes them, for tests). Each
// executable is run once to read its version (`R --version`,
// `python3 --version`, `quarto --version`); the answer is cached until the
// file changes.
//
// Matching (Match), for a requested version such as the manifest's
// `platform` (R), `python.version` or `quarto.version`:
//
//  1. an installation with exactly that version;
//  2. else the newest patch release of the same major.minor;
//  3. else the nearest newer version with the same major version
//     (never across a major version: R 3 -> 4 and Python 2 -> 3 break code);
//  4. else an error naming the request and every installed version, and
//     how to add one.
//
// An empty request picks the newest installation.
//
//	f := runtime.NewFinder(cfg)        // *config.Config
//	inst, err := f.Find(ctx, manifest.LangPython, "3.11.2")
//	inst.Path, inst.Version
package runtime

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/content/manifest"
)

// ErrNoMatch is returned (wrapped) when no installation fits the request.
var ErrNoMatch = errors.New("no matching installation")

// Version is a dotted version, compared numerically.
type Version struct {
	Parts []int  // major, minor, patch, ... (at least one)
	Raw   string // as the program or the manifest wrote it
}

var versionRE = regexp.MustCompile(`\d+(?:\.\d+)*`)

// ParseVersion reads the first dotted number in s: "3.11.2", "4.2.2",
// "Python 3.11.2", "1.3.450".
func ParseVersion(s string) (Version, error) {
	m := versionRE.FindString(s)
	if m == "" {
		return Version{}, fmt.Errorf("no version number in %q", s)
	}
	v := Version{Raw: m}
	for _, p := range strings.Split(m, ".") {
		n, err := strconv.Atoi(p)
		if err != nil {
			return Version{}, fmt.Errorf("version %q: %w", s, err)
		}
		v.Parts = append(v.Parts, n)
	}
	return v, nil
}

func (v Version) part(i int) int {
	if i < len(v.Parts) {
		return v.Parts[i]
	}
	return 0
}

// Major, Minor and Patch return the first three parts, 0 when absent.
func (v Version) Major() int { return v.part(0) }
func (v Version) Minor() int { return v.part(1) }
func (v Version) Patch() int { return v.part(2) }

// Compare orders versions numerically, missing parts counting as 0.
func (v Version) Compare(w Version) int {
	for i := range max(len(v.Parts), len(w.Parts)) {
		if c := cmp.Compare(v.part(i), w.part(i)); c != 0 {
			return c
		}
	}
	return 0
}

func (v Version) String() string {
	s := make([]string, len(v.Parts))
	for i, p := range v.Parts {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ".")
}

// Installation is one runtime executable and its version.
type Installation struct {
	Language manifest.Language
	Path     string // the executable: .../bin/R, .../bin/python3, .../bin/quarto
	Version  Version
}

func (i Installation) String() string {
	return fmt.Sprintf("%s %s (%s)", i.Language, i.Version, i.Path)
}

// Match picks the installation for the requested version by the rules in
// the package comment.
func Match(lang manifest.Language, installed []Installation, want string) (Installation, error) {
	if len(installed) == 0 {
		return Installation{}, fmt.Errorf("%w: no %s installation found; %s", ErrNoMatch, lang, howToAdd(lang))
	}
	sorted := slices.Clone(installed)
	slices.SortStableFunc(sorted, func(a, b Installation) int { return a.Version.Compare(b.Version) })
	if strings.TrimSpace(want) == "" {
		return sorted[len(sorted)-1], nil
	}
	w, err := ParseVersion(want)
	if err != nil {
		return Installation{}, fmt.Errorf("%s version requested: %w", lang, err)
	}
	// 1. exact (when the request names a patch).
	if len(w.Parts) >= 3 {
		for _, in := range sorted {
			if in.Version.Compare(w) == 0 {
				return in, nil
			}
		}
	}
	// 2. same major.minor, newest patch.
	var best *Installation
	for i, in := range sorted {
		if in.Version.Major() == w.Major() && in.Version.Minor() == w.Minor() {
			best = &sorted[i]
		}
	}
	if best != nil {
		return *best, nil
	}
	// 3. nearest newer, same major.
	for _, in := range sorted {
		if in.Version.Major() == w.Major() && in.Version.Compare(w) > 0 {
			return in, nil
		}
	}
	var have []string
	for _, in := range sorted {
		have = append(have, in.Version.String()+" ("+in.Path+")")
	}
	return Installation{}, fmt.Errorf("%w: the bundle asks for %s %s; installed: %s; %s",
		ErrNoMatch, lang, want, strings.Join(have, ", "), howToAdd(lang))
}

func howToAdd(lang manifest.Language) string {
	switch lang {
	case manifest.LangR:
		return "install R " + "under /opt/R/<version> or add its path to [R] Executable"
	case manifest.LangPython:
		return "install Python under /opt/python/<version> or add its path to [Python] Executable"
	default:
		return "install Quarto under /opt/quarto/<version> or add its path to [Quarto] Executable"
	}
}

// Finder discovers installations. The zero value scans the default roots
// and nothing else; NewFinder adds the configured executables.
type Finder struct {
	// Executables are configured paths, per language.
	Executables map[manifest.Language][]string
	// Roots are the scan patterns per language; nil means DefaultRoots.
	Roots map[manifest.Language][]string
	// Timeout bounds one version query. Default 15s.
	Timeout time.Duration

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	mtime time.Time
	size  int64
	ver   Version
}

// DefaultRoots are the glob patterns scanned for installations.
var DefaultRoots = map[manifest.Language][]string{
	manifest.LangR:      {"/opt/R/*/bin/R"},
	manifest.LangPython: {"/opt/python/*/bin/python3"},
	manifest.LangQuarto: {"/opt/quarto/*/bin/quarto"},
}

// NewFinder builds a Finder from the [R], [Python] and [Quarto] sections;
// a disabled section finds nothing.
func NewFinder(cfg *config.Config) *Finder {
	f := &Finder{Executables: map[manifest.Language][]string{}, Roots: map[manifest.Language][]string{}}
	for lang, rt := range map[manifest.Language]config.Runtime{
		manifest.LangR: cfg.R, manifest.LangPython: cfg.Python, manifest.LangQuarto: cfg.Quarto,
	} {
		if !rt.Enabled {
			f.Roots[lang] = []string{}
			continue
		}
		f.Executables[lang] = rt.Executable
		f.Roots[lang] = DefaultRoots[lang]
	}
	return f
}

// Discover lists the installations of a language, configured ones first,
// each real file once. Executables that do not run are skipped; their
// errors are returned joined beside the list, for the log.
func (f *Finder) Discover(ctx context.Context, lang manifest.Language) ([]Installation, error) {
	var paths []string
	paths = append(paths, f.Executables[lang]...)
	roots, ok := f.Roots[lang]
	if !ok || roots == nil {
		roots = DefaultRoots[lang]
	}
	for _, pattern := range roots {
		m, _ := filepath.Glob(pattern)
		slices.Sort(m)
		paths = append(paths, m...)
	}
	var out []Installation
	var errs []error
	seen := map[string]bool{}
	for _, p := range paths {
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s executable %s: %w", lang, p, err))
			continue
		}
		if seen[real] {
			continue
		}
		seen[real] = true
		v, err := f.version(ctx, lang, p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, Installation{Language: lang, Path: p, Version: v})
	}
	return out, errors.Join(errs...)
}

// Find discovers and matches in one step. Discovery errors are only
// reported when nothing matches.
func (f *Finder) Find(ctx context.Context, lang manifest.Language, want string) (Installation, error) {
	installed, derr := f.Discover(ctx, lang)
	in, err := Match(lang, installed, want)
	if err != nil && derr != nil {
		return in, fmt.Errorf("%w (while looking: %v)", err, derr)
	}
	return in, err
}

func (f *Finder) version(ctx context.Context, lang manifest.Language, path string) (Version, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return Version{}, fmt.Errorf("%s executable %s: %w", lang, path, err)
	}
	f.mu.Lock()
	c, ok := f.cache[path]
	f.mu.Unlock()
	if ok && c.mtime.Equal(fi.ModTime()) && c.size == fi.Size() {
		return c.ver, nil
	}
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = 15 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "--version")
	cmd.Env = append(os.Environ(), "LANG=C")
	ownGroup(cmd)
	out, err := cmd.CombinedOutput() // Python 2 and old R print to stderr
	if err != nil {
		return Version{}, fmt.Errorf("%s executable %s: %s --version: %w", lang, path, path, err)
	}
	first := strings.TrimSpace(string(out))
	if i := strings.IndexByte(first, '\n'); i >= 0 {
		first = first[:i]
	}
	if lang == manifest.LangR {
		// "R version 4.2.2 Patched (2022-11-10 r83330) -- ..."
		if _, rest, ok := strings.Cut(first, "R version "); ok {
			first = rest
		}
	}
	v, err := ParseVersion(first)
	if err != nil {
		return Version{}, fmt.Errorf("%s executable %s: %w", lang, path, err)
	}
	f.mu.Lock()
	if f.cache == nil {
		f.cache = map[string]cached{}
	}
	f.cache[path] = cached{mtime: fi.ModTime(), size: fi.Size(), ver: v}
	f.mu.Unlock()
	return v, nil
}
