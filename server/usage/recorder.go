// Package usage records what the proxy sees of content use (a visit per
// view of a document or static content, a session per WebSocket of an
// interactive app) off the request's goroutine: events go to a buffered
// channel and one writer stores them in batches. A full buffer drops
// events (counted, logged once a minute) rather than slow a request.
package usage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dais-dev/dais/server/store"
)

// Defaults of the recorder.
const (
	DefaultBuffer   = 8192                   // events waiting to be written
	DefaultBatch    = 256                    // events a transaction at most
	DefaultInterval = 500 * time.Millisecond // longest an event waits
)

// Recorder batches usage events into the store. The zero of *Recorder
// (nil) records nothing, so a server without one serves as before.
type Recorder struct {
	st       store.UsageStore
	log      *slog.Logger
	ch       chan store.UsageEvent
	batch    int
	interval time.Duration
	dropped  atomic.Int64

	flushReq chan chan struct{}
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

// New makes a recorder; Start runs its writer.
func New(st store.UsageStore, log *slog.Logger) *Recorder {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Recorder{st: st, log: log, ch: make(chan store.UsageEvent, DefaultBuffer),
		batch: DefaultBatch, interval: DefaultInterval, flushReq: make(chan chan struct{})}
}

func (r *Recorder) Name() string { return "usage" }

// Start runs the writer until Stop.
func (r *Recorder) Start(context.Context) error {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Go(func() { r.run(ctx) })
	return nil
}

// Stop writes what is buffered (within ctx) and stops the writer.
func (r *Recorder) Stop(ctx context.Context) error {
	if r.cancel == nil {
		return nil
	}
	r.cancel()
	r.wg.Wait()
	r.drain(ctx)
	return nil
}

// Flush waits until every event sent before it is written (tests, and
// an API read that must see its own visit is not a need: reads lag by at
// most DefaultInterval).
func (r *Recorder) Flush(ctx context.Context) {
	done := make(chan struct{})
	select {
	case r.flushReq <- done:
	case <-ctx.Done():
		return
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// Dropped is how many events a full buffer dropped.
func (r *Recorder) Dropped() int64 { return r.dropped.Load() }

func (r *Recorder) send(e store.UsageEvent) {
	select {
	case r.ch <- e:
	default:
		r.dropped.Add(1)
	}
}

// Visit records a view of non-interactive content.
func (r *Recorder) Visit(v store.Visit) {
	if r == nil {
		return
	}
	if v.Time.IsZero() {
		v.Time = time.Now().UTC()
	}
	r.send(store.UsageEvent{Visit: &v})
}

// SessionStart records the start of an interactive session and returns
// the function that records its end.
func (r *Recorder) SessionStart(s store.ShinySession) (end func()) {
	if r == nil {
		return func() {}
	}
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	s.Key = hex.EncodeToString(b)
	if s.Started.IsZero() {
		s.Started = time.Now().UTC()
	}
	r.send(store.UsageEvent{Session: &s})
	return func() {
		r.send(store.UsageEvent{SessionEnd: &store.ShinySession{Key: s.Key, Ended: time.Now().UTC()}})
	}
}

func (r *Recorder) run(ctx context.Context) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	var pending []store.UsageEvent
	lastDrop := int64(0)
	lastDropLog := time.Time{}
	write := func() {
		if len(pending) == 0 {
			return
		}
		wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := r.st.RecordUsage(wctx, pending); err != nil {
			r.log.Warn("record usage", "err", err, "events", len(pending))
		}
		cancel()
		pending = pending[:0]
	}
	for {
		select {
		case e := <-r.ch:
			pending = append(pending, e)
			if len(pending) >= r.batch {
				write()
			}
		case <-t.C:
			write()
			if d := r.dropped.Load(); d != lastDrop && time.Since(lastDropLog) > time.Minute {
				r.log.Warn("usage events dropped: the database did not keep up", "dropped", d)
				lastDrop, lastDropLog = d, time.Now()
			}
		case done := <-r.flushReq:
			for n := len(r.ch); n > 0; n-- {
				pending = append(pending, <-r.ch)
			}
			write()
			close(done)
		case <-ctx.Done():
			write()
			return
		}
	}
}

// drain writes the events left in the channel after the writer stopped.
func (r *Recorder) drain(ctx context.Context) {
	var rest []store.UsageEvent
	for n := len(r.ch); n > 0; n-- {
		rest = append(rest, <-r.ch)
	}
	if len(rest) > 0 {
		if err := r.st.RecordUsage(ctx, rest); err != nil {
			r.log.Warn("record usage on stop", "err", err, "events", len(rest))
		}
	}
}
