// Package packaging builds dais's Debian package with nfpm: the three
// binaries under /opt/dais/bin, the systemd unit, the default configuration
// as a conffile and the maintainer scripts of packaging/deb (docs/install.md
// says what each does).
package packaging

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

// Paths on the installed system.
const (
	BinDir   = "/opt/dais/bin"
	UnitPath = "/lib/systemd/system/dais.service"
	ConfPath = "/etc/rstudio-connect/rstudio-connect.gcfg"
	DataDir  = "/var/lib/rstudio-connect"
)

// Binaries are installed from Options.BinDir into BinDir.
var Binaries = []string{"dais", "dais-init", "dais-sandbox-exec"}

// Depends are what dais cannot run content without, given the default
// configuration: adduser for the postinst, slirp4netns for content's
// outbound network (Applications.OutboundNetwork, on by default).
var Depends = []string{"adduser", "slirp4netns"}

// Recommends are what most sites want: R and Python run content (dais
// starts without them and names the missing one when content needs it),
// git serves git-backed content.
var Recommends = []string{"r-base-core", "python3", "python3-venv", "python3-pip", "git", "ca-certificates"}

// Suggests are the packages the image has for common content types, and
// PostgreSQL's client for dais backup with Database.Provider = postgres.
var Suggests = []string{
	"r-cran-shiny", "r-cran-plumber", "r-cran-rmarkdown", "pandoc",
	"python3-flask", "python3-fastapi", "python3-uvicorn", "gunicorn",
	"jupyter-nbconvert", "python3-ipykernel", "postgresql-client",
}

// Options say what to package.
type Options struct {
	// Root is the repository (packaging/deb, systemd/dais.service).
	Root string
	// BinDir holds the built binaries (Binaries).
	BinDir string
	// Version is the Debian version, e.g. 0.3.0 or 0.0~git20261205.2f04e62
	// (DebianVersion turns a git describe into one).
	Version string
	// Arch is the Debian architecture; default amd64.
	Arch string
	// Date stamps the changelog and the files (reproducible builds);
	// default SOURCE_DATE_EPOCH or now.
	Date time.Time
}

var debVersion = regexp.MustCompile(`^([0-9]+:)?[0-9][A-Za-z0-9.+~-]*$`)

// DebianVersion turns the version make stamps into the binaries (git
// describe: v1.2.0, v1.2.0-3-gabcdef0, abcdef0, abcdef0-dirty) into a Debian
// version that sorts the same way: 1.2.0, 1.2.0+3.gabcdef0, and for a tree
// without tags 0.0~git<commit time>.abcdef0.
func DebianVersion(describe string, commitTime time.Time) string {
	v := strings.TrimPrefix(describe, "v")
	v = strings.ReplaceAll(v, "-", "+")
	if v != "" && v[0] >= '0' && v[0] <= '9' && !regexp.MustCompile(`^[0-9a-f]{7,40}(\+dirty)?$`).MatchString(v) {
		if i := strings.Index(v, "+"); i >= 0 {
			v = v[:i+1] + strings.ReplaceAll(v[i+1:], "+", ".")
		}
		return v
	}
	return "0.0~git" + commitTime.UTC().Format("20060102150405") + "." + strings.ReplaceAll(v, "+", ".")
}

