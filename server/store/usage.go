package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// AuditLog is one entry of the audit log: who did what, when. User fields
// are copies (the entry outlives the user); UserID is 0 for the server
// itself or an anonymous request.
type AuditLog struct {
	ID               int64
	Time             time.Time
	UserID           int64
	UserGUID         string
	UserDescription  string // "alice (Alice Smith)"
	Action           string // Connect's names: add_application, deploy_application, user_login, ...
	EventDescription string
}

// Visit is one view of non-interactive content (a document, a static
// site), recorded by the proxy.
type Visit struct {
	ID          int64
	ContentID   int64
	ContentGUID string
	UserGUID    string // "" for anonymous
	BundleID    int64  // 0 unknown
	RenderingID int64  // 0 for static content
	VariantKey  string
	Path        string
	Time        time.Time
	DataVersion int
}

// ShinySession is one user's session with an interactive app: its
// WebSocket, from open to close.
type ShinySession struct {
	ID          int64
	Key         string // the recorder's own key, unique
	ContentID   int64
	ContentGUID string
	UserGUID    string
	Started     time.Time
	Ended       time.Time // zero while open
	DataVersion int
}

// UsageEvent is one write of the usage recorder: a Visit, a session
// start (Session with Ended zero) or a session end (SessionEnd: Key and
// Ended only).
type UsageEvent struct {
	Visit      *Visit
	Session    *ShinySession
	SessionEnd *ShinySession
}

// Page asks for one page of a keyset-paged list: Limit rows after the
// row with id *Next, or before the row with id *Previous (at most one of
// them; nil: from the start), in ascending id order when Asc.
type Page struct {
	Limit          int
	Next, Previous *int64
	Asc            bool
}

// UsageFilter narrows the usage lists.
type UsageFilter struct {
	Page
	ContentGUIDs   []string // any of them; none: every content
	ContentIDs     []int64  // only these (a publisher's own); nil: no limit
	OnlyContentIDs bool     // ContentIDs applies even when empty
	MinDataVersion int
	From, To       time.Time // zero: open
}

// PageInfo says whether rows lie beyond a page in either direction.
type PageInfo struct {
	HasNext, HasPrevious bool
}

// UsageStore is the part of Store that keeps the audit log and usage.
type UsageStore interface {
	AddAuditLog(ctx context.Context, l *AuditLog) error
	ListAuditLogs(ctx context.Context, p Page) ([]AuditLog, PageInfo, error)
	// RecordUsage writes a batch of events in one transaction, in order.
	RecordUsage(ctx context.Context, events []UsageEvent) error
	ListVisits(ctx context.Context, f UsageFilter) ([]Visit, PageInfo, error)
	ListShinySessions(ctx context.Context, f UsageFilter) ([]ShinySession, PageInfo, error)
	// DeleteAuditLogsBefore and DeleteUsageBefore apply retention; they
	// return how many rows went.
	DeleteAuditLogsBefore(ctx context.Context, t time.Time) (int64, error)
	DeleteUsageBefore(ctx context.Context, t time.Time) (int64, error)
}

