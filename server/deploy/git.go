package deploy

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dais-dev/dais/server/gitsource"
	"github.com/dais-dev/dais/server/store"
)

// Git-backed content: the content's repository (store.ContentRepository)
// is cloned at its branch, the directory's files (its manifest.json at the
// top) become a bundle, and that bundle is deployed as an upload would be.
// A poller checks the branches with polling on every Git.PollingFrequency
// and deploys again those that moved. The clone happens in the server, not
// in the sandbox, and its credentials go to git only (gitsource).

// Git returns the git runner of the running configuration.
func (s *Service) Git() *gitsource.Git { return s.git() }

// git returns the git runner of the running configuration.
func (s *Service) git() *gitsource.Git {
	g := s.o.Config().Git
	return &gitsource.Git{Executable: g.Executable, Timeout: g.CommandTimeout.Std(), CredentialsFile: g.CredentialsFile}
}

// StartRepoDeploy records a deploy task of c's repository, started by u
// (nil: the poller), and runs it in the background: fetch, bundle, deploy.
func (s *Service) StartRepoDeploy(ctx context.Context, c *store.Content, u *store.User, o DeployOptions) (*store.Task, error) {
	r, err := s.st.Repository(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	stopped := s.stopped
	s.mu.Unlock()
	if stopped {
		return nil, errStatus(503, "the server is stopping; deploy again once it is back")
	}
	if err := s.CheckSpace(0); err != nil {
		return nil, err
	}
	if !s.repoDeploys.start(c.ID) {
		return nil, errStatus(409, "content "+c.Name+" is being deployed from its repository already; wait for that deploy")
	}
	t := &store.Task{ContentID: c.ID, Kind: store.TaskDeploy, Node: s.o.Node}
	if u != nil {
		t.UserID = u.ID
	}
	if err := s.st.CreateTask(ctx, t); err != nil {
		s.repoDeploys.done(c.ID)
		return nil, err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.repoDeploys.done(c.ID)
		s.runRepoDeploy(t, c, r, o)
	}()
	return t, nil
}

// runRepoDeploy fetches the repository into a bundle and deploys it, and
// records the commit and the outcome on the repository.
func (s *Service) runRepoDeploy(t *store.Task, c *store.Content, r *store.ContentRepository, o DeployOptions) {
	tl := &taskLog{s: s, id: t.ID}
	log := s.log.With(logKeyTask, t.ID, logKeyContent, c.GUID)
	commit, b, err := s.fetchBundle(s.ctx, tl, c, r)
	if err == nil {
		err = s.runDeploy(t, c.ID, b, o)
	} else {
		msg := s.spaceErr(err).Error()
		tl.Printf("Deployment failed: %s", msg)
		tl.flush()
		log.Warn("deploy from git failed", logKeyErr, msg)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		result, _ := json.Marshal(map[string]any{"content_id": c.ID})
		if ferr := s.finishTask(ctx, t.ID, 1, msg, result, time.Now()); ferr != nil && !errors.Is(ferr, store.ErrConflict) {
			log.Error("finish task", logKeyErr, ferr)
		}
	}
	lastErr := ""
	if err != nil {
		lastErr = s.spaceErr(err).Error()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if rerr := s.st.RecordRepositoryCheck(ctx, c.ID, commit, lastErr, time.Now()); rerr != nil && !errors.Is(rerr, store.ErrNotFound) {
		log.Warn("record the repository's deploy", logKeyErr, rerr)
	}
}

// fetchBundle clones the repository's branch and stores its directory as
// a new bundle of c. It returns the commit ("" when the clone failed).
func (s *Service) fetchBundle(ctx context.Context, tl *taskLog, c *store.Content, r *store.ContentRepository) (string, *store.Bundle, error) {
	repo, err := gitsource.Parse(r.Repository)
	if err != nil {
		return "", nil, err
	}
	tl.Printf("Fetching branch %s of %s", r.Branch, repo.URL)
	dir := s.contentDir(c.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, fmt.Errorf("create %s: %w (check Server.DataDir)", dir, err)
	}
	work, err := os.MkdirTemp(dir, s.uploadPattern()) // crash leftovers: cleanup.go
	if err != nil {
		return "", nil, err
	}
	defer os.RemoveAll(work)
	clone := filepath.Join(work, "repo")
	commit, err := s.git().Clone(ctx, repo, r.Branch, clone, tl)
	if err != nil {
		return "", nil, err
	}
	tl.Printf("Commit %s", commit)
	top := filepath.Join(clone, filepath.FromSlash(r.Directory))
	if _, err := os.Stat(filepath.Join(top, "manifest.json")); err != nil {
		return commit, nil, fmt.Errorf("directory %q of branch %s has no manifest.json: write one (rsconnect::writeManifest(), rsconnect write-manifest) and commit it", r.Directory, r.Branch)
	}
	archive := filepath.Join(work, "bundle.tar.gz")
	n, err := tarDirectory(top, archive)
	if err != nil {
		return commit, nil, fmt.Errorf("bundle directory %q: %w", r.Directory, err)
	}
	tl.Printf("Bundled %d files of directory %s", n, r.Directory)
	f, err := os.Open(archive)
	if err != nil {
		return commit, nil, err
	}
	defer f.Close()
	b, err := s.ReceiveBundle(ctx, c, f)
	if err != nil {
		return commit, nil, err
	}
	return commit, b, nil
}

// tarDirectory writes the regular files and directories under top, but
// .git, as a tar.gz at dst; links and other files are left out.
func tarDirectory(top, dst string) (int, error) {
	out, err := os.Create(dst)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	gz := gzip.NewWriter(out)
	tw := tar.NewWriter(gz)
	n := 0
	err = filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(top, p)
		if err != nil || rel == "." {
			return err
		}
		if d.Name() == ".git" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() && !info.IsDir() {
			return nil
		}
		h, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		h.Name = filepath.ToSlash(rel)
		h.Uname, h.Gname, h.Uid, h.Gid = "", "", 0, 0
		if info.IsDir() {
			h.Name += "/"
			return tw.WriteHeader(h)
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.Copy(tw, f); err != nil {
			return err
		}
		n++
		return nil
	})
	if err != nil {
		return 0, err
	}
	if err := tw.Close(); err != nil {
		return 0, err
	}
	if err := gz.Close(); err != nil {
		return 0, err
	}
	return n, out.Close()
}

// StartGitTask runs f in the background as a task of kind store.TaskGit
// started by u (what is its first output line); what f returns is the
// task's result, its error the task's error. What f writes to its writer
// is the task's output.
func (s *Service) StartGitTask(ctx context.Context, u *store.User, what string, f func(ctx context.Context, g *gitsource.Git, out io.Writer) (any, error)) (*store.Task, error) {
	s.mu.Lock()
	stopped := s.stopped
	s.mu.Unlock()
	if stopped {
		return nil, errStatus(503, "the server is stopping; try again once it is back")
	}
	t := &store.Task{Kind: store.TaskGit, UserID: u.ID, Node: s.o.Node}
	if err := s.st.CreateTask(ctx, t); err != nil {
		return nil, err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		tl := &taskLog{s: s, id: t.ID}
		tl.Printf("%s", what)
		res, err := f(s.ctx, s.git(), tl)
		tl.flush()
		code, msg := 0, ""
		if err != nil {
			code, msg = 1, err.Error()
		}
		result, _ := json.Marshal(res)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if ferr := s.finishTask(ctx, t.ID, code, msg, result, time.Now()); ferr != nil && !errors.Is(ferr, store.ErrConflict) {
			s.log.Error("finish task", logKeyTask, t.ID, logKeyErr, ferr)
		}
	}()
	return t, nil
}

// ManifestDirs clones the branch into a temporary directory and lists the
// directories holding a manifest.json, relative to the top ("." for it).
func ManifestDirs(ctx context.Context, g *gitsource.Git, r gitsource.Repo, branch string, out io.Writer) ([]string, error) {
	tmp, err := os.MkdirTemp("", "dais-git-dirs-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	clone := filepath.Join(tmp, "repo")
	if _, err := g.Clone(ctx, r, branch, clone, out); err != nil {
		return nil, err
	}
	dirs := []string{}
	err = filepath.WalkDir(clone, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() && d.Name() == "manifest.json" {
			rel, err := filepath.Rel(clone, filepath.Dir(p))
			if err != nil {
				return err
			}
			dirs = append(dirs, filepath.ToSlash(rel))
		}
		return nil
	})
	return dirs, err
}

// inFlight is the set of contents with a deploy from git running: one at
// a time per content, and the poller skips those.
type inFlight struct {
	mu  sync.Mutex
	ids map[int64]bool
}

func (f *inFlight) start(id int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ids == nil {
		f.ids = map[int64]bool{}
	}
	if f.ids[id] {
		return false
	}
	f.ids[id] = true
	return true
}

func (f *inFlight) done(id int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.ids, id)
}

