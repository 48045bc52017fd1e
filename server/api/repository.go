package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/dais-dev/dais/server/deploy"
	"github.com/dais-dev/dais/server/gitsource"
	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/web"
)

// Git-backed content, as connectapi's deploy_repo, deploy_repo_enable and
// deploy_repo_update call it: /__api__/v1/content/{guid}/repository. A
// deploy of such content without a bundle_id fetches the branch and
// deploys its directory (server/deploy/git.go).

// repositoryJSON is a content's repository as Connect shows it. The URL's
// password never leaves the server.
type repositoryJSON struct {
	Repository      string     `json:"repository"`
	Branch          string     `json:"branch"`
	Directory       string     `json:"directory"`
	Polling         bool       `json:"polling"`
	LastError       *string    `json:"last_error"`
	LastKnownCommit *string    `json:"last_known_commit"`
	LastCheckedTime *time.Time `json:"last_checked_time"` // dais extension
}

func newRepositoryJSON(r *store.ContentRepository) repositoryJSON {
	j := repositoryJSON{Repository: gitsource.Redact(r.Repository), Branch: r.Branch, Directory: r.Directory, Polling: r.Polling}
	if r.LastError != "" {
		j.LastError = &r.LastError
	}
	if r.LastKnownCommit != "" {
		j.LastKnownCommit = &r.LastKnownCommit
	}
	if !r.LastCheckedAt.IsZero() {
		t := r.LastCheckedAt.UTC()
		j.LastCheckedTime = &t
	}
	return j
}

// repositoryBody is what PUT and PATCH take; nil fields are not sent.
type repositoryBody struct {
	Repository *string `json:"repository"`
	Branch     *string `json:"branch"`
	Directory  *string `json:"directory"`
	Polling    *bool   `json:"polling"`
}

func errNotGitBacked(c *store.Content) error {
	return errStatus(http.StatusNotFound, "content "+c.Name+" is not git-backed: PUT a repository first")
}

func (a *API) getRepository(w http.ResponseWriter, r *http.Request, c *store.Content) error {
	repo, err := a.st.Repository(r.Context(), c.ID)
	if errors.Is(err, store.ErrNotFound) {
		return errNotGitBacked(c)
	}
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, newRepositoryJSON(repo))
	return nil
}

// putRepository is PUT .../repository {repository, branch, directory,
// polling}: the whole setting (branch default "main", directory "."). It
// deploys nothing: POST .../deploy does (connectapi's deploy_repo does both).
func (a *API) putRepository(w http.ResponseWriter, r *http.Request, c *store.Content) error {
	return a.setRepository(w, r, c, true)
}

// patchRepository is PATCH .../repository: the fields sent change
// (connectapi's deploy_repo_enable sends {polling}).
func (a *API) patchRepository(w http.ResponseWriter, r *http.Request, c *store.Content) error {
	return a.setRepository(w, r, c, false)
}

func (a *API) setRepository(w http.ResponseWriter, r *http.Request, c *store.Content, whole bool) error {
	var body repositoryBody
	if err := web.DecodeJSON(r, &body); err != nil {
		return err
	}
	if c.Locked {
		return errLocked(c)
	}
	ctx := r.Context()
	repo, err := a.st.Repository(ctx, c.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if !whole {
			return errNotGitBacked(c)
		}
		repo = &store.ContentRepository{ContentID: c.ID, Branch: "main", Directory: "."}
	case err != nil:
		return err
	}
	was := *repo
	if whole {
		if body.Repository == nil {
			return errStatus(http.StatusBadRequest, "repository is required: the https:// URL of the git repository")
		}
		repo.Branch, repo.Directory, repo.Polling = "main", ".", false
	}
	if body.Repository != nil {
		if _, err := gitsource.Parse(*body.Repository); err != nil {
			return errStatus(http.StatusBadRequest, err.Error())
		}
		repo.Repository = *body.Repository
	}
	if body.Branch != nil {
		if err := gitsource.CheckBranch(*body.Branch); err != nil {
			return errStatus(http.StatusBadRequest, err.Error())
		}
		repo.Branch = *body.Branch
	}
	if body.Directory != nil {
		d, err := gitsource.CleanDirectory(*body.Directory)
		if err != nil {
			return errStatus(http.StatusBadRequest, err.Error())
		}
		repo.Directory = d
	}
	if body.Polling != nil {
		repo.Polling = *body.Polling
	}
	// Another repository, branch or directory: what was deployed before
	// says nothing of the new one.
	if repo.Repository != was.Repository || repo.Branch != was.Branch || repo.Directory != was.Directory {
		repo.LastKnownCommit, repo.LastError, repo.LastCheckedAt = "", "", time.Time{}
	}
	if err := a.st.SetRepository(ctx, repo); err != nil {
		return err
	}
	a.log.Info("content repository set", logKeyContent, c.GUID, "repository", gitsource.Redact(repo.Repository),
		"branch", repo.Branch, "directory", repo.Directory, "polling", repo.Polling)
	web.WriteJSON(w, http.StatusOK, newRepositoryJSON(repo))
	return nil
}

