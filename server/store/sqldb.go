package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Dialects.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// sqlDB implements Store over database/sql. Queries are written with ?
// placeholders and rewritten to $N for PostgreSQL.
type sqlDB struct {
	db      *sql.DB
	dialect string
	stmts   sync.Map // rewritten query -> *sql.Stmt
}

// q rewrites ? placeholders for the dialect. Queries here never contain a
// literal question mark.
func (s *sqlDB) q(query string) string {
	if s.dialect != DialectPostgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// prepared returns the cached prepared statement for query (already
// rewritten). Preparing is most of the cost of a point query in SQLite.
func (s *sqlDB) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	if v, ok := s.stmts.Load(query); ok {
		return v.(*sql.Stmt), nil
	}
	st, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if v, loaded := s.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return v.(*sql.Stmt), nil
	}
	return st, nil
}

// txStmt is the cached statement for query, bound to tx.
func (s *sqlDB) txStmt(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	st, err := s.prepared(ctx, s.q(query))
	if err != nil {
		return nil, err
	}
	return tx.StmtContext(ctx, st), nil
}

func (s *sqlDB) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	q := s.q(query)
	st, err := s.prepared(ctx, q)
	if err != nil {
		res, err := s.db.ExecContext(ctx, q, args...)
		return res, mapErr(err)
	}
	res, err := st.ExecContext(ctx, args...)
	return res, mapErr(err)
}

func (s *sqlDB) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	q := s.q(query)
	st, err := s.prepared(ctx, q)
	if err != nil {
		return s.db.QueryRowContext(ctx, q, args...) // reports the same error on Scan
	}
	return st.QueryRowContext(ctx, args...)
}

func (s *sqlDB) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	q := s.q(query)
	st, err := s.prepared(ctx, q)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// limit returns the LIMIT/OFFSET clause of a page and its arguments, as
// placeholders so that the statement cache holds one statement per shape.
func (s *sqlDB) limit(count, start int) (string, []any) {
	switch {
	case count > 0:
		return " LIMIT ? OFFSET ?", []any{count, max(start, 0)}
	case start > 0 && s.dialect == DialectPostgres:
		return " OFFSET ?", []any{start}
	case start > 0:
		return " LIMIT -1 OFFSET ?", []any{start}
	}
	return "", nil
}

// tx runs fn in a transaction, committing when fn returns nil.
func (s *sqlDB) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return mapErr(err)
	}
	return mapErr(tx.Commit())
}

// mapErr turns driver errors into the package's sentinels.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505": // unique_violation
			return fmt.Errorf("%w: %s", ErrConflict, pgErr.Detail)
		case "23503": // foreign_key_violation
			return fmt.Errorf("%w: still referenced or missing: %s", ErrConflict, pgErr.Detail)
		}
		return err
	}
	msg := err.Error()
	if strings.Contains(msg, "UNIQUE constraint failed") || strings.Contains(msg, "FOREIGN KEY constraint failed") {
		return fmt.Errorf("%w: %s", ErrConflict, msg)
	}
	return err
}

// Values stored for times and optional values.

func tv(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func idv(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

func jsonv(b json.RawMessage) any {
	if b == nil {
		return nil
	}
	return string(b)
}

// ts scans a nullable microsecond time.
type ts struct{ t *time.Time }

func (s ts) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*s.t = time.Time{}
	case int64:
		*s.t = time.UnixMicro(v).UTC()
	default:
		return fmt.Errorf("scan time: unexpected %T", src)
	}
	return nil
}

// nid scans a nullable id into 0.
type nid struct{ p *int64 }

func (n nid) Scan(src any) error {
	var v sql.NullInt64
	if err := v.Scan(src); err != nil {
		return err
	}
	*n.p = v.Int64
	return nil
}

// njson scans a nullable JSON text.
type njson struct{ p *json.RawMessage }

func (n njson) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*n.p = nil
	case string:
		*n.p = json.RawMessage(v)
	case []byte:
		*n.p = append(json.RawMessage(nil), v...)
	default:
		return fmt.Errorf("scan json: unexpected %T", src)
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}

// newGUID returns a random (version 4) UUID, as Connect's guids are.
func newGUID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// likeArg escapes a LIKE pattern's wildcards; used with ESCAPE '\'.
func likeArg(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(strings.ToLower(s)) + "%"
}

func prefixArg(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(strings.ToLower(s)) + "%"
}

// affected returns ErrNotFound when res changed no row.
func affected(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// ---- users

const userCols = `id, guid, username, first_name, last_name, email, role, password_hash, locked, created_at, updated_at, last_login_at, provider, unique_id`

func scanUser(r scanner) (*User, error) {
	var u User
	err := r.Scan(&u.ID, &u.GUID, &u.Username, &u.FirstName, &u.LastName, &u.Email, &u.Role,
		&u.PasswordHash, &u.Locked, ts{&u.CreatedAt}, ts{&u.UpdatedAt}, ts{&u.LastLoginAt}, &u.Provider, nstr{&u.UniqueID})
	if err != nil {
		return nil, mapErr(err)
	}
	return &u, nil
}

func (s *sqlDB) CreateUser(ctx context.Context, u *User) error {
	if u.GUID == "" {
		u.GUID = newGUID()
	}
	if u.Role == "" {
		u.Role = RoleViewer
	}
	if u.Provider == "" {
		u.Provider = ProviderPassword
	}
	if u.CreatedAt.IsZero() {
		u.CreatedAt = now()
	}
	u.UpdatedAt = u.CreatedAt
	err := s.queryRow(ctx, `INSERT INTO users (guid, username, first_name, last_name, email, role, password_hash, locked, created_at, updated_at, last_login_at, provider, unique_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		u.GUID, u.Username, u.FirstName, u.LastName, u.Email, u.Role, u.PasswordHash, u.Locked,
		tv(u.CreatedAt), tv(u.UpdatedAt), tv(u.LastLoginAt), u.Provider, strv(u.UniqueID)).Scan(&u.ID)
	if err != nil {
		return fmt.Errorf("create user %q: %w", u.Username, mapErr(err))
	}
	return nil
}

func (s *sqlDB) userBy(ctx context.Context, col string, v any) (*User, error) {
	u, err := scanUser(s.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE `+col+` = ?`, v))
	if err != nil {
		return nil, fmt.Errorf("user %s %v: %w", col, v, err)
	}
	return u, nil
}

