package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dais-dev/dais/server/content"
	"github.com/dais-dev/dais/server/content/bundle"
	"github.com/dais-dev/dais/server/content/env"
	"github.com/dais-dev/dais/server/content/manifest"
	"github.com/dais-dev/dais/server/render"
	"github.com/dais-dev/dais/server/store"
)

// DeployOptions say what a deploy task does beyond the default (build the
// bundle, then make it live).
type DeployOptions struct {
	// Draft builds the bundle (unpacks it, restores its packages) without
	// making it live: the content keeps serving its active bundle, and a
	// later deploy of this bundle activates it ("activate": false).
	Draft bool
	// Rebuild restores the package environment from scratch instead of
	// reusing the one built before or the package cache (POST .../build).
	Rebuild bool
}

// taskWake wakes the long polls of task output (GET /v1/tasks/{id}?wait=)
// when a task of this node writes lines or ends: without it a poll read
// the task every 200 ms, and a deploy of a static bundle that is done in
// 5 ms took 200 ms to report done (bench/scale.sh). Each task has its own
// channel, so a task's lines wake only its own polls. A poll of a task
// run by another node still reads it every 200 ms.
type taskWake struct {
	mu    sync.Mutex
	waits map[string]*taskWait // task id -> the polls waiting for it
}

type taskWait struct {
	ch      chan struct{} // closed at the task's next change
	waiting int
}

// changed is closed at the next change of task id; release, once the
// poll no longer waits on it.
func (w *taskWake) changed(id string) (<-chan struct{}, func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.waits == nil {
		w.waits = map[string]*taskWait{}
	}
	tw := w.waits[id]
	if tw == nil {
		tw = &taskWait{ch: make(chan struct{})}
		w.waits[id] = tw
	}
	tw.waiting++
	return tw.ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		tw.waiting--
		if tw.waiting == 0 && w.waits[id] == tw {
			delete(w.waits, id)
		}
	}
}

func (w *taskWake) wake(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if tw := w.waits[id]; tw != nil {
		close(tw.ch)
		delete(w.waits, id)
	}
}

// TaskChanged is closed at the next change (lines written, or the end) of
// task id if this node runs it; take it before reading the task, so that
// no change between the read and the wait is missed, and call release
// when no longer waiting.
func (s *Service) TaskChanged(id string) (changed <-chan struct{}, release func()) {
	return s.tasks.changed(id)
}

// finishTask records the end of task id and wakes its long polls.
func (s *Service) finishTask(ctx context.Context, id string, code int, msg string, result json.RawMessage, at time.Time) error {
	err := s.st.FinishTask(ctx, id, code, msg, result, at)
	s.tasks.wake(id)
	return err
}

// startDeploy records a deploy task of bundle ref ("" = newest) and runs
// it in the background.
func (s *Service) startDeploy(ctx context.Context, c *store.Content, u *store.User, ref string, o DeployOptions) (*store.Task, error) {
	b, err := s.BundleOf(ctx, c, ref)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	stopped := s.stopped
	s.mu.Unlock()
	if stopped {
		return nil, errStatus(503, "the server is stopping; deploy again once it is back")
	}
	if err := s.CheckSpace(b.Size); err != nil { // unpacked, it is larger still
		return nil, err
	}
	t := &store.Task{ContentID: c.ID, BundleID: b.ID, UserID: u.ID, Kind: store.TaskDeploy, Node: s.o.Node}
	if err := s.st.CreateTask(ctx, t); err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		_ = s.runDeploy(t, c.ID, b, o)
	}()
	return t, nil
}

// taskLog writes whole lines to the task's output as they come.
type taskLog struct {
	s   *Service
	id  string
	mu  sync.Mutex
	buf []byte
}

func (l *taskLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	var lines []string
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		lines = append(lines, strings.TrimRight(string(l.buf[:i]), "\r"))
		l.buf = l.buf[i+1:]
	}
	if len(lines) > 0 {
		l.append(lines...)
	}
	return len(p), nil
}

