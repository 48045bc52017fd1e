package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Vanity is a content's own path on the server besides /content/<guid>/:
// "/sales/dashboard/" (a leading and a trailing slash).
type Vanity struct {
	ContentID int64
	Path      string
	CreatedAt time.Time
}

// VanityConflictError is SetVanity's refusal: Path, the path asked for,
// is taken by Other (the same path, or one that is a prefix of the other).
// It wraps ErrConflict.
type VanityConflictError struct {
	Path  string
	Other Vanity
}

func (e *VanityConflictError) Error() string {
	return fmt.Sprintf("vanity path %s collides with %s of content %d", e.Path, e.Other.Path, e.Other.ContentID)
}

func (e *VanityConflictError) Unwrap() error { return ErrConflict }

// VanityStore is the part of Store that keeps vanity paths.
type VanityStore interface {
	// SetVanity gives the content path (replacing its former one). A path
	// equal to another content's is refused with a *VanityConflictError,
	// unless force, which takes it from that content; a path that is a
	// prefix of another's, or has one as its prefix, is always refused:
	// requests below it would be ambiguous. Checked and written at once,
	// so of two servers racing one wins.
	SetVanity(ctx context.Context, v *Vanity, force bool) error
	// Vanity is the content's path; ErrNotFound when it has none.
	Vanity(ctx context.Context, contentID int64) (*Vanity, error)
	// VanityByPath finds the content of one of paths, the longest that
	// matches; ErrNotFound when none does.
	VanityByPath(ctx context.Context, paths []string) (*Vanity, error)
	// ListVanities returns every vanity path, by path.
	ListVanities(ctx context.Context) ([]Vanity, error)
	DeleteVanity(ctx context.Context, contentID int64) error
}

func scanVanity(r scanner) (*Vanity, error) {
	var v Vanity
	if err := r.Scan(&v.ContentID, &v.Path, ts{&v.CreatedAt}); err != nil {
		return nil, mapErr(err)
	}
	return &v, nil
}

func (s *sqlDB) SetVanity(ctx context.Context, v *Vanity, force bool) error {
	if v.CreatedAt.IsZero() {
		v.CreatedAt = now()
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if s.dialect == DialectPostgres {
			// Prefix collisions are not a unique constraint: serialize the
			// writers of vanities (SQLite serializes every writer anyway).
			if _, err := tx.ExecContext(ctx, `LOCK TABLE vanities IN SHARE ROW EXCLUSIVE MODE`); err != nil {
				return err
			}
		}
		rows, err := tx.QueryContext(ctx, s.q(`SELECT content_id, path, created_at FROM vanities WHERE content_id <> ? AND (
			path = CAST(? AS TEXT)
			OR substr(path, 1, length(CAST(? AS TEXT))) = CAST(? AS TEXT)
			OR substr(CAST(? AS TEXT), 1, length(path)) = path) ORDER BY path`),
			v.ContentID, v.Path, v.Path, v.Path, v.Path)
		if err != nil {
			return err
		}
		others, err := collect(rows, scanVanity)
		if err != nil {
			return err
		}
		for _, o := range others {
			if o.Path != v.Path || !force {
				return &VanityConflictError{Path: v.Path, Other: o}
			}
			if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM vanities WHERE content_id = ?`), o.ContentID); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO vanities (content_id, path, created_at) VALUES (?, ?, ?)
			ON CONFLICT (content_id) DO UPDATE SET path = excluded.path, created_at = excluded.created_at`),
			v.ContentID, v.Path, tv(v.CreatedAt))
		return err
	})
	var ce *VanityConflictError
	if errors.As(err, &ce) {
		return err
	}
	if err != nil {
		return fmt.Errorf("set vanity %s of content %d: %w", v.Path, v.ContentID, mapErr(err))
	}
	return nil
}

func (s *sqlDB) Vanity(ctx context.Context, contentID int64) (*Vanity, error) {
	v, err := scanVanity(s.queryRow(ctx, `SELECT content_id, path, created_at FROM vanities WHERE content_id = ?`, contentID))
	if err != nil {
		return nil, fmt.Errorf("vanity of content %d: %w", contentID, err)
	}
	return v, nil
}

func (s *sqlDB) VanityByPath(ctx context.Context, paths []string) (*Vanity, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("vanity: no path: %w", ErrNotFound)
	}
	args := make([]any, len(paths))
	for i, p := range paths {
		args[i] = p
	}
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(paths)), ", ")
	v, err := scanVanity(s.queryRow(ctx, `SELECT content_id, path, created_at FROM vanities WHERE path IN (`+marks+`)
		ORDER BY length(path) DESC LIMIT 1`, args...))
	if err != nil {
		return nil, fmt.Errorf("vanity of %s: %w", paths[len(paths)-1], err)
	}
	return v, nil
}

func (s *sqlDB) ListVanities(ctx context.Context) ([]Vanity, error) {
	rows, err := s.query(ctx, `SELECT content_id, path, created_at FROM vanities ORDER BY path`)
	if err != nil {
		return nil, fmt.Errorf("list vanities: %w", mapErr(err))
	}
	return collect(rows, scanVanity)
}

func (s *sqlDB) DeleteVanity(ctx context.Context, contentID int64) error {
	if err := affected(s.exec(ctx, `DELETE FROM vanities WHERE content_id = ?`, contentID)); err != nil {
		return fmt.Errorf("delete vanity of content %d: %w", contentID, err)
	}
	return nil
}
