package storetest

import (
	"testing"
	"time"

	"github.com/dais-dev/dais/server/store"
)

func testRepositories(t *testing.T, s store.Store) {
	c := ctx(t)
	u := mkUser(t, s, "gitowner", store.RolePublisher)
	a := mkContent(t, s, u.ID, "from-git")
	b := mkContent(t, s, u.ID, "also-git")
	_, err := s.Repository(c, a.ID)
	wantErr(t, err, store.ErrNotFound, "Repository of content that is not git-backed")

	r := &store.ContentRepository{ContentID: a.ID, Repository: "https://u:secret@git.example/app.git", Branch: "main", Directory: "app", Polling: true}
	must(t, s.SetRepository(c, r))
	must(t, s.SetRepository(c, &store.ContentRepository{ContentID: b.ID, Repository: "https://git.example/b.git", Branch: "dev", Directory: "."}))
	wantErr(t, s.SetRepository(c, &store.ContentRepository{ContentID: a.ID + b.ID + 99, Repository: "x", Branch: "y"}), store.ErrConflict, "repository of missing content")
	got, err := s.Repository(c, a.ID)
	must(t, err)
	eq(t, "repository", got.Repository, r.Repository)
	eq(t, "branch", got.Branch, "main")
	eq(t, "directory", got.Directory, "app")
	eq(t, "polling", got.Polling, true)
	eq(t, "last commit", got.LastKnownCommit, "")
	created := got.CreatedAt

	polled, err := s.PolledRepositories(c)
	must(t, err)
	if len(polled) != 1 || polled[0].ContentID != a.ID {
		t.Fatalf("PolledRepositories = %+v, want a only", polled)
	}

	must(t, s.RecordRepositoryCheck(c, a.ID, "abc123", "", T0))
	must(t, s.RecordRepositoryCheck(c, a.ID, "", "fetch failed", T0.Add(time.Minute)))
	got, err = s.Repository(c, a.ID)
	must(t, err)
	eq(t, "commit kept on a failed check", got.LastKnownCommit, "abc123")
	eq(t, "last error", got.LastError, "fetch failed")
	eq(t, "last checked", got.LastCheckedAt, us(T0.Add(time.Minute)))
	wantErr(t, s.RecordRepositoryCheck(c, a.ID+b.ID+99, "x", "", T0), store.ErrNotFound, "check of missing repository")
	// Of two servers that saw the branch move to def456, one wins.
	won, err := s.ClaimRepositoryCommit(c, a.ID, "abc123", "def456")
	must(t, err)
	eq(t, "first claim", won, true)
	won, err = s.ClaimRepositoryCommit(c, a.ID, "abc123", "def456")
	must(t, err)
	eq(t, "second claim", won, false)
	got, err = s.Repository(c, a.ID)
	must(t, err)
	eq(t, "claimed commit", got.LastKnownCommit, "def456")

	// Replaced: new values, the creation time kept.
	got.Branch, got.Polling = "release", false
	must(t, s.SetRepository(c, got))
	got, err = s.Repository(c, a.ID)
	must(t, err)
	eq(t, "replaced branch", got.Branch, "release")
	eq(t, "replaced polling", got.Polling, false)
	eq(t, "created kept", got.CreatedAt, created)
	polled, err = s.PolledRepositories(c)
	must(t, err)
	eq(t, "polled after turning off", len(polled), 0)

	must(t, s.DeleteRepository(c, b.ID))
	wantErr(t, s.DeleteRepository(c, b.ID), store.ErrNotFound, "DeleteRepository twice")
	must(t, s.DeleteContent(c, a.ID))
	_, err = s.Repository(c, a.ID)
	wantErr(t, err, store.ErrNotFound, "repository after its content was deleted")
}
