package license

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// Errors of the lease store; the HTTP layer maps them to status codes.
var (
	// ErrFull: every seat is held by an unexpired lease.
	ErrFull = errors.New("all seats are taken")
	// ErrNotFound: no such lease, or it has expired (a lease past its
	// expiry is gone even before the sweeper deletes it).
	ErrNotFound = errors.New("no such lease (unknown, released or expired)")
)

// Lease is one seat held by a dais server.
type Lease struct {
	ID string `json:"id"`
	// Node names the holder (the dais server's host name).
	Node string `json:"node"`
	// Instance is the holder's random per-process token: a retried acquire
	// from the same process gets its lease back instead of a second seat.
	Instance  string    `json:"instance,omitempty"`
	GrantedAt time.Time `json:"granted_at"`
	RenewedAt time.Time `json:"renewed_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Event is one entry of the lease log that GET /status shows. Renewals
// are not events (they would crowd out the rest): a lease's renewed_at
// shows the last one, and the server's log has them all.
type Event struct {
	Seq     int64     `json:"seq"`
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"` // grant, release, expire
	LeaseID string    `json:"lease_id"`
	Node    string    `json:"node"`
}

// Event kinds.
const (
	EventGrant   = "grant"
	EventRelease = "release"
	EventExpire  = "expire"
)

// keepEvents bounds the event log kept in the database.
const keepEvents = 1000

// Store keeps leases and their log in a small SQLite file, so that a
// restarted license server still knows who holds a seat. One process uses
// it: a mutex serializes the read-check-write of acquire.
type Store struct {
	db *sql.DB
	mu sync.Mutex
}

const schema = `
CREATE TABLE IF NOT EXISTS leases (
	id         TEXT PRIMARY KEY,
	node       TEXT NOT NULL,
	instance   TEXT NOT NULL DEFAULT '',
	granted_at INTEGER NOT NULL, -- unix milliseconds
	renewed_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
	seq      INTEGER PRIMARY KEY AUTOINCREMENT,
	at       INTEGER NOT NULL,
	kind     TEXT NOT NULL,
	lease_id TEXT NOT NULL,
	node     TEXT NOT NULL
);`

// OpenStore opens (creating it and its directory if needed) the lease
// database at path.
func OpenStore(ctx context.Context, path string) (*Store, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("create the lease database directory: %w", err)
		}
	}
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open lease database %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("open lease database %s: %w (is it a dais lease database, and writable?)", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func ms(t time.Time) int64     { return t.UnixMilli() }
func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }
func newID() string            { b := make([]byte, 16); rand.Read(b); return hex.EncodeToString(b) }
func rollback(tx *sql.Tx)      { _ = tx.Rollback() }
func addEvent(ctx context.Context, tx *sql.Tx, at time.Time, kind string, l Lease) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO events(at, kind, lease_id, node) VALUES(?, ?, ?, ?)`, ms(at), kind, l.ID, l.Node)
	return err
}

// expireLocked deletes the leases expired at now, logs them as events and
// returns them.
func (s *Store) expireLocked(ctx context.Context, tx *sql.Tx, now time.Time) ([]Lease, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, node, instance, granted_at, renewed_at, expires_at FROM leases WHERE expires_at <= ?`, ms(now))
	if err != nil {
		return nil, err
	}
	gone, err := scanLeases(rows)
	if err != nil {
		return nil, err
	}
	for _, l := range gone {
		if _, err := tx.ExecContext(ctx, `DELETE FROM leases WHERE id = ?`, l.ID); err != nil {
			return nil, err
		}
		// The event is dated when the lease ran out, not when it was noticed.
		if err := addEvent(ctx, tx, l.ExpiresAt, EventExpire, l); err != nil {
			return nil, err
		}
	}
	return gone, nil
}

func scanLeases(rows *sql.Rows) ([]Lease, error) {
	defer rows.Close()
	var out []Lease
	for rows.Next() {
		var l Lease
		var g, r, e int64
		if err := rows.Scan(&l.ID, &l.Node, &l.Instance, &g, &r, &e); err != nil {
			return nil, err
		}
		l.GrantedAt, l.RenewedAt, l.ExpiresAt = fromMS(g), fromMS(r), fromMS(e)
		out = append(out, l)
	}
	return out, rows.Err()
}

