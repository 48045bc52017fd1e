package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/store"
	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite"
)

// Server management through the container (issue 10): backup while
// serving and writing, purge, restore, schema upgrade and downgrade, and
// the configuration migration file.

const adminStartBound = 60 * time.Second

// adminServer starts the server on dataDir with /backups bound to
// backupDir, and returns it with a publisher's API key (created when
// newUser).
func adminServer(t *testing.T, dataDir, backupDir string, newUser bool) (*Container, string) {
	t.Helper()
	c := Run(t, Options{DataDir: dataDir, Binds: []string{backupDir + ":/backups"}})
	c.WaitHTTP("/__ping__", http.StatusOK, adminStartBound)
	if !newUser {
		return c, ""
	}
	key := publisherKey(t, c, "bob", "admin-e2e-password")
	return c, key
}

// adminReq sends one API request; it returns an error instead of failing,
// so goroutines may use it.
func adminReq(c *Container, method, path, key string, body []byte, v any) error {
	return keyRequest(&http.Client{Timeout: 60 * time.Second}, method, c.URL(path), key, bytes.NewReader(body), v)
}

// keyRequest sends one request with an API key and decodes a 200 answer's
// JSON into v (nil: not read); anything else is an error with the answer.
func keyRequest(hc *http.Client, method, url, key string, body io.Reader, v any) error {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Key "+key)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s = %d %s", method, url, resp.StatusCode, b)
	}
	if v != nil {
		return json.Unmarshal(b, v)
	}
	return nil
}

// staticBundle is a static-content bundle whose page says marker.
func staticBundle(t *testing.T, marker string) []byte {
	t.Helper()
	html := "<html><body>" + marker + "</body></html>"
	manifest := `{"version":1,"metadata":{"appmode":"static","primary_html":"index.html"},"files":{"index.html":{}}}`
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, body := range map[string]string{"manifest.json": manifest, "index.html": html} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(body))
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

type adminContent struct {
	ID   string `json:"id"`
	GUID string `json:"guid"`
	Name string `json:"name"`
}

// deployStatic creates content and deploys a static bundle to it, waiting
// for the task; it returns the content.
func deployStatic(c *Container, key, name, marker string, archive []byte) (adminContent, error) {
	var content adminContent
	if err := adminReq(c, "POST", "/__api__/v1/content", key, []byte(`{"name":"`+name+`","title":"`+name+`","access_type":"all"}`), &content); err != nil {
		return content, err
	}
	var b struct {
		ID string `json:"id"`
	}
	if err := adminReq(c, "POST", "/__api__/v1/content/"+content.GUID+"/bundles", key, archive, &b); err != nil {
		return content, err
	}
	var d struct {
		TaskID string `json:"task_id"`
	}
	if err := adminReq(c, "POST", "/__api__/v1/content/"+content.GUID+"/deploy", key, []byte(`{"bundle_id":"`+b.ID+`"}`), &d); err != nil {
		return content, err
	}
	first := 0
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); {
		var tk struct {
			Last     int    `json:"last"`
			Finished bool   `json:"finished"`
			Code     int    `json:"code"`
			Error    string `json:"error"`
		}
		if err := adminReq(c, "GET", "/__api__/v1/tasks/"+d.TaskID+"?wait=10&first="+strconv.Itoa(first), key, nil, &tk); err != nil {
			return content, err
		}
		first = tk.Last
		if tk.Finished {
			if tk.Code != 0 {
				return content, fmt.Errorf("deploy of %s failed: %s", name, tk.Error)
			}
			return content, nil
		}
	}
	return content, fmt.Errorf("deploy of %s not finished in time", name)
}

// runOnce runs a one-off dais command in the image on dataDir (as
// `docker run --rm -v DATA:/data dais dais ...` would) and returns its
// exit code and log.
func runOnce(t *testing.T, dataDir, backupDir string, cmd ...string) (int, string) {
	t.Helper()
	c := Run(t, Options{DataDir: dataDir, Binds: []string{backupDir + ":/backups"}, Cmd: cmd, Ports: []string{}})
	code := c.WaitExit(5 * time.Minute)
	return code, c.Logs()
}

