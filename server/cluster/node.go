// Package cluster makes several dais servers on one PostgreSQL (and one
// shared data directory) into nodes of one cluster: each node registers
// itself, heartbeats by the database's clock, and drains before it stops;
// one surviving node at a time, chosen by a PostgreSQL advisory lock,
// fails the work of a node that stopped heartbeating. With SQLite there is
// one server and no cluster.
package cluster

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/store"
)

// Environment variables that name a node and say where it is reached.
const (
	EnvNodeName    = "DAIS_NODE_NAME"
	EnvNodeAddress = "DAIS_NODE_ADDRESS"
)

// Log attribute keys.
const (
	logKeyErr     = "err"
	logKeyNode    = "node"
	logKeyAddress = "address"
	logKeyKeys    = "keys"
)

// ErrNameTaken is returned by Register when a live node has the name.
var ErrNameTaken = errors.New("node name taken")

// MustMatch are the settings every node of a cluster must agree on: the
// data they share, how they reach and sandbox content, how they decide
// another node is dead. A node whose values differ is logged loudly at
// its start (see docs/ha.md).
var MustMatch = []string{
	"Server.DataDir", "Server.Address", "Database.Provider", "Authentication.Provider",
	"Licensing.LicenseType", "Applications.RunAs", "Applications.BundleMaxSize", "Applications.BundleMaxFiles",
	"Sandbox.Mode", "R.Executable", "Python.Executable", "Quarto.Executable",
	"Cluster.HeartbeatInterval", "Cluster.DeadAfter",
}

// SettingDigests returns a digest of each MustMatch setting of c (never
// the value: a digest of a path or URL says nothing useful to a reader of
// the database) and one over all of them.
func SettingDigests(c *config.Config) (map[string]string, string) {
	out := make(map[string]string, len(MustMatch))
	all := sha256.New()
	for _, k := range MustMatch {
		section, name, _ := strings.Cut(k, ".")
		v := reflect.ValueOf(c).Elem().FieldByName(section).FieldByName(name)
		text := fmt.Sprintf("%v", v.Interface())
		sum := sha256.Sum256([]byte(k + "=" + text))
		out[k] = hex.EncodeToString(sum[:8])
		fmt.Fprintf(all, "%s=%s\n", k, out[k])
	}
	return out, hex.EncodeToString(all.Sum(nil)[:8])
}

// NodeName is DAIS_NODE_NAME from environ, else the hostname.
func NodeName(environ []string) string {
	for i := len(environ) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(environ[i], "="); ok && k == EnvNodeName && v != "" {
			return v
		}
	}
	h, _ := os.Hostname()
	return h
}

// Address is where other nodes reach this one: DAIS_NODE_ADDRESS from
// environ, else the listener's host (the node's name when it listens on
// every interface) and port.
func Address(environ []string, name string, listener net.Addr) string {
	for i := len(environ) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(environ[i], "="); ok && k == EnvNodeAddress && v != "" {
			return v
		}
	}
	host, port, err := net.SplitHostPort(listener.String())
	if err != nil {
		return listener.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = name
	}
	return net.JoinHostPort(host, port)
}

// Options configure a Node.
type Options struct {
	Store   store.Store
	Config  *config.Config // at start: Cluster.* and the MustMatch settings
	Name    string
	Address string
	Version string
	Logger  *slog.Logger
	// SetUnavailable tells the web server why /__ping__ and /__ready__
	// answer 503; "" lets them answer as usual.
	SetUnavailable func(reason string)
}

// Node is this server as a node of the cluster.
type Node struct {
	o        Options
	log      *slog.Logger
	me       store.Node
	interval time.Duration
	dead     time.Duration

	mu       sync.Mutex
	draining bool
	dbDown   bool // the last heartbeat failed

	cancel context.CancelFunc
	wg     sync.WaitGroup

	supersededOnce sync.Once
	superseded     chan struct{} // closed when a newer, incompatible schema arrived
	supersededBy   string        // the line saying so
	newerNoted     bool          // an additive newer schema was logged
	newerSeen      time.Time     // when a newer schema that is not additive was first seen
}

