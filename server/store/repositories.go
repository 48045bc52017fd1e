package store

import (
	"context"
	"fmt"
	"time"
)

// TaskGit is the kind of the tasks that ask a repository something
// (its branches, its directories with a manifest) for a client.
const TaskGit = "git"

// ContentRepository is where git-backed content is deployed from: the
// directory of a branch of a git repository, whose manifest.json makes
// the bundle. Repository may hold credentials (https://user:token@host/...):
// it is a secret, like an environment variable's value, and never shown.
type ContentRepository struct {
	ContentID  int64
	Repository string
	Branch     string
	Directory  string // relative to the repository's top; "." for the top
	// Polling makes the server check the branch now and then and deploy
	// again when it moved.
	Polling bool
	// LastKnownCommit is the commit last deployed (or tried); "" before the first.
	LastKnownCommit string
	// LastError is the last check's or deploy's failure; "" when it worked.
	LastError     string
	LastCheckedAt time.Time // zero: never
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// RepositoryStore is the part of Store that keeps git-backed content's
// repositories.
type RepositoryStore interface {
	// SetRepository creates or replaces the content's repository (all
	// fields but CreatedAt, kept on replace); it sets UpdatedAt.
	SetRepository(ctx context.Context, r *ContentRepository) error
	// Repository returns ErrNotFound for content that is not git-backed.
	Repository(ctx context.Context, contentID int64) (*ContentRepository, error)
	DeleteRepository(ctx context.Context, contentID int64) error
	// PolledRepositories returns the repositories with Polling on, by content id.
	PolledRepositories(ctx context.Context) ([]ContentRepository, error)
	// ClaimRepositoryCommit is a compare-and-swap: when the repository's
	// LastKnownCommit still equals expected it becomes next and true is
	// returned. Of several servers that saw the branch move, exactly one
	// deploys it.
	ClaimRepositoryCommit(ctx context.Context, contentID int64, expected, next string) (bool, error)
	// RecordRepositoryCheck writes LastKnownCommit (unless commit is ""),
	// LastError and LastCheckedAt.
	RecordRepositoryCheck(ctx context.Context, contentID int64, commit, lastError string, at time.Time) error
}

const repoCols = `content_id, repository, branch, directory, polling, last_known_commit, last_error, last_checked_at, created_at, updated_at`

func scanRepo(r scanner) (*ContentRepository, error) {
	var c ContentRepository
	err := r.Scan(&c.ContentID, &c.Repository, &c.Branch, &c.Directory, &c.Polling, &c.LastKnownCommit, &c.LastError,
		ts{&c.LastCheckedAt}, ts{&c.CreatedAt}, ts{&c.UpdatedAt})
	if err != nil {
		return nil, mapErr(err)
	}
	return &c, nil
}

func (s *sqlDB) SetRepository(ctx context.Context, r *ContentRepository) error {
	t := now()
	if r.CreatedAt.IsZero() {
		r.CreatedAt = t
	}
	r.UpdatedAt = t
	_, err := s.exec(ctx, `INSERT INTO content_repositories (`+repoCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (content_id) DO UPDATE SET repository = excluded.repository, branch = excluded.branch,
		directory = excluded.directory, polling = excluded.polling, last_known_commit = excluded.last_known_commit,
		last_error = excluded.last_error, last_checked_at = excluded.last_checked_at, updated_at = excluded.updated_at`,
		r.ContentID, r.Repository, r.Branch, r.Directory, r.Polling, r.LastKnownCommit, r.LastError,
		tv(r.LastCheckedAt), tv(r.CreatedAt), tv(r.UpdatedAt))
	if err != nil {
		return fmt.Errorf("set repository of content %d: %w", r.ContentID, err)
	}
	return nil
}

func (s *sqlDB) Repository(ctx context.Context, contentID int64) (*ContentRepository, error) {
	r, err := scanRepo(s.queryRow(ctx, `SELECT `+repoCols+` FROM content_repositories WHERE content_id = ?`, contentID))
	if err != nil {
		return nil, fmt.Errorf("repository of content %d: %w", contentID, err)
	}
	return r, nil
}

func (s *sqlDB) DeleteRepository(ctx context.Context, contentID int64) error {
	if err := affected(s.exec(ctx, `DELETE FROM content_repositories WHERE content_id = ?`, contentID)); err != nil {
		return fmt.Errorf("delete repository of content %d: %w", contentID, err)
	}
	return nil
}

func (s *sqlDB) PolledRepositories(ctx context.Context) ([]ContentRepository, error) {
	rows, err := s.query(ctx, `SELECT `+repoCols+` FROM content_repositories WHERE polling = ? ORDER BY content_id`, true)
	if err != nil {
		return nil, fmt.Errorf("list polled repositories: %w", mapErr(err))
	}
	return collect(rows, scanRepo)
}

func (s *sqlDB) RecordRepositoryCheck(ctx context.Context, contentID int64, commit, lastError string, at time.Time) error {
	err := affected(s.exec(ctx, `UPDATE content_repositories SET last_known_commit = CASE WHEN ? = '' THEN last_known_commit ELSE ? END,
		last_error = ?, last_checked_at = ? WHERE content_id = ?`, commit, commit, lastError, tv(at), contentID))
	if err != nil {
		return fmt.Errorf("record repository check of content %d: %w", contentID, err)
	}
	return nil
}

func (s *sqlDB) ClaimRepositoryCommit(ctx context.Context, contentID int64, expected, next string) (bool, error) {
	res, err := s.exec(ctx, `UPDATE content_repositories SET last_known_commit = ? WHERE content_id = ? AND last_known_commit = ?`,
		next, contentID, expected)
	if err != nil {
		return false, fmt.Errorf("claim commit of content %d: %w", contentID, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}
