package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/content/manifest"
)

// fakeTree writes /opt-like trees of scripts that print versions the way
// the real programs do, and a counter of how often each ran.
func fakeTree(t *testing.T, lang manifest.Language, versions ...string) (pattern string) {
	t.Helper()
	base := t.TempDir()
	for _, v := range versions {
		var name, out string
		switch lang {
		case manifest.LangR:
			name, out = "R", fmt.Sprintf(`R version %s (2022-10-31) -- "Innocent and Trusting"\nCopyright (C) 2022`, v)
		case manifest.LangPython:
			name, out = "python3", "Python "+v
		default:
			name, out = "quarto", v
		}
		bin := filepath.Join(base, v, "bin")
		if err := os.MkdirAll(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		script := fmt.Sprintf("#!/bin/sh\necho x >> %q\nprintf '%%b\\n' '%s'\n", filepath.Join(base, v, "runs"), out)
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	switch lang {
	case manifest.LangR:
		return filepath.Join(base, "*", "bin", "R")
	case manifest.LangPython:
		return filepath.Join(base, "*", "bin", "python3")
	}
	return filepath.Join(base, "*", "bin", "quarto")
}

func TestFindMatches(t *testing.T) {
	tests := []struct {
		name      string
		lang      manifest.Language
		installed []string
		want      string
		got       string // version picked; "" means an error is expected
		errHas    []string
	}{
		{"exact", manifest.LangPython, []string{"3.9.2", "3.11.2", "3.11.7"}, "3.11.2", "3.11.2", nil},
		{"same minor, newest patch", manifest.LangPython, []string{"3.9.2", "3.11.2", "3.11.7"}, "3.11.4", "3.11.7", nil},
		{"major.minor request", manifest.LangPython, []string{"3.11.2", "3.11.7", "3.12.1"}, "3.11", "3.11.7", nil},
		{"nearest newer", manifest.LangR, []string{"3.6.3", "4.1.3", "4.3.1"}, "4.0.5", "4.1.3", nil},
		{"nearest newer patch-level request", manifest.LangR, []string{"4.2.2", "4.3.1"}, "4.2.3", "4.2.2", nil},
		{"empty request: newest", manifest.LangQuarto, []string{"1.2.475", "1.3.450"}, "", "1.3.450", nil},
		{"quarto exact", manifest.LangQuarto, []string{"1.2.475", "1.3.450"}, "1.2.475", "1.2.475", nil},
		{"only older: fail", manifest.LangPython, []string{"3.8.10", "3.9.2"}, "3.11.2", "", []string{"Python 3.11.2", "3.8.10 (", "3.9.2 (", "[Python] Executable"}},
		{"never across major", manifest.LangR, []string{"4.2.2"}, "3.6.3", "", []string{"R 3.6.3", "4.2.2 (", "[R] Executable"}},
		{"nothing installed", manifest.LangR, nil, "4.2.2", "", []string{"no R installation found", "/opt/R/<version>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &Finder{Roots: map[manifest.Language][]string{tt.lang: {fakeTree(t, tt.lang, tt.installed...)}}}
			in, err := f.Find(context.Background(), tt.lang, tt.want)
			if tt.got == "" {
				if !errors.Is(err, ErrNoMatch) {
					t.Fatalf("Find = %v, %v; want ErrNoMatch", in, err)
				}
				for _, s := range tt.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if in.Version.String() != tt.got || !strings.Contains(in.Path, tt.got) {
				t.Errorf("picked %v; want %s", in, tt.got)
			}
		})
	}
}

func TestDiscoverConfiguredCachedDeduplicated(t *testing.T) {
	pattern := fakeTree(t, manifest.LangPython, "3.10.4", "3.11.2")
	configured := strings.Replace(pattern, "*", "3.11.2", 1)
	link := filepath.Join(t.TempDir(), "python3")
	if err := os.Symlink(configured, link); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(t.TempDir(), "python3")
	os.WriteFile(broken, []byte("#!/bin/sh\nexit 3\n"), 0o755)
	f := &Finder{
		Executables: map[manifest.Language][]string{manifest.LangPython: {link, broken}},
		Roots:       map[manifest.Language][]string{manifest.LangPython: {pattern}},
	}
	for range 3 {
		got, err := f.Discover(context.Background(), manifest.LangPython)
		if err == nil || !strings.Contains(err.Error(), broken) {
			t.Errorf("Discover error %v does not name the broken executable", err)
		}
		if len(got) != 2 || got[0].Path != link || got[0].Version.String() != "3.11.2" || got[1].Version.String() != "3.10.4" {
			t.Fatalf("Discover = %v; want the configured link first and each real file once", got)
		}
	}
	runs, _ := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(configured)), "runs"))
	if n := strings.Count(string(runs), "x"); n != 1 {
		t.Errorf("version queried %d times; want 1 (cached)", n)
	}
}

func TestNewFinderDisabled(t *testing.T) {
	cfg := config.Defaults()
	cfg.Quarto.Enabled = false
	cfg.Quarto.Executable = []string{"/bin/true"}
	f := NewFinder(cfg)
	got, _ := f.Discover(context.Background(), manifest.LangQuarto)
	if len(got) != 0 {
		t.Errorf("disabled Quarto found %v", got)
	}
}

// TestRealInstallations reads the versions of the R and Python on this
// machine, when there are any, to check the parsing of real output.
func TestRealInstallations(t *testing.T) {
	for _, c := range []struct {
		lang manifest.Language
		path string
	}{{manifest.LangR, "/usr/bin/R"}, {manifest.LangPython, "/usr/bin/python3"}} {
		if _, err := exec.LookPath(c.path); err != nil {
			t.Logf("%s not installed, skipped", c.path)
			continue
		}
		f := &Finder{Executables: map[manifest.Language][]string{c.lang: {c.path}}, Roots: map[manifest.Language][]string{c.lang: {}}}
		in, err := f.Find(context.Background(), c.lang, "")
		if err != nil {
			t.Fatal(err)
		}
		if in.Version.Major() < 3 || len(in.Version.Parts) < 3 {
			t.Errorf("%s version %v", c.path, in.Version)
		}
	}
}