// New makes the node; Register puts it in the database.
func New(o Options) *Node {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.SetUnavailable == nil {
		o.SetUnavailable = func(string) {}
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	settings, digest := SettingDigests(o.Config)
	return &Node{
		o:   o,
		log: o.Logger,
		me: store.Node{Name: o.Name, InstanceID: hex.EncodeToString(b), Address: o.Address, Version: o.Version,
			Schema: store.SchemaVersion(), ConfigDigest: digest, Settings: settings},
		interval:   o.Config.Cluster.HeartbeatInterval.Std(),
		dead:       o.Config.Cluster.DeadAfter.Std(),
		superseded: make(chan struct{}),
	}
}

// Name is the node's name.
func (n *Node) Name() string { return n.me.Name }

// Register records the node. A live node of the same name refuses it
// (ErrNameTaken): a registered node whose heartbeat is recent is watched
// for two heartbeats, so that a node restarted moments after a kill can
// take its own name back at once instead of waiting Cluster.DeadAfter.
// Settings and versions that differ from the other live nodes' are logged
// as errors.
func (n *Node) Register(ctx context.Context) error {
	holder, err := n.o.Store.RegisterNode(ctx, &n.me, "", n.dead)
	if errors.Is(err, store.ErrConflict) {
		watch := 2*n.interval + time.Second
		n.log.Warn("a node of this name has a recent heartbeat; watching whether it is alive", logKeyNode, n.me.Name,
			logKeyAddress, holder.Address, "heartbeat_age", holder.Age.Round(time.Millisecond).String(), "watch", watch.String())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(watch):
		}
		nodes, lerr := n.o.Store.ListNodes(ctx)
		if lerr != nil {
			return fmt.Errorf("register node %s: %w", n.me.Name, lerr)
		}
		for _, x := range nodes {
			if x.Name == n.me.Name && (x.InstanceID != holder.InstanceID || !x.HeartbeatAt.Equal(holder.HeartbeatAt)) {
				return fmt.Errorf("%w: another live node is named %q (address %s, version %s, last heartbeat %v ago): "+
					"give each node its own name with %s (Kubernetes and compose hostnames are unique)",
					ErrNameTaken, x.Name, x.Address, x.Version, x.Age.Round(time.Millisecond), EnvNodeName)
			}
		}
		n.log.Warn("the earlier node of this name stopped heartbeating: taking its name over", logKeyNode, n.me.Name)
		holder, err = n.o.Store.RegisterNode(ctx, &n.me, holder.InstanceID, n.dead)
		if errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("%w: another node took the name %q while this one started (address %s): give each node its own name with %s",
				ErrNameTaken, n.me.Name, holder.Address, EnvNodeName)
		}
	}
	if err != nil {
		return err
	}
	// What an earlier run of this node left recorded as running is gone.
	if k, err := n.o.Store.FinishNodeJobs(ctx, n.me.Name, time.Now()); err != nil {
		n.log.Warn("forget the processes of an earlier run of this node", logKeyErr, err)
	} else if k > 0 {
		n.log.Info("forgot processes an earlier run of this node left recorded", "count", k)
	}
	n.log.Info("node registered", logKeyNode, n.me.Name, logKeyAddress, n.me.Address, "schema_version", n.me.Schema,
		"config_digest", n.me.ConfigDigest, "heartbeat", n.interval.String(), "dead_after", n.dead.String())
	n.compare(ctx)
	return nil
}