// Info is the nfpm description of the package.
func Info(o Options) (*nfpm.Info, error) {
	if !debVersion.MatchString(o.Version) {
		return nil, fmt.Errorf("version %q is not a Debian version (digits first; letters, digits and .+~ after)", o.Version)
	}
	if o.Arch == "" {
		o.Arch = "amd64"
	}
	if o.Date.IsZero() {
		o.Date = time.Now()
	}
	o.Date = o.Date.UTC().Truncate(time.Second)
	src := func(p ...string) string { return filepath.Join(append([]string{o.Root}, p...)...) }
	for _, b := range Binaries {
		if _, err := os.Stat(filepath.Join(o.BinDir, b)); err != nil {
			return nil, fmt.Errorf("binary %s: %w (run make build)", b, err)
		}
	}
	fi := func(mode os.FileMode) *files.ContentFileInfo {
		return &files.ContentFileInfo{Owner: "root", Group: "root", Mode: mode, MTime: o.Date}
	}
	contents := files.Contents{
		{Source: src("systemd", "dais.service"), Destination: UnitPath, FileInfo: fi(0o644)},
		// Type config: a conffile; 0600: it may hold the PostgreSQL password.
		{Source: src("packaging", "deb", "rstudio-connect.gcfg"), Destination: ConfPath, Type: files.TypeConfig, FileInfo: fi(0o600)},
		{Source: src("packaging", "deb", "copyright"), Destination: "/usr/share/doc/dais/copyright", FileInfo: fi(0o644)},
		{Source: src("packaging", "deb", "lintian-overrides"), Destination: "/usr/share/lintian/overrides/dais", FileInfo: fi(0o644)},
		// `dais purge`, `dais users add` ... on the PATH.
		{Source: BinDir + "/dais", Destination: "/usr/bin/dais", Type: files.TypeSymlink},
	}
	for _, b := range Binaries {
		contents = append(contents, &files.Content{Source: filepath.Join(o.BinDir, b), Destination: BinDir + "/" + b, FileInfo: fi(0o755)})
	}
	// The changelog Debian policy asks every package for, gzip-compressed
	// without a timestamp.
	cl, err := changelog(o)
	if err != nil {
		return nil, err
	}
	contents = append(contents, &files.Content{Source: cl, Destination: "/usr/share/doc/dais/changelog.gz", FileInfo: fi(0o644)})

	info := &nfpm.Info{
		Name:          "dais",
		Arch:          o.Arch,
		Platform:      "linux",
		Version:       o.Version,
		VersionSchema: "none",
		Section:       "web",
		Priority:      "optional",
		Maintainer:    "dais developers <dais-dev@users.noreply.github.com>",
		Homepage:      "https://github.com/dais-dev/dais",
		Description: "publishing server for R and Python content, Posit Connect compatible\n" +
			"dais serves Shiny apps, Plumber, Flask and FastAPI APIs, R Markdown,\n" +
			"Jupyter and Quarto documents published with the rsconnect clients. It\n" +
			"reads Posit Connect's configuration format (rstudio-connect.gcfg) and\n" +
			"speaks its deployment API. Each content process runs sandboxed as the\n" +
			"rstudio-connect user.\n" +
			"\n" +
			"This package installs the server under /opt/dais, the dais.service\n" +
			"systemd unit, and /etc/rstudio-connect/rstudio-connect.gcfg.",
		MTime: o.Date,
		Overridables: nfpm.Overridables{
			Depends:    Depends,
			Recommends: Recommends,
			Suggests:   Suggests,
			Contents:   contents,
			Umask:      0o022,
			Scripts: nfpm.Scripts{
				PostInstall: src("packaging", "deb", "postinst"),
				PreRemove:   src("packaging", "deb", "prerm"),
				PostRemove:  src("packaging", "deb", "postrm"),
			},
			// gzip: unpacks four times faster than xz (0.2 s of CPU
			// against 0.8 s for these 28 MB of binaries), and on an
			// upgrade that is downtime, for 14% more bytes. zstd would be
			// faster still, but Debian 12's lintian calls it a malformed archive.
			Deb: nfpm.Deb{Compression: "gzip"},
		},
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return nil, fmt.Errorf("package contents: %w", err)
	}
	return info, nil
}

// changelog writes a one-entry Debian changelog for o.Version into a
// temporary file and returns its path.
func changelog(o Options) (string, error) {
	text := fmt.Sprintf("dais (%s) unstable; urgency=medium\n\n"+
		"  * Built from the dais repository; its git log has the changes.\n\n"+
		" -- dais developers <dais-dev@users.noreply.github.com>  %s\n",
		o.Version, o.Date.Format("Mon, 02 Jan 2006 15:04:05 -0700"))
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, gzip.BestCompression)
	if err != nil {
		return "", err
	}
	// No name and no time in the header: the same input gives the same file.
	if _, err := io.WriteString(zw, text); err != nil {
		return "", err
	}
	if err := zw.Close(); err != nil {
		return "", err
	}
	f, err := os.CreateTemp("", "dais-changelog-*.gz")
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := f.Write(b.Bytes()); err != nil {
		return "", err
	}
	return f.Name(), nil
}

// FileName is the conventional name of the package file.
func FileName(o Options) string {
	arch := o.Arch
	if arch == "" {
		arch = "amd64"
	}
	v := o.Version
	if i := strings.Index(v, ":"); i >= 0 {
		v = v[i+1:]
	}
	return fmt.Sprintf("dais_%s_%s.deb", v, arch)
}

// Build writes the package for o into dir and returns its path.
func Build(o Options, dir string) (string, error) {
	info, err := Info(o)
	if err != nil {
		return "", err
	}
	for _, c := range info.Contents {
		if strings.HasPrefix(filepath.Base(c.Source), "dais-changelog-") {
			defer os.Remove(c.Source)
		}
	}
	out := filepath.Join(dir, FileName(o))
	tmp, err := os.CreateTemp(dir, ".dais-deb-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if err := deb.Default.Package(info, tmp); err != nil {
		tmp.Close()
		return "", fmt.Errorf("build %s: %w", out, err)
	}
	if err := errors.Join(tmp.Chmod(0o644), tmp.Close()); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", err
	}
	return out, nil
}