// deleteRepository is DELETE .../repository: the content is no longer
// git-backed; what it serves stays.
func (a *API) deleteRepository(w http.ResponseWriter, r *http.Request, c *store.Content) error {
	if c.Locked {
		return errLocked(c)
	}
	if err := a.st.DeleteRepository(r.Context(), c.ID); errors.Is(err, store.ErrNotFound) {
		return errNotGitBacked(c)
	} else if err != nil {
		return err
	}
	a.log.Info("content repository removed", logKeyContent, c.GUID)
	web.WriteJSON(w, http.StatusOK, struct{}{})
	return nil
}

// gitBacked tells whether c deploys from a repository.
func (a *API) gitBacked(r *http.Request, c *store.Content) (bool, error) {
	_, err := a.st.Repository(r.Context(), c.ID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Repository checks before a deploy, as connectapi's repo_check_* call
// them: /__api__/repo/account, /branches and /manifest-dirs. The last two
// answer a task (git runs in the background), polled like a deploy; its
// result carries the answer.

// repoParam reads and checks the url query parameter.
func repoParam(r *http.Request) (gitsource.Repo, error) {
	raw := r.URL.Query().Get("url")
	if raw == "" {
		return gitsource.Repo{}, errStatus(http.StatusBadRequest, "url is required: the https:// URL of the git repository")
	}
	repo, err := gitsource.Parse(raw)
	if err != nil {
		return gitsource.Repo{}, errStatus(http.StatusBadRequest, err.Error())
	}
	return repo, nil
}

// repoAccount is GET /__api__/repo/account?url=: the user name dais
// would use for that host ("" for anonymous access).
func (a *API) repoAccount(w http.ResponseWriter, r *http.Request) error {
	repo, err := repoParam(r)
	if err != nil {
		return err
	}
	name, err := a.dep.Git().Username(repo)
	if err != nil {
		a.log.Warn("read git credentials", logKeyErr, err)
		return errStatus(http.StatusInternalServerError, "cannot read [Git] CredentialsFile; the server log has the details")
	}
	web.WriteJSON(w, http.StatusOK, map[string]string{"username": name, "host": repo.URL.Scheme + "://" + repo.URL.Host})
	return nil
}

// repoBranches is GET /__api__/repo/branches?url=: a task whose result is
// {type: "git-repo-ref-branch-array", data: [{branch, ref}]}.
func (a *API) repoBranches(w http.ResponseWriter, r *http.Request) error {
	u, err := needUser(r)
	if err != nil {
		return err
	}
	repo, err := repoParam(r)
	if err != nil {
		return err
	}
	t, err := a.dep.StartGitTask(r.Context(), u, "Listing the branches of "+repo.URL.String(),
		func(ctx context.Context, g *gitsource.Git, out io.Writer) (any, error) {
			bs, err := g.Branches(ctx, repo)
			if err != nil {
				return nil, err
			}
			type ref struct {
				Branch string `json:"branch"`
				Ref    string `json:"ref"`
			}
			data := make([]ref, 0, len(bs))
			for _, b := range bs {
				data = append(data, ref{b.Name, b.Commit})
				fmt.Fprintf(out, "%s %s\n", b.Name, b.Commit)
			}
			return map[string]any{"type": "git-repo-ref-branch-array", "data": data}, nil
		})
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]string{"id": t.ID, "task_id": t.ID})
	return nil
}

// repoManifestDirs is GET /__api__/repo/manifest-dirs?url=&branch=: a
// task whose result is {type: "git-repo-branch-manifest-dirs-array",
// data: [directory]}, the directories with a manifest.json.
func (a *API) repoManifestDirs(w http.ResponseWriter, r *http.Request) error {
	u, err := needUser(r)
	if err != nil {
		return err
	}
	repo, err := repoParam(r)
	if err != nil {
		return err
	}
	branch := r.URL.Query().Get("branch")
	if err := gitsource.CheckBranch(branch); err != nil {
		return errStatus(http.StatusBadRequest, err.Error())
	}
	t, err := a.dep.StartGitTask(r.Context(), u, "Looking for manifest.json in branch "+branch+" of "+repo.URL.String(),
		func(ctx context.Context, g *gitsource.Git, out io.Writer) (any, error) {
			dirs, err := deploy.ManifestDirs(ctx, g, repo, branch, out)
			if err != nil {
				return nil, err
			}
			return map[string]any{"type": "git-repo-branch-manifest-dirs-array", "data": dirs}, nil
		})
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]string{"id": t.ID, "task_id": t.ID})
	return nil
}
