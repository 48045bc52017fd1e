package config

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files, the fuzz seed corpus and docs/configuration.md")

// readEnv reads a testdata .env file: KEY=VALUE lines, # comments.
func readEnv(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if line := sc.Text(); line != "" && !strings.HasPrefix(line, "#") {
			env = append(env, line)
		}
	}
	return env
}

// describe is what a golden file holds: everything Load tells about an input.
func describe(l *Loaded, err error) string {
	var b strings.Builder
	var pe *ProblemsError
	switch {
	case errors.As(err, &pe):
		b.WriteString("== warnings\n")
		for _, w := range pe.Warnings {
			b.WriteString(w + "\n")
		}
		b.WriteString("== problems\n")
		for _, p := range pe.Problems {
			b.WriteString(p + "\n")
		}
		return b.String()
	case err != nil:
		return "== error\n" + err.Error() + "\n"
	}
	b.WriteString("== warnings\n")
	for _, w := range l.Warnings {
		b.WriteString(w + "\n")
	}
	fmt.Fprintf(&b, "== files\n%s\n== consumed env\n%s\n== config print\n", strings.Join(l.Files, "\n"), strings.Join(l.ConsumedEnv, "\n"))
	if err := l.Print(&b); err != nil {
		return err.Error()
	}
	return b.String()
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./server/config -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test ./server/config -update rewrites it)\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// TestGolden loads every testdata/NAME.gcfg (with testdata/NAME.env as the
// environment, and NAME-migration.gcfg beside it) and compares what Load
// reports with testdata/NAME.golden.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.gcfg")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, "-migration.gcfg") {
			continue
		}
		n++
		name := strings.TrimSuffix(filepath.Base(f), ".gcfg")
		t.Run(name, func(t *testing.T) {
			env := readEnv(t, "testdata/"+name+".env")
			l, err := Load(f, env)
			checkGolden(t, "testdata/"+name+".golden", describe(l, err))
			if *update {
				writeSeed(t, name, f, env)
			}
			if err != nil {
				return
			}
			// Whatever loads must render to a file that loads back the same.
			roundTrip(t, l.Config)
		})
	}
	if n < 10 {
		t.Fatalf("only %d golden cases found", n)
	}
}