func (s *sqlDB) User(ctx context.Context, id int64) (*User, error) { return s.userBy(ctx, "id", id) }
func (s *sqlDB) UserByGUID(ctx context.Context, guid string) (*User, error) {
	return s.userBy(ctx, "guid", guid)
}
func (s *sqlDB) UserByUsername(ctx context.Context, username string) (*User, error) {
	return s.userBy(ctx, "username", username)
}

func (s *sqlDB) ListUsers(ctx context.Context, f UserFilter) ([]User, int, error) {
	where := []string{"1 = 1"}
	var args []any
	if f.Prefix != "" {
		where = append(where, `(LOWER(username) LIKE ? ESCAPE '\' OR LOWER(first_name) LIKE ? ESCAPE '\' OR LOWER(last_name) LIKE ? ESCAPE '\')`)
		p := prefixArg(f.Prefix)
		args = append(args, p, p, p)
	}
	if f.Role != "" {
		where = append(where, "role = ?")
		args = append(args, f.Role)
	}
	w := strings.Join(where, " AND ")
	var total int
	if err := s.queryRow(ctx, `SELECT count(*) FROM users WHERE `+w, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count users: %w", mapErr(err))
	}
	lim, largs := s.limit(f.Count, f.Start)
	rows, err := s.query(ctx, `SELECT `+userCols+` FROM users WHERE `+w+` ORDER BY username`+lim, append(args, largs...)...)
	if err != nil {
		return nil, 0, fmt.Errorf("list users: %w", mapErr(err))
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("list users: %w", err)
		}
		out = append(out, *u)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("list users: %w", mapErr(err))
	}
	return out, total, nil
}

func (s *sqlDB) UpdateUser(ctx context.Context, u *User) error {
	u.UpdatedAt = now()
	if u.Provider == "" {
		u.Provider = ProviderPassword
	}
	err := affected(s.exec(ctx, `UPDATE users SET username = ?, first_name = ?, last_name = ?, email = ?, role = ?,
		password_hash = ?, locked = ?, updated_at = ?, last_login_at = ?, provider = ?, unique_id = ? WHERE id = ?`,
		u.Username, u.FirstName, u.LastName, u.Email, u.Role, u.PasswordHash, u.Locked,
		tv(u.UpdatedAt), tv(u.LastLoginAt), u.Provider, strv(u.UniqueID), u.ID))
	if err != nil {
		return fmt.Errorf("update user %d: %w", u.ID, err)
	}
	return nil
}

func (s *sqlDB) DeleteUser(ctx context.Context, id int64) error {
	if err := affected(s.exec(ctx, `DELETE FROM users WHERE id = ?`, id)); err != nil {
		return fmt.Errorf("delete user %d: %w", id, err)
	}
	return nil
}

// ---- API keys

const keyCols = `id, user_id, name, hash, prefix, created_at, last_used_at`

func scanKey(r scanner) (*APIKey, error) {
	var k APIKey
	if err := r.Scan(&k.ID, &k.UserID, &k.Name, &k.Hash, &k.Prefix, ts{&k.CreatedAt}, ts{&k.LastUsedAt}); err != nil {
		return nil, mapErr(err)
	}
	return &k, nil
}

func (s *sqlDB) CreateAPIKey(ctx context.Context, k *APIKey) error {
	if k.CreatedAt.IsZero() {
		k.CreatedAt = now()
	}
	err := s.queryRow(ctx, `INSERT INTO api_keys (user_id, name, hash, prefix, created_at, last_used_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
		k.UserID, k.Name, k.Hash, k.Prefix, tv(k.CreatedAt), tv(k.LastUsedAt)).Scan(&k.ID)
	if err != nil {
		return fmt.Errorf("create API key for user %d: %w", k.UserID, mapErr(err))
	}
	return nil
}

func (s *sqlDB) APIKeyByHash(ctx context.Context, hash string) (*APIKey, error) {
	k, err := scanKey(s.queryRow(ctx, `SELECT `+keyCols+` FROM api_keys WHERE hash = ?`, hash))
	if err != nil {
		return nil, fmt.Errorf("API key: %w", err)
	}
	return k, nil
}

func (s *sqlDB) ListAPIKeys(ctx context.Context, userID int64) ([]APIKey, error) {
	rows, err := s.query(ctx, `SELECT `+keyCols+` FROM api_keys WHERE user_id = ? ORDER BY id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list API keys: %w", mapErr(err))
	}
	return collect(rows, scanKey)
}

func (s *sqlDB) TouchAPIKey(ctx context.Context, id int64, at time.Time) error {
	if err := affected(s.exec(ctx, `UPDATE api_keys SET last_used_at = ? WHERE id = ?`, tv(at), id)); err != nil {
		return fmt.Errorf("touch API key %d: %w", id, err)
	}
	return nil
}

func (s *sqlDB) DeleteAPIKey(ctx context.Context, id int64) error {
	if err := affected(s.exec(ctx, `DELETE FROM api_keys WHERE id = ?`, id)); err != nil {
		return fmt.Errorf("delete API key %d: %w", id, err)
	}
	return nil
}

// collect scans every row with scan.
func collect[T any](rows *sql.Rows, scan func(scanner) (*T, error)) ([]T, error) {
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *v)
	}
	return out, mapErr(rows.Err())
}

// ---- sessions

