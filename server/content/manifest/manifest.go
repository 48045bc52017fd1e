// Package manifest reads and validates the manifest.json of a bundle, as
// written by rsconnect (R, 0.8.x: `rsconnect::writeManifest()`) and
// rsconnect-python (`rsconnect write-manifest`).
//
// Use:
//
//	m, err := manifest.Read(bundleDir)   // parse + Validate
//	err = m.VerifyFiles(bundleDir)       // md5 of every listed file
//	switch m.Metadata.AppMode.Kind() { case manifest.KindApp: ... }
//
// The reader is lenient where the clients differ (R writes null for unset
// strings and for empty package lists, jsonlite may write one-element
// arrays) and strict where dais would otherwise misbehave: an unknown
// appmode, a Python mode without python.version, a document without its
// primary file.
package manifest

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
)

// FileName is the manifest's name at the top of a bundle.
const FileName = "manifest.json"

// ErrUnknownAppMode is returned (wrapped) for an appmode dais does not know.
var ErrUnknownAppMode = errors.New("unknown appmode")

// ErrChecksum is returned (wrapped) when a file does not match the manifest.
var ErrChecksum = errors.New("file does not match its manifest checksum")

// AppMode is metadata.appmode.
type AppMode string

// The app modes of Posit Connect.
const (
	Shiny                AppMode = "shiny"
	RMarkdownShiny       AppMode = "rmd-shiny"
	Plumber              AppMode = "api"
	RMarkdownStatic      AppMode = "rmd-static"
	Static               AppMode = "static"
	QuartoStatic         AppMode = "quarto-static"
	QuartoShiny          AppMode = "quarto-shiny"
	JupyterStatic        AppMode = "jupyter-static"
	JupyterVoila         AppMode = "jupyter-voila"
	PythonAPI            AppMode = "python-api"
	PythonFastAPI        AppMode = "python-fastapi"
	PythonDash           AppMode = "python-dash"
	PythonStreamlit      AppMode = "python-streamlit"
	PythonShiny          AppMode = "python-shiny"
	PythonBokeh          AppMode = "python-bokeh"
	PythonGradio         AppMode = "python-gradio"
	TensorFlowSavedModel AppMode = "tensorflow-saved-model"
)

// Kind says how dais serves content of an app mode.
type Kind int

const (
	// KindStatic is served from the bundle by dais itself.
	KindStatic Kind = iota
	// KindDocument is rendered (on deploy and on demand); the output is served.
	KindDocument
	// KindApp runs in a process pool behind the proxy.
	KindApp
)

func (k Kind) String() string {
	return [...]string{"static", "document", "app"}[k]
}

// Language is the runtime an app mode needs (several for some).
type Language string

const (
	LangR      Language = "R"
	LangPython Language = "Python"
	LangQuarto Language = "Quarto"
)

type modeInfo struct {
	kind  Kind
	langs []Language
}

var modes = map[AppMode]modeInfo{
	Shiny:                {KindApp, []Language{LangR}},
	RMarkdownShiny:       {KindApp, []Language{LangR}},
	Plumber:              {KindApp, []Language{LangR}},
	RMarkdownStatic:      {KindDocument, []Language{LangR}},
	Static:               {KindStatic, nil},
	QuartoStatic:         {KindDocument, []Language{LangQuarto}},
	QuartoShiny:          {KindApp, []Language{LangQuarto, LangR}},
	JupyterStatic:        {KindDocument, []Language{LangPython}},
	JupyterVoila:         {KindApp, []Language{LangPython}},
	PythonAPI:            {KindApp, []Language{LangPython}},
	PythonFastAPI:        {KindApp, []Language{LangPython}},
	PythonDash:           {KindApp, []Language{LangPython}},
	PythonStreamlit:      {KindApp, []Language{LangPython}},
	PythonShiny:          {KindApp, []Language{LangPython}},
	PythonBokeh:          {KindApp, []Language{LangPython}},
	PythonGradio:         {KindApp, []Language{LangPython}},
	TensorFlowSavedModel: {KindApp, []Language{LangPython}},
}

