// Command scale measures how dais serve behaves as its database grows: it
// fills a database (SQLite, and PostgreSQL when -postgres is given) with
// 1,000 users in groups, content with permissions, and a set of deployed
// apps that keep a process running each, then measures at each size (100,
// 1,000 and 10,000 content items by default), against the same measure at
// the smallest size in the same run:
//
//   - GET /__api__/v1/content (Connect's unpaged list of what the user may
//     see: it grows with the items by nature, and is judged by its time
//     per item), its filtered form (?name=), and the paged search
//     (/__api__/v1/search/content: the first page, and a word search);
//   - a content request through the proxy (authentication, content lookup,
//     access check through a group, proxy to the app's process);
//   - the dashboard's pages, with a session cookie: the content list
//     (/connect/), a content's page as a viewer and as its owner
//     (/connect/apps/<guid>), and an administrator's users, groups,
//     server, audit log (one entry per content item) and load pages, with
//     the HTML bytes of each;
//   - a deploy of a small static bundle, upload to finished task;
//   - cold start to ready (/__ready__ answers 200);
//   - the RSS of dais serve.
//
// Requests are made one at a time as a viewer whose access comes from
// groups (the costliest case for the access rule), after a warm-up. Run it
// through bench/scale.sh.
package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

func main() {
	o := opts{}
	flag.StringVar(&o.dais, "dais", "bin/dais", "the dais binary")
	flag.StringVar(&o.pg, "postgres", "", "a PostgreSQL URL (a schema per run); empty: SQLite only")
	sizes := flag.String("sizes", "100,1000,10000", "content counts to measure at, increasing")
	flag.IntVar(&o.users, "users", 1000, "users (in groups of 40)")
	flag.IntVar(&o.apps, "apps", 100, "deployed apps, one running process each")
	flag.IntVar(&o.n, "n", 200, "requests per measure (after 20 of warm-up)")
	flag.StringVar(&o.python, "python", "/usr/bin/python3", "the Python the apps run with")
	flag.StringVar(&o.runAs, "run-as", "rstudio-connect", "Applications.RunAs")
	flag.BoolVar(&o.keep, "keep", false, "keep the data directory (printed) and the PostgreSQL schema")
	flag.Parse()
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < o.apps {
			fmt.Fprintf(os.Stderr, "bench scale: -sizes: %q is not a count of at least -apps (%d)\n", s, o.apps)
			os.Exit(2)
		}
		o.sizes = append(o.sizes, n)
	}
	dbs := []string{"sqlite"}
	if o.pg != "" {
		dbs = append(dbs, "postgres")
	}
	fmt.Printf("scale, %s, %d CPUs, load %s; %d users in groups, %d apps running, requests one at a time, %d each after 20 of warm-up\n",
		time.Now().UTC().Format("2006-01-02T15:04Z"), runtime.NumCPU(), loadavg(), o.users, o.apps, o.n)
	failed := false
	for _, db := range dbs {
		rows, err := runDB(o, db)
		printTable(db, o.sizes, rows)
		if err != nil {
			fmt.Printf("%s: stopped: %v\n", db, err)
			failed = true
		}
	}
	fmt.Println("targets: at the largest size within 1.5x of the smallest, and no request above 50 ms p99")
	if failed {
		os.Exit(1)
	}
}

