package deploy

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/store"
)

// TestCrashLeftovers (issue 23, defect 6): what a killed upload or render
// and a half-done deletion leave under DataDir is removed at start; what
// rows refer to, and what another server may be writing, stays.
func TestCrashLeftovers(t *testing.T) {
	ctx := context.Background()
	cfg := config.Defaults()
	cfg.Server.DataDir = t.TempDir()
	st, err := store.Open(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	owner := &store.User{Username: "pub1", Role: store.RolePublisher}
	if err := st.CreateUser(ctx, owner); err != nil {
		t.Fatal(err)
	}
	conf := func() *config.Config { return cfg }
	svc, err := New(Options{Config: conf, Store: st, NoSandbox: true, Node: "node-a"})
	if err != nil {
		t.Fatal(err)
	}
	c := &store.Content{Name: "doc", OwnerID: owner.ID, AccessType: store.AccessACL, AppMode: "rmd-static"}
	if err := st.CreateContent(ctx, c); err != nil {
		t.Fatal(err)
	}
	b := &store.Bundle{ContentID: c.ID}
	if err := st.CreateBundle(ctx, b); err != nil {
		t.Fatal(err)
	}
	render := func(status string) int64 {
		r := &store.Render{ContentID: c.ID, BundleID: b.ID, Status: status, StartedAt: time.Now()}
		if err := st.CreateRender(ctx, r); err != nil {
			t.Fatal(err)
		}
		return r.ID
	}
	ok, running, failed := render(store.RenderSucceeded), render(store.RenderRunning), render(store.RenderFailed)

	data := cfg.Server.DataDir
	cdir := filepath.Join(data, "apps", strconv.FormatInt(c.ID, 10))
	bdir := filepath.Join(cdir, strconv.FormatInt(b.ID, 10))
	out := func(id int64) string { return filepath.Join(bdir, "output-"+strconv.FormatInt(id, 10)) }
	own := strings.Replace(svc.uploadPattern(), "*", "own", 1)
	paths := map[string]string{ // path -> what it is
		filepath.Join(bdir, "code", "doc.Rmd"):                                             "kept: a bundle's code",
		filepath.Join(out(ok), "index.html"):                                               "kept: a finished render",
		filepath.Join(out(running), "index.html"):                                          "kept: a render running (elsewhere)",
		filepath.Join(out(failed), "index.html"):                                           "removed: a failed render",
		filepath.Join(out(9999), "index.html"):                                             "removed: no such render",
		filepath.Join(cdir, "9999", "bundle.tar.gz"):                                       "removed: no such bundle",
		filepath.Join(data, "apps", "9999", "1", "code", "x"):                              "removed: no such content",
		filepath.Join(cdir, own):                                                           "removed: this node's upload",
		filepath.Join(cdir, "upload-othernode-fresh.tar.gz"):                               "shared: kept, another node's upload in progress",
		filepath.Join(cdir, "upload-othernode-old.tar.gz"):                                 "removed: another node's upload, untouched for long",
		filepath.Join(cdir, "logs", "20260101.log"):                                        "kept: logs",
		filepath.Join(cdir, "notes.txt"):                                                   "kept: not dais's",
		filepath.Join(data, "cache", "runtime", "Python", "3.11", "k1", "python", "x"):     "kept: a cache entry",
		filepath.Join(data, "cache", "runtime", "Python", "3.11", ".new-1", "python", "x"): "shared: kept, another node may be filling it (removed once an hour old)",
	}
	plant := func() {
		t.Helper()
		for p := range paths {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("0123456789"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		old := time.Now().Add(-2 * leftoverGrace)
		if err := os.Chtimes(filepath.Join(cdir, "upload-othernode-old.tar.gz"), old, old); err != nil {
			t.Fatal(err)
		}
	}
	check := func(shared bool) {
		t.Helper()
		for p, what := range paths {
			_, err := os.Stat(p)
			gone := os.IsNotExist(err)
			wantGone := strings.HasPrefix(what, "removed") || (!shared && strings.HasPrefix(what, "shared"))
			if gone != wantGone {
				t.Errorf("shared=%v: %s (%s): gone %v, want gone %v", shared, strings.TrimPrefix(p, data), what, gone, wantGone)
			}
		}
	}

	t.Run("shared data directory (PostgreSQL)", func(t *testing.T) {
		plant()
		if err := svc.cleanLeftovers(ctx, true); err != nil {
			t.Fatal(err)
		}
		check(true)
	})
	t.Run("one server (SQLite)", func(t *testing.T) {
		plant()
		found, err := svc.findLeftovers(ctx, false, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, l := range found {
			got = append(got, strings.TrimPrefix(l.path, data)+" ("+l.why+")")
		}
		slices.Sort(got)
		t.Logf("leftovers:\n%s", strings.Join(got, "\n"))
		if err := svc.cleanLeftovers(ctx, false); err != nil {
			t.Fatal(err)
		}
		check(false)
	})
	t.Run("a start after a killed render", func(t *testing.T) {
		plant()
		// The render marked running was this server's: Start fails it,
		// then removes its partial output.
		if err := svc.Start(ctx); err != nil {
			t.Fatal(err)
		}
		defer svc.Stop(ctx)
		if _, err := os.Stat(out(running)); !os.IsNotExist(err) {
			t.Errorf("the killed render's output is still there: %v", err)
		}
		if _, err := os.Stat(out(ok)); err != nil {
			t.Errorf("the finished render's output is gone: %v", err)
		}
	})
}