func (s *sqlDB) AddAuditLog(ctx context.Context, l *AuditLog) error {
	if l.Time.IsZero() {
		l.Time = now()
	}
	err := s.queryRow(ctx, `INSERT INTO audit_logs (time, user_id, user_guid, user_description, action, event_description)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
		tv(l.Time), idv(l.UserID), l.UserGUID, l.UserDescription, l.Action, l.EventDescription).Scan(&l.ID)
	return mapErr(err)
}

// keyset builds the paging part of a query over table t: the cursor
// condition, and the ORDER BY and LIMIT (one row more than asked, to see
// whether there are more). reversed says the rows come back in the
// opposite order of the page's (a "previous" page) and must be flipped.
func keyset(p Page, where []string, args []any) (string, []any, bool) {
	asc := p.Asc
	reversed := false
	switch {
	case p.Next != nil:
		if asc {
			where = append(where, "id > ?")
		} else {
			where = append(where, "id < ?")
		}
		args = append(args, *p.Next)
	case p.Previous != nil:
		reversed = true
		if asc {
			where = append(where, "id < ?")
		} else {
			where = append(where, "id > ?")
		}
		args = append(args, *p.Previous)
	}
	order := asc != reversed
	q := ""
	if len(where) > 0 {
		q = " WHERE " + strings.Join(where, " AND ")
	}
	if order {
		q += " ORDER BY id ASC"
	} else {
		q += " ORDER BY id DESC"
	}
	q += " LIMIT ?"
	args = append(args, p.Limit+1)
	return q, args, reversed
}

// pageOf trims the extra row and flips a reversed page; more says the
// query found the extra row. hasBefore says whether the cursor itself
// bounded the query (there are rows on its other side).
func pageOf[T any](rows []T, p Page, reversed bool) ([]T, PageInfo) {
	more := len(rows) > p.Limit
	if more {
		rows = rows[:p.Limit]
	}
	var info PageInfo
	if reversed {
		for i, j := 0, len(rows)-1; i < j; i, j = i+1, j-1 {
			rows[i], rows[j] = rows[j], rows[i]
		}
		info.HasPrevious, info.HasNext = more, true
	} else {
		info.HasNext, info.HasPrevious = more, p.Next != nil
	}
	return rows, info
}

func (s *sqlDB) ListAuditLogs(ctx context.Context, p Page) ([]AuditLog, PageInfo, error) {
	q, args, reversed := keyset(p, nil, nil)
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT id, time, user_id, user_guid, user_description, action, event_description FROM audit_logs`+q), args...)
	if err != nil {
		return nil, PageInfo{}, mapErr(err)
	}
	defer rows.Close()
	var out []AuditLog
	for rows.Next() {
		var l AuditLog
		if err := rows.Scan(&l.ID, ts{&l.Time}, nid{&l.UserID}, &l.UserGUID, &l.UserDescription, &l.Action, &l.EventDescription); err != nil {
			return nil, PageInfo{}, mapErr(err)
		}
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, PageInfo{}, mapErr(err)
	}
	out, info := pageOf(out, p, reversed)
	return out, info, nil
}