type opts struct {
	dais, pg, python, runAs string
	sizes                   []int
	users, apps, n          int
	keep                    bool
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// row is one measure at every size; kind says how to show and judge it.
type row struct {
	name string
	kind string // "ms" latency (target 50 ms), "linear" (grows with the items by nature), "time" (no 50 ms target), "mb", "count"
	vals []float64
}

func printTable(db string, sizes []int, rows []*row) {
	fmt.Printf("%-9s %-52s", "database", "measure")
	for _, s := range sizes {
		fmt.Printf(" %9s", strconv.Itoa(s))
	}
	fmt.Printf(" %9s %s\n", "last/first", "")
	for _, r := range rows {
		fmt.Printf("%-9s %-52s", db, r.name)
		for i := range sizes {
			if i < len(r.vals) {
				fmt.Printf(" %9.2f", r.vals[i])
			} else {
				fmt.Printf(" %9s", "-")
			}
		}
		if len(r.vals) == len(sizes) && r.vals[0] > 0 && r.kind != "count" {
			ratio := r.vals[len(r.vals)-1] / r.vals[0]
			verdict := "ok"
			switch {
			case r.kind == "linear":
				// Connect's unpaged list returns every item the user may
				// see: it grows with them; its time per item is judged.
				verdict = "linear by nature (every visible item)"
			case ratio > 1.5:
				verdict = "NOT flat"
			}
			if (r.kind == "ms" || r.kind == "linear") && strings.Contains(r.name, "p99") && r.vals[len(r.vals)-1] > 50 {
				verdict += ", over 50 ms"
			}
			fmt.Printf(" %9.2fx %s", ratio, verdict)
		}
		fmt.Println()
	}
}

// runDB fills one database size after size and measures at each.
func runDB(o opts, db string) ([]*row, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("/var/tmp", "dais-scale-")
	if err != nil {
		return nil, err
	}
	if o.keep {
		fmt.Fprintf(os.Stderr, "bench scale: %s: data in %s\n", db, dir)
	} else {
		defer os.RemoveAll(dir)
	}
	os.Chmod(dir, 0o755)
	extra := ""
	if db == "postgres" {
		dsn, drop, err := pgSchema(o.pg)
		if err != nil {
			return nil, err
		}
		if !o.keep {
			defer drop()
		}
		extra = fmt.Sprintf("[Database]\nProvider = postgres\n[Postgres]\nURL = %q\n", dsn)
	}
	cfgPath := filepath.Join(dir, "c.gcfg")
	cfgText := fmt.Sprintf("[Server]\nDataDir = %s\nStopTimeout = 10s\n[HTTP]\nListen = 127.0.0.1:0\n[Applications]\nRunAs = %s\n[Python]\nExecutable = %s\n[Logging]\nAccessLog = false\n%s",
		filepath.Join(dir, "data"), o.runAs, o.python, extra)
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		return nil, err
	}
	loaded, err := config.Load(cfgPath, nil)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, loaded.Config, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	f, err := newFixture(ctx, st, o.users)
	st.Close()
	if err != nil {
		return nil, fmt.Errorf("users and groups: %w", err)
	}

	names := []string{
		"GET /v1/content, all visible, p50 ms", "GET /v1/content, all visible, p99 ms",
		"GET /v1/content, all visible, p50 us per item",
		"GET /v1/content?name= (filtered), p50 ms", "GET /v1/content?name= (filtered), p99 ms",
		"GET /v1/search/content, first page, p50 ms", "GET /v1/search/content, first page, p99 ms",
		"GET /v1/search/content?q=word, p50 ms", "GET /v1/search/content?q=word, p99 ms",
		"GET /content/<guid>/ through the proxy, p50 ms", "GET /content/<guid>/ through the proxy, p99 ms",
		"GET /connect/ (dashboard's content list), p50 ms", "GET /connect/ (dashboard's content list), p99 ms",
		"GET /connect/apps/<guid> (content page, viewer), p50 ms", "GET /connect/apps/<guid> (content page, viewer), p99 ms",
		"GET /connect/apps/<guid> (content page, owner), p50 ms", "GET /connect/apps/<guid> (content page, owner), p99 ms",
		"GET /connect/admin/users, p50 ms", "GET /connect/admin/users, p99 ms",
		"GET /connect/admin/groups, p50 ms", "GET /connect/admin/groups, p99 ms",
		"GET /connect/admin/server, p50 ms", "GET /connect/admin/server, p99 ms",
		"GET /connect/admin/audit, p50 ms", "GET /connect/admin/audit, p99 ms",
		"GET /connect/admin/load, p50 ms", "GET /connect/admin/load, p99 ms",
		"HTML bytes: /connect/", "HTML bytes: content page (owner)", "HTML bytes: /connect/admin/users",
		"HTML bytes: /connect/admin/groups", "HTML bytes: /connect/admin/audit", "HTML bytes: /connect/admin/load",
		"deploy of a static bundle, upload to done, ms", "cold start to ready (/__ready__ 200), ms",
		"RSS of dais serve after start and app warm-up, MB", "RSS of dais serve after the measures, MB", "items the viewer sees in /v1/content",
	}
	var rows []*row
	byName := map[string]*row{}
	for _, n := range names {
		k := "ms"
		switch {
		case strings.HasPrefix(n, "deploy"), strings.HasPrefix(n, "cold"):
			k = "time"
		case strings.HasPrefix(n, "RSS"):
			k = "mb"
		case strings.HasPrefix(n, "items"), strings.HasPrefix(n, "HTML bytes"):
			k = "count"
		case strings.HasSuffix(n, "per item"):
			k = "time"
		case strings.HasPrefix(n, "GET /v1/content, all visible, p"):
			k = "linear"
		}
		r := &row{name: n, kind: k}
		rows = append(rows, r)
		byName[n] = r
	}
	add := func(name string, v float64) { byName[name].vals = append(byName[name].vals, v) }
	lat := func(name string, ds []time.Duration) {
		add(name+", p50 ms", msOf(pct(ds, 50)))
		add(name+", p99 ms", msOf(pct(ds, 99)))
	}

	srv, _, err := startServer(o.dais, cfgPath)
	if err != nil {
		return rows, err
	}
	defer func() { srv.stop() }()
	fmt.Fprintf(os.Stderr, "bench scale: %s: deploying %d apps\n", db, o.apps)
	apps, err := deployApps(srv, f.pubKey, o.apps)
	if err != nil {
		return rows, err
	}
	count := 0
	for _, size := range o.sizes {
		srv.stop()
		st, err := store.Open(ctx, loaded.Config, slog.New(slog.DiscardHandler))
		if err != nil {
			return rows, err
		}
		if count == 0 {
			// The apps: readable by the viewer through a group.
			err = f.shareApps(ctx, st, apps)
			count = len(apps)
		}
		if err == nil {
			fmt.Fprintf(os.Stderr, "bench scale: %s: filling to %d content items\n", db, size)
			err = f.fill(ctx, st, count, size)
		}
		st.Close()
		if err != nil {
			return rows, fmt.Errorf("fill to %d: %w", size, err)
		}
		count = size

		var cold time.Duration
		srv, cold, err = startServer(o.dais, cfgPath)
		if err != nil {
			return rows, err
		}
		if err := srv.waitApps(apps, f.viewerKey); err != nil {
			return rows, err
		}
		time.Sleep(2 * time.Second) // let the start's work settle
		add("RSS of dais serve after start and app warm-up, MB", float64(rssKB(srv.cmd.Process.Pid))/1024)
		c := srv.client(f.viewerKey, "")
		var seen int
		ds, err := c.measure(o.n, func(i int) string { return "/__api__/v1/content" }, func(b []byte) error {
			var l []json.RawMessage
			if err := json.Unmarshal(b, &l); err != nil {
				return err
			}
			seen = len(l)
			return nil
		})
		if err != nil {
			return rows, err
		}
		lat("GET /v1/content, all visible", ds)
		add("items the viewer sees in /v1/content", float64(seen))
		add("GET /v1/content, all visible, p50 us per item", msOf(pct(ds, 50))*1000/float64(max(seen, 1)))
		steps := []struct {
			name string
			c    *client
			path func(i int) string
		}{
			{"GET /v1/content?name= (filtered)", c, func(i int) string {
				return fmt.Sprintf("/__api__/v1/content?name=item-%05d", (i*37)%size)
			}},
			{"GET /v1/search/content, first page", c, func(int) string { return "/__api__/v1/search/content?page_number=1&page_size=20" }},
			{"GET /v1/search/content?q=word", c, func(i int) string {
				return "/__api__/v1/search/content?page_size=20&q=" + words[i%len(words)]
			}},
			{"GET /content/<guid>/ through the proxy", c, func(i int) string { return "/content/" + apps[i%len(apps)] + "/" }},
			{"GET /connect/ (dashboard's content list)", srv.client("", f.viewerSession), func(int) string { return "/connect/" }},
			{"GET /connect/apps/<guid> (content page, viewer)", srv.client("", f.viewerSession), func(i int) string { return "/connect/apps/" + apps[i%len(apps)] }},
			{"GET /connect/apps/<guid> (content page, owner)", srv.client("", f.pubSession), func(i int) string { return "/connect/apps/" + apps[i%len(apps)] }},
			{"GET /connect/admin/users", srv.client("", f.adminSession), func(int) string { return "/connect/admin/users" }},
			{"GET /connect/admin/groups", srv.client("", f.adminSession), func(int) string { return "/connect/admin/groups" }},
			{"GET /connect/admin/server", srv.client("", f.adminSession), func(int) string { return "/connect/admin/server" }},
			{"GET /connect/admin/audit", srv.client("", f.adminSession), func(int) string { return "/connect/admin/audit" }},
			{"GET /connect/admin/load", srv.client("", f.adminSession), func(int) string { return "/connect/admin/load" }},
		}
		sizeOf := map[string]string{
			"GET /connect/ (dashboard's content list)": "/connect/", "GET /connect/apps/<guid> (content page, owner)": "content page (owner)",
			"GET /connect/admin/users": "/connect/admin/users", "GET /connect/admin/groups": "/connect/admin/groups",
			"GET /connect/admin/audit": "/connect/admin/audit", "GET /connect/admin/load": "/connect/admin/load",
		}
		for _, s := range steps {
			var bytes int
			ds, err := s.c.measure(o.n, s.path, func(b []byte) error { bytes = len(b); return nil })
			if err != nil {
				return rows, fmt.Errorf("%s: %w", s.name, err)
			}
			lat(s.name, ds)
			if name, ok := sizeOf[s.name]; ok {
				add("HTML bytes: "+name, float64(bytes))
			}
		}
		var deploys []time.Duration
		for i := range 3 {
			d, err := srv.deployStatic(f.pubKey, fmt.Sprintf("static-%d-%d", size, i))
			if err != nil {
				return rows, fmt.Errorf("deploy: %w", err)
			}
			deploys = append(deploys, d)
		}
		add("deploy of a static bundle, upload to done, ms", msOf(pct(deploys, 50)))
		add("cold start to ready (/__ready__ 200), ms", msOf(cold))
		add("RSS of dais serve after the measures, MB", float64(rssKB(srv.cmd.Process.Pid))/1024)
		fmt.Fprintf(os.Stderr, "bench scale: %s: %d measured\n", db, size)
	}
	return rows, nil
}

