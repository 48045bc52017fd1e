package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/api"
	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/deploy"
	"github.com/dais-dev/dais/server/schedule"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/usage"
	"github.com/dais-dev/dais/server/web"
)

// fixture is the API as dais serve builds it (web server, deploy service
// with content run without the sandbox, scheduler), over SQLite, with one
// user of each role and an API key for each.
type fixture struct {
	ts    *httptest.Server
	web   *web.Server
	st    store.Store
	keys  map[string]string // role -> key
	users map[string]*store.User
	usage *usage.Recorder // the proxy's usage events; Flush before reading them
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	cfg := config.Defaults()
	cfg.Server.DataDir = t.TempDir()
	if py, err := exec.LookPath("python3"); err == nil {
		cfg.Python.Executable = []string{py}
	}
	if r, err := exec.LookPath("R"); err == nil {
		cfg.R.Executable = []string{r}
	}
	ctx := context.Background()
	st, err := store.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: st, keys: map[string]string{}, users: map[string]*store.User{}}
	for _, role := range []string{store.RoleViewer, store.RolePublisher, store.RoleAdministrator} {
		u := &store.User{Username: role + "1", Role: role}
		if err := st.CreateUser(ctx, u); err != nil {
			t.Fatalf("create user: %v", err)
		}
		key, rec, err := web.NewAPIKey()
		if err != nil {
			t.Fatal(err)
		}
		rec.UserID, rec.Name = u.ID, "test"
		if err := st.CreateAPIKey(ctx, &rec); err != nil {
			t.Fatalf("create key: %v", err)
		}
		f.keys[role], f.users[role] = key, u
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	f.web, err = web.New(web.Options{Config: cfg, Store: st, Logger: logger, Version: "1.2.3-test"})
	if err != nil {
		t.Fatal(err)
	}
	f.usage = usage.New(st, logger)
	if err := f.usage.Start(ctx); err != nil {
		t.Fatal(err)
	}
	dep, err := deploy.New(deploy.Options{Config: f.web.Config, Store: st, Logger: logger, NoSandbox: true, Usage: f.usage})
	if err != nil {
		t.Fatal(err)
	}
	if err := dep.Start(ctx); err != nil {
		t.Fatal(err)
	}
	sch, err := schedule.New(schedule.Options{Store: st, Render: dep.StartRender, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	api.Register(api.Options{Web: f.web, Store: st, Deploy: dep, Scheduler: sch, Logger: logger})
	f.ts = httptest.NewServer(f.web)
	t.Cleanup(func() {
		f.ts.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		dep.Stop(ctx)
		f.usage.Stop(ctx)
	})
	return f
}

type answer struct {
	status int
	header http.Header
	body   string
}

// do sends a request with the API key of role ("" anonymous).
func (f *fixture) do(t *testing.T, method, path, role, body string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, f.ts.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if role != "" {
		req.Header.Set("Authorization", "Key "+f.keys[role])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// apiCase is one request and what its answer must be.
type apiCase struct {
	name, method, path, role, body string
	want                           int
	wantIn                         string // substring of the body
}

// run sends each case in order and checks status, body and Connect's
// answer rules: JSON, no redirect, errors as {"error", "code"}.
func (f *fixture) run(t *testing.T, cases []apiCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := f.do(t, tc.method, tc.path, tc.role, tc.body)
			if a.status != tc.want {
				t.Fatalf("%s %s: status %d, want %d; body %s", tc.method, tc.path, a.status, tc.want, a.body)
			}
			if ct := a.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			if a.status >= 400 {
				var e web.ErrorBody
				if err := json.Unmarshal([]byte(a.body), &e); err != nil || e.Error == "" || e.Code != a.status {
					t.Errorf("error body %q: want {\"error\": \"...\", \"code\": %d}", a.body, a.status)
				}
			}
			if !strings.Contains(a.body, tc.wantIn) {
				t.Errorf("body %q does not contain %q", a.body, tc.wantIn)
			}
		})
	}
}