// writeSeed adds a golden case to the fuzz seed corpus.
func writeSeed(t *testing.T, name, path string, env []string) {
	t.Helper()
	main, _ := os.ReadFile(path)
	mig, _ := os.ReadFile(MigrationPath(path))
	dir := "testdata/fuzz/FuzzLoad"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf("go test fuzz v1\nstring(%q)\nstring(%q)\nstring(%q)\n", main, mig, strings.Join(env, "\n"))
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func roundTrip(t *testing.T, cfg *Config) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "effective.gcfg")
	if err := WriteFileAtomic(p, Render(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Load(p, nil)
	if err != nil {
		t.Fatalf("rendered config does not load: %v\n%s", err, Render(cfg))
	}
	if !reflect.DeepEqual(l.Config, cfg) {
		t.Fatalf("round trip changed the config\nrendered:\n%s\ngot  %+v\nwant %+v", Render(cfg), l.Config, cfg)
	}
	if len(l.Warnings) > 0 && !(cfg.Licensing.LicenseType == "remote" && cfg.Licensing.LicenseServer == "") {
		t.Errorf("rendered config has warnings: %q", l.Warnings)
	}
	if r, rr := Diff(cfg, l.Config); len(r)+len(rr) > 0 {
		t.Errorf("Diff after round trip: %v %v", r, rr)
	}
}

func TestAdminFileChecksClean(t *testing.T) {
	for _, tc := range []struct {
		env      []string
		warnings int
	}{
		{nil, 1}, // LicenseType = remote with no server yet: a warning, not an error
		{[]string{"RSC_LICENSE_SERVER=license:8999"}, 0},
	} {
		l, err := Load("testdata/admin.gcfg", tc.env)
		if err != nil {
			t.Fatalf("env %q: %v", tc.env, err)
		}
		if len(l.Warnings) != tc.warnings {
			t.Errorf("env %q: warnings %q, want %d", tc.env, l.Warnings, tc.warnings)
		}
		c := l.Config
		if c.Server.DataDir != "/data" || c.Database.Provider != "postgres" || c.Postgres.URL != "postgres://" ||
			c.Licensing.LicenseType != "remote" || c.HTTP.Listen != ":3939" || c.Server.SenderEmail != "" {
			t.Errorf("unexpected config %+v", c)
		}
	}
}

func TestEveryProblemListed(t *testing.T) {
	for _, tc := range []struct {
		file string
		n    int
	}{
		{"testdata/bad-types.gcfg", 9},
		{"testdata/bad-values.gcfg", 19},
		{"testdata/syntax.gcfg", 7},
	} {
		_, err := Load(tc.file, nil)
		var pe *ProblemsError
		if !errors.As(err, &pe) {
			t.Fatalf("%s: got %v, want a *ProblemsError", tc.file, err)
		}
		if len(pe.Problems) != tc.n {
			t.Errorf("%s: %d problems, want %d:\n%s", tc.file, len(pe.Problems), tc.n, strings.Join(pe.Problems, "\n"))
		}
		for _, p := range pe.Problems {
			if !strings.HasPrefix(p, tc.file+":") {
				t.Errorf("%s: problem does not name file:line: %q", tc.file, p)
			}
		}
	}
}

func TestMissingFile(t *testing.T) {
	_, err := Load("testdata/no-such.gcfg", nil)
	if err == nil || !strings.Contains(err.Error(), "no-such.gcfg") || !strings.Contains(err.Error(), "--config") {
		t.Fatalf("got %v, want an error naming the file and --config", err)
	}
	// No path: defaults and environment only.
	l, err := Load("", []string{"CONNECT_SERVER_DATADIR=/data"})
	if err != nil || l.Config.Server.DataDir != "/data" || len(l.Files) != 0 {
		t.Fatalf("Load(\"\"): %v %+v", err, l)
	}
}

func TestEnvRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		get  func(*Config) any
		want any
	}{
		{"scalar", []string{"CONNECT_HTTP_LISTEN=:8080"}, func(c *Config) any { return c.HTTP.Listen }, ":8080"},
		{"case after prefix", []string{"CONNECT_Http_listen=:8081"}, func(c *Config) any { return c.HTTP.Listen }, ":8081"},
		{"prefix is case-sensitive", []string{"connect_http_listen=:8082"}, func(c *Config) any { return c.HTTP.Listen }, ":3939"},
		{"list", []string{"CONNECT_QUARTO_EXECUTABLE=/a, /b"}, func(c *Config) any { return c.Quarto.Executable }, []string{"/a", "/b"}},
		{"empty list", []string{"CONNECT_QUARTO_EXECUTABLE="}, func(c *Config) any { return c.Quarto.Executable }, []string(nil)},
		{"literal value", []string{`CONNECT_SERVER_PUBLICWARNING="a\n;b"`}, func(c *Config) any { return c.Server.PublicWarning }, `"a\n;b"`},
		{"bool", []string{"CONNECT_R_ENABLED=no"}, func(c *Config) any { return c.R.Enabled }, false},
		{"int64", []string{"CONNECT_APPLICATIONS_BUNDLEMAXSIZE=10737418240"}, func(c *Config) any { return c.Applications.BundleMaxSize }, int64(10 << 30)},
		{"duration", []string{"CONNECT_SCHEDULER_IDLETIMEOUT=1h"}, func(c *Config) any { return c.Scheduler.IdleTimeout.Std() }, time.Hour},
		{"connection timeout", []string{"CONNECT_SCHEDULER_CONNECTIONTIMEOUT=30s"}, func(c *Config) any { return c.Scheduler.ConnectionTimeout.Std() }, 30 * time.Second},
		{"read timeout 0", []string{"CONNECT_SCHEDULER_READTIMEOUT=0"}, func(c *Config) any { return c.Scheduler.ReadTimeout.Std() }, time.Duration(0)},
		{"named subsection", []string{"CONNECT_RPACKAGEREPOSITORY_My_Repo_URL=https://x.example"},
			func(c *Config) any { return c.RPackageRepository["My_Repo"].URL }, "https://x.example"},
		{"RSC_LICENSE_SERVER", []string{"RSC_LICENSE_SERVER=lic:1"}, func(c *Config) any { return c.Licensing.LicenseServer }, "lic:1"},
		{"CONNECT_ wins over RSC_", []string{"CONNECT_LICENSING_LICENSESERVER=a:1", "RSC_LICENSE_SERVER=b:1"},
			func(c *Config) any { return c.Licensing.LicenseServer }, "a:1"},
		{"password", []string{"CONNECT_POSTGRES_PASSWORD=pw"}, func(c *Config) any { return c.Postgres.Password }, "pw"},
		{"first of duplicates", []string{"CONNECT_HTTP_LISTEN=:1", "CONNECT_HTTP_LISTEN=:2"}, func(c *Config) any { return c.HTTP.Listen }, ":1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Load("", tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.get(l.Config); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestConsumedEnv(t *testing.T) {
	l, err := Load("", []string{
		"CONNECT_POSTGRES_PASSWORD=pw", "RSC_LICENSE_SERVER=l:1", "CONNECT_API_KEY=k",
		"CONNECT_SERVER=https://x", "HOME=/root", "CONNECT_RPACKAGEREPOSITORY_CRAN_URL=https://cran.example",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"CONNECT_POSTGRES_PASSWORD", "CONNECT_RPACKAGEREPOSITORY_CRAN_URL", "RSC_LICENSE_SERVER"}
	if !reflect.DeepEqual(l.ConsumedEnv, want) {
		t.Errorf("ConsumedEnv = %q, want %q", l.ConsumedEnv, want)
	}
	if len(l.Warnings) != 2 {
		t.Errorf("want a warning for each of CONNECT_API_KEY and CONNECT_SERVER, got %q", l.Warnings)
	}
	if got := l.Origin("Postgres.Password"); got != "env CONNECT_POSTGRES_PASSWORD" {
		t.Errorf("Origin = %q", got)
	}
}

func TestMigrationPath(t *testing.T) {
	for in, want := range map[string]string{
		"/etc/rstudio-connect/rstudio-connect.gcfg": "/etc/rstudio-connect/rstudio-connect-migration.gcfg",
		"conf": "conf-migration.gcfg",
	} {
		if got := MigrationPath(in); got != want {
			t.Errorf("MigrationPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDiff(t *testing.T) {
	old := Defaults()
	nw := Defaults()
	nw.Server.PublicWarning = "x"
	nw.Scheduler.MaxProcesses = 9
	nw.Applications.BundleMaxFiles = 10
	nw.Logging.ServiceLogLevel = "DEBUG"
	nw.Server.StopTimeout = Duration(time.Minute * 2)
	nw.HTTP.Listen = ":1"
	nw.Database.Provider = "postgres"
	nw.R.Executable = []string{"/opt/R/4/bin/R"}
	nw.RPackageRepository = map[string]*RPackageRepository{"CRAN": {URL: "https://c"}}
	r, rr := Diff(old, nw)
	wantR := []string{"Server.PublicWarning", "Server.StopTimeout", "Applications.BundleMaxFiles", "Scheduler.MaxProcesses", "Logging.ServiceLogLevel"}
	wantRR := []string{"HTTP.Listen", "Database.Provider", "R.Executable", "RPackageRepository.CRAN.URL"}
	if !reflect.DeepEqual(r, wantR) || !reflect.DeepEqual(rr, wantRR) {
		t.Errorf("Diff = %q, %q; want %q, %q", r, rr, wantR, wantRR)
	}
	// nil and empty lists are the same list.
	a, b := Defaults(), Defaults()
	b.Python.Executable = []string{}
	if r, rr := Diff(a, b); len(r)+len(rr) != 0 {
		t.Errorf("Diff(nil list, empty list) = %q %q", r, rr)
	}
}

func TestReloadable(t *testing.T) {
	for key, want := range map[string]bool{
		"Server.PublicWarning": true, "server.loggedinwarning": true, "Server.StopTimeout": true,
		"Logging.ServiceLogLevel": true, "Logging.AccessLog": true, "Scheduler.IdleTimeout": true, "Scheduler.ConnectionTimeout": true, "Scheduler.ReadTimeout": true,
		"Scheduler.MinProcesses": true, "Server.DataDir": false, "HTTP.Listen": false,
		"Postgres.URL": false, "RPackageRepository.CRAN.URL": false, "Nope.Key": false, "Server": false,
	} {
		if got := Reloadable(key); got != want {
			t.Errorf("Reloadable(%q) = %v, want %v", key, got, want)
		}
	}
}

// TestKeysCoverStruct keeps the Keys table and the Config struct in step.
func TestKeysCoverStruct(t *testing.T) {
	ct := reflect.TypeOf(Config{})
	fields := map[string]bool{}
	for i := 0; i < ct.NumField(); i++ {
		sf := ct.Field(i)
		if strings.HasPrefix(sf.Name, "Default_") {
			continue // a named section's starting values, not a section
		}
		st := sf.Type
		if st.Kind() == reflect.Map {
			st = st.Elem().Elem()
		}
		for j := 0; j < st.NumField(); j++ {
			fields[sf.Name+"."+st.Field(j).Name] = true
		}
	}
	seen := map[string]bool{}
	for _, k := range Keys {
		if !fields[k.String()] {
			t.Errorf("key %s has no Config field", k)
		}
		if seen[k.String()] {
			t.Errorf("key %s listed twice", k)
		}
		seen[k.String()] = true
		if k.Doc == "" {
			t.Errorf("key %s has no Doc", k)
		}
		if !k.Named {
			_ = k.Default() // panics on a type formatValue does not know
		}
	}
	for f := range fields {
		if !seen[f] {
			t.Errorf("Config field %s is not in Keys", f)
		}
	}
}

func TestRedaction(t *testing.T) {
	l, err := Load("testdata/migration.gcfg", []string{"CONNECT_POSTGRES_PASSWORD=topsecret"})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := l.Print(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, secret := range []string{"topsecret", "hunter2"} {
		if strings.Contains(out, secret) {
			t.Errorf("config print shows %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "connect:xxxxx@db.example.com") || !strings.Contains(out, "Password = (redacted)") {
		t.Errorf("redacted values missing:\n%s", out)
	}
	// Render keeps secrets: the server reads them from the rendered file.
	if r := string(Render(l.Config)); !strings.Contains(r, "topsecret") || !strings.Contains(r, "hunter2") {
		t.Errorf("Render dropped a secret:\n%s", r)
	}
	cs, err := l.Config.Postgres.ConnString()
	if err != nil || cs != "postgres://connect:topsecret@db.example.com:5432/connect?sslmode=require" {
		t.Errorf("ConnString = %q, %v", cs, err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "rstudio-connect.gcfg")
	for _, data := range []string{"first\n", "second, longer than the first\n"} {
		if err := WriteFileAtomic(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || string(got) != data {
			t.Fatalf("read back %q, %v; want %q", got, err, data)
		}
		fi, _ := os.Stat(p)
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want 0600", fi.Mode().Perm())
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temporary files left behind: %v", ents)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "x"), nil, 0o600); err == nil {
		t.Error("write into a missing directory succeeded")
	}
}

// TestProxyTimeouts: Connect's defaults (1h), 0 (never) allowed, a bare
// number (nanoseconds) or more than a week refused naming the key.
func TestProxyTimeouts(t *testing.T) {
	d := Defaults().Scheduler
	if d.ConnectionTimeout.Std() != time.Hour || d.ReadTimeout.Std() != time.Hour {
		t.Errorf("defaults = %v, %v; want Connect's 1h, 1h", d.ConnectionTimeout, d.ReadTimeout)
	}
	for _, tc := range []struct {
		conn, read time.Duration
		bad        string
	}{
		{0, 0, ""},
		{time.Second, 7 * 24 * time.Hour, ""},
		{30, time.Hour, "Scheduler.ConnectionTimeout"},
		{time.Hour, 8 * 24 * time.Hour, "Scheduler.ReadTimeout"},
	} {
		c := Defaults()
		c.Server.DataDir = "/data"
		c.Scheduler.ConnectionTimeout, c.Scheduler.ReadTimeout = Duration(tc.conn), Duration(tc.read)
		err := c.Validate()
		if tc.bad == "" && err != nil {
			t.Errorf("%v, %v: %v", tc.conn, tc.read, err)
		}
		if tc.bad != "" && (err == nil || !strings.Contains(err.Error(), tc.bad)) {
			t.Errorf("%v, %v: Validate = %v, want %s refused", tc.conn, tc.read, err, tc.bad)
		}
	}
}

func TestValidateInCode(t *testing.T) {
	c := Defaults()
	c.Server.DataDir = "/data"
	c.Database.Provider = "SQLite"
	if err := c.Validate(); err != nil || c.Database.Provider != "sqlite" {
		t.Fatalf("Validate: %v, provider %q", err, c.Database.Provider)
	}
	c.Scheduler.MinProcesses = 5
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "MaxProcesses") {
		t.Fatalf("Validate = %v, want Min > Max refused", err)
	}
}

// TestShippedFiles checks the configuration files the repository ships (the
// image's default file) load with no problem and no warning.
func TestShippedFiles(t *testing.T) {
	files, _ := filepath.Glob("../../docker/*.gcfg")
	if len(files) == 0 {
		t.Skip("no docker/*.gcfg in this checkout")
	}
	for _, f := range files {
		l, err := Load(f, nil)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if len(l.Warnings) > 0 {
			t.Errorf("%s: warnings %q", f, l.Warnings)
		}
	}
}

// TestReference keeps docs/configuration.md equal to what the key table says,
// and the README's copy of it (spliced by scripts/readme.sh) equal to that.
func TestReference(t *testing.T) {
	checkGolden(t, "../../docs/configuration.md", string(Reference()))
	ref := regexp.MustCompile(`(?s)<!--.*?-->\n*`).ReplaceAllString(string(Reference()), "")
	ref = strings.TrimSpace(regexp.MustCompile(`(?m)^(#+) `).ReplaceAllString(ref, "#$1 "))
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "-->\n"+ref+"\n<!-- END docs/configuration.md -->") {
		t.Errorf("README.md's configuration reference is not docs/configuration.md's: run scripts/readme.sh")
	}
}

// FuzzLoad feeds arbitrary main file, migration file and environment (one
// KEY=VALUE a line) to the loader. It must never panic, and whatever loads
// must render to a file that loads back to the same configuration.
// The seed corpus (testdata/fuzz/FuzzLoad) runs in plain `go test`.
func FuzzLoad(f *testing.F) {
	f.Add("[Server]\nDataDir = /data\n", "", "CONNECT_HTTP_LISTEN=:80")
	f.Fuzz(func(t *testing.T, mainText, migText, envText string) {
		var mig *source
		if migText != "" {
			mig = &source{name: "f-migration.gcfg", src: []byte(migText)}
		}
		l, err := load(&source{name: "f.gcfg", src: []byte(mainText)}, mig, strings.Split(envText, "\n"))
		if err != nil {
			var pe *ProblemsError
			if !errors.As(err, &pe) || len(pe.Problems) == 0 {
				t.Fatalf("want a *ProblemsError with problems, got %v", err)
			}
			return
		}
		var b bytes.Buffer
		if err := l.Print(&b); err != nil {
			t.Fatal(err)
		}
		l2, err := load(&source{name: "rendered.gcfg", src: Render(l.Config)}, nil, nil)
		if err != nil {
			t.Fatalf("rendered config does not load: %v\n%s", err, Render(l.Config))
		}
		if !reflect.DeepEqual(l.Config, l2.Config) {
			t.Fatalf("round trip changed the config\n%s", Render(l.Config))
		}
	})
}