var words = []string{"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"}

// fixture is the users, groups and credentials of a run.
type fixture struct {
	admin, pub, viewer int64
	pubs, viewers      []int64
	groups             []int64
	pubKey, viewerKey  string
	viewerSession      string
	pubSession         string
	adminSession       string
}

// newFixture creates the users (one administrator, a tenth publishers,
// the rest viewers), groups of 40 (each user in two), an API key for a
// publisher and for a viewer, and a session for that viewer.
func newFixture(ctx context.Context, st store.Store, users int) (*fixture, error) {
	f := &fixture{}
	mk := func(name, role string) (int64, error) {
		u := &store.User{Username: name, Role: role, FirstName: "First " + name, LastName: "Last", Email: name + "@example.com"}
		if err := st.CreateUser(ctx, u); err != nil {
			return 0, err
		}
		return u.ID, nil
	}
	var err error
	if f.admin, err = mk("scale-admin", store.RoleAdministrator); err != nil {
		return nil, err
	}
	for i := 1; i < users; i++ {
		role := store.RoleViewer
		if i%10 == 0 {
			role = store.RolePublisher
		}
		id, err := mk(fmt.Sprintf("user-%04d", i), role)
		if err != nil {
			return nil, err
		}
		if role == store.RolePublisher {
			f.pubs = append(f.pubs, id)
		} else {
			f.viewers = append(f.viewers, id)
		}
	}
	f.pub, f.viewer = f.pubs[0], f.viewers[0]
	ngroups := max(users/40, 2)
	for g := range ngroups {
		gr := &store.Group{Name: fmt.Sprintf("group-%03d", g), OwnerID: f.admin}
		if err := st.CreateGroup(ctx, gr); err != nil {
			return nil, err
		}
		f.groups = append(f.groups, gr.ID)
	}
	all := append(slices.Clone(f.viewers), f.pubs...)
	for i, u := range all {
		for _, g := range []int{i % ngroups, (i*7 + 3) % ngroups} {
			if err := st.AddGroupMember(ctx, f.groups[g], u); err != nil && !errors.Is(err, store.ErrConflict) {
				return nil, err
			}
		}
	}
	key := func(user int64) (string, error) {
		k, rec, err := web.NewAPIKey()
		if err != nil {
			return "", err
		}
		rec.UserID, rec.Name = user, "scale"
		return k, st.CreateAPIKey(ctx, &rec)
	}
	if f.pubKey, err = key(f.pub); err != nil {
		return nil, err
	}
	if f.viewerKey, err = key(f.viewer); err != nil {
		return nil, err
	}
	session := func(user int64) (string, error) {
		token := fmt.Sprintf("scale-session-%d-%d", user, time.Now().UnixNano())
		return token, st.CreateSession(ctx, &store.Session{TokenHash: web.HashToken(token), UserID: user,
			CreatedAt: time.Now(), ExpiresAt: time.Now().Add(24 * time.Hour)})
	}
	if f.viewerSession, err = session(f.viewer); err != nil {
		return nil, err
	}
	if f.pubSession, err = session(f.pub); err != nil {
		return nil, err
	}
	f.adminSession, err = session(f.admin)
	return f, err
}

