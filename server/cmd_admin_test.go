package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/datalock"
	"github.com/dais-dev/dais/server/store"
)

// buildDais builds the dais binary into a directory the test removes.
func buildDais(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "dais")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// The admin commands and the serve start-up step, from outside (one build).
func TestAdminBinary(t *testing.T) {
	bin := buildDais(t)
	t.Run("commands", func(t *testing.T) { testAdminCommands(t, bin) })
	t.Run("serve migrates config", func(t *testing.T) { testServeMigratesConfig(t, bin) })
}

type result struct {
	code           int
	stdout, stderr string
}

func runBin(t *testing.T, bin, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, o.String(), e.String()}
}

// The admin commands from outside: exit codes, confirmation, refusals,
// and the configuration migration dais serve runs at start.
func testAdminCommands(t *testing.T, bin string) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	conf := filepath.Join(dir, "rstudio-connect.gcfg")
	if err := os.WriteFile(conf, []byte("[Server]\nDataDir = "+data+"\n[HTTP]\nListen = 127.0.0.1:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Defaults()
	cfg.Server.DataDir = data
	st, err := store.Open(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	os.WriteFile(filepath.Join(data, "bundle.tar.gz"), []byte("x"), 0o600)
	out := filepath.Join(dir, "b.tar.gz")

	steps := []struct {
		name     string
		stdin    string
		args     []string
		code     int
		want     string // in stdout+stderr
		dataLeft bool   // DataDir still there afterwards
	}{
		{"help", "", []string{"restore", "--help"}, 0, "sha256", true},
		{"backup needs --out", "", []string{"backup", "--config", conf}, 2, "--out FILE is required", true},
		{"backup", "", []string{"backup", "--config", conf, "--out", out}, 0, "backup written", true},
		{"purge answered no", "no\n", []string{"purge", "--config", conf}, 1, "nothing removed", true},
		{"purge", "yes\n", []string{"purge", "--config", conf}, 0, "purged", false},
		{"restore", "", []string{"restore", "--config", conf, "--from", out}, 0, "restored", true},
		{"restore over data asks", "", []string{"restore", "--config", conf, "--from", out}, 1, "pass --yes", true},
		{"restore --yes", "", []string{"restore", "--config", conf, "--from", out, "--yes"}, 0, "restored", true},
	}
	for _, s := range steps {
		r := runBin(t, bin, s.stdin, s.args...)
		if r.code != s.code || !strings.Contains(r.stdout+r.stderr, s.want) {
			t.Fatalf("%s: exit %d, want %d with %q\nstdout: %s\nstderr: %s", s.name, r.code, s.code, s.want, r.stdout, r.stderr)
		}
		if _, err := os.Stat(filepath.Join(data, "bundle.tar.gz")); (err == nil) != s.dataLeft {
			t.Fatalf("%s: data file present = %v, want %v", s.name, err == nil, s.dataLeft)
		}
	}

	// While a server holds the data lock: exit 3, naming the fix.
	release, err := datalock.Acquire(cfg.SQLiteDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"purge", "--yes"}, {"restore", "--yes", "--from", out}} {
		r := runBin(t, bin, "", append(args, "--config", conf)...)
		if r.code != 3 || !strings.Contains(r.stderr, "stop it first") {
			t.Errorf("%v while serving: exit %d, stderr %s", args, r.code, r.stderr)
		}
	}
	release()
}

// dais serve on a configuration with a renamed setting writes the
// migration file, then reads it: here the SQLite directory comes from the
// old Database.Dir, which the test holds locked, so the start is refused
// naming that directory, and the log says what to move.
func testServeMigratesConfig(t *testing.T, bin string) {
	dir := t.TempDir()
	dbDir := filepath.Join(dir, "old-db")
	conf := filepath.Join(dir, "rstudio-connect.gcfg")
	if err := os.WriteFile(conf, []byte("[Server]\nDataDir = "+filepath.Join(dir, "data")+
		"\n[HTTP]\nListen = 127.0.0.1:0\n[Database]\nDir = "+dbDir+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	release, err := datalock.Acquire(dbDir)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	r := runBin(t, bin, "", "serve", "--config", conf)
	if r.code != 78 || !strings.Contains(r.stderr, dbDir) {
		t.Fatalf("serve: exit %d, want 78 naming %s (the migrated SQLite.Dir)\n%s", r.code, dbDir, r.stderr)
	}
	mig := config.MigrationPath(conf)
	b, err := os.ReadFile(mig)
	if err != nil || !strings.Contains(string(b), "[SQLite]\nDir = \""+dbDir+"\"") {
		t.Fatalf("migration file %s: %q, %v", mig, b, err)
	}
	if fi, _ := os.Stat(mig); fi.Mode().Perm() != 0o640 {
		t.Errorf("migration file mode %v, want the main file's 0640", fi.Mode().Perm())
	}
	for _, want := range []string{"Database.Dir is now SQLite.Dir", "move them into " + conf} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("serve log lacks %q:\n%s", want, r.stderr)
		}
	}
}