// Deploy, back up while deploying and writing, purge, restore: the same
// content answers the same way with the same ids.
func TestAdminBackupPurgeRestore(t *testing.T) {
	data, backups := tempDir(t), tempDir(t)
	c, key := adminServer(t, data, backups, true)

	var items []adminContent
	for i := range 2 {
		ct, err := deployStatic(c, key, fmt.Sprintf("page%d", i), "", staticBundle(t, fmt.Sprintf("admin-e2e page %d", i)))
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, ct)
	}
	for i, ct := range items {
		if status, body := c.Get("/content/" + ct.GUID + "/"); status != 200 || !strings.Contains(body, fmt.Sprintf("admin-e2e page %d", i)) {
			t.Fatalf("content %s before backup = %d %q", ct.GUID, status, body)
		}
	}

	// Writes and a deploy go on while the backup runs.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writeErr error
	var mu sync.Mutex
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := adminReq(c, "PATCH", "/__api__/v1/content/"+items[0].GUID, key, []byte(fmt.Sprintf(`{"description":"write %d"}`, i)), nil); err != nil {
				mu.Lock()
				writeErr = err
				mu.Unlock()
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		if _, err := deployStatic(c, key, "during", "", staticBundle(t, "deployed during the backup")); err != nil {
			mu.Lock()
			writeErr = err
			mu.Unlock()
		}
	}()
	time.Sleep(300 * time.Millisecond)
	r := c.Exec("dais", "backup", "--out", "/backups/b.tar.gz")
	close(stop)
	wg.Wait()
	if r.Code != 0 {
		t.Fatalf("dais backup while serving: %d\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	if writeErr != nil {
		t.Fatalf("writes during the backup: %v", writeErr)
	}
	t.Logf("backup: %s", strings.TrimSpace(r.Stdout))

	// Purge refuses while the server runs.
	if r := c.Exec("dais", "purge", "--yes"); r.Code != 3 || !strings.Contains(r.Stderr, "stop it first") {
		t.Errorf("purge while serving: %d %s", r.Code, r.Stderr)
	}
	if code, _ := c.Stop(90); code != 0 {
		t.Fatalf("docker stop: exit %d", code)
	}

	if code, logs := runOnce(t, data, backups, "dais", "purge", "--yes"); code != 0 {
		t.Fatalf("dais purge: exit %d\n%s", code, logs)
	}
	if left, _ := os.ReadDir(data); len(left) != 0 {
		t.Fatalf("DataDir after purge holds %d entries, want none", len(left))
	}
	if code, logs := runOnce(t, data, backups, "dais", "restore", "--from", "/backups/b.tar.gz"); code != 0 {
		t.Fatalf("dais restore: exit %d\n%s", code, logs)
	}

	c2, _ := adminServer(t, data, backups, false)
	for i, ct := range items {
		if status, body := c2.Get("/content/" + ct.GUID + "/"); status != 200 || !strings.Contains(body, fmt.Sprintf("admin-e2e page %d", i)) {
			t.Errorf("content %s after restore = %d %q", ct.GUID, status, body)
		}
		var got adminContent
		if err := adminReq(c2, "GET", "/__api__/v1/content/"+ct.GUID, key, nil, &got); err != nil {
			t.Fatalf("content %s after restore (the API key must survive too): %v", ct.GUID, err)
		}
		if got.ID != ct.ID || got.GUID != ct.GUID || got.Name != ct.Name {
			t.Errorf("content after restore = %+v, want %+v", got, ct)
		}
	}
	// The content deployed while the backup ran is either not in it, or in
	// it with its files: a bundle in the snapshot answers.
	var during []struct {
		GUID     string  `json:"guid"`
		BundleID *string `json:"bundle_id"`
	}
	if err := adminReq(c2, "GET", "/__api__/v1/content?name=during", key, nil, &during); err != nil {
		t.Fatal(err)
	}
	for _, d := range during {
		if d.BundleID == nil {
			t.Logf("content deployed during the backup: in it without a bundle")
			continue
		}
		if status, body := c2.Get("/content/" + d.GUID + "/"); status != 200 || !strings.Contains(body, "deployed during the backup") {
			t.Errorf("content deployed during the backup, restored with bundle %s, answers %d %q", *d.BundleID, status, body)
		}
	}
	t.Logf("content deployed during the backup: %d in it", len(during))

	// The SQLite database restored from a backup taken during writes passes
	// its integrity check (restore checks it; check again from outside).
	if v, err := store.CheckSQLiteFile(t.Context(), filepath.Join(data, "db", "dais.db")); err != nil || v != store.SchemaVersion() {
		t.Errorf("restored database: schema version %d, %v", v, err)
	}
}

// makeOldDatabase creates dataDir/db/dais.db at the schema version before the
// newest, from the repository's migrations.
func makeOldDatabase(t *testing.T, dataDir string) (path string, version int64) {
	t.Helper()
	src := filepath.Join(RepoRoot(t), "server", "store", "migrations", "sqlite")
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	num := regexp.MustCompile(`^(\d+)_.*\.sql$`)
	var files []string
	for _, e := range entries {
		if num.MatchString(e.Name()) {
			files = append(files, e.Name())
		}
	}
	if len(files) < 2 {
		t.Skip("needs two schema versions")
	}
	old := t.TempDir()
	for _, f := range files[:len(files)-1] {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(old, f), b, 0o644)
	}
	version, _ = strconv.ParseInt(num.FindStringSubmatch(files[len(files)-2])[1], 10, 64)
	path = filepath.Join(dataDir, "db", "dais.db")
	os.MkdirAll(filepath.Dir(path), 0o700)
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectSQLite3, db, os.DirFS(old), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	return path, version
}