func (l *taskLog) append(lines ...string) {
	// The task's output must survive the deploy's own cancellation.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.s.st.AppendTaskOutput(ctx, l.id, lines...); err != nil {
		l.s.log.Warn("write task output", logKeyTask, l.id, logKeyErr, err)
	}
	l.s.tasks.wake(l.id)
}

func (l *taskLog) Printf(format string, args ...any) {
	fmt.Fprintf(l, format+"\n", args...)
}

func (l *taskLog) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.append(string(l.buf))
		l.buf = nil
	}
}

// runDeploy is one deploy task, from the archive to live content.
func (s *Service) runDeploy(t *store.Task, contentID int64, b *store.Bundle, o DeployOptions) error {
	tl := &taskLog{s: s, id: t.ID}
	lock := s.contentLock(contentID)
	lock.Lock()
	defer lock.Unlock()
	start := time.Now()
	log := s.log.With(logKeyTask, t.ID, logKeyBundle, b.ID)
	err := s.deploy(s.ctx, tl, contentID, b, o)
	tl.flush()
	code, msg := 0, ""
	if err != nil {
		code, msg = 1, s.spaceErr(err).Error()
		if s.ctx.Err() != nil {
			msg = "the server stopped during the deploy; deploy again: " + msg
		}
		tl.Printf("Deployment failed: %s", msg)
		log.Warn("deploy failed", logKeyErr, msg)
	} else {
		what := "Deployment"
		if o.Draft {
			what = "Build"
		}
		tl.Printf("%s completed in %s", what, time.Since(start).Round(time.Millisecond))
		log.Info("deployed", "elapsed", time.Since(start).Round(time.Millisecond).String())
	}
	tl.flush()
	result, _ := json.Marshal(map[string]any{"bundle_id": b.ID, "content_id": contentID})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.finishTask(ctx, t.ID, code, msg, result, time.Now()); err != nil && !errors.Is(err, store.ErrConflict) {
		log.Error("finish task", logKeyErr, err)
	}
	return err
}

// prepared is what serving one bundle needs.
type prepared struct {
	m    *manifest.Manifest
	rts  content.Runtimes
	dirs content.Dirs
	env  string // the env dir (venv and R library inside)
}