func (s *sqlDB) RecordUsage(ctx context.Context, events []UsageEvent) error {
	if len(events) == 0 {
		return nil
	}
	return s.tx(ctx, func(tx *sql.Tx) error {
		for _, e := range events {
			var err error
			switch {
			case e.Visit != nil:
				v := e.Visit
				_, err = tx.ExecContext(ctx, s.q(`INSERT INTO content_visits (content_id, content_guid, user_guid, bundle_id, rendering_id, variant_key, path, time, data_version)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
					v.ContentID, v.ContentGUID, v.UserGUID, idv(v.BundleID), idv(v.RenderingID), v.VariantKey, v.Path, tv(v.Time), max(v.DataVersion, 1))
			case e.Session != nil:
				ss := e.Session
				_, err = tx.ExecContext(ctx, s.q(`INSERT INTO shiny_usage (session_key, content_id, content_guid, user_guid, started, ended, data_version)
					VALUES (?, ?, ?, ?, ?, ?, ?)`),
					ss.Key, ss.ContentID, ss.ContentGUID, ss.UserGUID, tv(ss.Started), tv(ss.Ended), max(ss.DataVersion, 1))
			case e.SessionEnd != nil:
				_, err = tx.ExecContext(ctx, s.q(`UPDATE shiny_usage SET ended = ? WHERE session_key = ?`), tv(e.SessionEnd.Ended), e.SessionEnd.Key)
			}
			if err != nil {
				return fmt.Errorf("record usage: %w", err)
			}
		}
		return nil
	})
}

// usageWhere is the filter of the usage lists; timeCol is the time the
// window applies to and endCol the end of a session ("" for visits).
func (s *sqlDB) usageWhere(f UsageFilter, startCol, endCol string) ([]string, []any) {
	var where []string
	var args []any
	if len(f.ContentGUIDs) > 0 {
		where = append(where, "content_guid IN ("+strings.TrimSuffix(strings.Repeat("?,", len(f.ContentGUIDs)), ",")+")")
		for _, g := range f.ContentGUIDs {
			args = append(args, g)
		}
	}
	if f.OnlyContentIDs || f.ContentIDs != nil {
		if len(f.ContentIDs) == 0 {
			where = append(where, "1 = 0")
		} else {
			where = append(where, "content_id IN ("+strings.TrimSuffix(strings.Repeat("?,", len(f.ContentIDs)), ",")+")")
			for _, id := range f.ContentIDs {
				args = append(args, id)
			}
		}
	}
	if f.MinDataVersion > 0 {
		where = append(where, "data_version >= ?")
		args = append(args, f.MinDataVersion)
	}
	// Connect's window: a record counts when it overlaps [From, To].
	if !f.From.IsZero() {
		if endCol != "" {
			where = append(where, "("+endCol+" IS NULL OR "+endCol+" >= ?)")
		} else {
			where = append(where, startCol+" >= ?")
		}
		args = append(args, tv(f.From))
	}
	if !f.To.IsZero() {
		where = append(where, startCol+" <= ?")
		args = append(args, tv(f.To))
	}
	return where, args
}

func (s *sqlDB) ListVisits(ctx context.Context, f UsageFilter) ([]Visit, PageInfo, error) {
	where, args := s.usageWhere(f, "time", "")
	q, args, reversed := keyset(f.Page, where, args)
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT id, content_id, content_guid, user_guid, bundle_id, rendering_id, variant_key, path, time, data_version FROM content_visits`+q), args...)
	if err != nil {
		return nil, PageInfo{}, mapErr(err)
	}
	defer rows.Close()
	var out []Visit
	for rows.Next() {
		var v Visit
		if err := rows.Scan(&v.ID, &v.ContentID, &v.ContentGUID, &v.UserGUID, nid{&v.BundleID}, nid{&v.RenderingID}, &v.VariantKey, &v.Path, ts{&v.Time}, &v.DataVersion); err != nil {
			return nil, PageInfo{}, mapErr(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, PageInfo{}, mapErr(err)
	}
	out, info := pageOf(out, f.Page, reversed)
	return out, info, nil
}

func (s *sqlDB) ListShinySessions(ctx context.Context, f UsageFilter) ([]ShinySession, PageInfo, error) {
	where, args := s.usageWhere(f, "started", "ended")
	q, args, reversed := keyset(f.Page, where, args)
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT id, session_key, content_id, content_guid, user_guid, started, ended, data_version FROM shiny_usage`+q), args...)
	if err != nil {
		return nil, PageInfo{}, mapErr(err)
	}
	defer rows.Close()
	var out []ShinySession
	for rows.Next() {
		var v ShinySession
		if err := rows.Scan(&v.ID, &v.Key, &v.ContentID, &v.ContentGUID, &v.UserGUID, ts{&v.Started}, ts{&v.Ended}, &v.DataVersion); err != nil {
			return nil, PageInfo{}, mapErr(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, PageInfo{}, mapErr(err)
	}
	out, info := pageOf(out, f.Page, reversed)
	return out, info, nil
}

func (s *sqlDB) DeleteAuditLogsBefore(ctx context.Context, t time.Time) (int64, error) {
	res, err := s.exec(ctx, `DELETE FROM audit_logs WHERE time < ?`, tv(t))
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (s *sqlDB) DeleteUsageBefore(ctx context.Context, t time.Time) (int64, error) {
	var total int64
	for _, q := range []string{
		`DELETE FROM content_visits WHERE time < ?`,
		// An open session is kept: its end is not known yet.
		`DELETE FROM shiny_usage WHERE ended IS NOT NULL AND ended < ?`,
	} {
		res, err := s.exec(ctx, q, tv(t))
		if err != nil {
			return total, err
		}
		n, _ := res.RowsAffected()
		total += n
	}
	return total, nil
}
