package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// GroupProviderLocal is the provider of groups created through dais's API.
const GroupProviderLocal = "local"

// Group is a named set of users. Content permissions may name a group:
// its members get the group's access.
type Group struct {
	ID   int64
	GUID string // filled by CreateGroup when empty
	Name string // unique
	// OwnerID is the user who created the group (0: none, as for groups
	// an authentication provider brings).
	OwnerID int64
	// Provider is where the group comes from: GroupProviderLocal (the
	// default) or an authentication provider's name.
	Provider string
	// UniqueID is the provider's own, unchanging id of the group, unique
	// per provider; a local group's is its GUID (filled when empty).
	UniqueID  string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// GroupFilter selects groups for ListGroups. Zero values select everything.
type GroupFilter struct {
	Prefix  string // name starting with it (case-insensitive)
	OwnerID int64  // owned by this user
	Start   int    // offset, for paging
	Count   int    // page size; 0 = no limit
}

// GroupStore is the part of Store that keeps groups and their members.
type GroupStore interface {
	CreateGroup(ctx context.Context, g *Group) error
	Group(ctx context.Context, id int64) (*Group, error)
	GroupByGUID(ctx context.Context, guid string) (*Group, error)
	// GroupByUniqueID finds a provider's group by the provider's id.
	GroupByUniqueID(ctx context.Context, provider, uniqueID string) (*Group, error)
	// ListGroups returns a page of groups ordered by name (case-insensitive) and the total
	// number matching the filter.
	ListGroups(ctx context.Context, f GroupFilter) ([]Group, int, error)
	// UpdateGroup writes Name and OwnerID; sets UpdatedAt.
	UpdateGroup(ctx context.Context, g *Group) error
	// DeleteGroup removes the group, its memberships and its permissions.
	DeleteGroup(ctx context.Context, id int64) error
	// AddGroupMember returns ErrConflict when the user is a member already.
	AddGroupMember(ctx context.Context, groupID, userID int64) error
	// RemoveGroupMember returns ErrNotFound when the user is not a member.
	RemoveGroupMember(ctx context.Context, groupID, userID int64) error
	// GroupMembers returns the group's users ordered by username.
	GroupMembers(ctx context.Context, groupID int64) ([]User, error)
	// UserGroups returns the groups the user is a member of, by name.
	UserGroups(ctx context.Context, userID int64) ([]Group, error)
	// GroupPermissions returns the content permissions naming the group.
	GroupPermissions(ctx context.Context, groupID int64) ([]Permission, error)
}

const groupCols = `id, guid, name, owner_id, provider, unique_id, created_at, updated_at`

func scanGroup(r scanner) (*Group, error) {
	var g Group
	err := r.Scan(&g.ID, &g.GUID, &g.Name, nid{&g.OwnerID}, &g.Provider, &g.UniqueID, ts{&g.CreatedAt}, ts{&g.UpdatedAt})
	if err != nil {
		return nil, mapErr(err)
	}
	return &g, nil
}

func (s *sqlDB) CreateGroup(ctx context.Context, g *Group) error {
	if g.GUID == "" {
		g.GUID = newGUID()
	}
	if g.Provider == "" {
		g.Provider = GroupProviderLocal
	}
	if g.UniqueID == "" {
		g.UniqueID = g.GUID
	}
	if g.CreatedAt.IsZero() {
		g.CreatedAt = now()
	}
	g.UpdatedAt = g.CreatedAt
	err := s.queryRow(ctx, `INSERT INTO groups (guid, name, owner_id, provider, unique_id, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		g.GUID, g.Name, idv(g.OwnerID), g.Provider, g.UniqueID, tv(g.CreatedAt), tv(g.UpdatedAt)).Scan(&g.ID)
	if err != nil {
		return fmt.Errorf("create group %q: %w", g.Name, mapErr(err))
	}
	return nil
}

func (s *sqlDB) groupBy(ctx context.Context, where string, args ...any) (*Group, error) {
	g, err := scanGroup(s.queryRow(ctx, `SELECT `+groupCols+` FROM groups WHERE `+where, args...))
	if err != nil {
		return nil, fmt.Errorf("group %v: %w", args, err)
	}
	return g, nil
}

func (s *sqlDB) Group(ctx context.Context, id int64) (*Group, error) {
	return s.groupBy(ctx, `id = ?`, id)
}

func (s *sqlDB) GroupByGUID(ctx context.Context, guid string) (*Group, error) {
	return s.groupBy(ctx, `guid = ?`, guid)
}

func (s *sqlDB) GroupByUniqueID(ctx context.Context, provider, uniqueID string) (*Group, error) {
	return s.groupBy(ctx, `provider = ? AND unique_id = ?`, provider, uniqueID)
}

func (s *sqlDB) ListGroups(ctx context.Context, f GroupFilter) ([]Group, int, error) {
	where := []string{"1 = 1"}
	var args []any
	if f.Prefix != "" {
		where = append(where, `LOWER(name) LIKE ? ESCAPE '\'`)
		args = append(args, prefixArg(f.Prefix))
	}
	if f.OwnerID != 0 {
		where = append(where, `owner_id = ?`)
		args = append(args, f.OwnerID)
	}
	w := strings.Join(where, " AND ")
	var total int
	if err := s.queryRow(ctx, `SELECT count(*) FROM groups WHERE `+w, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count groups: %w", mapErr(err))
	}
	lim, largs := s.limit(f.Count, f.Start)
	rows, err := s.query(ctx, `SELECT `+groupCols+` FROM groups WHERE `+w+` ORDER BY LOWER(name), name, id`+lim, append(args, largs...)...)
	if err != nil {
		return nil, 0, fmt.Errorf("list groups: %w", mapErr(err))
	}
	out, err := collect(rows, scanGroup)
	if err != nil {
		return nil, 0, fmt.Errorf("list groups: %w", err)
	}
	return out, total, nil
}

func (s *sqlDB) UpdateGroup(ctx context.Context, g *Group) error {
	g.UpdatedAt = now()
	err := affected(s.exec(ctx, `UPDATE groups SET name = ?, owner_id = ?, updated_at = ? WHERE id = ?`,
		g.Name, idv(g.OwnerID), tv(g.UpdatedAt), g.ID))
	if err != nil {
		return fmt.Errorf("update group %d: %w", g.ID, err)
	}
	return nil
}

func (s *sqlDB) DeleteGroup(ctx context.Context, id int64) error {
	if err := affected(s.exec(ctx, `DELETE FROM groups WHERE id = ?`, id)); err != nil {
		return fmt.Errorf("delete group %d: %w", id, err)
	}
	return nil
}

func (s *sqlDB) AddGroupMember(ctx context.Context, groupID, userID int64) error {
	_, err := s.exec(ctx, `INSERT INTO group_members (group_id, user_id, created_at) VALUES (?, ?, ?)`, groupID, userID, tv(now()))
	if err != nil {
		return fmt.Errorf("add user %d to group %d: %w", userID, groupID, err)
	}
	return nil
}

func (s *sqlDB) RemoveGroupMember(ctx context.Context, groupID, userID int64) error {
	if err := affected(s.exec(ctx, `DELETE FROM group_members WHERE group_id = ? AND user_id = ?`, groupID, userID)); err != nil {
		return fmt.Errorf("remove user %d from group %d: %w", userID, groupID, err)
	}
	return nil
}

func (s *sqlDB) GroupMembers(ctx context.Context, groupID int64) ([]User, error) {
	rows, err := s.query(ctx, `SELECT `+prefixCols("u.", userCols)+` FROM users u JOIN group_members m ON m.user_id = u.id
		WHERE m.group_id = ? ORDER BY u.username`, groupID)
	if err != nil {
		return nil, fmt.Errorf("members of group %d: %w", groupID, mapErr(err))
	}
	return collect(rows, scanUser)
}

func (s *sqlDB) UserGroups(ctx context.Context, userID int64) ([]Group, error) {
	rows, err := s.query(ctx, `SELECT `+prefixCols("g.", groupCols)+` FROM groups g JOIN group_members m ON m.group_id = g.id
		WHERE m.user_id = ? ORDER BY LOWER(g.name), g.name`, userID)
	if err != nil {
		return nil, fmt.Errorf("groups of user %d: %w", userID, mapErr(err))
	}
	return collect(rows, scanGroup)
}

// prefixCols qualifies each column of a column list with a table alias.
func prefixCols(alias, cols string) string {
	parts := strings.Split(cols, ",")
	for i, p := range parts {
		parts[i] = alias + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

func (s *sqlDB) GroupPermissions(ctx context.Context, groupID int64) ([]Permission, error) {
	rows, err := s.query(ctx, `SELECT `+permCols+` FROM permissions WHERE group_id = ? ORDER BY content_id`, groupID)
	if err != nil {
		return nil, fmt.Errorf("permissions of group %d: %w", groupID, mapErr(err))
	}
	return collect(rows, scanPerm)
}