func (s *Service) deploy(ctx context.Context, tl *taskLog, contentID int64, b *store.Bundle, o DeployOptions) error {
	c, err := s.st.Content(ctx, contentID)
	if err != nil {
		return fmt.Errorf("read content: %w", err)
	}
	tl.Printf("Deploying bundle %d of %s (%d bytes)", b.ID, c.Name, b.Size)
	bdir := s.bundleDir(c.ID, b.ID)
	code := filepath.Join(bdir, "code")
	if _, err := os.Stat(code); errors.Is(err, os.ErrNotExist) {
		tl.Printf("Extracting the bundle")
		f, err := os.Open(s.archivePath(c.ID, b.ID))
		if err != nil {
			return fmt.Errorf("open bundle %d: %w", b.ID, err)
		}
		res, err := bundle.Extract(ctx, f, code, s.bundleLimits())
		f.Close()
		if err != nil {
			return fmt.Errorf("bundle refused: %w", err)
		}
		tl.Printf("Extracted %d files, %d bytes", res.Files, res.Bytes)
	}
	m, err := manifest.Read(code)
	if err != nil {
		return err
	}
	if err := m.VerifyFiles(code); err != nil {
		return err
	}
	raw, _ := os.ReadFile(filepath.Join(code, manifest.FileName))
	if err := s.st.SetBundleManifest(ctx, b.ID, raw); err != nil {
		return fmt.Errorf("record manifest: %w", err)
	}
	mode := m.Metadata.AppMode
	tl.Printf("Manifest: app mode %s (%s content)", mode, mode.Kind())

	p, err := s.prepareDeploy(ctx, c, b.ID, m, tl)
	if err != nil {
		return err
	}
	if err := s.restore(ctx, c, p, tl, o.Rebuild); err != nil {
		return err
	}
	if o.Draft {
		tl.Printf("Bundle %d is built but not live (a draft): %s keeps serving its active bundle; deploy bundle %d to make it live", b.ID, c.Name, b.ID)
		return nil
	}

	switch mode.Kind() {
	case manifest.KindStatic:
		if err := s.serveStatic(c.GUID, code, m); err != nil {
			return err
		}
		s.markServed(c.GUID, b.ID, "")
	case manifest.KindDocument:
		out, err := s.render(ctx, c, b.ID, p, tl, store.TaskDeploy)
		if err != nil {
			return err
		}
		if err := s.serveStatic(c.GUID, out, nil); err != nil {
			return err
		}
		s.markServed(c.GUID, b.ID, out)
	case manifest.KindApp:
		tl.Printf("Starting the %s process", mode)
		c.AppMode = string(mode)
		pool, err := s.newPool(c, b.ID, p)
		if err != nil {
			return err
		}
		if err := s.switchPool(ctx, c.GUID, pool); err != nil {
			st := pool.Stats()
			if st.LastError != "" {
				tl.Printf("%s", st.LastError)
			}
			s.tailProcessLog(tl, s.logDir(c))
			if s.proxy.Pool(c.GUID) != nil {
				tl.Printf("The previous bundle keeps serving")
			}
			return fmt.Errorf("the %s process did not start: %w", mode, err)
		}
		s.markServed(c.GUID, b.ID, "")
		s.mu.Lock()
		if f := s.files[c.GUID]; f != nil {
			f.close()
			delete(s.files, c.GUID)
		}
		s.mu.Unlock()
		tl.Printf("The process is ready; traffic switched to bundle %d", b.ID)
	}
	if mode.Kind() != manifest.KindApp {
		if old := s.proxy.Remove(c.GUID); old != nil {
			go old.Drain(context.Background())
		}
	}

	// Record the deploy: the app mode and the versions used, on the
	// content as it is now (settings may have changed during the deploy);
	// the versions requested stay as they are.
	fresh, err := s.st.Content(ctx, c.ID)
	if err != nil {
		return fmt.Errorf("record deploy: %w", err)
	}
	fresh.AppMode = string(mode)
	fresh.RVersion, fresh.PyVersion, fresh.QuartoVersion = verString(p.rts.R.Path, p.rts.R.Version.String()),
		verString(p.rts.Python.Path, p.rts.Python.Version.String()), verString(p.rts.Quarto.Path, p.rts.Quarto.Version.String())
	if err := s.st.UpdateContent(ctx, fresh); err != nil {
		return fmt.Errorf("record deploy: %w", err)
	}
	bid := b.ID
	if err := s.st.SetContentBundle(ctx, c.ID, &bid); err != nil {
		return fmt.Errorf("activate bundle: %w", err)
	}
	tl.Printf("Content is live at /content/%s/", c.GUID)
	return nil
}

func verString(path, v string) string {
	if path == "" {
		return ""
	}
	return v
}

// runtimeVersions are versions to ask for, per runtime; "" for one: the
// manifest's.
type runtimeVersions struct {
	r, python, quarto string
	from              string // where they come from, for the task log
}

// prepareDeploy picks the runtimes and lays out the directories of a
// bundle being deployed: the versions requested through the API
// (r_version, py_version, quarto_version), else the manifest's. The
// versions an earlier deploy used play no part (issue 7).
func (s *Service) prepareDeploy(ctx context.Context, c *store.Content, bundleID int64, m *manifest.Manifest, tl *taskLog) (*prepared, error) {
	return s.prepareVersions(ctx, c, bundleID, m, tl, runtimeVersions{
		r: c.RVersionWanted, python: c.PyVersionWanted, quarto: c.QuartoVersionWanted, from: "set on the content",
	})
}

