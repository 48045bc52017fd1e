package serve

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/store"
)

// Cluster settings of these tests: a node is dead after 3 s without a
// heartbeat, where production waits 30 s.
const clusterSection = "[Cluster]\nHeartbeatInterval = 1s\nDeadAfter = 3s\nDrainDelay = 2s\n"

func writeClusterConfig(t *testing.T, path, dataDir, dsn string, server ...string) {
	t.Helper()
	text := fmt.Sprintf("[Server]\nDataDir = %s\n%s[HTTP]\nListen = 127.0.0.1:0\n[Database]\nProvider = postgres\n[Postgres]\nURL = %q\n%s",
		dataDir, strings.Join(server, "\n")+"\n", dsn, clusterSection)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func openTestStore(t *testing.T, dsn string) store.Store {
	t.Helper()
	st, err := store.OpenPostgres(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func nodesByName(t *testing.T, st store.Store) map[string]store.Node {
	t.Helper()
	nodes, err := st.ListNodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.Node{}
	for _, n := range nodes {
		out[n.Name] = n
	}
	return out
}

// TestClusterNodes: two `dais serve` on one PostgreSQL and one data
// directory. Both register (name, address, version, schema, settings
// digest). node-a is killed (SIGKILL) holding a deploy, a render and a
// process: node-b fails them with a message naming node-a within the
// dead-node time, forgets the process and removes node-a, and leaves its
// own task alone. A third server named node-b is refused while node-b
// lives (exit 78, naming DAIS_NODE_NAME). A node-a restarted moments after
// a kill takes its name back after watching two heartbeats, and logs that
// its Server.Address differs from node-b's. On SIGTERM node-b answers
// /__ping__ 503 while still serving, then leaves the cluster.
func TestClusterNodes(t *testing.T) {
	dsn := postgresSchemaURL(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	cfgPath := filepath.Join(dir, "c.gcfg")
	writeClusterConfig(t, cfgPath, data, dsn)
	a := startDais(t, cfgPath, "DAIS_NODE_NAME=node-a")
	b := startDais(t, cfgPath, "DAIS_NODE_NAME=node-b")
	st := openTestStore(t, dsn)
	ctx := context.Background()

	nodes := nodesByName(t, st)
	for _, name := range []string{"node-a", "node-b"} {
		n, ok := nodes[name]
		if !ok {
			t.Fatalf("%s not registered: %v", name, nodes)
		}
		if n.Schema != store.SchemaVersion() || n.Address == "" || n.ConfigDigest == "" || n.Settings["Server.DataDir"] == "" || n.Age > 3*time.Second {
			t.Fatalf("%s registered as %+v", name, n)
		}
	}
	if nodes["node-a"].ConfigDigest != nodes["node-b"].ConfigDigest {
		t.Fatal("one configuration, two digests")
	}
	if !strings.HasPrefix(nodes["node-a"].Address, "127.0.0.1:") {
		t.Fatalf("address of a node listening on 127.0.0.1 = %q", nodes["node-a"].Address)
	}

	// Work in progress on node-a, and one task on node-b.
	u := &store.User{Username: "owner", Role: store.RolePublisher}
	must(t, st.CreateUser(ctx, u))
	c := &store.Content{Name: "doc", OwnerID: u.ID}
	must(t, st.CreateContent(ctx, c))
	deployA := &store.Task{ContentID: c.ID, Kind: store.TaskDeploy, Node: "node-a", CreatedAt: time.Now()}
	renderTaskA := &store.Task{ContentID: c.ID, Kind: store.TaskRender, Node: "node-a", CreatedAt: time.Now()}
	deployB := &store.Task{ContentID: c.ID, Kind: store.TaskDeploy, Node: "node-b", CreatedAt: time.Now()}
	for _, tk := range []*store.Task{deployA, renderTaskA, deployB} {
		must(t, st.CreateTask(ctx, tk))
	}
	renderA := &store.Render{ContentID: c.ID, TaskID: renderTaskA.ID, Status: store.RenderRunning, Node: "node-a", CreatedAt: time.Now(), StartedAt: time.Now()}
	must(t, st.CreateRender(ctx, renderA))
	jobA := &store.Job{ContentID: c.ID, Tag: "run_app", Node: "node-a", StartedAt: time.Now()}
	must(t, st.CreateJob(ctx, jobA))

	// Alive, node-a's work is left alone.
	time.Sleep(2 * time.Second)
	if tk, err := st.Task(ctx, deployA.ID); err != nil || tk.Finished {
		t.Fatalf("a live node's deploy was touched: %+v %v", tk, err)
	}

	a.signal(syscall.SIGKILL)
	a.waitExit(5 * time.Second)
	killed := time.Now()
	var failedAfter time.Duration
	for {
		tk, err := st.Task(ctx, deployA.ID)
		must(t, err)
		if tk.Finished {
			failedAfter = time.Since(killed)
			if tk.Code == 0 || !strings.Contains(tk.Error, "node node-a was lost") || !strings.Contains(tk.Error, "deploy again") {
				t.Fatalf("dead node's deploy finished as code %d %q", tk.Code, tk.Error)
			}
			break
		}
		if time.Since(killed) > 15*time.Second {
			t.Fatalf("node-a's deploy not failed 15 s after the kill; node-b's log:\n%s", b.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Dead after 3 s without a heartbeat, checked every second.
	if failedAfter > 10*time.Second {
		t.Errorf("dead node's work failed %v after the kill, want within DeadAfter + 2 heartbeats", failedAfter)
	}
	t.Logf("node-a's work failed %v after SIGKILL (DeadAfter 3s, heartbeat 1s)", failedAfter.Round(time.Millisecond))
	r, err := st.Render(ctx, renderA.ID)
	must(t, err)
	if r.Status != store.RenderFailed || !strings.Contains(r.Error, "node node-a was lost") {
		t.Fatalf("dead node's render: %s %q", r.Status, r.Error)
	}
	if tk, _ := st.Task(ctx, renderTaskA.ID); !tk.Finished || tk.Code == 0 {
		t.Fatalf("dead node's render task: %+v", tk)
	}
	if j, _ := st.Job(ctx, jobA.Key); j.EndedAt.IsZero() {
		t.Fatal("dead node's process still recorded as running")
	}
	if tk, _ := st.Task(ctx, deployB.ID); tk.Finished {
		t.Fatal("the survivor's own deploy was failed")
	}
	if _, ok := nodesByName(t, st)["node-a"]; ok {
		t.Fatal("dead node-a still registered")
	}
	b.waitLog("node declared dead", 5*time.Second)

	// A second live node-b is refused.
	dup := startDaisNoWait(t, cfgPath, "DAIS_NODE_NAME=node-b")
	if code := dup.waitExit(20 * time.Second); code != 78 {
		t.Fatalf("second node-b exited %d, want 78\n%s", code, dup.stderr)
	}
	if !strings.Contains(dup.stderr.String(), "another live node is named \"node-b\"") || !strings.Contains(dup.stderr.String(), "DAIS_NODE_NAME") {
		t.Fatalf("refusal does not say why:\n%s", dup.stderr)
	}

	// node-a comes back, killed, and back again at once: the second start
	// watches the first's heartbeat stop and takes the name over. Its
	// Server.Address differs from node-b's: logged as a mismatch.
	other := filepath.Join(dir, "other.gcfg")
	writeClusterConfig(t, other, data, dsn, "Address = http://elsewhere.example/")
	a2 := startDais(t, other, "DAIS_NODE_NAME=node-a")
	a2.signal(syscall.SIGKILL)
	a2.waitExit(5 * time.Second)
	a3 := startDais(t, other, "DAIS_NODE_NAME=node-a")
	a3.waitLog("taking its name over", time.Second)
	a3.waitLog("CLUSTER MISMATCH", time.Second)
	if !strings.Contains(a3.stderr.String(), "keys=Server.Address") {
		t.Fatalf("mismatch does not name Server.Address:\n%s", a3.stderr)
	}

	// Drain: node-b answers 503 on /__ping__ and /__ready__ while it
	// still serves, for DrainDelay.
	b.signal(syscall.SIGTERM)
	sawDrain := false
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && !sawDrain; {
		code, body, err := tryGet(b.url("/__ping__"))
		if err != nil {
			break // the listener closed
		}
		if code == http.StatusServiceUnavailable && strings.Contains(body, "draining") {
			sawDrain = true
			if code, _, _ := tryGet(b.url("/__ready__")); code != http.StatusServiceUnavailable {
				t.Errorf("/__ready__ while draining: %d", code)
			}
			// The node answers 503 first and then writes its row: give
			// the write its time (one attempt of a heartbeat, 1 s here,
			// and the next heartbeat's should it fail), within the 2 s
			// DrainDelay the row stays for.
			marked := false
			for until := time.Now().Add(2 * time.Second); time.Now().Before(until) && !marked; time.Sleep(20 * time.Millisecond) {
				marked = nodesByName(t, st)["node-b"].Draining
			}
			if !marked {
				t.Error("draining node's row does not say so")
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !sawDrain {
		t.Fatalf("/__ping__ never answered 503 while node-b drained\n%s", b.stderr)
	}
	if code := b.waitExit(20 * time.Second); code != 0 {
		t.Fatalf("node-b exited %d after TERM", code)
	}
	if _, ok := nodesByName(t, st)["node-b"]; ok {
		t.Fatal("node-b still registered after a graceful stop")
	}
	a3.signal(syscall.SIGTERM)
	if code := a3.waitExit(20 * time.Second); code != 0 {
		t.Fatalf("node-a exited %d after TERM", code)
	}
}

// TestClusterDatabaseLost: a node whose connection to PostgreSQL is cut
// answers /__ping__ 503 within 10 s (its heartbeat fails); once the
// database answers again it serves again. The connection goes through a
// TCP relay the test cuts: every connection closed, new ones refused.
func TestClusterDatabaseLost(t *testing.T) {
	dsn := postgresSchemaURL(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	relay := newTCPRelay(t, u.Host)
	u.Host = relay.addr
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.gcfg")
	writeClusterConfig(t, cfgPath, filepath.Join(dir, "data"), u.String())
	p := startDais(t, cfgPath, "DAIS_NODE_NAME=node-c")
	if code, _ := p.get("/__ping__"); code != 200 {
		t.Fatalf("/__ping__ = %d", code)
	}
	relay.cut()
	cutAt := time.Now()
	for {
		code, body, err := tryGet(p.url("/__ping__"))
		if err != nil {
			t.Fatal(err)
		}
		if code == http.StatusServiceUnavailable {
			if !strings.Contains(body, "database unreachable") {
				t.Fatalf("503 without the reason: %s", body)
			}
			break
		}
		if time.Since(cutAt) > 10*time.Second {
			t.Fatalf("/__ping__ still %d 10 s after the database was cut", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("/__ping__ 503 %v after the database was cut", time.Since(cutAt).Round(time.Millisecond))
	relay.restore()
	for deadline := time.Now().Add(15 * time.Second); ; {
		if code, _, _ := tryGet(p.url("/__ping__")); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/__ping__ not 200 15 s after the database came back\n%s", p.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.waitLog("the database answers again", time.Second)
	p.signal(syscall.SIGTERM)
	if code := p.waitExit(20 * time.Second); code != 0 {
		t.Fatalf("exit %d after TERM", code)
	}
}

func tryGet(u string) (int, string, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(u)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// tcpRelay forwards connections on a loopback port to target, until cut.
type tcpRelay struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func newTCPRelay(t *testing.T, target string) *tcpRelay {
	t.Helper()
	r := &tcpRelay{t: t, target: target}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(r.cut)
	return r
}

func (r *tcpRelay) serve(ln net.Listener) {
	r.mu.Lock()
	r.ln = ln
	r.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", r.target)
			if err != nil {
				c.Close()
				continue
			}
			r.mu.Lock()
			r.conns = append(r.conns, c, up)
			r.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
}

// cut closes the listener and every relayed connection.
func (r *tcpRelay) cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln != nil {
		r.ln.Close()
		r.ln = nil
	}
	for _, c := range r.conns {
		c.Close()
	}
	r.conns = nil
}

// restore listens again on the same port.
func (r *tcpRelay) restore() {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatal(err)
	}
	r.serve(ln)
}

// TestClusterUpgrade: a newer dais's migrations arrive in the database
// (simulated: rows in goose's table and in schema_notes, as a newer
// binary writes them). Additive ones: the nodes serve on, and a node of
// this version still starts. Then one that is not: every node drains and
// exits 78 with one line naming the version to replace it with, and a new
// start is refused.
func TestClusterUpgrade(t *testing.T) {
	dsn := postgresSchemaURL(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.gcfg")
	writeClusterConfig(t, cfgPath, filepath.Join(dir, "data"), dsn)
	a := startDais(t, cfgPath, "DAIS_NODE_NAME=node-a")
	b := startDais(t, cfgPath, "DAIS_NODE_NAME=node-b")
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	mine := store.SchemaVersion()
	exec(`INSERT INTO goose_db_version (version_id, is_applied) VALUES ($1, true)`, mine+1000)
	exec(`INSERT INTO schema_notes (version, additive) VALUES ($1, true)`, mine+1000)
	a.waitLog("additive migrations only", 10*time.Second)
	b.waitLog("additive migrations only", 10*time.Second)
	c := startDais(t, cfgPath, "DAIS_NODE_NAME=node-c")
	c.waitLog("serves beside it", time.Second)
	for _, p := range []*daisProc{a, b, c} {
		if code, _ := p.get("/__ping__"); code != 200 {
			t.Fatalf("/__ping__ = %d beside an additive newer schema", code)
		}
	}

	exec(`INSERT INTO goose_db_version (version_id, is_applied) VALUES ($1, true)`, mine+2000)
	exec(`INSERT INTO nodes (name, instance_id, version, schema_version, started_at, heartbeat_at) VALUES ('node-new', 'x', '9.9.9', $1, $2, $2)`,
		mine+2000, time.Now().UnixMicro())
	want := fmt.Sprintf("a newer dais migrated the database to schema version %d", mine+2000)
	for _, p := range []*daisProc{a, b, c} {
		if code := p.waitExit(30 * time.Second); code != 78 {
			t.Fatalf("exit %d after an incompatible newer schema, want 78\n%s", code, p.stderr)
		}
		last := strings.TrimSpace(p.stderr.String())
		last = last[strings.LastIndex(last, "\n")+1:]
		if !strings.Contains(last, want) || !strings.Contains(last, "replace this node with the newer dais (node node-new runs it, dais 9.9.9)") {
			t.Fatalf("last line %q", last)
		}
		if !strings.Contains(p.stderr.String(), "draining: /__ping__ answers 503") {
			t.Errorf("did not drain first:\n%s", p.stderr)
		}
	}
	d := startDaisNoWait(t, cfgPath, "DAIS_NODE_NAME=node-d")
	if code := d.waitExit(20 * time.Second); code != 78 || !strings.Contains(d.stderr.String(), "newer than this dais") {
		t.Fatalf("start against an incompatible newer schema: exit %d\n%s", code, d.stderr)
	}
}