// shareApps gives the apps to the viewer's first group (viewer role).
func (f *fixture) shareApps(ctx context.Context, st store.Store, apps []string) error {
	for _, guid := range apps {
		c, err := st.ContentByGUID(ctx, guid)
		if err != nil {
			return err
		}
		if err := st.SetPermission(ctx, &store.Permission{ContentID: c.ID, GroupID: f.groups[0], Role: store.PermViewer}); err != nil {
			return err
		}
	}
	return nil
}

// fill adds content items from..to-1: a fifth open to all, a fifth to
// logged-in users, the rest with an ACL of a viewer, a collaborator and a
// group; owners spread over the publishers.
func (f *fixture) fill(ctx context.Context, st store.Store, from, to int) error {
	for i := from; i < to; i++ {
		c := &store.Content{
			Name: fmt.Sprintf("item-%05d", i), Title: fmt.Sprintf("Item %d %s report", i, words[i%len(words)]),
			Description: "a content item of the scale benchmark", OwnerID: f.pubs[i%len(f.pubs)],
			AccessType: []string{store.AccessAll, store.AccessLoggedIn, store.AccessACL, store.AccessACL, store.AccessACL}[i%5],
			AppMode:    []string{"static", "python-api", "shiny", "rmd-static", "quarto-static"}[i%5],
		}
		if err := st.CreateContent(ctx, c); err != nil {
			return err
		}
		// One audit entry per item: the audit log page reads the newest.
		if err := st.AddAuditLog(ctx, &store.AuditLog{Time: time.Now(), UserID: c.OwnerID, UserDescription: "user",
			Action: "add_application", EventDescription: "Created content " + c.Name}); err != nil {
			return err
		}
		if c.AccessType != store.AccessACL {
			continue
		}
		for _, p := range []store.Permission{
			{ContentID: c.ID, UserID: f.viewers[(i*13)%len(f.viewers)], Role: store.PermViewer},
			{ContentID: c.ID, UserID: f.pubs[(i+1)%len(f.pubs)], Role: store.PermOwner},
			{ContentID: c.ID, GroupID: f.groups[i%len(f.groups)], Role: store.PermViewer},
		} {
			if err := st.SetPermission(ctx, &p); err != nil {
				return err
			}
		}
	}
	return nil
}