// Acquire grants a lease to node for ttl if fewer than seats leases are
// held (expired ones are freed first, and returned as expired). A lease
// already held by the same instance is renewed and returned instead
// (renewed = true), so a retried request does not take a second seat. When
// full it returns ErrFull and the leases held.
func (s *Store) Acquire(ctx context.Context, node, instance string, seats int, ttl time.Duration, now time.Time) (l Lease, renewed bool, expired, held []Lease, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Lease{}, false, nil, nil, err
	}
	defer rollback(tx)
	if expired, err = s.expireLocked(ctx, tx, now); err != nil {
		return Lease{}, false, nil, nil, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, node, instance, granted_at, renewed_at, expires_at FROM leases ORDER BY expires_at`)
	if err != nil {
		return Lease{}, false, nil, nil, err
	}
	if held, err = scanLeases(rows); err != nil {
		return Lease{}, false, nil, nil, err
	}
	for _, h := range held {
		if instance != "" && h.Instance == instance && h.Node == node {
			h.RenewedAt, h.ExpiresAt = now.UTC(), now.Add(ttl).UTC()
			if _, err := tx.ExecContext(ctx, `UPDATE leases SET renewed_at = ?, expires_at = ? WHERE id = ?`, ms(h.RenewedAt), ms(h.ExpiresAt), h.ID); err != nil {
				return Lease{}, false, nil, nil, err
			}
			return h, true, expired, held, tx.Commit()
		}
	}
	if len(held) >= seats {
		// Commit the expiries even though nothing is granted.
		if err := tx.Commit(); err != nil {
			return Lease{}, false, nil, nil, err
		}
		return Lease{}, false, expired, held, ErrFull
	}
	l = Lease{ID: newID(), Node: node, Instance: instance, GrantedAt: now.UTC(), RenewedAt: now.UTC(), ExpiresAt: now.Add(ttl).UTC()}
	if _, err := tx.ExecContext(ctx, `INSERT INTO leases(id, node, instance, granted_at, renewed_at, expires_at) VALUES(?, ?, ?, ?, ?, ?)`,
		l.ID, l.Node, l.Instance, ms(l.GrantedAt), ms(l.RenewedAt), ms(l.ExpiresAt)); err != nil {
		return Lease{}, false, nil, nil, err
	}
	if err := addEvent(ctx, tx, now, EventGrant, l); err != nil {
		return Lease{}, false, nil, nil, err
	}
	if err := s.trimEvents(ctx, tx); err != nil {
		return Lease{}, false, nil, nil, err
	}
	return l, false, expired, append(held, l), tx.Commit()
}

// Renew extends lease id to now+ttl; ErrNotFound when it is unknown or
// has expired (then it is freed).
func (s *Store) Renew(ctx context.Context, id string, ttl time.Duration, now time.Time) (Lease, []Lease, error) {
	return s.onLease(ctx, id, now, func(tx *sql.Tx, l *Lease) error {
		l.RenewedAt, l.ExpiresAt = now.UTC(), now.Add(ttl).UTC()
		_, err := tx.ExecContext(ctx, `UPDATE leases SET renewed_at = ?, expires_at = ? WHERE id = ?`, ms(l.RenewedAt), ms(l.ExpiresAt), id)
		return err
	})
}

// Release frees lease id; ErrNotFound when it is unknown or had expired.
func (s *Store) Release(ctx context.Context, id string, now time.Time) (Lease, []Lease, error) {
	return s.onLease(ctx, id, now, func(tx *sql.Tx, l *Lease) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM leases WHERE id = ?`, id); err != nil {
			return err
		}
		return addEvent(ctx, tx, now, EventRelease, *l)
	})
}

// onLease runs change on lease id in one transaction, after freeing the
// leases expired at now (returned either way, so they are logged). An
// unknown or expired id commits the expiries and returns ErrNotFound.
func (s *Store) onLease(ctx context.Context, id string, now time.Time, change func(*sql.Tx, *Lease) error) (Lease, []Lease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Lease{}, nil, err
	}
	defer rollback(tx)
	expired, err := s.expireLocked(ctx, tx, now)
	if err != nil {
		return Lease{}, nil, err
	}
	l, err := getLease(ctx, tx, id)
	if err != nil {
		if cerr := tx.Commit(); cerr != nil {
			return Lease{}, nil, cerr
		}
		return Lease{}, expired, err
	}
	if err := change(tx, &l); err != nil {
		return Lease{}, nil, err
	}
	return l, expired, tx.Commit()
}

// Sweep frees the leases expired at now and returns them.
func (s *Store) Sweep(ctx context.Context, now time.Time) ([]Lease, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer rollback(tx)
	expired, err := s.expireLocked(ctx, tx, now)
	if err != nil {
		return nil, err
	}
	if len(expired) == 0 {
		return nil, nil
	}
	return expired, tx.Commit()
}

// Leases lists the unexpired leases at now, the earliest to expire first.
func (s *Store) Leases(ctx context.Context, now time.Time) ([]Lease, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, node, instance, granted_at, renewed_at, expires_at FROM leases WHERE expires_at > ? ORDER BY expires_at`, ms(now))
	if err != nil {
		return nil, err
	}
	return scanLeases(rows)
}

// Events returns the last n events, oldest first.
func (s *Store) Events(ctx context.Context, n int) ([]Event, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT seq, at, kind, lease_id, node FROM (SELECT * FROM events ORDER BY seq DESC LIMIT ?) ORDER BY seq`, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Event{}
	for rows.Next() {
		var e Event
		var at int64
		if err := rows.Scan(&e.Seq, &at, &e.Kind, &e.LeaseID, &e.Node); err != nil {
			return nil, err
		}
		e.At = fromMS(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

func (s *Store) trimEvents(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM events WHERE seq <= (SELECT MAX(seq) FROM events) - ?`, keepEvents)
	return err
}

func getLease(ctx context.Context, tx *sql.Tx, id string) (Lease, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, node, instance, granted_at, renewed_at, expires_at FROM leases WHERE id = ?`, id)
	if err != nil {
		return Lease{}, err
	}
	ls, err := scanLeases(rows)
	if err != nil {
		return Lease{}, err
	}
	if len(ls) == 0 {
		return Lease{}, ErrNotFound
	}
	return ls[0], nil
}
