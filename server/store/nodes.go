package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// Node is one dais server of a cluster (several servers on one
// PostgreSQL). Its times come from the database's clock.
type Node struct {
	Name       string // DAIS_NODE_NAME, else the hostname; unique among live nodes
	InstanceID string // random per start: tells a restarted node from its predecessor
	Address    string // host:port other nodes and the load balancer reach it at
	Version    string // dais version
	Schema     int64  // the schema version the binary knows
	// ConfigDigest is a digest over every setting that must agree across
	// nodes; Settings one per setting ("Section.Key" -> digest), so that a
	// mismatch can be named.
	ConfigDigest string
	Settings     map[string]string
	StartedAt    time.Time
	HeartbeatAt  time.Time
	Draining     bool
	// Age is how long ago its last heartbeat was, by the database's clock
	// (read by ListNodes).
	Age time.Duration
}

// NodeStore is the part of Store that keeps the cluster's nodes and its
// locks.
type NodeStore interface {
	// RegisterNode records n, with StartedAt and HeartbeatAt the
	// database's now. When a node of that name is registered already, its
	// row is replaced only when its instance is takeOver (non-empty) or
	// its last heartbeat is older than deadAfter; otherwise the holder's
	// row is returned with an error wrapping ErrConflict.
	RegisterNode(ctx context.Context, n *Node, takeOver string, deadAfter time.Duration) (*Node, error)
	// HeartbeatNode sets the node's heartbeat to the database's now, and
	// its draining flag. ErrNotFound when the row of that name and
	// instance is gone (another node declared it dead).
	HeartbeatNode(ctx context.Context, name, instanceID string, draining bool) error
	// ListNodes returns every registered node, by name, with Age.
	ListNodes(ctx context.Context) ([]Node, error)
	// DeleteNode removes the row of name and instance, only when its last
	// heartbeat is older than olderThan (0: whatever its age); it tells
	// whether it removed one.
	DeleteNode(ctx context.Context, name, instanceID string, olderThan time.Duration) (bool, error)
	// FinishNodeJobs marks the jobs (processes) of node still recorded as
	// running ended at at, with no exit code: the node is gone, and so are
	// they. It returns how many it changed.
	FinishNodeJobs(ctx context.Context, node string, at time.Time) (int64, error)
	// FailNodeWork fails, in one transaction, everything a lost node was
	// doing: its unfinished deploy tasks with loss.Deploy, its queued and
	// running renders with loss.Render, its other unfinished tasks with
	// loss.Task, and ends its running jobs; and it removes the node's row
	// as DeleteNode(node, instanceID, olderThan) would (Removed). No reader
	// sees part of it done, nor the work failed and the node still listed.
	FailNodeWork(ctx context.Context, node, instanceID string, olderThan time.Duration, loss NodeLoss, at time.Time) (NodeWorkFailed, error)
	// WithClusterLock runs fn while holding the cluster-wide lock name (a
	// PostgreSQL advisory lock, freed when fn returns or the connection
	// dies) and returns true; when another node holds it, it returns false
	// at once without running fn. With SQLite (one server) fn always runs.
	WithClusterLock(ctx context.Context, name string, fn func(ctx context.Context) error) (bool, error)
	// SchemaCompat returns the database's schema version and whether a
	// dais of schema version mine can serve on it: every migration applied
	// above mine is noted additive by the dais that applied it.
	SchemaCompat(ctx context.Context, mine int64) (newest int64, ok bool, err error)
}

// dbNowMicros is the database's clock in microseconds since the epoch.
func (s *sqlDB) dbNowMicros() string {
	if s.dialect == DialectPostgres {
		return `(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT`
	}
	return `CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)`
}

const nodeCols = `name, instance_id, address, version, schema_version, config_digest, settings, started_at, heartbeat_at, draining`