type server struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
	http *http.Client
}

var readyRE = regexp.MustCompile(`msg="dais ready" addr=(\S+)`)

// startServer starts dais serve and returns once /__ready__ answers 200,
// with the time that took from exec.
func startServer(dais, cfg string) (*server, time.Duration, error) {
	c := exec.Command(dais, "serve", "--config", cfg)
	pr, pw := io.Pipe()
	c.Stdout, c.Stderr = pw, pw
	addrCh := make(chan string, 1)
	var tail []string
	var mu sync.Mutex
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			mu.Lock()
			tail = append(tail, sc.Text())
			if len(tail) > 20 {
				tail = tail[1:]
			}
			mu.Unlock()
			if m := readyRE.FindStringSubmatch(sc.Text()); m != nil && !sent {
				addrCh <- m[1]
				sent = true
			}
		}
	}()
	start := time.Now()
	if err := c.Start(); err != nil {
		return nil, 0, err
	}
	s := &server{cmd: c, done: make(chan struct{}), http: &http.Client{Timeout: 60 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	go func() { c.Wait(); pw.Close(); close(s.done) }()
	fail := func(why string) (*server, time.Duration, error) {
		s.stop()
		mu.Lock()
		defer mu.Unlock()
		return nil, 0, fmt.Errorf("dais serve: %s; its last lines:\n%s", why, strings.Join(tail, "\n"))
	}
	select {
	case s.addr = <-addrCh:
	case <-s.done:
		return fail("exited")
	case <-time.After(120 * time.Second):
		return fail("not ready after 120 s")
	}
	for {
		resp, err := s.http.Get("http://" + s.addr + "/__ready__")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, time.Since(start), nil
			}
		}
		if time.Since(start) > 120*time.Second {
			return fail("/__ready__ not 200 after 120 s")
		}
		time.Sleep(time.Millisecond)
	}
}