func (s *sqlDB) CreateSession(ctx context.Context, se *Session) error {
	if se.CreatedAt.IsZero() {
		se.CreatedAt = now()
	}
	_, err := s.exec(ctx, `INSERT INTO sessions (token_hash, user_id, created_at, expires_at, id_token) VALUES (?, ?, ?, ?, ?)`,
		se.TokenHash, se.UserID, tv(se.CreatedAt), tv(se.ExpiresAt), se.IDToken)
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

func (s *sqlDB) Session(ctx context.Context, tokenHash string, at time.Time) (*Session, error) {
	var se Session
	err := s.queryRow(ctx, `SELECT token_hash, user_id, created_at, expires_at, id_token FROM sessions WHERE token_hash = ? AND expires_at > ?`,
		tokenHash, at.UnixMicro()).Scan(&se.TokenHash, &se.UserID, ts{&se.CreatedAt}, ts{&se.ExpiresAt}, &se.IDToken)
	if err != nil {
		return nil, fmt.Errorf("session: %w", mapErr(err))
	}
	return &se, nil
}

func (s *sqlDB) DeleteSession(ctx context.Context, tokenHash string) error {
	if _, err := s.exec(ctx, `DELETE FROM sessions WHERE token_hash = ?`, tokenHash); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

func (s *sqlDB) DeleteExpiredSessions(ctx context.Context, at time.Time) (int64, error) {
	res, err := s.exec(ctx, `DELETE FROM sessions WHERE expires_at <= ?`, at.UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", err)
	}
	return res.RowsAffected()
}

// ---- content

const contentCols = `id, guid, name, title, description, owner_id, access_type, app_mode, min_processes, max_processes,
	max_conns_per_process, idle_timeout, init_timeout, bundle_id, r_version, py_version, quarto_version,
	r_version_wanted, py_version_wanted, quarto_version_wanted, run_as, locked, locked_message,
	outbound_network, memory_request, memory_limit, cpu_request, cpu_limit, connection_timeout, read_timeout,
	created_at, updated_at`

func scanContent(r scanner) (*Content, error) {
	var c Content
	err := r.Scan(&c.ID, &c.GUID, &c.Name, &c.Title, &c.Description, &c.OwnerID, &c.AccessType, &c.AppMode,
		&c.MinProcesses, &c.MaxProcesses, &c.MaxConnsPerProcess, &c.IdleTimeout, &c.InitTimeout, &c.BundleID,
		&c.RVersion, &c.PyVersion, &c.QuartoVersion, &c.RVersionWanted, &c.PyVersionWanted, &c.QuartoVersionWanted,
		&c.RunAs, &c.Locked, &c.LockedMessage, &c.OutboundNetwork, &c.MemoryRequest, &c.MemoryLimit, &c.CPURequest, &c.CPULimit,
		&c.ConnectionTimeout, &c.ReadTimeout, ts{&c.CreatedAt}, ts{&c.UpdatedAt})
	if err != nil {
		return nil, mapErr(err)
	}
	return &c, nil
}

func (s *sqlDB) CreateContent(ctx context.Context, c *Content) error {
	if c.GUID == "" {
		c.GUID = newGUID()
	}
	if c.AccessType == "" {
		c.AccessType = AccessACL
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now()
	}
	c.UpdatedAt = c.CreatedAt
	err := s.queryRow(ctx, `INSERT INTO content (guid, name, title, description, owner_id, access_type, app_mode, min_processes,
		max_processes, max_conns_per_process, idle_timeout, init_timeout, bundle_id, r_version, py_version, quarto_version,
		r_version_wanted, py_version_wanted, quarto_version_wanted, run_as, locked, locked_message,
		outbound_network, memory_request, memory_limit, cpu_request, cpu_limit, connection_timeout, read_timeout,
		created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		c.GUID, c.Name, c.Title, c.Description, c.OwnerID, c.AccessType, c.AppMode, c.MinProcesses, c.MaxProcesses,
		c.MaxConnsPerProcess, c.IdleTimeout, c.InitTimeout, c.BundleID, c.RVersion, c.PyVersion, c.QuartoVersion,
		c.RVersionWanted, c.PyVersionWanted, c.QuartoVersionWanted, c.RunAs, c.Locked, c.LockedMessage,
		c.OutboundNetwork, c.MemoryRequest, c.MemoryLimit, c.CPURequest, c.CPULimit, c.ConnectionTimeout, c.ReadTimeout,
		tv(c.CreatedAt), tv(c.UpdatedAt)).Scan(&c.ID)
	if err != nil {
		return fmt.Errorf("create content %q: %w", c.Name, mapErr(err))
	}
	return nil
}

func (s *sqlDB) Content(ctx context.Context, id int64) (*Content, error) {
	c, err := scanContent(s.queryRow(ctx, `SELECT `+contentCols+` FROM content WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("content %d: %w", id, err)
	}
	return c, nil
}

func (s *sqlDB) ContentByGUID(ctx context.Context, guid string) (*Content, error) {
	c, err := scanContent(s.queryRow(ctx, `SELECT `+contentCols+` FROM content WHERE guid = ?`, guid))
	if err != nil {
		return nil, fmt.Errorf("content %s: %w", guid, err)
	}
	return c, nil
}

func (s *sqlDB) ListContent(ctx context.Context, f ContentFilter) ([]Content, int, error) {
	where := []string{"1 = 1"}
	var args []any
	if f.Name != "" {
		where = append(where, "name = ?")
		args = append(args, f.Name)
	}
	if f.OwnerID != 0 {
		where = append(where, "owner_id = ?")
		args = append(args, f.OwnerID)
	}
	// A word is in the name or the title, case-insensitive. SQLite's LIKE
	// ignores the case of ASCII letters and its LOWER folds only those:
	// LIKE alone, of the lower-cased word, answers the same, without a
	// LOWER per row (the search of a word on 10,000 items read every row:
	// 2.4 -> 1.8 ms). PostgreSQL's LIKE minds case.
	word := `(LOWER(name) LIKE ? ESCAPE '\' OR LOWER(title) LIKE ? ESCAPE '\')`
	if s.dialect == DialectSQLite {
		word = `(name LIKE ? ESCAPE '\' OR title LIKE ? ESCAPE '\')`
	}
	if f.Search != "" {
		where = append(where, word)
		p := likeArg(f.Search)
		args = append(args, p, p)
	}
	for _, w := range f.Words {
		where = append(where, word)
		p := likeArg(w)
		args = append(args, p, p)
	}
	if f.AppMode != "" {
		where = append(where, "app_mode = ?")
		args = append(args, f.AppMode)
	}
	if f.TagID != 0 {
		where = append(where, `EXISTS (SELECT 1 FROM content_tags ct WHERE ct.content_id = content.id AND ct.tag_id = ?)`)
		args = append(args, f.TagID)
	}
	if f.Deployed {
		where = append(where, "bundle_id IS NOT NULL")
	}
	paged := f.Count > 0 || f.Start > 0
	var total int
	if paged {
		// The count of a page's total reads every matching item: its
		// query must be cheap per item.
		q, qargs := `SELECT count(*) FROM content WHERE `+strings.Join(where, " AND "), args
		if f.VisibleTo != 0 {
			// In two disjoint parts, each on an index (00027): what is open
			// to all or to logged-in users (content_access alone), and the
			// ACL content the user owns or has a permission on (from the
			// user's few ids, not a test of every row): on 10,000 items
			// (bench/scale.sh) 1.8 -> 0.4 ms on SQLite, 1.6 -> 0.6 ms on
			// PostgreSQL, where one count of the rule below read the table.
			w := strings.Join(where, " AND ")
			ids := `SELECT id FROM content WHERE owner_id = ?
				UNION SELECT content_id FROM permissions WHERE user_id = ?
				UNION SELECT p.content_id FROM permissions p JOIN group_members m ON m.group_id = p.group_id WHERE m.user_id = ?`
			in := `id IN (` + ids + `)`
			if s.dialect == DialectPostgres {
				// An array: PostgreSQL looks the ids up by key rather
				// than hash-joining every ACL item (0.8 -> 0.4 ms).
				in = `id = ANY(ARRAY(` + ids + `))`
			}
			q = `SELECT (SELECT count(*) FROM content WHERE ` + w + ` AND access_type IN ('all', 'logged_in'))
				+ (SELECT count(*) FROM content WHERE ` + w + ` AND access_type = 'acl' AND ` + in + `)`
			qargs = append(append(slices.Clone(args), args...), f.VisibleTo, f.VisibleTo, f.VisibleTo)
		}
		if err := s.queryRow(ctx, q, qargs...).Scan(&total); err != nil {
			return nil, 0, fmt.Errorf("count content: %w", mapErr(err))
		}
	}
	if f.VisibleTo != 0 {
		// The content ids of the user's permissions are read once (one
		// set, looked up per row) rather than two subqueries per row:
		// 40% less time on 10,000 items (bench/scale.sh). "<> 'acl'" (the
		// same as IN ('all', 'logged_in')) is not a term SQLite looks up
		// in content_access: a page walks the content in its order and
		// stops at its last row, rather than reading every visible item
		// through the indexes of an OR and sorting them.
		where = append(where, `(access_type <> 'acl' OR owner_id = ?
			OR id IN (SELECT content_id FROM permissions WHERE user_id = ?
				UNION SELECT p.content_id FROM permissions p JOIN group_members m ON m.group_id = p.group_id WHERE m.user_id = ?))`)
		args = append(args, f.VisibleTo, f.VisibleTo, f.VisibleTo)
	}
	w := strings.Join(where, " AND ")
	lim, largs := s.limit(f.Count, f.Start)
	order, ok := contentOrders[f.Sort]
	if !ok {
		return nil, 0, fmt.Errorf("list content: no sort order %q (id, name, title, updated, created)", f.Sort)
	}
	rows, err := s.query(ctx, `SELECT `+contentCols+` FROM content WHERE `+w+` ORDER BY `+order+lim, append(args, largs...)...)
	if err != nil {
		return nil, 0, fmt.Errorf("list content: %w", mapErr(err))
	}
	out, err := collect(rows, scanContent)
	if err != nil {
		return nil, 0, fmt.Errorf("list content: %w", err)
	}
	if !paged {
		total = len(out) // all of it: no count needed
	}
	return out, total, nil
}

// contentOrders are ContentFilter.Sort's orders; id breaks ties, so that
// pages never overlap.
var contentOrders = map[string]string{
	"":        "id",
	"id":      "id",
	"name":    "LOWER(name), id",
	"title":   "LOWER(CASE WHEN title = '' THEN name ELSE title END), id",
	"updated": "updated_at DESC, id DESC",
	"created": "created_at DESC, id DESC",
}

func (s *sqlDB) UpdateContent(ctx context.Context, c *Content) error {
	c.UpdatedAt = now()
	err := affected(s.exec(ctx, `UPDATE content SET name = ?, title = ?, description = ?, owner_id = ?, access_type = ?,
		app_mode = ?, min_processes = ?, max_processes = ?, max_conns_per_process = ?, idle_timeout = ?, init_timeout = ?,
		bundle_id = ?, r_version = ?, py_version = ?, quarto_version = ?, r_version_wanted = ?, py_version_wanted = ?,
		quarto_version_wanted = ?, run_as = ?, locked = ?, locked_message = ?, outbound_network = ?, memory_request = ?,
		memory_limit = ?, cpu_request = ?, cpu_limit = ?, connection_timeout = ?, read_timeout = ?, updated_at = ? WHERE id = ?`,
		c.Name, c.Title, c.Description, c.OwnerID, c.AccessType, c.AppMode, c.MinProcesses, c.MaxProcesses,
		c.MaxConnsPerProcess, c.IdleTimeout, c.InitTimeout, c.BundleID, c.RVersion, c.PyVersion, c.QuartoVersion,
		c.RVersionWanted, c.PyVersionWanted, c.QuartoVersionWanted, c.RunAs, c.Locked, c.LockedMessage,
		c.OutboundNetwork, c.MemoryRequest, c.MemoryLimit, c.CPURequest, c.CPULimit, c.ConnectionTimeout, c.ReadTimeout,
		tv(c.UpdatedAt), c.ID))
	if err != nil {
		return fmt.Errorf("update content %d: %w", c.ID, err)
	}
	return nil
}

func (s *sqlDB) SetContentBundle(ctx context.Context, contentID int64, bundleID *int64) error {
	if bundleID != nil {
		var owner int64
		if err := s.queryRow(ctx, `SELECT content_id FROM bundles WHERE id = ?`, *bundleID).Scan(&owner); err != nil {
			return fmt.Errorf("activate bundle %d: %w", *bundleID, mapErr(err))
		}
		if owner != contentID {
			return fmt.Errorf("activate bundle %d: it belongs to content %d, not %d: %w", *bundleID, owner, contentID, ErrNotFound)
		}
	}
	err := affected(s.exec(ctx, `UPDATE content SET bundle_id = ?, updated_at = ? WHERE id = ?`, bundleID, tv(now()), contentID))
	if err != nil {
		return fmt.Errorf("activate bundle of content %d: %w", contentID, err)
	}
	return nil
}

func (s *sqlDB) DeleteContent(ctx context.Context, id int64) error {
	if err := affected(s.exec(ctx, `DELETE FROM content WHERE id = ?`, id)); err != nil {
		return fmt.Errorf("delete content %d: %w", id, err)
	}
	return nil
}

// ---- environment

func (s *sqlDB) UpdateEnvironment(ctx context.Context, contentID int64, vars []EnvVar) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for _, v := range vars {
			if v.Value == nil {
				if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM content_env WHERE content_id = ? AND name = ?`), contentID, v.Name); err != nil {
					return err
				}
				continue
			}
			_, err := tx.ExecContext(ctx, s.q(`INSERT INTO content_env (content_id, name, value) VALUES (?, ?, ?)
				ON CONFLICT (content_id, name) DO UPDATE SET value = excluded.value`), contentID, v.Name, *v.Value)
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("update environment of content %d: %w", contentID, err)
	}
	return nil
}

func (s *sqlDB) Environment(ctx context.Context, contentID int64) (map[string]string, error) {
	rows, err := s.query(ctx, `SELECT name, value FROM content_env WHERE content_id = ?`, contentID)
	if err != nil {
		return nil, fmt.Errorf("environment of content %d: %w", contentID, mapErr(err))
	}
	defer rows.Close()
	env := map[string]string{}
	for rows.Next() {
		var n, v string
		if err := rows.Scan(&n, &v); err != nil {
			return nil, fmt.Errorf("environment of content %d: %w", contentID, err)
		}
		env[n] = v
	}
	return env, mapErr(rows.Err())
}

func (s *sqlDB) EnvironmentNames(ctx context.Context, contentID int64) ([]string, error) {
	env, err := s.Environment(ctx, contentID)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(env))
	for n := range env {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

// ---- permissions

const permCols = `id, content_id, user_id, group_id, role`

func scanPerm(r scanner) (*Permission, error) {
	var p Permission
	if err := r.Scan(&p.ID, &p.ContentID, nid{&p.UserID}, nid{&p.GroupID}, &p.Role); err != nil {
		return nil, mapErr(err)
	}
	return &p, nil
}

func (s *sqlDB) SetPermission(ctx context.Context, p *Permission) error {
	if (p.UserID == 0) == (p.GroupID == 0) {
		return fmt.Errorf("set permission on content %d: name a user or a group, not both or neither", p.ContentID)
	}
	principal := "user_id"
	if p.GroupID != 0 {
		principal = "group_id"
	}
	err := s.queryRow(ctx, `INSERT INTO permissions (content_id, user_id, group_id, role) VALUES (?, ?, ?, ?)
		ON CONFLICT (content_id, `+principal+`) DO UPDATE SET role = excluded.role RETURNING id`,
		p.ContentID, idv(p.UserID), idv(p.GroupID), p.Role).Scan(&p.ID)
	if err != nil {
		return fmt.Errorf("set permission of user %d / group %d on content %d: %w", p.UserID, p.GroupID, p.ContentID, mapErr(err))
	}
	return nil
}

func (s *sqlDB) Permissions(ctx context.Context, contentID int64) ([]Permission, error) {
	rows, err := s.query(ctx, `SELECT `+permCols+` FROM permissions WHERE content_id = ? ORDER BY id`, contentID)
	if err != nil {
		return nil, fmt.Errorf("permissions of content %d: %w", contentID, mapErr(err))
	}
	return collect(rows, scanPerm)
}

// permissionsChunk bounds the ids of one ContentPermissions query (SQLite
// allows 32766 parameters, PostgreSQL 65535).
const permissionsChunk = 500

func (s *sqlDB) ContentPermissions(ctx context.Context, contentIDs []int64) (map[int64][]Permission, error) {
	out := map[int64][]Permission{}
	for len(contentIDs) > 0 {
		n := min(len(contentIDs), permissionsChunk)
		chunk := contentIDs[:n]
		contentIDs = contentIDs[n:]
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		marks := strings.TrimSuffix(strings.Repeat("?, ", len(chunk)), ", ")
		rows, err := s.query(ctx, `SELECT `+permCols+` FROM permissions WHERE content_id IN (`+marks+`) ORDER BY id`, args...)
		if err != nil {
			return nil, fmt.Errorf("permissions of %d content items: %w", len(chunk), mapErr(err))
		}
		ps, err := collect(rows, scanPerm)
		if err != nil {
			return nil, fmt.Errorf("permissions of %d content items: %w", len(chunk), err)
		}
		for _, p := range ps {
			out[p.ContentID] = append(out[p.ContentID], p)
		}
	}
	return out, nil
}

func (s *sqlDB) Permission(ctx context.Context, id int64) (*Permission, error) {
	p, err := scanPerm(s.queryRow(ctx, `SELECT `+permCols+` FROM permissions WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("permission %d: %w", id, err)
	}
	return p, nil
}

func (s *sqlDB) DeletePermission(ctx context.Context, id int64) error {
	if err := affected(s.exec(ctx, `DELETE FROM permissions WHERE id = ?`, id)); err != nil {
		return fmt.Errorf("delete permission %d: %w", id, err)
	}
	return nil
}

// ---- bundles

const bundleCols = `id, content_id, path, size, manifest, created_at`

func scanBundle(r scanner) (*Bundle, error) {
	var b Bundle
	if err := r.Scan(&b.ID, &b.ContentID, &b.Path, &b.Size, njson{&b.Manifest}, ts{&b.CreatedAt}); err != nil {
		return nil, mapErr(err)
	}
	return &b, nil
}

func (s *sqlDB) CreateBundle(ctx context.Context, b *Bundle) error {
	if b.CreatedAt.IsZero() {
		b.CreatedAt = now()
	}
	err := s.queryRow(ctx, `INSERT INTO bundles (content_id, path, size, manifest, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id`,
		b.ContentID, b.Path, b.Size, jsonv(b.Manifest), tv(b.CreatedAt)).Scan(&b.ID)
	if err != nil {
		return fmt.Errorf("create bundle of content %d: %w", b.ContentID, mapErr(err))
	}
	return nil
}

func (s *sqlDB) Bundle(ctx context.Context, id int64) (*Bundle, error) {
	b, err := scanBundle(s.queryRow(ctx, `SELECT `+bundleCols+` FROM bundles WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("bundle %d: %w", id, err)
	}
	return b, nil
}

func (s *sqlDB) ListBundles(ctx context.Context, contentID int64) ([]Bundle, error) {
	rows, err := s.query(ctx, `SELECT `+bundleCols+` FROM bundles WHERE content_id = ? ORDER BY id DESC`, contentID)
	if err != nil {
		return nil, fmt.Errorf("bundles of content %d: %w", contentID, mapErr(err))
	}
	return collect(rows, scanBundle)
}

func (s *sqlDB) SetBundleManifest(ctx context.Context, id int64, manifest json.RawMessage) error {
	if err := affected(s.exec(ctx, `UPDATE bundles SET manifest = ? WHERE id = ?`, jsonv(manifest), id)); err != nil {
		return fmt.Errorf("set manifest of bundle %d: %w", id, err)
	}
	return nil
}

func (s *sqlDB) DeleteBundle(ctx context.Context, id int64) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE content SET bundle_id = NULL WHERE bundle_id = ?`), id); err != nil {
			return err
		}
		return affected(tx.ExecContext(ctx, s.q(`DELETE FROM bundles WHERE id = ?`), id))
	})
	if err != nil {
		return fmt.Errorf("delete bundle %d: %w", id, err)
	}
	return nil
}

