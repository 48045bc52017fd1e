package packaging_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dais-dev/dais/packaging"
)

func TestDebianVersion(t *testing.T) {
	at := time.Date(2026, 12, 5, 12, 32, 29, 0, time.UTC)
	for _, tc := range []struct{ describe, want string }{
		{"v1.2.0", "1.2.0"},
		{"1.2.0", "1.2.0"},
		{"v1.2.0-3-gabcdef0", "1.2.0+3.gabcdef0"},
		{"v1.2.0-3-gabcdef0-dirty", "1.2.0+3.gabcdef0.dirty"},
		{"2f04e62", "0.0~git20261205123229.2f04e62"},
		{"2f04e62-dirty", "0.0~git20261205123229.2f04e62.dirty"},
		{"dev", "0.0~git20261205123229.dev"},
	} {
		if got := packaging.DebianVersion(tc.describe, at); got != tc.want {
			t.Errorf("DebianVersion(%q) = %q, want %q", tc.describe, got, tc.want)
		}
	}
	// Untagged builds sort by commit time, as dpkg compares them.
	older := packaging.DebianVersion("ffffff0", at)
	newer := packaging.DebianVersion("0000000", at.Add(time.Second))
	if err := exec.Command("dpkg", "--compare-versions", older, "lt", newer).Run(); err != nil {
		if _, lerr := exec.LookPath("dpkg"); lerr != nil {
			t.Skip("no dpkg")
		}
		t.Errorf("dpkg: %s is not older than %s", older, newer)
	}
}

func need(t *testing.T, tool, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found (CI=true: apt-get install %s; scripts/test-env.sh does)", tool, pkg)
		}
		t.Skipf("%s not found (apt-get install %s)", tool, pkg)
	}
}

// buildBinaries builds the three programs the package holds.
func buildBinaries(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, args := range map[string][]string{
		"dais":              {"../server"},
		"dais-init":         {"../entrypoint"},
		"dais-sandbox-exec": {"-tags", "dais_sandbox_exec", "../server/sandbox/cmd/dais-sandbox-exec"},
	} {
		cmd := exec.Command("go", append([]string{"build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(dir, name)}, args...)...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
	return dir
}

// The package as dpkg sees it, and lintian without errors.
func TestPackage(t *testing.T) {
	need(t, "dpkg-deb", "dpkg")
	need(t, "lintian", "lintian")
	out := t.TempDir()
	deb, err := packaging.Build(packaging.Options{Root: "..", BinDir: buildBinaries(t), Version: "1.2.0+3.gabcdef0"}, out)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(deb) != "dais_1.2.0+3.gabcdef0_amd64.deb" {
		t.Errorf("file %s", deb)
	}
	field := func(name string) string {
		b, err := exec.Command("dpkg-deb", "-f", deb, name).Output()
		if err != nil {
			t.Fatalf("dpkg-deb -f %s: %v", name, err)
		}
		return strings.TrimSpace(string(b))
	}
	for name, want := range map[string]string{
		"Package":      "dais",
		"Version":      "1.2.0+3.gabcdef0",
		"Architecture": "amd64",
		"Depends":      "adduser, slirp4netns",
	} {
		if got := field(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	for _, want := range []string{"r-base-core", "python3"} {
		if !regexp.MustCompile(`(^|, )` + want + `(,|$)`).MatchString(field("Recommends")) {
			t.Errorf("Recommends %q lacks %s", field("Recommends"), want)
		}
	}

	ctrl := t.TempDir()
	if b, err := exec.Command("dpkg-deb", "-e", deb, ctrl).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -e: %v %s", err, b)
	}
	conffiles, _ := os.ReadFile(filepath.Join(ctrl, "conffiles"))
	if strings.TrimSpace(string(conffiles)) != packaging.ConfPath {
		t.Errorf("conffiles = %q, want %s", conffiles, packaging.ConfPath)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		if fi, err := os.Stat(filepath.Join(ctrl, s)); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("maintainer script %s: %v", s, err)
		}
	}

	list, err := exec.Command("dpkg-deb", "-c", deb).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`-rwxr-xr-x root/root .* \./opt/dais/bin/dais\n`,
		`-rwxr-xr-x root/root .* \./opt/dais/bin/dais-init\n`,
		`-rwxr-xr-x root/root .* \./opt/dais/bin/dais-sandbox-exec\n`,
		`-rw-r--r-- root/root .* \./lib/systemd/system/dais\.service\n`,
		`-rw------- root/root .* \./etc/rstudio-connect/rstudio-connect\.gcfg\n`,
		`\./usr/bin/dais -> /opt/dais/bin/dais\n`,
		`\./usr/share/doc/dais/copyright\n`,
	} {
		if !regexp.MustCompile(want).Match(list) {
			t.Errorf("package lacks %s:\n%s", want, list)
		}
	}
	// The data directory is not in the package: postinst makes it, and
	// removing the package leaves it.
	if strings.Contains(string(list), "var/lib/rstudio-connect") {
		t.Errorf("the package holds the data directory:\n%s", list)
	}

	// lintian: no error (the warnings left are explained in docs/install.md).
	lint := exec.Command("lintian", "--fail-on", "error", "--no-tag-display-limit", deb)
	b, err := lint.CombinedOutput()
	if err != nil {
		t.Errorf("lintian: %v\n%s", err, b)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "W: ") && !strings.Contains(line, "no-manual-page") && !strings.Contains(line, "non-standard-file-perm 0600 != 0644 [etc/rstudio-connect/rstudio-connect.gcfg]") {
			t.Errorf("lintian warning not explained in docs/install.md: %s", line)
		}
	}
}

// make install (hosts without the package) lays out what the package
// does, with the same unit; DESTDIR keeps it off this machine's /.
func TestMakeInstall(t *testing.T) {
	need(t, "make", "make")
	dest, bin := t.TempDir(), t.TempDir()
	cmd := exec.Command("make", "-C", "..", "install", "DESTDIR="+dest, "BIN="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for path, mode := range map[string]os.FileMode{
		packaging.BinDir + "/dais":              0o755,
		packaging.BinDir + "/dais-init":         0o755,
		packaging.BinDir + "/dais-sandbox-exec": 0o755,
		"/etc/systemd/system/dais.service":      0o644,
		packaging.ConfPath:                      0o600,
	} {
		fi, err := os.Stat(filepath.Join(dest, path))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v, want mode %o", path, err, mode)
		}
	}
	for _, pair := range [][2]string{
		{"../systemd/dais.service", "/etc/systemd/system/dais.service"},
		{"deb/rstudio-connect.gcfg", packaging.ConfPath},
	} {
		a, _ := os.ReadFile(pair[0])
		b, _ := os.ReadFile(filepath.Join(dest, pair[1]))
		if len(a) == 0 || string(a) != string(b) {
			t.Errorf("%s is not %s", pair[1], pair[0])
		}
	}
	// An existing configuration is kept.
	conf := filepath.Join(dest, packaging.ConfPath)
	if err := os.WriteFile(conf, []byte("[Server]\nPublicWarning = mine\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("make", "-C", "..", "install", "DESTDIR="+dest, "BIN="+bin).CombinedOutput(); err != nil {
		t.Fatalf("make install again: %v\n%s", err, out)
	}
	if b, _ := os.ReadFile(conf); !strings.Contains(string(b), "mine") {
		t.Errorf("make install replaced the configuration: %s", b)
	}
}