// compare logs, loudly, how the other live nodes differ from this one.
func (n *Node) compare(ctx context.Context) {
	nodes, err := n.o.Store.ListNodes(ctx)
	if err != nil {
		n.log.Warn("list the other nodes", logKeyErr, err)
		return
	}
	for _, x := range nodes {
		if x.Name == n.me.Name || x.Age > n.dead {
			continue
		}
		if x.Version != n.me.Version || x.Schema != n.me.Schema {
			n.log.Error("CLUSTER MISMATCH: another node runs another dais version; every node must run the same one",
				logKeyNode, x.Name, "its_version", x.Version, "its_schema", x.Schema, "my_version", n.me.Version, "my_schema", n.me.Schema)
		}
		if x.ConfigDigest == n.me.ConfigDigest {
			continue
		}
		var keys []string
		for _, k := range MustMatch {
			if x.Settings[k] != n.me.Settings[k] {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		n.log.Error("CLUSTER MISMATCH: settings that every node must share differ from another node's; make them equal (docs/ha.md)",
			logKeyNode, x.Name, logKeyKeys, strings.Join(keys, ", "))
	}
}

// Start heartbeats every Cluster.HeartbeatInterval until Stop, and after
// each heartbeat reaps dead nodes when it gets the reaper lock.
func (n *Node) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.wg.Go(func() {
		t := time.NewTicker(n.interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if n.beat(ctx) {
				n.checkSchema(ctx)
				n.reapLocked(ctx)
			}
		}
	})
}

// attemptTimeout bounds one heartbeat: a database that does not answer
// within it counts as lost, and /__ping__ answers 503.
func (n *Node) attemptTimeout() time.Duration { return min(n.interval, 3*time.Second) }

// beat records one heartbeat and tells whether the database answered.
func (n *Node) beat(ctx context.Context) bool {
	n.mu.Lock()
	draining := n.draining
	n.mu.Unlock()
	actx, cancel := context.WithTimeout(ctx, n.attemptTimeout())
	defer cancel()
	err := n.o.Store.HeartbeatNode(actx, n.me.Name, n.me.InstanceID, draining)
	if errors.Is(err, store.ErrNotFound) {
		// Another node declared this one dead (its heartbeats did not
		// reach the database for Cluster.DeadAfter) and failed its work.
		n.log.Error("this node was declared dead by another node (no heartbeat for Cluster.DeadAfter): its deploys and renders were failed; registering again",
			logKeyNode, n.me.Name)
		_, err = n.o.Store.RegisterNode(actx, &n.me, n.me.InstanceID, n.dead)
		if errors.Is(err, store.ErrConflict) {
			err = fmt.Errorf("another node took the name %q meanwhile: %w", n.me.Name, err)
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		if !n.dbDown {
			n.log.Error("the database does not answer: /__ping__ answers 503 until it does", logKeyErr, err)
		}
		n.dbDown = true
		if !n.draining {
			n.o.SetUnavailable("database unreachable: " + err.Error())
		}
		return false
	}
	if n.dbDown {
		n.log.Info("the database answers again", logKeyNode, n.me.Name)
		n.dbDown = false
		if !n.draining {
			n.o.SetUnavailable("")
		}
	}
	return true
}

// Superseded is closed when a newer dais migrated the database with a
// migration this one cannot live with: the node must drain and exit with
// SupersededBy's line.
func (n *Node) Superseded() <-chan struct{} { return n.superseded }

// SupersededBy is the line to exit with once Superseded is closed.
func (n *Node) SupersededBy() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.supersededBy
}

// checkSchema compares the database's schema with this binary's: a newer
// one whose migrations are all additive is logged once; any other closes
// Superseded.
func (n *Node) checkSchema(ctx context.Context) {
	actx, cancel := context.WithTimeout(ctx, n.attemptTimeout())
	defer cancel()
	newest, ok, err := n.o.Store.SchemaCompat(actx, n.me.Schema)
	if err != nil || newest <= n.me.Schema {
		return
	}
	if ok {
		n.mu.Lock()
		noted := n.newerNoted
		n.newerNoted = true
		n.mu.Unlock()
		if !noted {
			n.log.Warn("a newer dais migrated the database with additive migrations only: this node serves on beside it; replace it with that version soon",
				"database_schema", newest, "my_schema", n.me.Schema)
		}
		return
	}
	by := ""
	if nodes, err := n.o.Store.ListNodes(actx); err == nil {
		for _, x := range nodes {
			if x.Schema >= newest {
				by = fmt.Sprintf(" (node %s runs it, dais %s)", x.Name, x.Version)
				break
			}
		}
	}
	if by == "" {
		// The newer node migrates before it registers: give it a few
		// checks to appear, so that the line can name it.
		n.mu.Lock()
		if n.newerSeen.IsZero() {
			n.newerSeen = time.Now()
		}
		wait := time.Since(n.newerSeen) < 5*time.Second
		n.mu.Unlock()
		if wait {
			return
		}
	}
	line := fmt.Sprintf("a newer dais migrated the database to schema version %d, which this dais (%s, schema version %d) cannot serve: "+
		"replace this node with the newer dais%s", newest, n.me.Version, n.me.Schema, by)
	n.supersededOnce.Do(func() {
		n.mu.Lock()
		n.supersededBy = line
		n.mu.Unlock()
		close(n.superseded)
	})
}

// reapLocked reaps dead nodes when no other node is doing it.
func (n *Node) reapLocked(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, max(n.dead, 30*time.Second))
	defer cancel()
	if _, err := n.o.Store.WithClusterLock(rctx, "reaper", n.Reap); err != nil && ctx.Err() == nil {
		n.log.Warn("reap dead nodes", logKeyErr, err)
	}
}