// ---- tasks

const taskCols = `id, content_id, bundle_id, user_id, kind, finished, code, error, result, node, created_at, finished_at`

func scanTask(r scanner) (*Task, error) {
	var t Task
	err := r.Scan(&t.ID, nid{&t.ContentID}, nid{&t.BundleID}, nid{&t.UserID}, &t.Kind, &t.Finished, &t.Code,
		&t.Error, njson{&t.Result}, &t.Node, ts{&t.CreatedAt}, ts{&t.FinishedAt})
	if err != nil {
		return nil, mapErr(err)
	}
	return &t, nil
}

func (s *sqlDB) CreateTask(ctx context.Context, t *Task) error {
	if t.ID == "" {
		t.ID = randomHex(12)
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = now()
	}
	_, err := s.exec(ctx, `INSERT INTO tasks (id, content_id, bundle_id, user_id, kind, finished, code, error, result, node, created_at, finished_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, idv(t.ContentID), idv(t.BundleID), idv(t.UserID), t.Kind, t.Finished, t.Code, t.Error, jsonv(t.Result),
		t.Node, tv(t.CreatedAt), tv(t.FinishedAt))
	if err != nil {
		return fmt.Errorf("create task: %w", err)
	}
	return nil
}

func (s *sqlDB) Task(ctx context.Context, id string) (*Task, error) {
	t, err := scanTask(s.queryRow(ctx, `SELECT `+taskCols+` FROM tasks WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("task %s: %w", id, err)
	}
	return t, nil
}