func (s *server) stop() {
	if s == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(60 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

type client struct {
	s             *server
	key, sessionV string
}

func (s *server) client(key, session string) *client { return &client{s, key, session} }

func (c *client) do(method, path string, body io.Reader, ctype string) ([]byte, error) {
	req, err := http.NewRequest(method, "http://"+c.s.addr+path, body)
	if err != nil {
		return nil, err
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Key "+c.key)
	}
	if c.sessionV != "" {
		req.AddCookie(&http.Cookie{Name: web.SessionCookie, Value: c.sessionV})
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.s.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("%s %s: %s: %.300s", method, path, resp.Status, b)
	}
	return b, nil
}

// measure GETs path(i) n times one after the other (after 20 of warm-up)
// and returns each request's time; check, when set, reads the last body.
func (c *client) measure(n int, path func(int) string, check func([]byte) error) ([]time.Duration, error) {
	var ds []time.Duration
	var last []byte
	for i := -20; i < n; i++ {
		t := time.Now()
		b, err := c.do("GET", path(i+20), nil, "")
		if err != nil {
			return nil, err
		}
		if i >= 0 {
			ds = append(ds, time.Since(t))
		}
		last = b
	}
	if check != nil {
		return ds, check(last)
	}
	return ds, nil
}

// waitApps waits until every app answers through the proxy.
func (s *server) waitApps(apps []string, key string) error {
	c := s.client(key, "")
	deadline := time.Now().Add(5 * time.Minute)
	for _, guid := range apps {
		for {
			_, err := c.do("GET", "/content/"+guid+"/", nil, "")
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("app %s does not answer: %w", guid, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// deployApps creates and deploys n Python (WSGI) apps, four at a time;
// each runs one process once requested, for a day.
func deployApps(s *server, key string, n int) ([]string, error) {
	bundle, err := tarball(map[string]string{
		"app.py": "def app(environ, start_response):\n" +
			"    start_response('200 OK', [('Content-Type', 'text/plain')])\n" +
			"    return [b'hello from a scale app\\n']\n",
		"requirements.txt": "",
	}, `{"version": 1, "metadata": {"appmode": "python-api", "entrypoint": "app"},
 "python": {"version": "3.11.2", "package_manager": {"name": "pip", "package_file": "requirements.txt"}}, "files": %s}`)
	if err != nil {
		return nil, err
	}
	guids := make([]string, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			// Started by their first request (waitApps), not at the
			// server's start: a start waits for apps with min_processes
			// (Connect's behaviour), which would make "cold start to
			// ready" the time to start 100 Python processes.
			g, _, err := s.deploy(key, fmt.Sprintf("app-%03d", i), `"min_processes": 0, "idle_timeout": 86400, "access_type": "acl"`, bundle)
			guids[i] = g
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return guids, nil
}

func (s *server) deployStatic(key, name string) (time.Duration, error) {
	bundle, err := tarball(map[string]string{"index.html": "<h1>" + name + "</h1>\n"},
		`{"version": 1, "metadata": {"appmode": "static", "primary_html": "index.html"}, "files": %s}`)
	if err != nil {
		return 0, err
	}
	_, d, err := s.deploy(key, name, `"access_type": "acl"`, bundle)
	return d, err
}

// deploy creates content name with the extra JSON fields, uploads bundle
// and deploys it; it returns the GUID and the time from the upload on.
func (s *server) deploy(key, name, fields string, bundle []byte) (string, time.Duration, error) {
	c := s.client(key, "")
	b, err := c.do("POST", "/__api__/v1/content", strings.NewReader(fmt.Sprintf(`{"name": %q, %s}`, name, fields)), "application/json")
	if err != nil {
		return "", 0, err
	}
	var ct struct{ GUID string }
	if err := json.Unmarshal(b, &ct); err != nil {
		return "", 0, err
	}
	start := time.Now()
	b, err = c.do("POST", "/__api__/v1/content/"+ct.GUID+"/bundles", bytes.NewReader(bundle), "application/gzip")
	if err != nil {
		return "", 0, err
	}
	var bd struct{ ID string }
	if err := json.Unmarshal(b, &bd); err != nil {
		return "", 0, err
	}
	b, err = c.do("POST", "/__api__/v1/content/"+ct.GUID+"/deploy", strings.NewReader(fmt.Sprintf(`{"bundle_id": %q}`, bd.ID)), "application/json")
	if err != nil {
		return "", 0, err
	}
	var tk struct {
		TaskID string `json:"task_id"`
	}
	if err := json.Unmarshal(b, &tk); err != nil {
		return "", 0, err
	}
	first := 0
	var out []string
	for {
		b, err = c.do("GET", fmt.Sprintf("/__api__/v1/tasks/%s?wait=5&first=%d", tk.TaskID, first), nil, "")
		if err != nil {
			return "", 0, err
		}
		var t struct {
			Output   []string
			Last     int
			Finished bool
			Code     int
			Error    string
		}
		if err := json.Unmarshal(b, &t); err != nil {
			return "", 0, err
		}
		out = append(out, t.Output...)
		first = t.Last
		if t.Finished {
			if t.Code != 0 {
				return "", 0, fmt.Errorf("deploy of %s failed: %s\n%s", name, t.Error, strings.Join(out, "\n"))
			}
			return ct.GUID, time.Since(start), nil
		}
	}
}

// tarball makes a bundle of files and a manifest (manifestFmt with %s
// for its "files" object, md5 checksums).
func tarball(files map[string]string, manifestFmt string) ([]byte, error) {
	sums := map[string]map[string]string{}
	for name, body := range files {
		h := md5.Sum([]byte(body))
		sums[name] = map[string]string{"checksum": hex.EncodeToString(h[:])}
	}
	fj, _ := json.Marshal(sums)
	all := map[string]string{"manifest.json": fmt.Sprintf(manifestFmt, fj)}
	for k, v := range files {
		all[k] = v
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range all {
			if !yield(k) {
				return
			}
		}
	}) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(all[name])), ModTime: time.Now()}); err != nil {
			return nil, err
		}
		io.WriteString(tw, all[name])
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func msOf(d time.Duration) float64 { return float64(d) / 1e6 }

func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func rssKB(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			v, _ := strconv.Atoi(f[1])
			return v
		}
	}
	return 0
}

// pgSchema makes an empty schema and returns a URL selecting it and a
// function that drops it.
func pgSchema(base string) (string, func(), error) {
	db, err := sql.Open("pgx", base)
	if err != nil {
		return "", nil, err
	}
	schema := fmt.Sprintf("dais_scale_%d", os.Getpid())
	if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
		db.Close()
		return "", nil, fmt.Errorf("create schema: %w", err)
	}
	u, err := url.Parse(base)
	if err != nil {
		db.Close()
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), func() {
		_, _ = db.Exec("DROP SCHEMA " + schema + " CASCADE")
		db.Close()
	}, nil
}