// AppModes lists the known app modes, sorted.
func AppModes() []AppMode {
	out := make([]AppMode, 0, len(modes))
	for m := range modes {
		out = append(out, m)
	}
	slices.Sort(out)
	return out
}

// Known reports whether dais knows the app mode.
func (m AppMode) Known() bool { _, ok := modes[m]; return ok }

// Kind says whether the mode is static, a document or an app.
func (m AppMode) Kind() Kind { return modes[m].kind }

// Languages lists the runtimes the mode needs; a quarto-static bundle
// may need R or Python as well, see Manifest.Languages.
func (m AppMode) Languages() []Language { return slices.Clone(modes[m].langs) }

// Manifest is manifest.json.
type Manifest struct {
	Version  int         `json:"version"`
	Locale   Str         `json:"locale"`
	Platform Str         `json:"platform"` // the R version the bundle was written with, "4.2.2"
	Metadata Metadata    `json:"metadata"`
	Python   *PythonInfo `json:"python,omitempty"`
	Quarto   *QuartoInfo `json:"quarto,omitempty"`
	Jupyter  *Jupyter    `json:"jupyter,omitempty"`
	// Packages are the R packages, by name (R only; null or [] when none).
	Packages Packages `json:"packages"`
	// Files are the bundle's files, by slash path relative to the bundle.
	Files Files `json:"files"`
}

// Metadata is the manifest's metadata object.
type Metadata struct {
	AppMode AppMode `json:"appmode"`
	// Entrypoint is "module:object" or "module" for Python apps ("app:app";
	// the object defaults to "app"), the notebook for jupyter-static.
	Entrypoint      Str  `json:"entrypoint"`
	PrimaryRmd      Str  `json:"primary_rmd"`
	PrimaryHTML     Str  `json:"primary_html"`
	ContentCategory Str  `json:"content_category"`
	HasParameters   bool `json:"has_parameters"`
}

// PythonInfo is the manifest's python object.
type PythonInfo struct {
	Version        Str            `json:"version"`
	PackageManager PackageManager `json:"package_manager"`
}

// PackageManager is python.package_manager.
type PackageManager struct {
	Name        Str `json:"name"`         // "pip"
	Version     Str `json:"version"`      // pip's version
	PackageFile Str `json:"package_file"` // default "requirements.txt"
}

// QuartoInfo is the manifest's quarto object.
type QuartoInfo struct {
	Version Str      `json:"version"`
	Engines []string `json:"engines"` // "markdown", "knitr", "jupyter"
}

// Jupyter is the manifest's jupyter object (rsconnect-python).
type Jupyter struct {
	HideAllInput    bool `json:"hide_all_input"`
	HideTaggedInput bool `json:"hide_tagged_input"`
}

// Package is one R package of the manifest.
type Package struct {
	Source      Str               `json:"Source"`     // "CRAN", "Bioconductor", "github", ...
	Repository  Str               `json:"Repository"` // the repository URL, often null
	Description map[string]string `json:"-"`
}

// Version is description.Version.
func (p Package) Version() string { return p.Description["Version"] }

