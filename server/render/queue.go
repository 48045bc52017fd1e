// Package render bounds the document renders (rmd-static, jupyter-static,
// quarto-static) a server runs at once. Renders are heavy (R, Python,
// Quarto processes that may take minutes); the ones above the limit wait
// their turn in arrival order. The renders themselves (sandboxed run,
// per-render output directory under DataDir, the latest successful one
// served) are the deploy package's; it takes a slot from the Queue around
// each run.
//
// The limit is the environment variable DAIS_RENDER_CONCURRENCY (default
// 2, like Posit Connect's Applications.ScheduleConcurrency).
package render

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
)

// EnvConcurrency names the environment variable with the limit.
const EnvConcurrency = "DAIS_RENDER_CONCURRENCY"

// DefaultConcurrency is the limit when EnvConcurrency is not set.
const DefaultConcurrency = 2

// Queue hands out a bounded number of render slots, first come first served.
type Queue struct {
	slots     chan struct{}
	waiting   atomic.Int64
	onRelease atomic.Pointer[func()]
}

// NewQueue makes a queue of n slots (at least 1).
func NewQueue(n int) *Queue {
	return &Queue{slots: make(chan struct{}, max(n, 1))}
}

// FromEnv makes the queue with the limit from DAIS_RENDER_CONCURRENCY.
func FromEnv() (*Queue, error) {
	n := DefaultConcurrency
	if v := os.Getenv(EnvConcurrency); v != "" {
		var err error
		n, err = strconv.Atoi(v)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s=%q must be a whole number of renders, 1 or more", EnvConcurrency, v)
		}
	}
	return NewQueue(n), nil
}

// Limit is the number of slots.
func (q *Queue) Limit() int { return cap(q.slots) }

// Running is the number of slots taken.
func (q *Queue) Running() int { return len(q.slots) }

// Waiting is the number of renders waiting for a slot.
func (q *Queue) Waiting() int { return int(q.waiting.Load()) }

// Free is how many more renders would start at once: the free slots less
// the renders already waiting for one (0 at least).
func (q *Queue) Free() int { return max(q.Limit()-q.Running()-q.Waiting(), 0) }

// OnRelease sets f, called (on the releasing goroutine) each time a slot
// is given back: a scheduler that claims only what it can run looks again.
func (q *Queue) OnRelease(f func()) { q.onRelease.Store(&f) }

// TryAcquire takes a slot when one is free at once.
func (q *Queue) TryAcquire() (release func(), ok bool) {
	select {
	case q.slots <- struct{}{}:
		return q.releaser(), true
	default:
		return nil, false
	}
}

// Acquire waits for a slot (Go serves blocked channel senders in order)
// or the end of ctx; call release once the render ended.
func (q *Queue) Acquire(ctx context.Context) (release func(), err error) {
	if r, ok := q.TryAcquire(); ok {
		return r, nil
	}
	q.waiting.Add(1)
	defer q.waiting.Add(-1)
	select {
	case q.slots <- struct{}{}:
		return q.releaser(), nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a render slot (%d in use; raise %s to run more at once): %w", q.Limit(), EnvConcurrency, ctx.Err())
	}
}

func (q *Queue) releaser() func() {
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			<-q.slots
			if f := q.onRelease.Load(); f != nil {
				(*f)()
			}
		}
	}
}