// prepare does the same for the active bundle, already deployed (at
// start, on a restart with new settings, for a render on request): the
// versions its deploy used come first, as its package environment was
// built with them; a version requested since then applies from the next
// deploy.
func (s *Service) prepare(ctx context.Context, c *store.Content, bundleID int64, m *manifest.Manifest, tl *taskLog) (*prepared, error) {
	return s.prepareVersions(ctx, c, bundleID, m, tl, runtimeVersions{
		r:      firstNonEmpty(c.RVersion, c.RVersionWanted),
		python: firstNonEmpty(c.PyVersion, c.PyVersionWanted),
		quarto: firstNonEmpty(c.QuartoVersion, c.QuartoVersionWanted),
		from:   "used by the deploy of this bundle",
	})
}

func (s *Service) prepareVersions(ctx context.Context, c *store.Content, bundleID int64, m *manifest.Manifest, tl *taskLog, v runtimeVersions) (*prepared, error) {
	bdir := s.bundleDir(c.ID, bundleID)
	p := &prepared{m: m, env: filepath.Join(bdir, "env"), dirs: content.Dirs{
		Code: filepath.Join(bdir, "code"), Work: filepath.Join(bdir, "work"), Output: filepath.Join(bdir, "output"),
		BasePath: "/content/" + c.GUID + "/",
	}}
	for _, lang := range m.Languages() {
		want, fromManifest := "", ""
		switch lang {
		case manifest.LangR:
			want, fromManifest = v.r, string(m.Platform)
		case manifest.LangPython:
			want = v.python
			if m.Python != nil {
				fromManifest = string(m.Python.Version)
			}
		case manifest.LangQuarto:
			want = v.quarto
			if m.Quarto != nil {
				fromManifest = string(m.Quarto.Version)
			}
		}
		origin := "the manifest's"
		switch {
		case want == "" && fromManifest == "":
			origin = "none asked for: the newest installed"
		case want != "" && fromManifest == "":
			origin = v.from + "; the manifest asks for none"
		case want != "" && want != fromManifest:
			origin = fmt.Sprintf("%s; the manifest asks for %q", v.from, fromManifest)
		}
		want = firstNonEmpty(want, fromManifest)
		inst, err := s.finder.Find(ctx, lang, want)
		if err != nil {
			return nil, fmt.Errorf("pick %s: %w", lang, err)
		}
		if tl != nil {
			tl.Printf("Using %s %s (%s) for the requested %q (%s)", lang, inst.Version, inst.Path, want, origin)
		}
		switch lang {
		case manifest.LangR:
			p.rts.R = inst
		case manifest.LangPython:
			p.rts.Python = inst
		case manifest.LangQuarto:
			p.rts.Quarto = inst
		}
	}
	if fi, err := os.Stat(filepath.Join(p.env, "python")); err == nil && fi.IsDir() {
		p.dirs.Venv = filepath.Join(p.env, "python")
	}
	if fi, err := os.Stat(filepath.Join(p.env, "R")); err == nil && fi.IsDir() {
		p.dirs.RLibrary = filepath.Join(p.env, "R")
	}
	return p, nil
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

// restore builds the bundle's package environment, in the sandbox, or
// copies it from the package cache (cache.go) when a deploy built one
// for the same requirements and runtime before. rebuild builds it from
// scratch beside the current one, which it replaces once built.
func (s *Service) restore(ctx context.Context, c *store.Content, p *prepared, tl *taskLog, rebuild bool) error {
	if len(p.m.Languages()) == 0 {
		if rebuild {
			tl.Printf("A %s bundle has no package environment to rebuild", p.m.Metadata.AppMode)
		}
		return nil
	}
	repos := map[string]string{}
	for name, r := range s.o.Config().RPackageRepository {
		if r != nil && r.URL != "" {
			repos[name] = r.URL
		}
	}
	final := p.env
	if rebuild {
		p.env = final + ".rebuild"
		if err := os.RemoveAll(p.env); err != nil {
			return err
		}
		tl.Printf("Rebuilding the package environment from scratch")
	}
	for _, d := range []string{p.env, p.dirs.Work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	langs := cacheable(p)
	entries := map[manifest.Language]string{}
	hits := 0
	for _, lang := range langs {
		entry, err := s.cacheDir(ctx, c, p, lang, repos)
		if err != nil {
			return fmt.Errorf("package cache: %w", err)
		}
		entries[lang] = entry
		if rebuild || entry == "" {
			continue
		}
		ok, err := s.fromCache(ctx, p, lang, entry)
		if err != nil {
			tl.Printf("Warning: the package cache could not be used (%v); restoring instead", err)
			continue
		}
		if ok {
			hits++
			tl.Printf("Reusing the %s package environment of the runtime cache (%s, same requirements)", cacheLanguage(lang), filepath.Base(filepath.Dir(entry)))
		}
	}
	if err := s.giveTo(c, p.env, p.dirs.Work); err != nil {
		return err
	}
	if hits < len(langs) || len(langs) == 0 {
		tl.Printf("Restoring the package environment")
		runner, err := s.runner(ctx, c, p, []string{p.env}, nil)
		if err != nil {
			return err
		}
		res, err := env.Restore(ctx, env.Options{
			Manifest: p.m, Runtimes: p.rts, CodeDir: p.dirs.Code, EnvDir: p.env,
			Repositories: repos, Run: runner, Log: tl,
		})
		if err != nil {
			return fmt.Errorf("restore the environment: %w", err)
		}
		if len(res.Installed) > 0 {
			tl.Printf("Installed: %s", strings.Join(res.Installed, ", "))
		}
		for _, lang := range langs {
			if entries[lang] == "" {
				tl.Printf("The %s environment is not kept in the package cache: %s refers to files or options", lang, p.m.PackageFile())
				continue
			}
			if err := s.toCache(ctx, p, lang, entries[lang]); err != nil {
				tl.Printf("Warning: the %s environment was not kept in the package cache: %v", lang, err)
			}
		}
	}
	if rebuild {
		old := final + ".old"
		if err := os.RemoveAll(old); err != nil {
			return err
		}
		if err := os.Rename(final, old); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("replace the package environment: %w", err)
		}
		if err := os.Rename(p.env, final); err != nil {
			return fmt.Errorf("replace the package environment: %w", err)
		}
		if err := relocate(filepath.Join(final, "python"), filepath.Join(p.env, "python"), filepath.Join(final, "python")); err != nil {
			return err
		}
		// The replaced environment stays (until the next rebuild) for the
		// processes of the old pool that still import from it.
		p.env = final
	}
	p.dirs.Venv, p.dirs.RLibrary = "", ""
	if fi, err := os.Stat(filepath.Join(p.env, "python")); err == nil && fi.IsDir() {
		p.dirs.Venv = filepath.Join(p.env, "python")
	}
	if fi, err := os.Stat(filepath.Join(p.env, "R")); err == nil && fi.IsDir() {
		p.dirs.RLibrary = filepath.Join(p.env, "R")
	}
	return nil
}

// render runs the document's render into a fresh output directory and
// records it; it returns the output directory.
func (s *Service) render(ctx context.Context, c *store.Content, bundleID int64, p *prepared, tl *taskLog, _ string) (string, error) {
	rn := &store.Render{ContentID: c.ID, BundleID: bundleID, TaskID: tl.id, Status: store.RenderRunning, Node: s.o.Node, StartedAt: time.Now()}
	if err := s.st.CreateRender(ctx, rn); err != nil {
		return "", fmt.Errorf("record render: %w", err)
	}
	out := filepath.Join(s.bundleDir(c.ID, bundleID), fmt.Sprintf("output-%d", rn.ID))
	rn.OutputDir = out
	fail := func(err error) (string, error) {
		rn.Status, rn.Error, rn.FinishedAt = store.RenderFailed, err.Error(), time.Now()
		if uerr := s.st.UpdateRender(context.Background(), rn); uerr != nil {
			s.log.Warn("record render", logKeyErr, uerr)
		}
		return "", err
	}
	for _, d := range []string{out, p.dirs.Work} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fail(err)
		}
	}
	if err := s.giveTo(c, out, p.dirs.Work); err != nil {
		return fail(err)
	}
	dirs := p.dirs
	dirs.Output = out
	if p.m.Metadata.AppMode == manifest.QuartoStatic {
		// Quarto writes beside its sources: render a writable copy.
		src := filepath.Join(p.dirs.Work, "quarto-src")
		if err := os.RemoveAll(src); err != nil {
			return fail(err)
		}
		root, err := os.OpenRoot(p.dirs.Code)
		if err != nil {
			return fail(err)
		}
		err = os.CopyFS(src, root.FS())
		root.Close()
		if err != nil {
			return fail(fmt.Errorf("copy the sources for Quarto: %w", err))
		}
		if err := s.giveTo(c, src); err != nil {
			return fail(err)
		}
		dirs.Code = src
	}
	cmd, err := content.RenderArgs(p.m, p.rts, dirs)
	if err != nil {
		return fail(err)
	}
	release, ok := s.renders.TryAcquire()
	if !ok {
		tl.Printf("Waiting for a render slot (%d renders run at once; %s raises it)", s.renders.Limit(), render.EnvConcurrency)
		if release, err = s.renders.Acquire(ctx); err != nil {
			return fail(err)
		}
	}
	defer release()
	tl.Printf("Rendering %s", p.m.Metadata.AppMode)
	runner, err := s.runner(ctx, c, p, []string{out}, nil)
	if err != nil {
		return fail(err)
	}
	if err := runner(ctx, cmd, tl); err != nil {
		return fail(fmt.Errorf("render failed: %w", err))
	}
	if p.m.Metadata.AppMode == manifest.QuartoStatic {
		if err := quartoIndex(out, p.m); err != nil {
			return fail(err)
		}
	}
	if err := checkIndex(out); err != nil {
		return fail(err)
	}
	rn.Status, rn.FinishedAt = store.RenderSucceeded, time.Now()
	if err := s.st.UpdateRender(ctx, rn); err != nil {
		return "", fmt.Errorf("record render: %w", err)
	}
	tl.Printf("Rendered")
	return out, nil
}