func (s *sqlDB) ListTasks(ctx context.Context, f TaskFilter) ([]Task, error) {
	where := []string{"1 = 1"}
	var args []any
	if f.ContentID != 0 {
		where = append(where, "content_id = ?")
		args = append(args, f.ContentID)
	}
	if f.Kind != "" {
		where = append(where, "kind = ?")
		args = append(args, f.Kind)
	}
	if f.Node != "" {
		where = append(where, "node = ?")
		args = append(args, f.Node)
	}
	if f.Unfinished {
		where = append(where, "NOT finished")
	}
	lim, largs := s.limit(f.Count, 0)
	rows, err := s.query(ctx, `SELECT `+taskCols+` FROM tasks WHERE `+strings.Join(where, " AND ")+
		` ORDER BY created_at DESC, id`+lim, append(args, largs...)...)
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", mapErr(err))
	}
	return collect(rows, scanTask)
}

func (s *sqlDB) AppendTaskOutput(ctx context.Context, taskID string, lines ...string) error {
	if len(lines) == 0 {
		return nil
	}
	if s.dialect == DialectPostgres {
		// One round trip: the counter update locks the task row, so
		// concurrent appenders get distinct, gapless indexes.
		res, err := s.db.ExecContext(ctx, `WITH c AS (
				UPDATE tasks SET output_count = output_count + cardinality($2::text[]) WHERE id = $1 RETURNING output_count)
			INSERT INTO task_output (task_id, idx, line)
			SELECT $1, c.output_count - cardinality($2::text[]) + t.ord - 1, t.line
			FROM c, unnest($2::text[]) WITH ORDINALITY AS t(line, ord)`, taskID, lines)
		if err = affected(res, mapErr(err)); err != nil {
			return fmt.Errorf("append output of task %s: %w", taskID, err)
		}
		return nil
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		// The counter update locks the task row first, so concurrent
		// appenders to one task get distinct, gapless indexes.
		count, err := s.txStmt(ctx, tx, `UPDATE tasks SET output_count = output_count + ? WHERE id = ? RETURNING output_count`)
		if err != nil {
			return err
		}
		var end int
		if err := count.QueryRowContext(ctx, len(lines), taskID).Scan(&end); err != nil {
			return err
		}
		stmt, err := s.txStmt(ctx, tx, `INSERT INTO task_output (task_id, idx, line) VALUES (?, ?, ?)`)
		if err != nil {
			return err
		}
		for i, l := range lines {
			if _, err := stmt.ExecContext(ctx, taskID, end-len(lines)+i, l); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append output of task %s: %w", taskID, err)
	}
	return nil
}

func (s *sqlDB) TaskOutput(ctx context.Context, taskID string, from int) ([]TaskOutputLine, error) {
	rows, err := s.query(ctx, `SELECT idx, line FROM task_output WHERE task_id = ? AND idx >= ? ORDER BY idx`, taskID, from)
	if err != nil {
		return nil, fmt.Errorf("output of task %s: %w", taskID, mapErr(err))
	}
	return collect(rows, func(r scanner) (*TaskOutputLine, error) {
		var l TaskOutputLine
		return &l, r.Scan(&l.Index, &l.Line)
	})
}

func (s *sqlDB) FinishTask(ctx context.Context, id string, code int, errMsg string, result json.RawMessage, at time.Time) error {
	res, err := s.exec(ctx, `UPDATE tasks SET finished = TRUE, code = ?, error = ?, result = ?, finished_at = ? WHERE id = ? AND NOT finished`,
		code, errMsg, jsonv(result), tv(at), id)
	if err = affected(res, err); errors.Is(err, ErrNotFound) {
		if _, err2 := s.Task(ctx, id); err2 != nil {
			return fmt.Errorf("finish task %s: %w", id, ErrNotFound)
		}
		return fmt.Errorf("finish task %s: already finished: %w", id, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("finish task %s: %w", id, err)
	}
	return nil
}

// failTasks is FailUnfinishedTasks' statement and its arguments.
func failTasks(node, kind, errMsg string, at time.Time) (string, []any) {
	query := `UPDATE tasks SET finished = TRUE, code = 1, error = ?, finished_at = ? WHERE NOT finished`
	args := []any{errMsg, tv(at)}
	if node != "" {
		query += " AND node = ?"
		args = append(args, node)
	}
	if kind != "" {
		query += " AND kind = ?"
		args = append(args, kind)
	}
	return query, args
}

func (s *sqlDB) FailUnfinishedTasks(ctx context.Context, node, kind, errMsg string, at time.Time) (int64, error) {
	query, args := failTasks(node, kind, errMsg, at)
	res, err := s.exec(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("fail unfinished tasks: %w", err)
	}
	return res.RowsAffected()
}

// ---- renders

const renderCols = `id, content_id, bundle_id, task_id, status, output_dir, node, error, created_at, started_at, finished_at`

func scanRender(r scanner) (*Render, error) {
	var x Render
	err := r.Scan(&x.ID, &x.ContentID, &x.BundleID, &x.TaskID, &x.Status, &x.OutputDir, &x.Node, &x.Error,
		ts{&x.CreatedAt}, ts{&x.StartedAt}, ts{&x.FinishedAt})
	if err != nil {
		return nil, mapErr(err)
	}
	return &x, nil
}

func (s *sqlDB) CreateRender(ctx context.Context, r *Render) error {
	if r.Status == "" {
		r.Status = RenderQueued
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now()
	}
	err := s.queryRow(ctx, `INSERT INTO renders (content_id, bundle_id, task_id, status, output_dir, node, error, created_at, started_at, finished_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		r.ContentID, r.BundleID, r.TaskID, r.Status, r.OutputDir, r.Node, r.Error, tv(r.CreatedAt), tv(r.StartedAt), tv(r.FinishedAt)).Scan(&r.ID)
	if err != nil {
		return fmt.Errorf("create render of content %d: %w", r.ContentID, mapErr(err))
	}
	return nil
}

func (s *sqlDB) Render(ctx context.Context, id int64) (*Render, error) {
	r, err := scanRender(s.queryRow(ctx, `SELECT `+renderCols+` FROM renders WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("render %d: %w", id, err)
	}
	return r, nil
}

func (s *sqlDB) ListRenders(ctx context.Context, contentID int64, count int) ([]Render, error) {
	lim, largs := s.limit(count, 0)
	rows, err := s.query(ctx, `SELECT `+renderCols+` FROM renders WHERE content_id = ? ORDER BY id DESC`+lim, append([]any{contentID}, largs...)...)
	if err != nil {
		return nil, fmt.Errorf("renders of content %d: %w", contentID, mapErr(err))
	}
	return collect(rows, scanRender)
}

func (s *sqlDB) UpdateRender(ctx context.Context, r *Render) error {
	err := affected(s.exec(ctx, `UPDATE renders SET task_id = ?, status = ?, output_dir = ?, node = ?, error = ?, started_at = ?, finished_at = ? WHERE id = ?`,
		r.TaskID, r.Status, r.OutputDir, r.Node, r.Error, tv(r.StartedAt), tv(r.FinishedAt), r.ID))
	if err != nil {
		return fmt.Errorf("update render %d: %w", r.ID, err)
	}
	return nil
}

func (s *sqlDB) LatestRender(ctx context.Context, contentID int64, status string) (*Render, error) {
	r, err := scanRender(s.queryRow(ctx, `SELECT `+renderCols+` FROM renders WHERE content_id = ? AND status = ? ORDER BY id DESC LIMIT 1`, contentID, status))
	if err != nil {
		return nil, fmt.Errorf("latest %s render of content %d: %w", status, contentID, err)
	}
	return r, nil
}

// failRenders is FailRunningRenders' statement and its arguments.
func failRenders(node, errMsg string, at time.Time) (string, []any) {
	query := `UPDATE renders SET status = 'failed', error = ?, finished_at = ? WHERE status IN ('queued', 'running')`
	args := []any{errMsg, tv(at)}
	if node != "" {
		query += " AND node = ?"
		args = append(args, node)
	}
	return query, args
}

func (s *sqlDB) FailRunningRenders(ctx context.Context, node, errMsg string, at time.Time) (int64, error) {
	query, args := failRenders(node, errMsg, at)
	res, err := s.exec(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("fail running renders: %w", err)
	}
	return res.RowsAffected()
}

// ---- schedules

const scheduleCols = `id, content_id, cron, interval_seconds, kind, spec, start_at, email, timezone, enabled, next_run_at, last_run_at, last_node, created_at, updated_at`

func scanSchedule(r scanner) (*Schedule, error) {
	var x Schedule
	err := r.Scan(&x.ID, &x.ContentID, &x.Cron, &x.IntervalSeconds, &x.Kind, &x.Spec, ts{&x.StartAt}, &x.Email, &x.Timezone, &x.Enabled, ts{&x.NextRunAt},
		ts{&x.LastRunAt}, &x.LastNode, ts{&x.CreatedAt}, ts{&x.UpdatedAt})
	if err != nil {
		return nil, mapErr(err)
	}
	return &x, nil
}

func (s *sqlDB) CreateSchedule(ctx context.Context, x *Schedule) error {
	if x.CreatedAt.IsZero() {
		x.CreatedAt = now()
	}
	x.UpdatedAt = x.CreatedAt
	x.NextRunAt = x.NextRunAt.Truncate(time.Microsecond)
	x.StartAt = x.StartAt.Truncate(time.Microsecond)
	err := s.queryRow(ctx, `INSERT INTO schedules (content_id, cron, interval_seconds, kind, spec, start_at, email, timezone, enabled, next_run_at, last_run_at, last_node, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		x.ContentID, x.Cron, x.IntervalSeconds, x.Kind, x.Spec, tv(x.StartAt), x.Email, x.Timezone, x.Enabled, x.NextRunAt.UnixMicro(), tv(x.LastRunAt), x.LastNode,
		tv(x.CreatedAt), tv(x.UpdatedAt)).Scan(&x.ID)
	if err != nil {
		return fmt.Errorf("create schedule of content %d: %w", x.ContentID, mapErr(err))
	}
	return nil
}

func (s *sqlDB) Schedule(ctx context.Context, id int64) (*Schedule, error) {
	x, err := scanSchedule(s.queryRow(ctx, `SELECT `+scheduleCols+` FROM schedules WHERE id = ?`, id))
	if err != nil {
		return nil, fmt.Errorf("schedule %d: %w", id, err)
	}
	return x, nil
}

func (s *sqlDB) ListSchedules(ctx context.Context, contentID int64) ([]Schedule, error) {
	query, args := `SELECT `+scheduleCols+` FROM schedules`, []any{}
	if contentID != 0 {
		query += ` WHERE content_id = ?`
		args = append(args, contentID)
	}
	rows, err := s.query(ctx, query+` ORDER BY id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", mapErr(err))
	}
	return collect(rows, scanSchedule)
}

func (s *sqlDB) UpdateSchedule(ctx context.Context, x *Schedule) error {
	x.UpdatedAt = now()
	x.NextRunAt = x.NextRunAt.Truncate(time.Microsecond)
	x.StartAt = x.StartAt.Truncate(time.Microsecond)
	err := affected(s.exec(ctx, `UPDATE schedules SET cron = ?, interval_seconds = ?, kind = ?, spec = ?, start_at = ?, email = ?,
		timezone = ?, enabled = ?, next_run_at = ?, updated_at = ? WHERE id = ?`,
		x.Cron, x.IntervalSeconds, x.Kind, x.Spec, tv(x.StartAt), x.Email, x.Timezone, x.Enabled, x.NextRunAt.UnixMicro(), tv(x.UpdatedAt), x.ID))
	if err != nil {
		return fmt.Errorf("update schedule %d: %w", x.ID, err)
	}
	return nil
}

func (s *sqlDB) DeleteSchedule(ctx context.Context, id int64) error {
	if err := affected(s.exec(ctx, `DELETE FROM schedules WHERE id = ?`, id)); err != nil {
		return fmt.Errorf("delete schedule %d: %w", id, err)
	}
	return nil
}

func (s *sqlDB) DueSchedules(ctx context.Context, at time.Time) ([]Schedule, error) {
	rows, err := s.query(ctx, `SELECT `+scheduleCols+` FROM schedules WHERE enabled AND next_run_at <= ? ORDER BY next_run_at, id`, at.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("due schedules: %w", mapErr(err))
	}
	return collect(rows, scanSchedule)
}

func (s *sqlDB) ClaimSchedule(ctx context.Context, id int64, expected, next, at time.Time, node string) (bool, error) {
	if !next.After(at) {
		return false, fmt.Errorf("claim schedule %d: next run %v is not after now %v", id, next, at)
	}
	// One UPDATE with the expected value in its WHERE: PostgreSQL re-checks
	// the condition after waiting for a concurrent writer's row lock, SQLite
	// serializes writers, so exactly one claimant sees a changed row.
	res, err := s.exec(ctx, `UPDATE schedules SET next_run_at = ?, last_run_at = ?, last_node = ?, updated_at = ?
		WHERE id = ? AND enabled AND next_run_at = ?`,
		next.UnixMicro(), tv(at), node, tv(now()), id, expected.UnixMicro())
	if err != nil {
		return false, fmt.Errorf("claim schedule %d: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("claim schedule %d: %w", id, err)
	}
	return n == 1, nil
}

// ---- jobs

const jobCols = `id, key, content_id, bundle_id, tag, pid, node, log_path, exit_code, COALESCE(exit_reason, ''), started_at, ended_at`

func scanJob(r scanner) (*Job, error) {
	var j Job
	err := r.Scan(&j.ID, &j.Key, &j.ContentID, &j.BundleID, &j.Tag, &j.PID, &j.Node, &j.LogPath, &j.ExitCode,
		&j.ExitReason, ts{&j.StartedAt}, ts{&j.EndedAt})
	if err != nil {
		return nil, mapErr(err)
	}
	return &j, nil
}

func (s *sqlDB) CreateJob(ctx context.Context, j *Job) error {
	if j.Key == "" {
		j.Key = randomHex(8)
	}
	if j.StartedAt.IsZero() {
		j.StartedAt = now()
	}
	err := s.queryRow(ctx, `INSERT INTO jobs (key, content_id, bundle_id, tag, pid, node, log_path, exit_code, started_at, ended_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		j.Key, j.ContentID, j.BundleID, j.Tag, j.PID, j.Node, j.LogPath, j.ExitCode, tv(j.StartedAt), tv(j.EndedAt)).Scan(&j.ID)
	if err != nil {
		return fmt.Errorf("create job of content %d: %w", j.ContentID, mapErr(err))
	}
	return nil
}

func (s *sqlDB) Job(ctx context.Context, key string) (*Job, error) {
	j, err := scanJob(s.queryRow(ctx, `SELECT `+jobCols+` FROM jobs WHERE key = ?`, key))
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", key, err)
	}
	return j, nil
}

func (s *sqlDB) ListJobs(ctx context.Context, contentID int64, count int) ([]Job, error) {
	lim, largs := s.limit(count, 0)
	rows, err := s.query(ctx, `SELECT `+jobCols+` FROM jobs WHERE content_id = ? ORDER BY id DESC`+lim, append([]any{contentID}, largs...)...)
	if err != nil {
		return nil, fmt.Errorf("jobs of content %d: %w", contentID, mapErr(err))
	}
	return collect(rows, scanJob)
}

func (s *sqlDB) RunningJobs(ctx context.Context) ([]Job, error) {
	rows, err := s.query(ctx, `SELECT `+jobCols+` FROM jobs WHERE ended_at IS NULL ORDER BY content_id, id`)
	if err != nil {
		return nil, fmt.Errorf("running jobs: %w", mapErr(err))
	}
	return collect(rows, scanJob)
}

func (s *sqlDB) FinishJob(ctx context.Context, key string, exitCode int, reason string, at time.Time) error {
	var r *string
	if reason != "" {
		r = &reason
	}
	if err := affected(s.exec(ctx, `UPDATE jobs SET exit_code = ?, exit_reason = ?, ended_at = ? WHERE key = ?`, exitCode, r, tv(at), key)); err != nil {
		return fmt.Errorf("finish job %s: %w", key, err)
	}
	return nil
}

// ---- settings

func (s *sqlDB) Setting(ctx context.Context, name string) (string, error) {
	var v string
	if err := s.queryRow(ctx, `SELECT value FROM settings WHERE name = ?`, name).Scan(&v); err != nil {
		return "", fmt.Errorf("setting %s: %w", name, mapErr(err))
	}
	return v, nil
}

func (s *sqlDB) SetSetting(ctx context.Context, name, value string) error {
	_, err := s.exec(ctx, `INSERT INTO settings (name, value, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`, name, value, tv(now()))
	if err != nil {
		return fmt.Errorf("set setting %s: %w", name, err)
	}
	return nil
}

func (s *sqlDB) SetSettingIfAbsent(ctx context.Context, name, value string) (string, error) {
	_, err := s.exec(ctx, `INSERT INTO settings (name, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`, name, value, tv(now()))
	if err != nil {
		return "", fmt.Errorf("set setting %s: %w", name, err)
	}
	return s.Setting(ctx, name)
}

// ---- misc

func (s *sqlDB) DatabaseVersion(ctx context.Context) (int64, error) {
	return readVersion(ctx, s.db, s.dialect)
}

func (s *sqlDB) Dialect() string { return s.dialect }

func (s *sqlDB) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

func (s *sqlDB) Close() error {
	s.stmts.Range(func(k, v any) bool {
		v.(*sql.Stmt).Close()
		s.stmts.Delete(k)
		return true
	})
	return s.db.Close()
}
