package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/dais-dev/dais/server/store"
)

// Log attribute keys.
const (
	logKeyErr      = "err"
	logKeySchedule = "schedule"
	logKeyContent  = "content"
	logKeyTask     = "task"
)

// DefaultPoll is how often the Scheduler looks for due schedules.
const DefaultPoll = 10 * time.Second

// RenderFunc starts a render of the content's active bundle in the
// background and returns its task id.
type RenderFunc func(ctx context.Context, contentID int64) (taskID string, err error)

// Options configure a Scheduler.
type Options struct {
	Store store.Store
	// Node names this server (the hostname), recorded on claimed runs.
	Node   string
	Logger *slog.Logger
	// Render starts one render; required.
	Render RenderFunc
	// Poll is how often due schedules are looked for; 0: DefaultPoll.
	Poll time.Duration
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// Capacity, when set, is how many renders this server would start at
	// once now: it claims no more due runs than that in a pass, so that
	// with several servers the others take the rest (one server claimed
	// all 50 due runs and queued them while the other stood idle). Wake
	// the scheduler when capacity frees up.
	Capacity func() int
}

// Scheduler claims due schedules and starts their renders.
type Scheduler struct {
	o      Options
	log    *slog.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup
	wake   chan struct{}
}

// Now is the scheduler's clock (Options.Now).
func (s *Scheduler) Now() time.Time { return s.o.Now() }

// New makes a Scheduler.
func New(o Options) (*Scheduler, error) {
	if o.Store == nil || o.Render == nil {
		return nil, errors.New("schedule: Options.Store and Options.Render are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Scheduler{o: o, log: o.Logger, wake: make(chan struct{}, 1)}, nil
}

// Name is the component's name.
func (s *Scheduler) Name() string { return "scheduler" }

// Start runs the schedules that came due while the server was down (once
// each), then keeps looking every Poll until Stop.
func (s *Scheduler) Start(ctx context.Context) error {
	if _, err := s.RunDue(ctx); err != nil {
		// A database hiccup must not keep the server down: the loop retries.
		s.log.Warn("run due schedules at start", logKeyErr, err)
	}
	lctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Go(func() { s.loop(lctx) })
	return nil
}

// Stop ends the loop; renders already started belong to the render side,
// which lets them finish.
func (s *Scheduler) Stop(context.Context) error {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	return nil
}

// Wake makes the loop look for due schedules now (after a schedule changed).
func (s *Scheduler) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Scheduler) loop(ctx context.Context) {
	t := time.NewTicker(s.o.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
		if _, err := s.RunDue(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("run due schedules", logKeyErr, err)
		}
	}
}

// RunDue claims the due schedules (as many as Capacity allows) and starts
// their renders; it returns how many runs this server claimed. A run another server claimed first is
// skipped.
func (s *Scheduler) RunDue(ctx context.Context) (int, error) {
	now := s.o.Now().UTC()
	due, err := s.o.Store.DueSchedules(ctx, now)
	if err != nil {
		return 0, fmt.Errorf("list due schedules: %w", err)
	}
	claimed := 0
	room := len(due)
	if s.o.Capacity != nil {
		room = min(room, s.o.Capacity())
	}
	var errs []error
	for i := range due {
		if claimed >= room {
			s.log.Debug("due runs left for later or another server: no free render slot", "left", len(due)-i)
			break
		}
		sc := &due[i]
		log := s.log.With(logKeySchedule, sc.ID, logKeyContent, sc.ContentID)
		nextRun, err := Next(sc, now)
		if err != nil {
			// Stored before a validation rule existed, or a time zone the
			// system no longer knows: disable it rather than fail forever.
			log.Error("schedule cannot be evaluated; disabling it (set it again through the API)", logKeyErr, err)
			sc.Enabled = false
			if uerr := s.o.Store.UpdateSchedule(ctx, sc); uerr != nil {
				errs = append(errs, fmt.Errorf("disable schedule %d: %w", sc.ID, uerr))
			}
			continue
		}
		won, err := s.o.Store.ClaimSchedule(ctx, sc.ID, sc.NextRunAt, nextRun, now, s.o.Node)
		if err != nil {
			errs = append(errs, fmt.Errorf("claim schedule %d: %w", sc.ID, err))
			continue
		}
		if !won {
			log.Debug("scheduled run claimed by another server")
			continue
		}
		claimed++
		missed := now.Sub(sc.NextRunAt).Round(time.Second)
		taskID, err := s.o.Render(ctx, sc.ContentID)
		if err != nil {
			log.Warn("scheduled render not started", logKeyErr, err)
			continue
		}
		log.Info("scheduled render started", logKeyTask, taskID, "due_since", missed.String(), "next_run", nextRun.Format(time.RFC3339))
	}
	return claimed, errors.Join(errs...)
}