// quartoIndex gives a Quarto render an index.html: Quarto names a
// document's output after its source (document.qmd -> document.html), and
// only a project with an index.qmd has an index.html. The primary
// document's HTML is copied to index.html; its own name keeps working.
// The output directory belongs to the content: it is read through an
// os.Root (no link leads out of it) and only a regular file is copied.
func quartoIndex(out string, m *manifest.Manifest) error {
	doc := m.PrimaryDocument(".qmd")
	if doc == "" {
		return nil // the check after the render names the problem
	}
	root, err := os.OpenRoot(out)
	if err != nil {
		return err
	}
	defer root.Close()
	if _, err := root.Lstat("index.html"); err == nil {
		return nil
	}
	html := strings.TrimSuffix(filepath.Base(doc), filepath.Ext(doc)) + ".html"
	src, _, err := openRegular(root, html, false)
	if err != nil {
		return nil // the check after the render names the problem
	}
	defer src.Close()
	dst, err := root.OpenFile("index.html", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("serve %s as index.html: %w", html, err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return fmt.Errorf("serve %s as index.html: %w", html, err)
	}
	return dst.Close()
}

// checkIndex makes sure a render's output has an index.html that can be
// served: a regular file, not a link out of the output or a FIFO.
func checkIndex(out string) error {
	root, err := os.OpenRoot(out)
	if err != nil {
		return err
	}
	defer root.Close()
	f, _, err := openRegular(root, "index.html", false)
	if errors.Is(err, errNotRegular) {
		return fmt.Errorf("the render's index.html is not a regular file: %w", err)
	}
	if err != nil {
		return fmt.Errorf("the render wrote no index.html into its output: %w", err)
	}
	return f.Close()
}

// tailProcessLog copies the end of the newest process log into the task.
func (s *Service) tailProcessLog(tl *taskLog, dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) == 0 {
		return
	}
	newest := ents[len(ents)-1].Name()                         // names start with the UTC time
	b, err := readTail(filepath.Join(dir, newest), maxLogTail) // its end, not its first MiB
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	tl.Printf("Last lines of the process log %s:", newest)
	for _, l := range lines {
		tl.Printf("  %s", l)
	}
}

