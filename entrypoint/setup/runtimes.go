package setup

import (
	"context"
	"log/slog"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dais-dev/dais/server/config"
)

// runtimeFinding is one installation found, or (Path == "") none at all.
type runtimeFinding struct {
	Lang    string // "R", "Python", "Quarto"
	Path    string
	Version string // "" when it could not be read
	Err     string // why the version could not be read
}

// runtimeSpec says where to look for one language and what is too old.
type runtimeSpec struct {
	lang    string
	cfg     func(*config.Config) config.Runtime
	globs   []string
	path    string // name looked up in PATH
	args    []string
	min     string // minimum version, "" for none
	pattern *regexp.Regexp
}

var runtimeSpecs = []runtimeSpec{
	{"R", func(c *config.Config) config.Runtime { return c.R }, []string{"/opt/R/*/bin/R"}, "R", []string{"--version"}, "3.1.0",
		regexp.MustCompile(`R version (\d+\.\d+(?:\.\d+)?)`)},
	{"Python", func(c *config.Config) config.Runtime { return c.Python }, []string{"/opt/python/*/bin/python3", "/opt/python/*/bin/python"}, "python3", []string{"--version"}, "3.5",
		regexp.MustCompile(`Python (\d+\.\d+(?:\.\d+)?)`)},
	{"Quarto", func(c *config.Config) config.Runtime { return c.Quarto }, []string{"/opt/quarto/*/bin/quarto"}, "quarto", []string{"--version"}, "",
		regexp.MustCompile(`(\d+\.\d+(?:\.\d+)?)`)},
}

// findRuntimes looks at the configured executables, /opt/<lang>/*/bin and
// PATH, and asks each distinct installation its version.
func findRuntimes(ctx context.Context, c *config.Config) []runtimeFinding {
	var out []runtimeFinding
	for _, s := range runtimeSpecs {
		rc := s.cfg(c)
		if !rc.Enabled {
			continue
		}
		var cands []string
		cands = append(cands, rc.Executable...)
		for _, g := range s.globs {
			m, _ := filepath.Glob(g)
			sort.Strings(m)
			cands = append(cands, m...)
		}
		if p, err := exec.LookPath(s.path); err == nil {
			cands = append(cands, p)
		}
		seen := map[string]bool{}
		found := false
		for _, p := range cands {
			real, err := filepath.EvalSymlinks(p)
			if err != nil {
				out = append(out, runtimeFinding{Lang: s.lang, Path: p, Err: "not found"})
				continue
			}
			if seen[real] {
				continue
			}
			seen[real] = true
			found = true
			out = append(out, versionOf(ctx, s, p))
		}
		if !found {
			out = append(out, runtimeFinding{Lang: s.lang})
		}
	}
	return out
}

func versionOf(ctx context.Context, s runtimeSpec, path string) runtimeFinding {
	f := runtimeFinding{Lang: s.lang, Path: path}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	b, err := exec.CommandContext(ctx, path, s.args...).CombinedOutput()
	if m := s.pattern.FindSubmatch(b); m != nil {
		f.Version = string(m[1])
		return f
	}
	if err != nil {
		f.Err = err.Error()
	} else {
		f.Err = "unrecognised version output " + strconv.Quote(strings.TrimSpace(string(b)))
	}
	return f
}

func logRuntimes(log *slog.Logger, fs []runtimeFinding) {
	for _, f := range fs {
		s := specOf(f.Lang)
		switch {
		case f.Path == "":
			log.Warn(f.Lang+" not found: "+f.Lang+" content will not deploy; install it under /opt/"+strings.ToLower(f.Lang)+"/<version> or set "+f.Lang+".Executable", keyCheck, checkRuntimes)
		case f.Version == "":
			log.Warn(f.Lang+" installation unusable", keyPath, f.Path, keyErr, f.Err, keyCheck, checkRuntimes)
		case s.min != "" && versionLess(f.Version, s.min):
			log.Warn(f.Lang+" "+f.Version+" is older than the supported minimum "+s.min+": content needing it will not deploy", keyPath, f.Path, keyCheck, checkRuntimes)
		default:
			log.Info("found "+f.Lang+" "+f.Version, keyPath, f.Path, keyCheck, checkRuntimes)
		}
	}
}

func specOf(lang string) runtimeSpec {
	for _, s := range runtimeSpecs {
		if s.lang == lang {
			return s
		}
	}
	return runtimeSpec{}
}

// versionLess compares dotted numeric versions: "3.10" > "3.9".
func versionLess(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}