// UnmarshalJSON keeps the string fields of description and skips the rest.
func (p *Package) UnmarshalJSON(b []byte) error {
	var raw struct {
		Source      Str                        `json:"Source"`
		Repository  Str                        `json:"Repository"`
		Description map[string]json.RawMessage `json:"description"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	p.Source, p.Repository = raw.Source, raw.Repository
	p.Description = map[string]string{}
	for k, v := range raw.Description {
		var s Str
		if json.Unmarshal(v, &s) == nil {
			p.Description[k] = string(s)
		}
	}
	return nil
}

// Packages maps R package names to their descriptions.
type Packages map[string]Package

// UnmarshalJSON accepts an object, null or an empty array (R's jsonlite
// writes [] for an empty named list).
func (p *Packages) UnmarshalJSON(b []byte) error {
	if isEmpty(b) {
		*p = nil
		return nil
	}
	m := map[string]Package{}
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*p = m
	return nil
}

// Names returns the package names, sorted.
func (p Packages) Names() []string {
	out := make([]string, 0, len(p))
	for n := range p {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// File is one entry of files.
type File struct {
	Checksum Str `json:"checksum"` // md5, hex
}

// Files maps slash paths to files.
type Files map[string]File

// UnmarshalJSON accepts an object, null or an empty array.
func (f *Files) UnmarshalJSON(b []byte) error {
	if isEmpty(b) {
		*f = nil
		return nil
	}
	m := map[string]File{}
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*f = m
	return nil
}

func isEmpty(b []byte) bool {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return true
	}
	if len(b) >= 2 && b[0] == '[' && len(bytes.TrimSpace(b[1:len(b)-1])) == 0 {
		return true
	}
	return false
}

// Str is a string that also reads null (as ""), a one-element array, a
// number or a boolean, since R's jsonlite writes all of them.
type Str string

// UnmarshalJSON implements the leniency.
func (s *Str) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || bytes.Equal(b, []byte("null")):
		*s = ""
	case b[0] == '"':
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = Str(v)
	case b[0] == '[':
		var v []Str
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		switch len(v) {
		case 0:
			*s = ""
		case 1:
			*s = v[0]
		default:
			return fmt.Errorf("want one string, got %d", len(v))
		}
	case b[0] == '{':
		return errors.New("want a string, got an object")
	default: // number, true, false
		*s = Str(b)
	}
	return nil
}

func (s Str) String() string { return string(s) }

// Parse decodes and validates manifest.json.
func Parse(data []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w; regenerate it with rsconnect::writeManifest() or rsconnect write-manifest", FileName, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Read reads dir/manifest.json, through an os.Root so a manifest.json
// link cannot point outside the bundle.
func Read(dir string) (*Manifest, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open bundle: %w", err)
	}
	defer root.Close()
	b, err := root.ReadFile(FileName)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("bundle has no %s at its top; deploy with rsconnect, or write one with rsconnect::writeManifest() or rsconnect write-manifest", FileName)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", FileName, err)
	}
	return Parse(b)
}

// Validate checks what dais relies on.
func (m *Manifest) Validate() error {
	mode := m.Metadata.AppMode
	if mode == "" {
		return fmt.Errorf("%s: metadata.appmode is missing; known app modes: %s", FileName, joinModes())
	}
	if !mode.Known() {
		return fmt.Errorf("%s: %w %q; known app modes: %s", FileName, ErrUnknownAppMode, mode, joinModes())
	}
	for name := range m.Files {
		if name == "" || strings.HasPrefix(name, "/") || slices.Contains(strings.Split(name, "/"), "..") {
			return fmt.Errorf("%s: files: %q is not a path inside the bundle", FileName, name)
		}
	}
	if slices.Contains(m.Languages(), LangPython) {
		if m.Python == nil || m.Python.Version == "" {
			return fmt.Errorf("%s: app mode %s needs python.version; regenerate the manifest with rsconnect-python", FileName, mode)
		}
	}
	switch mode {
	case RMarkdownStatic, RMarkdownShiny:
		if m.PrimaryDocument(".rmd") == "" {
			return fmt.Errorf("%s: app mode %s needs metadata.primary_rmd (or exactly one .Rmd file); deploy with appPrimaryDoc set", FileName, mode)
		}
	case JupyterStatic, JupyterVoila:
		if m.Metadata.Entrypoint == "" && m.PrimaryDocument(".ipynb") == "" {
			return fmt.Errorf("%s: app mode %s needs metadata.entrypoint naming the notebook", FileName, mode)
		}
	}
	// The file that starts the app must be in the bundle (checked when the
	// manifest lists files, as both clients' manifests do).
	if len(m.Files) > 0 {
		var want []string
		switch mode {
		case Shiny:
			want = []string{"app.R", "server.R"}
		case Plumber:
			want = []string{"plumber.R", "entrypoint.R"}
		case PythonAPI, PythonFastAPI, PythonDash, PythonShiny, PythonGradio:
			module, _ := m.PythonEntrypoint()
			p := strings.ReplaceAll(module, ".", "/")
			want = []string{p + ".py", p + "/__init__.py"}
		}
		if len(want) > 0 && !slices.ContainsFunc(want, func(f string) bool { _, ok := m.Files[f]; return ok }) {
			return fmt.Errorf("%s: app mode %s needs %s in the bundle; it lists none of them (check metadata.entrypoint, or the files you deploy)",
				FileName, mode, strings.Join(want, " or "))
		}
	}
	return nil
}

func joinModes() string {
	var s []string
	for _, m := range AppModes() {
		s = append(s, string(m))
	}
	return strings.Join(s, ", ")
}

// Languages lists the runtimes the bundle needs: those of its app mode,
// plus, for Quarto, R when there are R packages or the knitr engine and
// Python when there is a python section or the jupyter engine.
func (m *Manifest) Languages() []Language {
	langs := m.Metadata.AppMode.Languages()
	if m.Metadata.AppMode == QuartoStatic || m.Metadata.AppMode == QuartoShiny {
		if len(m.Packages) > 0 || (m.Quarto != nil && slices.Contains(m.Quarto.Engines, "knitr")) {
			if !slices.Contains(langs, LangR) {
				langs = append(langs, LangR)
			}
		}
		if m.Python != nil || (m.Quarto != nil && slices.Contains(m.Quarto.Engines, "jupyter")) {
			langs = append(langs, LangPython)
		}
	}
	return langs
}

// PrimaryDocument is the document to render or serve: metadata.primary_rmd,
// primary_html or entrypoint when set and it ends in ext (".rmd", ".html",
// ".ipynb", ".qmd"; compared case-insensitively), else the only listed
// file ending in ext at the top of the bundle, else "".
func (m *Manifest) PrimaryDocument(ext string) string {
	for _, c := range []Str{m.Metadata.PrimaryRmd, m.Metadata.PrimaryHTML, m.Metadata.Entrypoint} {
		if c != "" && strings.HasSuffix(strings.ToLower(string(c)), ext) {
			return string(c)
		}
	}
	found := ""
	for name := range m.Files {
		if !strings.Contains(name, "/") && strings.HasSuffix(strings.ToLower(name), ext) {
			if found != "" {
				return ""
			}
			found = name
		}
	}
	return found
}

// PythonEntrypoint splits metadata.entrypoint into module and object:
// "app" -> ("app", "app"), "api.main:server" -> ("api.main", "server").
// Empty means "app:app".
func (m *Manifest) PythonEntrypoint() (module, object string) {
	ep := string(m.Metadata.Entrypoint)
	if ep == "" {
		return "app", "app"
	}
	module, object, ok := strings.Cut(ep, ":")
	if !ok || object == "" {
		object = "app"
	}
	return module, object
}

// PackageFile is python.package_manager.package_file, default "requirements.txt".
func (m *Manifest) PackageFile() string {
	if m.Python != nil && m.Python.PackageManager.PackageFile != "" {
		return string(m.Python.PackageManager.PackageFile)
	}
	return "requirements.txt"
}

// VerifyFiles checks that every file listed in the manifest is in dir
// and, when the manifest has a checksum for it, that its md5 matches. The
// error lists up to five files at fault.
func (m *Manifest) VerifyFiles(dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("open bundle: %w", err)
	}
	defer root.Close()
	var bad []string
	names := make([]string, 0, len(m.Files))
	for n := range m.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		want := strings.ToLower(string(m.Files[name].Checksum))
		got, err := md5File(root, path.Clean(name))
		switch {
		case errors.Is(err, os.ErrNotExist):
			bad = append(bad, fmt.Sprintf("%s: missing from the bundle", name))
		case err != nil:
			bad = append(bad, fmt.Sprintf("%s: %v", name, err))
		case want != "" && got != want:
			bad = append(bad, fmt.Sprintf("%s: md5 %s, manifest says %s", name, got, want))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	more := ""
	if len(bad) > 5 {
		more = fmt.Sprintf(" (and %d more)", len(bad)-5)
		bad = bad[:5]
	}
	return fmt.Errorf("%w: %s%s; the bundle changed after its manifest was written, regenerate the manifest and deploy again", ErrChecksum, strings.Join(bad, "; "), more)
}

func md5File(root *os.Root, name string) (string, error) {
	f, err := root.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", errors.New("not a regular file")
	}
	h := md5.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