// startRender renders a document's active bundle again, as a task
// (POST /__api__/v1/content/{guid}/render). Unlike a deploy, a render in
// progress when the server stops runs to completion (within the stop
// timeout): it only replaces output once it has succeeded.
func (s *Service) startRender(ctx context.Context, c *store.Content, u *store.User) (*store.Task, error) {
	if c.BundleID == nil {
		return nil, errStatus(400, "content "+c.Name+" has not been deployed yet: deploy it first")
	}
	if c.Locked {
		return nil, errStatus(409, "content "+c.Name+" is locked: unlock it first (PATCH {\"locked\": false})")
	}
	if manifest.AppMode(c.AppMode).Kind() != manifest.KindDocument {
		return nil, errStatus(400, "content "+c.Name+" is "+c.AppMode+", not a document: only rmd-static, jupyter-static and quarto-static render")
	}
	s.mu.Lock()
	stopped := s.stopped
	s.mu.Unlock()
	if stopped {
		return nil, errStatus(503, "the server is stopping; render again once it is back")
	}
	if err := s.CheckSpace(0); err != nil {
		return nil, err
	}
	t := &store.Task{ContentID: c.ID, BundleID: *c.BundleID, UserID: u.ID, Kind: store.TaskRender, Node: s.o.Node}
	if err := s.st.CreateTask(ctx, t); err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		tl := &taskLog{s: s, id: t.ID}
		err := s.rerender(tl, c.ID)
		code, msg := 0, ""
		if err != nil {
			code, msg = 1, s.spaceErr(err).Error()
			tl.Printf("Render failed: %s", msg)
		}
		tl.flush()
		fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.finishTask(fctx, t.ID, code, msg, nil, time.Now()); err != nil && !errors.Is(err, store.ErrConflict) {
			s.log.Error("finish task", logKeyTask, t.ID, logKeyErr, err)
		}
	}()
	return t, nil
}

func (s *Service) rerender(tl *taskLog, contentID int64) error {
	lock := s.contentLock(contentID)
	lock.Lock()
	defer lock.Unlock()
	ctx := context.Background() // renders finish even when the server stops
	c, err := s.st.Content(ctx, contentID)
	if err != nil {
		return err
	}
	if c.BundleID == nil {
		return errors.New("the content has no active bundle")
	}
	code := filepath.Join(s.bundleDir(c.ID, *c.BundleID), "code")
	m, err := manifest.Read(code)
	if err != nil {
		return err
	}
	p, err := s.prepare(ctx, c, *c.BundleID, m, tl)
	if err != nil {
		return err
	}
	out, err := s.render(ctx, c, *c.BundleID, p, tl, store.TaskRender)
	if err != nil {
		return err
	}
	if err := s.serveStatic(c.GUID, out, nil); err != nil {
		return err
	}
	s.markServed(c.GUID, *c.BundleID, out)
	return nil
}