// Reap fails the work of every node whose last heartbeat is older than
// Cluster.DeadAfter and removes it: its deploys, renders and other tasks
// fail with a message naming it, its processes are forgotten. Its claimed
// scheduled runs are not run again: a claim moved the schedule's next run
// on when it was made (store.ClaimSchedule), so the lost run is failed
// and the schedule's next run happens once, as after a restart. Call it
// under the "reaper" cluster lock.
func (n *Node) Reap(ctx context.Context) error {
	nodes, err := n.o.Store.ListNodes(ctx)
	if err != nil {
		return err
	}
	for _, x := range nodes {
		if x.Name == n.me.Name || x.Age <= n.dead {
			continue
		}
		lost := fmt.Sprintf("node %s was lost (no heartbeat for %v, more than Cluster.DeadAfter = %v)",
			x.Name, x.Age.Round(time.Second), n.dead)
		// Its row goes in the same transaction, only that instance's and
		// only while it is still dead (a node that came back meanwhile
		// keeps it): no reader sees its work failed and it still listed.
		failed, err := n.o.Store.FailNodeWork(ctx, x.Name, x.InstanceID, n.dead, store.NodeLoss{
			Deploy: "the deploy failed: " + lost + "; deploy again",
			Render: "the render failed: " + lost + "; render again (a schedule runs at its next time)",
			Task:   "the task failed: " + lost + "; start it again",
		}, time.Now())
		if err != nil {
			return err
		}
		n.log.Warn("node declared dead: its work failed and its processes forgotten", logKeyNode, x.Name,
			logKeyAddress, x.Address, "heartbeat_age", x.Age.Round(time.Second).String(),
			"deploys_failed", failed.Deploys, "renders_failed", failed.Renders, "other_tasks_failed", failed.Tasks,
			"processes_forgotten", failed.Jobs, "removed", failed.Removed)
	}
	return nil
}

// Drain is the first step of a stop: /__ping__ and /__ready__ answer 503,
// the node's row says draining, and for delay the node goes on serving,
// so that load balancers stop sending it requests before it closes its
// listener.
func (n *Node) Drain(ctx context.Context, delay time.Duration) {
	n.mu.Lock()
	n.draining = true
	n.mu.Unlock()
	n.o.SetUnavailable("draining: this node is stopping")
	actx, cancel := context.WithTimeout(ctx, n.attemptTimeout())
	if err := n.o.Store.HeartbeatNode(actx, n.me.Name, n.me.InstanceID, true); err != nil {
		n.log.Warn("mark this node draining", logKeyErr, err)
	}
	cancel()
	if delay <= 0 {
		return
	}
	n.log.Info("draining: /__ping__ answers 503 before the listener closes", "drain_delay", delay.String())
	select {
	case <-ctx.Done():
	case <-time.After(delay):
	}
}

// Stop ends the heartbeats and removes the node's row: other nodes need
// not wait for it to be declared dead.
func (n *Node) Stop(ctx context.Context) error {
	if n.cancel != nil {
		n.cancel()
	}
	n.wg.Wait()
	if _, err := n.o.Store.DeleteNode(ctx, n.me.Name, n.me.InstanceID, 0); err != nil {
		return fmt.Errorf("remove node %s: %w", n.me.Name, err)
	}
	n.log.Info("node left the cluster", logKeyNode, n.me.Name)
	return nil
}