func (f *inFlight) has(id int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ids[id]
}

// pollRepositories checks the polled repositories every
// Git.PollingFrequency (read anew each round: a reload applies) until ctx
// ends.
func (s *Service) pollRepositories(ctx context.Context) {
	for {
		wait := s.o.Config().Git.PollingFrequency.Std()
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		s.pollOnce(ctx)
	}
}

// pollOnce checks each polled repository's branch, at most
// Git.MaxConcurrentChecks at once, and starts a deploy of each that moved.
func (s *Service) pollOnce(ctx context.Context) {
	repos, err := s.st.PolledRepositories(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("list git-backed content to poll", logKeyErr, err)
		}
		return
	}
	sem := make(chan struct{}, max(s.o.Config().Git.MaxConcurrentChecks, 1))
	var wg sync.WaitGroup
	for i := range repos {
		r := &repos[i]
		if s.repoDeploys.has(r.ContentID) {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			s.checkRepository(ctx, r)
		})
	}
	wg.Wait()
}

// checkRepository compares the branch's head with the last known commit
// and deploys when they differ.
func (s *Service) checkRepository(ctx context.Context, r *store.ContentRepository) {
	log := s.log.With("content_id", r.ContentID)
	repo, err := gitsource.Parse(r.Repository)
	var head string
	if err == nil {
		head, err = s.git().Head(ctx, repo, r.Branch)
	}
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		log.Warn("check git-backed content's branch", "repository", gitsource.Redact(r.Repository), "branch", r.Branch, logKeyErr, err)
		if rerr := s.st.RecordRepositoryCheck(ctx, r.ContentID, "", err.Error(), time.Now()); rerr != nil && !errors.Is(rerr, store.ErrNotFound) {
			log.Warn("record the repository check", logKeyErr, rerr)
		}
		return
	}
	if head == r.LastKnownCommit {
		if rerr := s.st.RecordRepositoryCheck(ctx, r.ContentID, "", r.LastError, time.Now()); rerr != nil && !errors.Is(rerr, store.ErrNotFound) {
			log.Warn("record the repository check", logKeyErr, rerr)
		}
		return
	}
	c, err := s.st.Content(ctx, r.ContentID)
	if err != nil {
		log.Warn("read git-backed content", logKeyErr, err)
		return
	}
	if c.Locked {
		return
	}
	// Several servers may poll one database: the one that moves the
	// known commit first deploys.
	if won, err := s.st.ClaimRepositoryCommit(ctx, r.ContentID, r.LastKnownCommit, head); err != nil || !won {
		if err != nil {
			log.Warn("claim the branch's new commit", logKeyErr, err)
		}
		return
	}
	from := r.LastKnownCommit
	if from == "" {
		from = "(none)"
	}
	t, err := s.StartRepoDeploy(ctx, c, nil, DeployOptions{})
	if err != nil {
		log.Warn("deploy git-backed content whose branch moved", logKeyErr, err)
		// Not started: give the commit back, so that the next poll tries.
		if _, cerr := s.st.ClaimRepositoryCommit(context.WithoutCancel(ctx), r.ContentID, head, r.LastKnownCommit); cerr != nil {
			log.Warn("give back the branch's new commit", logKeyErr, cerr)
		}
		return
	}
	log.Info("branch moved: deploying", logKeyTask, t.ID, "branch", r.Branch, "from", shortCommit(from), "to", shortCommit(head))
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return strings.TrimSpace(c)
}
