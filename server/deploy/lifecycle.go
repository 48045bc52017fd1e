package deploy

// What the lifecycle side (server/schedule, the start-up component in
// server/serve) needs from the deploy service: scheduled renders and
// waiting for MinProcesses at start.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dais-dev/dais/server/store"
)

// StartRender renders the active bundle of a document again, as a render
// task started by the server itself (a schedule), and returns the task id.
// RenderCapacity is how many more renders this node would start at once
// (its free render slots less the renders waiting): what its scheduler
// claims, leaving the rest of the due runs to other nodes.
func (s *Service) RenderCapacity() int { return s.renders.Free() }

// OnRenderSlotFree sets f, called each time a render of this node ends.
func (s *Service) OnRenderSlotFree(f func()) { s.renders.OnRelease(f) }

func (s *Service) StartRender(ctx context.Context, contentID int64) (string, error) {
	c, err := s.st.Content(ctx, contentID)
	if err != nil {
		return "", fmt.Errorf("read content %d: %w", contentID, err)
	}
	t, err := s.startRender(ctx, c, &store.User{})
	if err != nil {
		return "", err
	}
	return t.ID, nil
}

// WaitMinProcesses waits until every app or API with MinProcesses > 0
// (its own, else [Scheduler] MinProcesses) has that many processes ready,
// within ctx. Called at start, before the server reports ready.
func (s *Service) WaitMinProcesses(ctx context.Context) error {
	all, _, err := s.st.ListContent(ctx, store.ContentFilter{Deployed: true})
	if err != nil {
		return fmt.Errorf("list content: %w", err)
	}
	def := s.o.Config().Scheduler.MinProcesses
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, c := range all {
		if deref(c.MinProcesses, def) <= 0 {
			continue
		}
		pool := s.proxy.Pool(c.GUID)
		if pool == nil {
			continue
		}
		wg.Go(func() {
			if err := pool.WaitReady(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("content %s (%s): %w", c.Name, c.GUID, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// MinProcesses is the start-up step that waits for the apps with
// MinProcesses > 0 to have their processes ready before the server reports
// ready (a serve.Component placed after the Service). An app that does not
// get ready within [Scheduler] InitTimeout (+10s) is logged, not fatal:
// one broken content must not keep the server down.
func (s *Service) MinProcesses() *MinProcessesStep { return &MinProcessesStep{s: s} }

// MinProcessesStep: see Service.MinProcesses.
type MinProcessesStep struct{ s *Service }

// Name is the component's name.
func (m *MinProcessesStep) Name() string { return "min-processes" }

// Start waits, bounded.
func (m *MinProcessesStep) Start(ctx context.Context) error {
	bound := m.s.o.Config().Scheduler.InitTimeout.Std() + 10*time.Second
	wctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	begin := time.Now()
	if err := m.s.WaitMinProcesses(wctx); err != nil {
		m.s.log.Error("apps with MinProcesses did not get ready at start; they keep retrying", logKeyErr, err)
		return nil
	}
	m.s.log.Debug("apps with MinProcesses ready", "elapsed", time.Since(begin).Round(time.Millisecond).String())
	return nil
}

// Stop does nothing: the Service stops the processes.
func (m *MinProcessesStep) Stop(context.Context) error { return nil }
