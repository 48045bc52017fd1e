package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// newerImage builds an image of this dais with extra migrations (name ->
// SQL, the same for both dialects), its binary built with go build's
// -overlay (the migrations are embedded), as a newer release would ship
// them, and tagged version.
func newerImage(t *testing.T, base, version string, migrations map[string]string) string {
	t.Helper()
	dir := tempDir(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	replace := map[string]string{}
	for name, sql := range migrations {
		f := filepath.Join(dir, name)
		if err := os.WriteFile(f, []byte(sql), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, dialect := range []string{"sqlite", "postgres"} {
			replace[filepath.Join(root, "server", "store", "migrations", dialect, name)] = f
		}
	}
	overlay, _ := json.Marshal(map[string]any{"Replace": replace})
	if err := os.WriteFile(filepath.Join(dir, "overlay.json"), overlay, 0o644); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-overlay", filepath.Join(dir, "overlay.json"), "-trimpath",
		"-ldflags", "-s -w -X main.version="+version, "-o", filepath.Join(dir, "dais"), "./server")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build of the newer dais: %v\n%s", err, out)
	}
	df := "FROM " + base + "\nCOPY dais /usr/local/bin/dais\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		t.Fatal(err)
	}
	tag := "dais-e2e-newer:" + strings.ToLower(version)
	if out, err := exec.Command("docker", "build", "-q", "-t", tag, dir).CombinedOutput(); err != nil {
		t.Fatalf("docker build %s: %v\n%s", tag, err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })
	return tag
}

// haNewerImage (test 6): dais2 is replaced by a newer image (compose up
// with DAIS_IMAGE changed, as an upgrade does). With an additive migration
// both nodes serve on; with one that is not, the older dais1 drains and
// exits with the line that says what to replace it with, and dais2 serves
// everything. It leaves dais1 unable to serve: it runs last.
func haNewerImage(t *testing.T, h *haStack) {
	const additive = "-- dais:additive\n-- +goose Up\nCREATE TABLE upgrade_probe_a (id BIGINT);\n-- +goose Down\nDROP TABLE upgrade_probe_a;\n"
	const breaking = "-- +goose Up\nCREATE TABLE upgrade_probe_b (id BIGINT);\n-- +goose Down\nDROP TABLE upgrade_probe_b;\n"
	img := Image(t)
	// Test 3 left the node it killed down.
	for _, n := range []string{"dais1", "dais2"} {
		if out, err := exec.Command("docker", "start", h.id(n)).CombinedOutput(); err != nil {
			t.Fatalf("docker start %s: %v %s", n, err, out)
		}
	}
	waitComposeHealthy(t, Docker(t), h.project, []string{"dais1", "dais2"}, 3*time.Minute)
	upgrade := func(tag string) {
		t.Helper()
		env := append(append([]string{}, h.env...), "DAIS_IMAGE="+tag)
		if out, err := Compose(t, h.project, env, "--profile", "ha", "up", "-d", "--no-deps", "--no-build", "dais2"); err != nil {
			t.Fatalf("compose up dais2 with %s: %v\n%s", tag, err, out)
		}
		waitComposeHealthy(t, Docker(t), h.project, []string{"dais2"}, 3*time.Minute)
	}
	begin := time.Now()
	upgrade(newerImage(t, img, "newer-additive", map[string]string{"09998_upgrade_probe_a.sql": additive}))
	if v := h.sql("SELECT max(version_id) FROM goose_db_version"); v != "9998" {
		t.Fatalf("schema after the additive upgrade: %s", v)
	}
	dais1 := &Container{t: t, cli: Docker(t), ID: h.id("dais1"), Name: "dais1"}
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(dais1.Logs(), "additive migrations only"); time.Sleep(500 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("dais1 does not say it serves beside the additive schema:\n%s", tail(dais1.Logs(), 20))
		}
	}
	for _, n := range []string{"dais1", "dais2"} {
		if code, _, _, err := httpGet(h.nodeURL(n, "/__ping__"), ""); err != nil || code != 200 {
			t.Fatalf("%s /__ping__ beside the additive schema: %d %v", n, code, err)
		}
	}
	t.Logf("dais2 on a newer image with an additive migration (schema 9998) %s after compose up: both nodes serve", time.Since(begin).Round(time.Millisecond))

	begin = time.Now()
	upgrade(newerImage(t, img, "newer-breaking", map[string]string{"09998_upgrade_probe_a.sql": additive, "09999_upgrade_probe_b.sql": breaking}))
	want := "a newer dais migrated the database to schema version 9999"
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(dais1.Logs(), want); time.Sleep(500 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("dais1 does not say %q:\n%s", want, tail(dais1.Logs(), 30))
		}
	}
	logs := dais1.Logs()
	line := logs[strings.Index(logs, want):]
	line = line[:strings.IndexByte(line+"\n", '\n')]
	if !strings.Contains(line, "replace this node with the newer dais") || !strings.Contains(line, "newer-breaking") {
		t.Errorf("dais1's line: %q", line)
	}
	if !strings.Contains(logs, "draining: /__ping__ answers 503") {
		t.Errorf("dais1 did not drain first:\n%s", tail(logs, 30))
	}
	out, _ := exec.Command("docker", "inspect", "-f", "{{.State.ExitCode}} {{.RestartCount}} {{.State.Status}}", dais1.ID).CombinedOutput()
	// Docker restarts it (restart: unless-stopped); each start refuses.
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(dais1.Logs(), "newer than this dais"); time.Sleep(time.Second) {
		if time.Now().After(deadline) {
			t.Errorf("dais1 restarted does not refuse the newer schema:\n%s", tail(dais1.Logs(), 10))
			break
		}
	}
	for i := range 10 {
		code, _, hdr, err := httpGet(h.lb.URL("/__api__/v1/content"), h.key)
		if err != nil || code != 200 || hdr.Get("X-Dais-Node") != "dais2" {
			t.Fatalf("request %d through haproxy after the upgrade: %d %v %q", i, code, err, hdr.Get("X-Dais-Node"))
		}
	}
	t.Logf("dais2 on a newer image with a migration that is not additive (schema 9999): dais1 drained and said %q %s after compose up (docker: exit, restarts, state %s); 10 of 10 requests through haproxy answered by dais2",
		line, time.Since(begin).Round(time.Millisecond), strings.TrimSpace(string(out)))
}
