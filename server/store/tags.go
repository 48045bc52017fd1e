package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Tag labels content. Tags form a tree: a tag with a ParentID sits below
// that tag; a name is unique among its siblings.
type Tag struct {
	ID        int64
	Name      string
	ParentID  int64 // 0: a top-level tag
	CreatedAt time.Time
	UpdatedAt time.Time
}

// TagFilter selects tags for ListTags. Zero values select everything.
type TagFilter struct {
	Name string // exact name
	// ParentID keeps the children of that tag; TopLevel keeps the tags
	// without a parent (ParentID is then ignored).
	ParentID int64
	TopLevel bool
}

// TagStore is the part of Store that keeps tags and content's tags.
type TagStore interface {
	// CreateTag returns ErrConflict for a name taken among the siblings or
	// a parent that does not exist.
	CreateTag(ctx context.Context, t *Tag) error
	Tag(ctx context.Context, id int64) (*Tag, error)
	// ListTags returns the matching tags ordered by id.
	ListTags(ctx context.Context, f TagFilter) ([]Tag, error)
	// UpdateTag writes Name and ParentID; sets UpdatedAt. The caller keeps
	// the tree a tree (no tag below itself).
	UpdateTag(ctx context.Context, t *Tag) error
	// DeleteTag removes the tag, the tags below it, and them from content.
	DeleteTag(ctx context.Context, id int64) error
	// AddContentTag returns ErrConflict when the content has the tag already.
	AddContentTag(ctx context.Context, contentID, tagID int64) error
	// RemoveContentTag returns ErrNotFound when the content lacks the tag.
	RemoveContentTag(ctx context.Context, contentID, tagID int64) error
	// ContentTags returns the content's tags ordered by id.
	ContentTags(ctx context.Context, contentID int64) ([]Tag, error)
}

const tagCols = `id, name, parent_id, created_at, updated_at`

func scanTag(r scanner) (*Tag, error) {
	var t Tag
	if err := r.Scan(&t.ID, &t.Name, nid{&t.ParentID}, ts{&t.CreatedAt}, ts{&t.UpdatedAt}); err != nil {
		return nil, mapErr(err)
	}
	return &t, nil
}

func (s *sqlDB) CreateTag(ctx context.Context, t *Tag) error {
	if t.CreatedAt.IsZero() {
		t.CreatedAt = now()
	}
	t.UpdatedAt = t.CreatedAt
	err := s.queryRow(ctx, `INSERT INTO tags (name, parent_id, created_at, updated_at) VALUES (?, ?, ?, ?) RETURNING id`,
		t.Name, idv(t.ParentID), tv(t.CreatedAt), tv(t.UpdatedAt)).Scan(&t.ID)
	if err != nil {
		return fmt.Errorf("create tag %q: %w", t.Name, mapErr(err))
	}
	return nil
}

func (s *sqlDB) Tag(ctx context.Context, id int64) (*Tag, error) {
	t, err := scanTag(s.queryRow(ctx, `SELECT `+tagCols+` FROM tags WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("tag %d: %w", id, err)
	}
	return t, nil
}

func (s *sqlDB) ListTags(ctx context.Context, f TagFilter) ([]Tag, error) {
	where := []string{"1 = 1"}
	var args []any
	if f.Name != "" {
		where = append(where, "name = ?")
		args = append(args, f.Name)
	}
	switch {
	case f.TopLevel:
		where = append(where, "parent_id IS NULL")
	case f.ParentID != 0:
		where = append(where, "parent_id = ?")
		args = append(args, f.ParentID)
	}
	rows, err := s.query(ctx, `SELECT `+tagCols+` FROM tags WHERE `+strings.Join(where, " AND ")+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list tags: %w", mapErr(err))
	}
	return collect(rows, scanTag)
}

func (s *sqlDB) UpdateTag(ctx context.Context, t *Tag) error {
	t.UpdatedAt = now()
	err := affected(s.exec(ctx, `UPDATE tags SET name = ?, parent_id = ?, updated_at = ? WHERE id = ?`,
		t.Name, idv(t.ParentID), tv(t.UpdatedAt), t.ID))
	if err != nil {
		return fmt.Errorf("update tag %d: %w", t.ID, err)
	}
	return nil
}

func (s *sqlDB) DeleteTag(ctx context.Context, id int64) error {
	if err := affected(s.exec(ctx, `DELETE FROM tags WHERE id = ?`, id)); err != nil {
		return fmt.Errorf("delete tag %d: %w", id, err)
	}
	return nil
}

func (s *sqlDB) AddContentTag(ctx context.Context, contentID, tagID int64) error {
	if _, err := s.exec(ctx, `INSERT INTO content_tags (content_id, tag_id) VALUES (?, ?)`, contentID, tagID); err != nil {
		return fmt.Errorf("tag content %d with %d: %w", contentID, tagID, err)
	}
	return nil
}

func (s *sqlDB) RemoveContentTag(ctx context.Context, contentID, tagID int64) error {
	if err := affected(s.exec(ctx, `DELETE FROM content_tags WHERE content_id = ? AND tag_id = ?`, contentID, tagID)); err != nil {
		return fmt.Errorf("untag content %d of %d: %w", contentID, tagID, err)
	}
	return nil
}

func (s *sqlDB) ContentTags(ctx context.Context, contentID int64) ([]Tag, error) {
	rows, err := s.query(ctx, `SELECT `+prefixCols("t.", tagCols)+` FROM tags t JOIN content_tags ct ON ct.tag_id = t.id
		WHERE ct.content_id = ? ORDER BY t.id`, contentID)
	if err != nil {
		return nil, fmt.Errorf("tags of content %d: %w", contentID, mapErr(err))
	}
	return collect(rows, scanTag)
}
