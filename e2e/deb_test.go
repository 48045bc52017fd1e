package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/dais-dev/dais/packaging"
	"github.com/dais-dev/dais/server/store"
)

// The two packages of TestDebianPackage. "new" is this tree with one more
// schema migration (testMigration, given to the compiler with -overlay, never
// written into the repository), so the upgrade migrates and backs up the
// database, and the downgrade meets a schema it does not know.
const (
	debOld = "1.0.0"
	debNew = "1.1.0"
	// testMigration's number: above every real one, so that it is the
	// newest schema version of the "new" build.
	testMigrationVersion = 99999
	testMigration        = "-- +goose Up\nCREATE TABLE deb_upgrade_test (id INTEGER PRIMARY KEY);\n-- +goose Down\nDROP TABLE deb_upgrade_test;\n"
)

// debHostImage builds e2e/testdata/debhost (a Debian host: systemd as PID 1,
// R with plumber, Python, slirp4netns) over BASE_IMAGE, tagged by the
// hash of its inputs so that it is built once.
func debHostImage(t *testing.T) string {
	t.Helper()
	Docker(t)
	base := os.Getenv("BASE_IMAGE")
	if base == "" {
		base = "dais-base:bookworm"
	}
	id, err := exec.Command("docker", "image", "inspect", "-f", "{{.Id}}", base).Output()
	if err != nil {
		requireOrSkip(t, "base image %s not found: %v (make base-image)", base, err)
	}
	dir := filepath.Join(RepoRoot(t), "e2e", "testdata", "debhost")
	df, err := os.ReadFile(filepath.Join(dir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	h.Write(id)
	h.Write(df)
	tag := "dais-e2e-debhost:" + hex.EncodeToString(h.Sum(nil))[:16]
	if exec.Command("docker", "image", "inspect", tag).Run() == nil {
		return tag
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, "docker", "build", "--build-arg", "BASE_IMAGE="+base, "-t", tag, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("docker build %s: %v\n%s", dir, err, tail(string(out), 40))
	}
	t.Logf("built %s in %s", tag, time.Since(start).Round(time.Second))
	return tag
}

// buildDeb builds the binaries as make build does, with the version stamped
// and, when migration is set, the test migration added, and packs them.
func buildDeb(t *testing.T, out, version string, migration bool) string {
	t.Helper()
	root := RepoRoot(t)
	bin := filepath.Join(tempDir(t), "bin")
	goflags := os.Getenv("GOFLAGS")
	if migration {
		dir := tempDir(t)
		sql := filepath.Join(dir, "migration.sql")
		if err := os.WriteFile(sql, []byte(testMigration), 0o644); err != nil {
			t.Fatal(err)
		}
		name := fmt.Sprintf("%05d_deb_upgrade_test.sql", testMigrationVersion)
		overlay := fmt.Sprintf(`{"Replace":{%q:%q,%q:%q}}`,
			filepath.Join(root, "server/store/migrations/sqlite", name), sql,
			filepath.Join(root, "server/store/migrations/postgres", name), sql)
		if err := os.WriteFile(filepath.Join(dir, "overlay.json"), []byte(overlay), 0o644); err != nil {
			t.Fatal(err)
		}
		goflags = strings.TrimSpace(goflags + " -overlay=" + filepath.Join(dir, "overlay.json"))
	}
	cmd := exec.Command("make", "-C", root, "build", "BIN="+bin, "VERSION="+version)
	cmd.Env = append(os.Environ(), "GOFLAGS="+goflags)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make build VERSION=%s: %v\n%s", version, err, b)
	}
	deb, err := packaging.Build(packaging.Options{Root: root, BinDir: bin, Version: version}, out)
	if err != nil {
		t.Fatal(err)
	}
	return deb
}

// TestDebianPackage installs, reloads, upgrades, downgrades, removes and
// purges the package in one Debian 12 container that runs systemd as PID 1
// (--cap-add SYS_ADMIN, tmpfs on /run, the host's cgroup tree read-only:
// this engine refuses --privileged and does not need it). The data
// directory is a host directory: the container's own root is
// fuse-overlayfs, where dais rightly refuses SQLite.
func TestDebianPackage(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	host := debHostImage(t)
	pkgs := tempDir(t)
	oldDeb := filepath.Base(buildDeb(t, pkgs, debOld, false))
	newDeb := filepath.Base(buildDeb(t, pkgs, debNew, true))
	os.Chmod(pkgs, 0o755)

	c := Run(t, Options{
		Image:      host,
		Entrypoint: []string{"/sbin/init"},
		NoData:     true,
		Binds: []string{pkgs + ":/pkg:ro", tempDir(t) + ":" + packaging.DataDir,
			"/sys/fs/cgroup:/sys/fs/cgroup:ro"},
		Tmpfs:  map[string]string{"/run": "", "/run/lock": "", "/tmp": ""},
		Health: &container.HealthConfig{Test: []string{"NONE"}},
	})
	sh := func(script string) ExecResult {
		t.Helper()
		return c.Exec("sh", "-c", script)
	}
	must := func(script string) string {
		t.Helper()
		r := sh(script)
		if r.Code != 0 {
			t.Fatalf("%s: exit %d\n%s%s", script, r.Code, r.Stdout, r.Stderr)
		}
		return r.Stdout
	}
	// systemd up: its bus appears, then is-system-running waits for the
	// boot to finish.
	var r ExecResult
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if r = sh("systemctl is-system-running --wait"); !strings.Contains(r.Stderr, "Failed to connect to bus") {
			break
		}
	}
	if strings.TrimSpace(r.Stdout) != "running" {
		t.Fatalf("systemd in the container: %q %s\nfailed units:\n%s\nlog:\n%s", r.Stdout, r.Stderr, sh("systemctl --failed --no-pager").Stdout, tail(c.Logs(), 30))
	}
	install := func(deb string, extra ...string) ExecResult {
		t.Helper()
		return sh("DEBIAN_FRONTEND=noninteractive apt-get install -y " + strings.Join(extra, " ") + " /pkg/" + deb + " 2>&1")
	}
	active := func() string { return strings.TrimSpace(sh("systemctl is-active dais").Stdout) }
	show := func(prop string) string {
		return strings.TrimSpace(must("systemctl show -p " + prop + " --value dais"))
	}
	getBody := func(path string) (int, string) {
		t.Helper()
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(c.URL(path))
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	conf := packaging.ConfPath
	migrationFile := "/etc/rstudio-connect/rstudio-connect-migration.gcfg"
	warning := "deb-e2e-" + randomSuffix()
	var guid, hello string
	var backup string
	// The API after a restart: its R process starts on the first request,
	// which on a loaded machine takes more than one client timeout.
	apiHello := func() (int, string) {
		t.Helper()
		var s int
		var b string
		for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
			if s, b = getBody("/content/" + guid + "/hello"); s == http.StatusOK {
				break
			}
		}
		return s, b
	}

	ok := t.Run("fresh install", func(t *testing.T) {
		r := install(oldDeb)
		if r.Code != 0 || !strings.Contains(r.Stdout, "dais is running: http://") {
			t.Fatalf("apt-get install %s: exit %d\n%s", oldDeb, r.Code, r.Stdout)
		}
		t.Logf("install:\n%s", tail(r.Stdout, 6))
		if a := active(); a != "active" {
			t.Fatalf("systemctl is-active dais = %q", a)
		}
		if e := strings.TrimSpace(sh("systemctl is-enabled dais").Stdout); e != "enabled" {
			t.Errorf("systemctl is-enabled dais = %q, want enabled", e)
		}
		st := sh("systemctl status dais --no-pager").Stdout
		for _, want := range []string{"active (running)", "/opt/dais/bin/dais serve --config " + conf, "/lib/systemd/system/dais.service; enabled"} {
			if !strings.Contains(st, want) {
				t.Errorf("systemctl status dais lacks %q:\n%s", want, st)
			}
		}
		if s, b := getBody("/__ping__"); s != http.StatusOK {
			t.Errorf("GET /__ping__ = %d %s", s, b)
		}
		// The user and group: system ids chosen by adduser, no login.
		pw := strings.Split(strings.TrimSpace(must("getent passwd rstudio-connect")), ":")
		if uid, _ := strconv.Atoi(pw[2]); len(pw) != 7 || uid < 100 || uid >= 1000 || pw[6] != "/usr/sbin/nologin" {
			t.Errorf("rstudio-connect = %q, want a system user (uid 100-999) with /usr/sbin/nologin", pw)
		}
		if st := strings.TrimSpace(must("stat -c '%a %U %G' " + packaging.DataDir)); st != "710 root rstudio-connect" {
			t.Errorf("%s: %s, want 710 root rstudio-connect", packaging.DataDir, st)
		}
		if st := strings.TrimSpace(must("stat -c '%a %U' " + conf)); st != "600 root" {
			t.Errorf("%s: %s, want 600 root", conf, st)
		}

		// systemctl reload: the admin's new PublicWarning shows, same process.
		pid := show("MainPID")
		must(`sed -i 's/^; PublicWarning =$/PublicWarning = "` + warning + `"/' ` + conf)
		if !strings.Contains(must("cat "+conf), `PublicWarning = "`+warning+`"`) {
			t.Fatalf("could not edit %s", conf)
		}
		if _, b := getBody("/"); strings.Contains(b, warning) {
			t.Fatal("the warning shows before the reload")
		}
		must("systemctl reload dais")
		deadline := time.Now().Add(15 * time.Second)
		for {
			if _, b := getBody("/"); strings.Contains(b, warning) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET / does not show %q 15 s after systemctl reload dais; journal:\n%s", warning, sh("journalctl -u dais --no-pager | tail -20").Stdout)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if p := show("MainPID"); p != pid || show("NRestarts") != "0" {
			t.Errorf("reload restarted dais: MainPID %s -> %s, NRestarts %s", pid, p, show("NRestarts"))
		}
	})
	if !ok {
		t.FailNow()
	}

	ok = t.Run("edit, deploy, upgrade", func(t *testing.T) {
		// A setting under its old name (Database.Dir, now SQLite.Dir), as a
		// configuration written for an older Connect has it.
		must(`sed -i 's|^Provider = sqlite$|Provider = sqlite\nDir = ` + packaging.DataDir + `/db|' ` + conf)
		if !strings.Contains(must("cat "+conf), "Dir = "+packaging.DataDir+"/db") {
			t.Fatalf("could not edit %s", conf)
		}
		key := publisherKey(t, c, "alice", "alice-password-e2e")
		var tk v1Task
		var out string
		guid, tk, out = deployV1(t, c, key, "plumber", bundle(t, exampleDir("plumber")))
		if tk.Code != 0 {
			t.Fatalf("deploy plumber: %s\n%s", tk.Error, out)
		}
		var s int
		if s, hello = apiHello(); s != http.StatusOK || !strings.Contains(hello, "hello from plumber") {
			t.Fatalf("GET plumber /hello = %d %s", s, hello)
		}
		if sh("test -e "+migrationFile).Code == 0 {
			t.Fatalf("%s exists before the upgrade", migrationFile)
		}

		// The upgrade, with /__ping__ polled throughout.
		down := pingGap(t, c, func() {
			r := install(newDeb)
			if r.Code != 0 {
				t.Errorf("apt-get install %s: exit %d\n%s", newDeb, r.Code, r.Stdout)
			}
			t.Logf("upgrade:\n%s", tail(r.Stdout, 8))
			for _, want := range []string{"upgraded from " + debOld + " to " + debNew, "dais is running", "database backed up before upgrade", migrationFile} {
				if !strings.Contains(r.Stdout, want) {
					t.Errorf("the upgrade's output lacks %q", want)
				}
			}
		})
		// The guide promises under 10 minutes and the target is under 10 s
		// (bench/deb.sh reports it); a minute fails the test even on a
		// loaded CI machine, where it takes a few seconds.
		if down > time.Minute {
			t.Errorf("upgrade downtime %s, want under a minute (target 10 s)", down)
		}
		// The peer: a plain restart of the same server, with the API warm.
		if s, b := apiHello(); s != http.StatusOK || b != hello {
			t.Errorf("GET plumber /hello after the upgrade = %d %s, want %s", s, b, hello)
		}
		restart := pingGap(t, c, func() { must("systemctl restart dais") })
		t.Logf("downtime (the old server's last /__ping__ to the new one's first): upgrade %s, systemctl restart %s",
			down.Round(time.Millisecond), restart.Round(time.Millisecond))
		if out := os.Getenv("DAIS_DEB_BENCH_OUT"); out != "" {
			os.WriteFile(out, []byte(fmt.Sprintf("upgrade_ms %d\nrestart_ms %d\n", down.Milliseconds(), restart.Milliseconds())), 0o644)
		}
		if v := must("/opt/dais/bin/dais --version"); !strings.Contains(v, debNew) {
			t.Errorf("dais --version = %q after the upgrade", v)
		}
		// The edit kept (the conffile), the renamed setting in the migration file.
		if cf := must("cat " + conf); !strings.Contains(cf, warning) || !strings.Contains(cf, "Dir = "+packaging.DataDir+"/db") {
			t.Errorf("the admin's edits are gone after the upgrade:\n%s", cf)
		}
		if sh("ls /etc/rstudio-connect/*.dpkg-*").Code == 0 {
			t.Errorf("dpkg left a conffile copy: %s", sh("ls /etc/rstudio-connect").Stdout)
		}
		mig := sh("cat " + migrationFile)
		if mig.Code != 0 || !regexp.MustCompile(`(?is)\[SQLite\].*Dir\s*=\s*"?`+regexp.QuoteMeta(packaging.DataDir+"/db")).MatchString(mig.Stdout) {
			t.Errorf("migration file %s: exit %d %s%s, want [SQLite] Dir", migrationFile, mig.Code, mig.Stdout, mig.Stderr)
		}
		// The database: migrated, and backed up at the old version first.
		backup = strings.TrimSpace(sh(fmt.Sprintf("ls %s/db/backups/dais-%d-*.db", packaging.DataDir, store.SchemaVersion())).Stdout)
		if backup == "" || strings.Contains(backup, "\n") {
			t.Errorf("backups: %q, want one dais-%d-<time>.db", backup, store.SchemaVersion())
		}
		// The same content answers, and the warning shows.
		if s, b := apiHello(); s != http.StatusOK || b != hello {
			t.Errorf("GET plumber /hello after the upgrade = %d %s, want %s", s, b, hello)
		}
		if _, b := getBody("/"); !strings.Contains(b, warning) {
			t.Errorf("GET / does not show the PublicWarning after the upgrade")
		}
	})
	if !ok {
		t.FailNow()
	}

	t.Run("downgrade refused", func(t *testing.T) {
		r := install(oldDeb, "--allow-downgrades")
		t.Logf("downgrade:\n%s", tail(r.Stdout, 8))
		want := fmt.Sprintf("schema version %d, newer than this dais (schema version %d)", testMigrationVersion, store.SchemaVersion())
		if !strings.Contains(r.Stdout, "dais did not start") || !strings.Contains(r.Stdout, want) || backup == "" || !strings.Contains(r.Stdout, backup) {
			t.Errorf("the downgrade's output does not say dais refused (%q) naming the backup %s:\n%s", want, backup, r.Stdout)
		}
		time.Sleep(6 * time.Second) // RestartSec=5s: exit 78 must not restart
		if a := active(); a == "active" || a == "activating" {
			t.Errorf("systemctl is-active dais = %q after the refusal", a)
		}
		if s, _ := getBody("/__ping__"); s == http.StatusOK {
			t.Errorf("an older dais serves the newer database")
		}
		// What the message says to do brings the older version back.
		db := packaging.DataDir + "/db/dais.db"
		must(fmt.Sprintf("systemctl stop dais; rm -f %s-wal %s-shm && cp %s %s && systemctl start dais", db, db, backup, db))
		c.WaitHTTP("/__ping__", http.StatusOK, time.Minute)
		if s, b := apiHello(); s != http.StatusOK || b != hello {
			t.Errorf("GET plumber /hello after restoring the backup = %d %s", s, b)
		}
	})

	t.Run("remove, purge, dais purge", func(t *testing.T) {
		db := packaging.DataDir + "/db/dais.db"
		r := sh("apt-get remove -y dais 2>&1")
		if r.Code != 0 {
			t.Fatalf("apt-get remove: %d %s", r.Code, r.Stdout)
		}
		if a := active(); a == "active" {
			t.Errorf("dais still runs after apt-get remove")
		}
		if s, _ := getBody("/__ping__"); s == http.StatusOK {
			t.Errorf("dais still answers after apt-get remove")
		}
		for _, gone := range []string{"/opt/dais/bin/dais", "/lib/systemd/system/dais.service", "/etc/systemd/system/multi-user.target.wants/dais.service"} {
			if sh("test -e "+gone).Code == 0 {
				t.Errorf("%s is left after apt-get remove", gone)
			}
		}
		for _, kept := range []string{db, conf, migrationFile} {
			if sh("test -e "+kept).Code != 0 {
				t.Errorf("apt-get remove deleted %s", kept)
			}
		}

		r = sh("apt-get purge -y dais 2>&1")
		if r.Code != 0 || !strings.Contains(r.Stdout, "dais purge") {
			t.Fatalf("apt-get purge: %d %s", r.Code, r.Stdout)
		}
		if sh("test -e /etc/rstudio-connect").Code == 0 {
			t.Errorf("/etc/rstudio-connect is left after apt-get purge: %s", sh("ls -la /etc/rstudio-connect").Stdout)
		}
		if sh("test -e "+db).Code != 0 {
			t.Errorf("apt-get purge deleted the database")
		}

		// Installed again on the data left: the same content answers.
		if r := install(oldDeb); r.Code != 0 || !strings.Contains(r.Stdout, "dais is running") {
			t.Fatalf("install after purge: %d %s", r.Code, r.Stdout)
		}
		c.WaitHTTP("/__ping__", http.StatusOK, time.Minute)
		if s, b := apiHello(); s != http.StatusOK || b != hello {
			t.Errorf("GET plumber /hello after reinstalling = %d %s", s, b)
		}

		// dais purge: the guide's steps 3 to 6 (logs, SQLite directory, data
		// directory, configuration) and nothing else.
		inventory := func() map[string]bool {
			t.Helper()
			out := must(`find / \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp -o -path /pkg \) -prune -o -print`)
			m := map[string]bool{}
			for _, p := range strings.Split(strings.TrimSpace(out), "\n") {
				m[p] = true
			}
			return m
		}
		must("systemctl stop dais")
		before := inventory()
		pr := sh("dais purge --yes --include-config 2>&1")
		if pr.Code != 0 {
			t.Fatalf("dais purge: %d %s", pr.Code, pr.Stdout)
		}
		after := inventory()
		var removed, added []string
		for p := range before {
			if !after[p] {
				removed = append(removed, p)
			}
		}
		for p := range after {
			if !before[p] {
				added = append(added, p)
			}
		}
		sort.Strings(removed)
		var unexpected []string
		for _, p := range removed {
			// The data directory is a mount point here, so it is emptied,
			// not removed (on a host it goes too).
			if !strings.HasPrefix(p, packaging.DataDir+"/") && p != conf && p != migrationFile {
				unexpected = append(unexpected, p)
			}
		}
		if len(unexpected) > 0 || len(added) > 0 {
			t.Errorf("dais purge removed %q and added %q besides the data and the configuration", unexpected, added)
		}
		for _, want := range []string{db, packaging.DataDir + "/db/backups", conf, migrationFile, packaging.DataDir + "/apps"} {
			if before[want] && after[want] {
				t.Errorf("dais purge left %s", want)
			}
		}
		if !before[db] || !before[conf] {
			t.Errorf("nothing to purge: %s or %s missing before", db, conf)
		}
		if n := strings.TrimSpace(must("ls -A " + packaging.DataDir + " | wc -l")); n != "0" {
			t.Errorf("%s not empty after dais purge: %s", packaging.DataDir, must("ls -A "+packaging.DataDir))
		}
		t.Logf("dais purge removed %d paths: %s", len(removed), pr.Stdout)

		if r := sh("apt-get purge -y dais 2>&1"); r.Code != 0 {
			t.Fatalf("final apt-get purge: %d %s", r.Code, r.Stdout)
		}
		if r := sh("dpkg -s dais"); r.Code == 0 {
			t.Errorf("dais still known to dpkg: %s", r.Stdout)
		}
		for _, gone := range []string{"/opt/dais", "/etc/rstudio-connect", "/usr/bin/dais"} {
			if sh("test -e "+gone).Code == 0 {
				t.Errorf("%s is left after the purge", gone)
			}
		}
	})
}

// pingGap runs f while polling /__ping__ every 20 ms, and returns the
// longest time between two successful answers (the downtime).
func pingGap(t *testing.T, c *Container, f func()) time.Duration {
	t.Helper()
	url := c.URL("/__ping__")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var last time.Time
	var gap time.Duration
	wg.Add(1)
	go func() {
		defer wg.Done()
		cl := &http.Client{Timeout: time.Second}
		for {
			select {
			case <-stop:
				return
			default:
			}
			resp, err := cl.Get(url)
			now := time.Now()
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					mu.Lock()
					if !last.IsZero() && now.Sub(last) > gap {
						gap = now.Sub(last)
					}
					last = now
					mu.Unlock()
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	f()
	// The new server's first answer closes the gap.
	c.WaitHTTP("/__ping__", http.StatusOK, time.Minute)
	time.Sleep(100 * time.Millisecond)
	close(stop)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	return gap
}