func (s *sqlDB) scanNode(r scanner) (*Node, error) {
	var n Node
	var settings string
	var ageMicros int64
	if err := r.Scan(&n.Name, &n.InstanceID, &n.Address, &n.Version, &n.Schema, &n.ConfigDigest, &settings,
		ts{&n.StartedAt}, ts{&n.HeartbeatAt}, &n.Draining, &ageMicros); err != nil {
		return nil, err
	}
	n.Age = time.Duration(ageMicros) * time.Microsecond
	if settings != "" {
		if err := json.Unmarshal([]byte(settings), &n.Settings); err != nil {
			return nil, fmt.Errorf("node %s: settings: %w", n.Name, err)
		}
	}
	return &n, nil
}

func (s *sqlDB) RegisterNode(ctx context.Context, n *Node, takeOver string, deadAfter time.Duration) (*Node, error) {
	settings, err := json.Marshal(n.Settings)
	if err != nil {
		return nil, fmt.Errorf("register node %s: %w", n.Name, err)
	}
	if n.Settings == nil {
		settings = []byte("{}")
	}
	dbNow := s.dbNowMicros()
	res, err := s.exec(ctx, `INSERT INTO nodes (`+nodeCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, `+dbNow+`, `+dbNow+`, ?)
		ON CONFLICT (name) DO UPDATE SET instance_id = excluded.instance_id, address = excluded.address,
			version = excluded.version, schema_version = excluded.schema_version, config_digest = excluded.config_digest,
			settings = excluded.settings, started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at,
			draining = excluded.draining
		WHERE nodes.instance_id = ? OR nodes.heartbeat_at < `+dbNow+` - ?`,
		n.Name, n.InstanceID, n.Address, n.Version, n.Schema, n.ConfigDigest, string(settings), n.Draining,
		takeOver, deadAfter.Microseconds())
	if err != nil {
		return nil, fmt.Errorf("register node %s: %w", n.Name, err)
	}
	if k, err := res.RowsAffected(); err != nil {
		return nil, fmt.Errorf("register node %s: %w", n.Name, err)
	} else if k == 0 {
		holder, err := s.node(ctx, n.Name)
		if err != nil {
			return nil, fmt.Errorf("register node %s: %w", n.Name, err)
		}
		return holder, fmt.Errorf("register node %s: a live node holds the name: %w", n.Name, ErrConflict)
	}
	got, err := s.node(ctx, n.Name)
	if err != nil {
		return nil, fmt.Errorf("register node %s: %w", n.Name, err)
	}
	n.StartedAt, n.HeartbeatAt, n.Age = got.StartedAt, got.HeartbeatAt, got.Age
	return nil, nil
}

func (s *sqlDB) node(ctx context.Context, name string) (*Node, error) {
	n, err := s.scanNode(s.queryRow(ctx, `SELECT `+nodeCols+`, `+s.dbNowMicros()+` - heartbeat_at FROM nodes WHERE name = ?`, name))
	if err != nil {
		return nil, mapErr(err)
	}
	return n, nil
}

func (s *sqlDB) HeartbeatNode(ctx context.Context, name, instanceID string, draining bool) error {
	if err := affected(s.exec(ctx, `UPDATE nodes SET heartbeat_at = `+s.dbNowMicros()+`, draining = ? WHERE name = ? AND instance_id = ?`,
		draining, name, instanceID)); err != nil {
		return fmt.Errorf("heartbeat of node %s: %w", name, err)
	}
	return nil
}

func (s *sqlDB) ListNodes(ctx context.Context) ([]Node, error) {
	rows, err := s.query(ctx, `SELECT `+nodeCols+`, `+s.dbNowMicros()+` - heartbeat_at FROM nodes ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", mapErr(err))
	}
	defer rows.Close()
	var out []Node
	for rows.Next() {
		n, err := s.scanNode(rows)
		if err != nil {
			return nil, fmt.Errorf("list nodes: %w", err)
		}
		out = append(out, *n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list nodes: %w", mapErr(err))
	}
	return out, nil
}

// deleteNode is DeleteNode's statement: name, instance id, olderThan in
// microseconds.
func (s *sqlDB) deleteNode() string {
	return `DELETE FROM nodes WHERE name = ? AND instance_id = ? AND heartbeat_at <= ` + s.dbNowMicros() + ` - ?`
}

