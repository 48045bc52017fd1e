package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ProviderPassword is the provider of users who log in with a dais
// password (config Authentication.Provider = password).
const ProviderPassword = "password"

// strv stores "" as NULL, so that unique indexes leave it out.
func strv(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// nstr scans a nullable text into "".
type nstr struct{ p *string }

func (n nstr) Scan(src any) error {
	var v sql.NullString
	if err := v.Scan(src); err != nil {
		return err
	}
	*n.p = v.String
	return nil
}

func (s *sqlDB) UserByUniqueID(ctx context.Context, provider, uniqueID string) (*User, error) {
	u, err := scanUser(s.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE provider = ? AND unique_id = ?`, provider, uniqueID))
	if err != nil {
		return nil, fmt.Errorf("user of %s with unique id %q: %w", provider, uniqueID, err)
	}
	return u, nil
}

func (s *sqlDB) UserProviders(ctx context.Context) (map[string]int, error) {
	rows, err := s.query(ctx, `SELECT provider, count(*) FROM users GROUP BY provider`)
	if err != nil {
		return nil, fmt.Errorf("count users by provider: %w", mapErr(err))
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var p string
		var n int
		if err := rows.Scan(&p, &n); err != nil {
			return nil, fmt.Errorf("count users by provider: %w", mapErr(err))
		}
		out[p] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count users by provider: %w", mapErr(err))
	}
	return out, nil
}

func (s *sqlDB) SyncProviderGroups(ctx context.Context, userID int64, provider string, groups []Group) ([]string, error) {
	if provider == "" || provider == GroupProviderLocal {
		return nil, fmt.Errorf("sync groups of user %d: provider %q is not an authentication provider", userID, provider)
	}
	var skipped []string
	want := map[int64]bool{}
	for _, in := range groups {
		if in.UniqueID == "" || in.Name == "" {
			continue
		}
		g, err := s.GroupByUniqueID(ctx, provider, in.UniqueID)
		switch {
		case errors.Is(err, ErrNotFound):
			g = &Group{Name: in.Name, Provider: provider, UniqueID: in.UniqueID}
			if err := s.CreateGroup(ctx, g); err != nil {
				if !errors.Is(err, ErrConflict) {
					return nil, err
				}
				// Another login made it meanwhile, or the name is taken.
				g2, err2 := s.GroupByUniqueID(ctx, provider, in.UniqueID)
				if err2 != nil {
					skipped = append(skipped, in.Name)
					continue
				}
				g = g2
			}
		case err != nil:
			return nil, err
		case g.Name != in.Name:
			g.Name = in.Name
			if err := s.UpdateGroup(ctx, g); err != nil {
				if !errors.Is(err, ErrConflict) {
					return nil, err
				}
				skipped = append(skipped, in.Name)
				continue
			}
		}
		want[g.ID] = true
	}
	have, err := s.UserGroups(ctx, userID)
	if err != nil {
		return nil, err
	}
	for _, g := range have {
		if g.Provider != provider {
			continue
		}
		if want[g.ID] {
			delete(want, g.ID)
			continue
		}
		if err := s.RemoveGroupMember(ctx, g.ID, userID); err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	}
	for id := range want {
		if err := s.AddGroupMember(ctx, id, userID); err != nil && !errors.Is(err, ErrConflict) {
			return nil, err
		}
	}
	return skipped, nil
}
