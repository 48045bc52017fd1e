package deploy

import (
	"context"
	"time"

	"github.com/dais-dev/dais/server/content/runtime"
)

// What the package's external tests (deploy_test, which drive the service
// through server/api) may look at inside.

// ProcessAddr is the address of the first process serving guid.
func (s *Service) ProcessAddr(guid string) string {
	return s.proxy.Pool(guid).Stats().Processes[0].Addr
}

// Finder is the runtime finder, whose roots a test may point elsewhere.
func (s *Service) Finder() *runtime.Finder { return s.finder }

// WriteTask writes lines to task id's output as the service's own tasks
// do (waking its long polls).
func (s *Service) WriteTask(id string, lines ...string) { (&taskLog{s: s, id: id}).append(lines...) }

// FinishTask ends task id as the service's own tasks end.
func (s *Service) FinishTask(ctx context.Context, id string, code int) error {
	return s.finishTask(ctx, id, code, "", nil, time.Now())
}

// Forget stops serving guid on this node, as a failed activation at start
// leaves it: its next request activates it again.
func (s *Service) Forget(guid string) { s.deactivate(guid) }

// HoldActivations keeps every refresh from activating until release is
// called, as a slow activation of another content does.
func (s *Service) HoldActivations() (release func()) {
	s.refreshMu.Lock()
	return s.refreshMu.Unlock
}

// HoldDeploy takes content id's deploy lock, as a deploy of it under way
// on this node does, until release is called.
func (s *Service) HoldDeploy(id int64) (release func()) {
	l := s.contentLock(id)
	l.Lock()
	return l.Unlock
}
