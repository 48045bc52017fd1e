package deploy

import (
	"context"
	"time"

	"github.com/dais-dev/dais/server/store"
)

// Nodes of a cluster share the database and the data directory, but each
// serves content from its own processes and open directories. A deploy or
// a render on another node changes what a content should show (its
// active bundle, its newest rendered output) without this node knowing.
// So this node remembers what it activated for each content, and a request
// that finds the content's row saying otherwise activates it again first:
// the content answers through any node, at its newest version.

// served is what this node serves for a content.
type served struct {
	bundle  int64
	output  string    // a document's rendered output directory; "" for apps and static sites
	checked time.Time // when output was last compared with the newest render
}

// outputCheckEvery bounds how often a document's newest render is read
// from the database on its requests.
const outputCheckEvery = 2 * time.Second

// markServed records that this node now serves bundle (and output) for guid.
func (s *Service) markServed(guid string, bundle int64, output string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.served == nil {
		s.served = map[string]*served{}
	}
	s.served[guid] = &served{bundle: bundle, output: output, checked: time.Now()}
}

func (s *Service) forgetServed(guid string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.served, guid)
}

// stale tells whether c's row asks for another bundle or, for a document,
// another rendered output than this node serves.
func (s *Service) stale(ctx context.Context, c *store.Content) bool {
	s.mu.Lock()
	cur := s.served[c.GUID]
	checkOutput := cur != nil && cur.output != "" && time.Since(cur.checked) >= outputCheckEvery
	if checkOutput {
		cur.checked = time.Now()
	}
	s.mu.Unlock()
	if cur == nil || c.BundleID == nil || cur.bundle != *c.BundleID {
		return true
	}
	if !checkOutput {
		return false
	}
	r, err := s.st.LatestRender(ctx, c.ID, store.RenderSucceeded)
	return err == nil && r.OutputDir != cur.output
}

// refreshWait bounds how long a request for a content this node serves
// nothing of waits for the content's activation under way.
const refreshWait = 30 * time.Second

// refresh activates c again when it is stale, once however many requests
// find it so. When another request's refresh of c is under way, it
// returns at once with a channel closed when that one ends: a request that
// has nothing of c to serve yet waits for it (awaitRefresh) rather than
// failing; one that has an older version serves that meanwhile.
func (s *Service) refresh(ctx context.Context, c *store.Content) <-chan struct{} {
	s.mu.Lock()
	if ch := s.refreshing[c.GUID]; ch != nil {
		s.mu.Unlock()
		return ch
	}
	if s.refreshing == nil {
		s.refreshing = map[string]chan struct{}{}
	}
	ch := make(chan struct{})
	s.refreshing[c.GUID] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.refreshing, c.GUID)
		s.mu.Unlock()
		close(ch)
	}()
	s.activateStale(ctx, c)
	return nil
}

// awaitRefresh waits, within refreshWait and the request's ctx, for the
// refresh under way that refresh returned (nil: none).
func awaitRefresh(ctx context.Context, ch <-chan struct{}) {
	if ch == nil {
		return
	}
	t := time.NewTimer(refreshWait)
	defer t.Stop()
	select {
	case <-ch:
	case <-ctx.Done():
	case <-t.C:
	}
}

func (s *Service) activateStale(ctx context.Context, c *store.Content) {
	l := s.contentLock(c.ID)
	if !l.TryLock() {
		// A deploy of this content on this node holds its lock: its row
		// is about to change to what the deploy serves. If this node
		// serves nothing of the content yet (it never had a request for
		// it, or its activation at start failed), serve the active
		// bundle meanwhile; the deploy replaces it when done.
		if s.servesAny(c.GUID) {
			return
		}
		s.refreshMu.Lock()
		defer s.refreshMu.Unlock()
		if !s.mayActivate(c.GUID) {
			return
		}
		did, err := s.activateMeanwhile(ctx, c)
		s.activated(c.GUID, err)
		if err != nil {
			s.log.Warn("serve the content's active version while a deploy of it runs here", logKeyContent, c.GUID, logKeyErr, err)
		} else if did {
			s.log.Info("serving the content's active version while a deploy of it runs here", logKeyContent, c.GUID, logKeyBundle, *c.BundleID)
		}
		return
	}
	defer l.Unlock()
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	if !s.mayActivate(c.GUID) || !s.stale(ctx, c) {
		return
	}
	err := s.activate(ctx, c)
	s.activated(c.GUID, err)
	if err != nil {
		s.log.Warn("serve the content's newest version, deployed or rendered on another node", logKeyContent, c.GUID, logKeyErr, err)
		return
	}
	s.log.Info("serving the content's newest version, deployed or rendered on another node", logKeyContent, c.GUID, logKeyBundle, *c.BundleID)
}

// servesAny tells whether this node has something of guid to serve: its
// files or its processes, of whichever version.
func (s *Service) servesAny(guid string) bool {
	s.mu.Lock()
	f := s.files[guid]
	s.mu.Unlock()
	return f != nil || s.proxy.Pool(guid) != nil
}

// mayActivate tells whether a refresh may activate guid now: not once the
// service stops, and a content that failed to start is tried again at most
// every 10 s, not on each of its requests. Under refreshMu.
func (s *Service) mayActivate(guid string) bool {
	s.mu.Lock()
	stopped := s.stopped
	s.mu.Unlock()
	if stopped {
		return false
	}
	t, failed := s.refreshFailed[guid]
	return !failed || time.Since(t) >= 10*time.Second
}

// activated records how a refresh's activation of guid ended. Under refreshMu.
func (s *Service) activated(guid string, err error) {
	if err == nil {
		delete(s.refreshFailed, guid)
		return
	}
	if s.refreshFailed == nil {
		s.refreshFailed = map[string]time.Time{}
	}
	s.refreshFailed[guid] = time.Now()
}
