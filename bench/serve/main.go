// Command serve measures dais serve: cold start to the first 200 from
// /__ping__ (empty SQLite, and empty PostgreSQL when -postgres is given),
// idle RSS, and /__ping__ plus an authenticated API read under load with
// wrk. The peer, measured in the same run, is a bare Go net/http server
// answering {} on /__ping__: the floor dais's middleware adds to.
package main

import (
	"bufio"
	"context"
	"database/sql"
	"flag"
	"fmt"
	"io"
	"net"
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
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

func main() {
	dais := flag.String("dais", "bin/dais", "the dais binary")
	pg := flag.String("postgres", "", "a PostgreSQL URL to measure cold start against (a schema per run)")
	n := flag.Int("n", 10, "cold starts per store")
	dur := flag.Duration("d", 5*time.Second, "wrk duration per load run")
	conns := flag.Int("c", 32, "wrk connections")
	peer := flag.Bool("peer", false, "internal: run the bare net/http peer on -listen")
	listen := flag.String("listen", "127.0.0.1:0", "internal: peer address")
	flag.Parse()
	if *peer {
		runPeer(*listen)
		return
	}
	if err := run(*dais, *pg, *n, *dur, *conns); err != nil {
		fmt.Fprintln(os.Stderr, "bench serve:", err)
		os.Exit(1)
	}
}

func runPeer(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("msg=\"dais ready\" addr=%s\n", ln.Addr())
	mux := http.NewServeMux()
	mux.HandleFunc("GET /__ping__", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{}\n")
	})
	_ = http.Serve(ln, mux)
}

type result struct{ name, value, peer, ratio string }

func run(dais, pg string, n int, dur time.Duration, conns int) error {
	var rows []result
	target := func(name string, d time.Duration, goal time.Duration) {
		rows = append(rows, result{name, ms(d), "target " + ms(goal), fmt.Sprintf("%.2f", float64(d)/float64(goal))})
	}

	// Cold start, SQLite: a fresh data directory each run.
	var cold []time.Duration
	for range n {
		dir, err := os.MkdirTemp("", "dais-bench")
		if err != nil {
			return err
		}
		cfg := writeConfig(dir, "")
		d, p, err := coldStart(dais, cfg, nil)
		if err != nil {
			return fmt.Errorf("cold start (SQLite): %w", err)
		}
		p.stop()
		os.RemoveAll(dir)
		cold = append(cold, d)
	}
	target("cold start to first 200, SQLite, median", pct(cold, 50), 300*time.Millisecond)
	target("cold start to first 200, SQLite, max", slices.Max(cold), 300*time.Millisecond)

	// Peer cold start: the bare Go server, same measurement.
	self, _ := os.Executable()
	var peerCold []time.Duration
	for range n {
		d, p, err := startAndPing(exec.Command(self, "-peer"))
		if err != nil {
			return fmt.Errorf("peer cold start: %w", err)
		}
		p.stop()
		peerCold = append(peerCold, d)
	}
	med := pct(cold, 50)
	rows = append(rows, result{"cold start, bare net/http peer, median", ms(pct(peerCold, 50)), "", fmt.Sprintf("dais/peer %.1f", float64(med)/float64(pct(peerCold, 50)))})

	// Cold start, PostgreSQL: a fresh schema each run.
	if pg != "" {
		var pgCold []time.Duration
		for i := range min(n, 5) {
			dsn, drop, err := pgSchema(pg, i)
			if err != nil {
				return err
			}
			dir, _ := os.MkdirTemp("", "dais-bench")
			cfg := writeConfig(dir, fmt.Sprintf("[Database]\nProvider = postgres\n[Postgres]\nURL = %q\n", dsn))
			d, p, err := coldStart(dais, cfg, nil)
			if err != nil {
				drop()
				return fmt.Errorf("cold start (PostgreSQL): %w", err)
			}
			p.stop()
			drop()
			os.RemoveAll(dir)
			pgCold = append(pgCold, d)
		}
		target("cold start to first 200, PostgreSQL, median", pct(pgCold, 50), 300*time.Millisecond)
	} else {
		rows = append(rows, result{"cold start, PostgreSQL", "skipped (no DAIS_TEST_POSTGRES_URL)", "", ""})
	}

	// Idle RSS and load: one SQLite server with a user and a key.
	dir, err := os.MkdirTemp("", "dais-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	cfg := writeConfig(dir, "") // defaults: access log on
	if out, err := cmdIn(dais, "bench-password\n", "users", "add", "--config", cfg, "--role", "publisher", "bench"); err != nil {
		return fmt.Errorf("users add: %v: %s", err, out)
	}
	keyOut, err := cmdIn(dais, "", "keys", "create", "--config", cfg, "--user", "bench")
	if err != nil {
		return fmt.Errorf("keys create: %v: %s", err, keyOut)
	}
	key := strings.TrimSpace(strings.SplitN(keyOut, "\n", 2)[0])
	_, p, err := coldStart(dais, cfg, nil)
	if err != nil {
		return err
	}
	defer p.stop()
	time.Sleep(2 * time.Second)
	rss := rssKB(p.cmd.Process.Pid)
	rows = append(rows, result{"idle RSS after start", fmt.Sprintf("%.1f MB", float64(rss)/1024), "target 40 MB", fmt.Sprintf("%.2f", float64(rss)/1024/40)})

	_, peerProc, err := startAndPing(exec.Command(self, "-peer"))
	if err != nil {
		return err
	}
	defer peerProc.stop()
	peerRSS := rssKB(peerProc.cmd.Process.Pid)
	rows = append(rows, result{"idle RSS, bare net/http peer", fmt.Sprintf("%.1f MB", float64(peerRSS)/1024), "", fmt.Sprintf("dais/peer %.1f", float64(rss)/float64(peerRSS))})

	if _, err := exec.LookPath("wrk"); err != nil {
		rows = append(rows, result{"load (wrk)", "skipped: apt-get install wrk", "", ""})
	} else {
		peerPing, err := wrk("http://"+peerProc.addr+"/__ping__", "", dur, conns)
		if err != nil {
			return err
		}
		ping, err := wrk("http://"+p.addr+"/__ping__", "", dur, conns)
		if err != nil {
			return err
		}
		api, err := wrk("http://"+p.addr+"/__api__/v1/user", key, dur, conns)
		if err != nil {
			return err
		}
		rows = append(rows,
			result{"GET /__ping__ req/s (p99)", ping.String(), peerPing.String(), fmt.Sprintf("dais/peer %.2f", ping.rps/peerPing.rps)},
			result{"GET /__api__/v1/user with key req/s (p99)", api.String(), peerPing.String(), fmt.Sprintf("dais/peer %.2f", api.rps/peerPing.rps)},
		)
		if ping.errors > 0 || api.errors > 0 {
			return fmt.Errorf("wrk saw non-2xx answers or errors: ping %d, api %d", ping.errors, api.errors)
		}
	}

	fmt.Printf("dais serve benchmark (%d cores, wrk %d connections, %v per run; peer: bare Go net/http)\n", runtimeCPUs(), conns, dur)
	fmt.Printf("%-46s %-26s %-26s %s\n", "measure", "dais", "peer / target", "ratio")
	for _, r := range rows {
		fmt.Printf("%-46s %-26s %-26s %s\n", r.name, r.value, r.peer, r.ratio)
	}
	return nil
}

func runtimeCPUs() int { return runtime.NumCPU() }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }

func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}

func writeConfig(dir, extra string) string {
	path := filepath.Join(dir, "c.gcfg")
	text := fmt.Sprintf("[Server]\nDataDir = %s\nStopTimeout = 5s\n[HTTP]\nListen = 127.0.0.1:0\n%s", filepath.Join(dir, "data"), extra)
	_ = os.WriteFile(path, []byte(text), 0o600)
	return path
}

func cmdIn(bin, stdin string, args ...string) (string, error) {
	c := exec.Command(bin, args...)
	c.Stdin = strings.NewReader(stdin)
	out, err := c.Output()
	return string(out), err
}

type proc struct {
	cmd  *exec.Cmd
	addr string
}

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

func coldStart(dais, cfg string, env []string) (time.Duration, *proc, error) {
	c := exec.Command(dais, "serve", "--config", cfg)
	c.Env = append(os.Environ(), env...)
	return startAndPing(c)
}

var readyRE = regexp.MustCompile(`msg="dais ready" addr=(\S+)`)

// startAndPing starts c and returns the time from exec to the first 200
// from /__ping__. The address comes from the "dais ready" log line; the
// clock stops at the 200, not at the log line.
func startAndPing(c *exec.Cmd) (time.Duration, *proc, error) {
	pr, pw := io.Pipe()
	c.Stdout, c.Stderr = pw, pw
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			if m := readyRE.FindStringSubmatch(sc.Text()); m != nil && !sent {
				addrCh <- m[1]
				sent = true
			}
		}
	}()
	start := time.Now()
	if err := c.Start(); err != nil {
		return 0, nil, err
	}
	p := &proc{cmd: c}
	var addr string
	select {
	case addr = <-addrCh:
	case <-time.After(30 * time.Second):
		p.stop()
		return 0, nil, fmt.Errorf("%s: not ready after 30 s", c.Path)
	}
	p.addr = addr
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		resp, err := client.Get("http://" + addr + "/__ping__")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return time.Since(start), p, nil
			}
		}
		if time.Since(start) > 30*time.Second {
			p.stop()
			return 0, nil, fmt.Errorf("no 200 from /__ping__ after 30 s: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
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

type wrkResult struct {
	rps    float64
	p99    string
	errors int
}

func (w wrkResult) String() string { return fmt.Sprintf("%.0f (p99 %s)", w.rps, w.p99) }

var (
	rpsRE    = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	p99RE    = regexp.MustCompile(`\s99%\s+(\S+)`)
	non2xxRE = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	sockRE   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

func wrk(target, key string, dur time.Duration, conns int) (wrkResult, error) {
	args := []string{"-t2", "-c" + strconv.Itoa(conns), "-d" + strconv.Itoa(int(dur.Seconds())) + "s", "--latency"}
	if key != "" {
		args = append(args, "-H", "Authorization: Key "+key)
	}
	ctx, cancel := context.WithTimeout(context.Background(), dur+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "wrk", append(args, target)...).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %v: %s", target, err, out)
	}
	var r wrkResult
	m := rpsRE.FindSubmatch(out)
	p := p99RE.FindSubmatch(out)
	if m == nil || p == nil {
		return r, fmt.Errorf("cannot read wrk's output:\n%s", out)
	}
	r.rps, _ = strconv.ParseFloat(string(m[1]), 64)
	r.p99 = string(p[1])
	if m := non2xxRE.FindSubmatch(out); m != nil {
		r.errors, _ = strconv.Atoi(string(m[1]))
	}
	if m := sockRE.FindSubmatch(out); m != nil {
		for _, g := range m[1:] {
			v, _ := strconv.Atoi(string(g))
			r.errors += v
		}
	}
	return r, nil
}

// pgSchema makes an empty schema and returns a URL selecting it and a
// function that drops it.
func pgSchema(base string, i int) (string, func(), error) {
	db, err := sql.Open("pgx", base)
	if err != nil {
		return "", nil, err
	}
	schema := fmt.Sprintf("dais_bench_%d_%d", os.Getpid(), i)
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
