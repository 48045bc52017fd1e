package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestExamples(t *testing.T) {
	tests := []struct {
		dir      string
		mode     AppMode
		kind     Kind
		langs    []Language
		primary  string // PrimaryDocument of ext
		ext      string
		packages string // one package the manifest must list, with a version
	}{
		{"static", Static, KindStatic, nil, "index.html", ".html", ""},
		{"plumber", Plumber, KindApp, []Language{LangR}, "", "", "plumber"},
		{"shiny", Shiny, KindApp, []Language{LangR}, "", "", "shiny"},
		{"rmarkdown", RMarkdownStatic, KindDocument, []Language{LangR}, "doc.Rmd", ".rmd", "rmarkdown"},
		{"flask", PythonAPI, KindApp, []Language{LangPython}, "", "", ""},
		{"fastapi", PythonFastAPI, KindApp, []Language{LangPython}, "", "", ""},
		{"jupyter", JupyterStatic, KindDocument, []Language{LangPython}, "notebook.ipynb", ".ipynb", ""},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			dir := filepath.Join("..", "..", "..", "examples", tt.dir)
			m, err := Read(dir)
			if err != nil {
				t.Fatal(err)
			}
			if m.Metadata.AppMode != tt.mode || m.Metadata.AppMode.Kind() != tt.kind {
				t.Errorf("appmode %s kind %s; want %s %s", m.Metadata.AppMode, m.Metadata.AppMode.Kind(), tt.mode, tt.kind)
			}
			if !slices.Equal(m.Languages(), tt.langs) {
				t.Errorf("Languages = %v; want %v", m.Languages(), tt.langs)
			}
			if tt.ext != "" {
				if got := m.PrimaryDocument(tt.ext); got != tt.primary {
					t.Errorf("PrimaryDocument(%s) = %q; want %q", tt.ext, got, tt.primary)
				}
			}
			if tt.packages != "" && m.Packages[tt.packages].Version() == "" {
				t.Errorf("package %s has no version; packages: %v", tt.packages, m.Packages.Names())
			}
			if len(m.Files) == 0 {
				t.Fatal("no files")
			}
			if err := m.VerifyFiles(dir); err != nil {
				t.Errorf("VerifyFiles: %v", err)
			}
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		wantErr string // substring; "" for success
		check   func(t *testing.T, m *Manifest)
	}{
		{
			name: "R nulls and empty arrays",
			json: `{"version":1,"platform":"4.2.2","metadata":{"appmode":"static","primary_rmd":null,"primary_html":["index.html"],"content_category":null,"has_parameters":false},"packages":[],"files":[],"users":null}`,
			check: func(t *testing.T, m *Manifest) {
				if m.Metadata.PrimaryHTML != "index.html" || m.Packages != nil || m.Files != nil || m.Platform != "4.2.2" {
					t.Errorf("got %+v", m)
				}
			},
		},
		{
			name: "python entrypoint and package file",
			json: `{"version":1,"metadata":{"appmode":"python-fastapi","entrypoint":"api.main:server"},"python":{"version":"3.11.2","package_manager":{"name":"pip","version":"23.0","package_file":"reqs.txt"}}}`,
			check: func(t *testing.T, m *Manifest) {
				mod, obj := m.PythonEntrypoint()
				if mod != "api.main" || obj != "server" || m.PackageFile() != "reqs.txt" || m.Python.Version != "3.11.2" {
					t.Errorf("entrypoint %s:%s, file %s", mod, obj, m.PackageFile())
				}
			},
		},
		{
			name: "python entrypoint without object",
			json: `{"metadata":{"appmode":"python-api","entrypoint":"app"},"python":{"version":"3.11"}}`,
			check: func(t *testing.T, m *Manifest) {
				if mod, obj := m.PythonEntrypoint(); mod != "app" || obj != "app" || m.PackageFile() != "requirements.txt" {
					t.Errorf("entrypoint %s:%s", mod, obj)
				}
			},
		},
		{
			name: "quarto with knitr needs R",
			json: `{"metadata":{"appmode":"quarto-static","entrypoint":"doc.qmd"},"quarto":{"version":"1.3.450","engines":["knitr"]}}`,
			check: func(t *testing.T, m *Manifest) {
				if !slices.Equal(m.Languages(), []Language{LangQuarto, LangR}) || m.Quarto.Version != "1.3.450" {
					t.Errorf("languages %v", m.Languages())
				}
			},
		},
		{
			name: "numeric version",
			json: `{"metadata":{"appmode":"python-api"},"python":{"version":3.11}}`,
			check: func(t *testing.T, m *Manifest) {
				if m.Python.Version != "3.11" {
					t.Errorf("version %q", m.Python.Version)
				}
			},
		},
		{"unknown appmode", `{"metadata":{"appmode":"php"}}`, `unknown appmode "php"; known app modes: api, jupyter-static`, nil},
		{"no appmode", `{"metadata":{}}`, "metadata.appmode is missing", nil},
		{"python without version", `{"metadata":{"appmode":"python-api"}}`, "needs python.version", nil},
		{"rmd without primary", `{"metadata":{"appmode":"rmd-static"},"files":{"a.Rmd":{},"b.Rmd":{}}}`, "needs metadata.primary_rmd", nil},
		{"file outside", `{"metadata":{"appmode":"static"},"files":{"../x":{"checksum":"00"}}}`, `"../x" is not a path inside the bundle`, nil},
		{"not json", `{"metadata":`, "regenerate it with", nil},
		{"shiny without app.R", `{"metadata":{"appmode":"shiny"},"files":{"ui.R":{}}}`, "needs app.R or server.R", nil},
		{"plumber without plumber.R", `{"metadata":{"appmode":"api"},"files":{"api.R":{}}}`, "needs plumber.R or entrypoint.R", nil},
		{"python module missing", `{"metadata":{"appmode":"python-fastapi","entrypoint":"pkg.main:app"},"python":{"version":"3.11"},"files":{"main.py":{}}}`, "needs pkg/main.py or pkg/main/__init__.py", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.json))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse error = %v; want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, m)
		})
	}
	if _, err := Parse([]byte(`{"metadata":{"appmode":"php"}}`)); !errors.Is(err, ErrUnknownAppMode) {
		t.Errorf("unknown appmode error %v is not ErrUnknownAppMode", err)
	}
}

func TestVerifyFilesRefuses(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "app.R"), []byte("tampered"), 0o644)
	os.WriteFile(filepath.Join(dir, "ok.R"), []byte("x"), 0o644)
	os.Symlink("/etc/passwd", filepath.Join(dir, "link.R"))
	m, err := Parse([]byte(`{"metadata":{"appmode":"static"},"files":{
		"app.R":{"checksum":"0cc175b9c0f1b6a831c399e269772661"},
		"ok.R":{"checksum":"9dd4e461268c8034f5c8564e155c67a6"},
		"gone.R":{"checksum":"0cc175b9c0f1b6a831c399e269772661"},
		"link.R":{"checksum":"0cc175b9c0f1b6a831c399e269772661"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	err = m.VerifyFiles(dir)
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("VerifyFiles = %v; want ErrChecksum", err)
	}
	for _, want := range []string{"app.R: md5", "gone.R: missing", "link.R:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "ok.R") {
		t.Errorf("error %q names the good file", err)
	}
}
