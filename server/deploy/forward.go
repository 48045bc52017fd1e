package deploy

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/dais-dev/dais/server/process"
	"github.com/dais-dev/dais/server/store"
)

// peersFor is how long the list of live nodes is reused: it is read only
// for requests naming a worker this node does not have.
const peersFor = 2 * time.Second

// peerCache holds the other live nodes as last read.
type peerCache struct {
	mu    sync.Mutex
	at    time.Time
	nodes []store.Node
}

// forwardSession sends a request of a pinned app's session to the node
// whose process holds it, and tells whether it did. A request naming a
// worker (_w_<id>/, see process.Proxy) that no process of this node has,
// whose id names another live node, goes there; a request another node
// forwarded is served here whatever it names (no loops), and so is one
// naming a node that is gone (the proxy gives it a process of its own).
// Access was checked here; the other node checks it again.
func (s *Service) forwardSession(w http.ResponseWriter, r *http.Request, c *store.Content, prefix string) bool {
	guid := c.GUID
	if r.Header.Get(process.ForwardedByHeader) != "" {
		return false
	}
	id, held := s.proxy.PinnedWorker(guid, strings.TrimPrefix(r.URL.Path, prefix))
	tag := process.WorkerNode(id)
	if id == "" || held || tag == "" || tag == process.NodeTag(s.o.Node) {
		return false
	}
	for _, n := range s.livePeers(r.Context()) {
		if process.NodeTag(n.Name) == tag && n.Address != "" {
			// Unreachable: served here, as a forwarded request (r is the
			// one built for the other node, marked so).
			s.proxy.Forward(w, r, n.Address, s.o.Node, func(w http.ResponseWriter, r *http.Request) {
				s.Serve(w, r, c, prefix)
			})
			return true
		}
	}
	return false
}

// livePeers returns the other nodes whose heartbeat is younger than
// Cluster.DeadAfter (draining ones too: their sessions go on until they
// stop), read at most every peersFor.
func (s *Service) livePeers(ctx context.Context) []store.Node {
	pc := &s.peers
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if time.Since(pc.at) < peersFor {
		return pc.nodes
	}
	nodes, err := s.st.ListNodes(ctx)
	if err != nil {
		s.log.Warn("read the cluster's nodes to forward a session's request", logKeyErr, err)
		return pc.nodes
	}
	dead := s.o.Config().Cluster.DeadAfter.Std()
	pc.nodes = pc.nodes[:0]
	for _, n := range nodes {
		if n.Name != s.o.Node && n.Age < dead {
			pc.nodes = append(pc.nodes, n)
		}
	}
	pc.at = time.Now()
	return pc.nodes
}