func (s *sqlDB) DeleteNode(ctx context.Context, name, instanceID string, olderThan time.Duration) (bool, error) {
	res, err := s.exec(ctx, s.deleteNode(), name, instanceID, olderThan.Microseconds())
	if err != nil {
		return false, fmt.Errorf("delete node %s: %w", name, err)
	}
	k, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("delete node %s: %w", name, err)
	}
	return k > 0, nil
}

// NodeLoss is the error each kind of a lost node's work fails with.
type NodeLoss struct{ Deploy, Render, Task string }

// NodeWorkFailed counts what FailNodeWork changed; Removed: it removed
// the node's row.
type NodeWorkFailed struct {
	Deploys, Renders, Tasks, Jobs int64
	Removed                       bool
}

func (s *sqlDB) FailNodeWork(ctx context.Context, node, instanceID string, olderThan time.Duration, loss NodeLoss, at time.Time) (NodeWorkFailed, error) {
	var got NodeWorkFailed
	var removed int64
	if node == "" {
		return got, fmt.Errorf("fail the work of a node: no node named")
	}
	deployQ, deployArgs := failTasks(node, TaskDeploy, loss.Deploy, at)
	renderQ, renderArgs := failRenders(node, loss.Render, at)
	taskQ, taskArgs := failTasks(node, "", loss.Task, at)
	steps := []struct {
		query string
		args  []any
		n     *int64
	}{
		{deployQ, deployArgs, &got.Deploys},
		{renderQ, renderArgs, &got.Renders},
		{taskQ, taskArgs, &got.Tasks},
		{finishJobs, []any{tv(at), node}, &got.Jobs},
		{s.deleteNode(), []any{node, instanceID, olderThan.Microseconds()}, &removed},
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for _, st := range steps {
			res, err := tx.ExecContext(ctx, s.q(st.query), st.args...)
			if err != nil {
				return err
			}
			if *st.n, err = res.RowsAffected(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return NodeWorkFailed{}, fmt.Errorf("fail the work of node %s: %w", node, err)
	}
	got.Removed = removed > 0
	return got, nil
}

// finishJobs ends a node's running jobs (FinishNodeJobs): ended_at, node.
const finishJobs = `UPDATE jobs SET ended_at = ? WHERE node = ? AND ended_at IS NULL`

func (s *sqlDB) FinishNodeJobs(ctx context.Context, node string, at time.Time) (int64, error) {
	res, err := s.exec(ctx, finishJobs, tv(at), node)
	if err != nil {
		return 0, fmt.Errorf("finish the jobs of node %s: %w", node, err)
	}
	k, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("finish the jobs of node %s: %w", node, err)
	}
	return k, nil
}

func (s *sqlDB) WithClusterLock(ctx context.Context, name string, fn func(ctx context.Context) error) (bool, error) {
	if s.dialect != DialectPostgres {
		return true, fn(ctx)
	}
	// A transaction-level advisory lock: freed at commit or rollback, and
	// by PostgreSQL when the connection dies with its node. The key is
	// per schema, like the migrations' lock.
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("cluster lock %s: %w", name, mapErr(err))
	}
	defer func() { _ = tx.Rollback() }()
	var got bool
	if err := tx.QueryRowContext(ctx, `SELECT pg_try_advisory_xact_lock(('x' || md5(COALESCE(current_schema(), '') || ':' || $1))::bit(64)::bigint)`,
		"dais-cluster:"+name).Scan(&got); err != nil {
		return false, fmt.Errorf("cluster lock %s: %w", name, mapErr(err))
	}
	if !got {
		return false, nil
	}
	ferr := fn(ctx)
	if err := tx.Commit(); err != nil && ferr == nil {
		return true, fmt.Errorf("cluster lock %s: release: %w", name, mapErr(err))
	}
	return true, ferr
}

func (s *sqlDB) SchemaCompat(ctx context.Context, mine int64) (int64, bool, error) {
	return schemaCompat(ctx, s.db, s.dialect, mine)
}