// A database of the previous schema version is backed up, migrated and
// served; one from a newer dais is refused (exit 78) naming the backup to
// restore.
func TestAdminSchemaUpgradeDowngrade(t *testing.T) {
	data, backups := tempDir(t), tempDir(t)
	dbPath, old := makeOldDatabase(t, data)

	c := Run(t, Options{DataDir: data})
	c.WaitHTTP("/__ping__", http.StatusOK, adminStartBound)
	logs := c.Logs()
	for _, want := range []string{"database backed up before upgrade", "database migrated"} {
		if !strings.Contains(logs, want) {
			t.Errorf("server log lacks %q", want)
		}
	}
	auto, _ := filepath.Glob(filepath.Join(data, "db", "backups", fmt.Sprintf("dais-%d-*.db", old)))
	if len(auto) != 1 {
		t.Errorf("automatic backups of version %d: %v, want one", old, auto)
	}
	if r := c.Exec("sh", "-c", "echo pw-e2e-admin | dais users add --role viewer carol"); r.Code != 0 {
		t.Fatalf("the migrated database does not take writes: %d %s", r.Code, r.Stderr)
	}
	if code, _ := c.Stop(90); code != 0 {
		t.Fatalf("docker stop: exit %d", code)
	}

	// A newer dais upgraded it further: this dais's version survives in the
	// newer one's automatic backup.
	cur := store.SchemaVersion() // migration numbers need not be consecutive
	pre := filepath.Join(data, "db", "backups", fmt.Sprintf("dais-%d-20991231T000000Z.db", cur))
	db, err := sql.Open("sqlite", "file:"+dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`VACUUM INTO ?`, pre); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO goose_db_version (version_id, is_applied) VALUES (?, 1)`, cur+1); err != nil {
		t.Fatal(err)
	}
	db.Close()

	c2 := Run(t, Options{DataDir: data, Binds: []string{backups + ":/backups"}})
	if code := c2.WaitExit(adminStartBound); code != 78 {
		t.Fatalf("newer schema: exit %d, want 78\n%s", code, c2.Logs())
	}
	logs = c2.Logs()
	for _, want := range []string{
		fmt.Sprintf("schema version %d, newer than this dais (schema version %d)", cur+1, cur),
		"/data/db/backups/" + filepath.Base(pre),
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("refusal lacks %q:\n%s", want, tail(logs, 20))
		}
	}
}

// An upgrade finds a renamed setting (Database.Dir, now SQLite.Dir) in the
// main file: the migration file is written beside it with its mode, read
// (the database goes where the old setting said) and reported at every
// start. The server runs as on a host install: dais serve on the admin's
// file, without dais-init's rendering.
func TestAdminConfigMigrationFile(t *testing.T) {
	data, etc := tempDir(t), tempDir(t)
	conf := filepath.Join(etc, "rstudio-connect.gcfg")
	if err := os.WriteFile(conf, []byte("[Server]\nDataDir = /data\n[HTTP]\nListen = :3939\n[Database]\nProvider = sqlite\nDir = /data/olddb\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	for run := range 2 {
		c := Run(t, Options{DataDir: data, Binds: []string{etc + ":/etc/dais-e2e"},
			Entrypoint: []string{"dais"}, Cmd: []string{"serve", "--config", "/etc/dais-e2e/rstudio-connect.gcfg"}})
		c.WaitHTTP("/__ping__", http.StatusOK, adminStartBound)
		logs := c.Logs()
		for _, want := range []string{"Database.Dir is now SQLite.Dir", "the migration file /etc/dais-e2e/rstudio-connect-migration.gcfg sets SQLite.Dir"} {
			if !strings.Contains(logs, want) {
				t.Errorf("start %d: log lacks %q", run+1, want)
			}
		}
		if wrote := strings.Contains(logs, "renamed setting written to the migration file"); wrote != (run == 0) {
			t.Errorf("start %d: migration file written = %v", run+1, wrote)
		}
		c.Stop(90)
	}
	b, err := os.ReadFile(filepath.Join(etc, "rstudio-connect-migration.gcfg"))
	if err != nil || !strings.Contains(string(b), "[SQLite]\nDir = \"/data/olddb\"") {
		t.Fatalf("migration file: %q %v", b, err)
	}
	if fi, _ := os.Stat(filepath.Join(etc, "rstudio-connect-migration.gcfg")); fi.Mode().Perm() != 0o640 {
		t.Errorf("migration file mode %v, want the main file's 0640", fi.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(data, "olddb", "dais.db")); err != nil {
		t.Errorf("the database is not where the migrated setting puts it: %v", err)
	}
}
