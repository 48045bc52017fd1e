package render_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/render"
)

// TestQueueBoundsConcurrency runs 12 fake renders through queues of
// several sizes and checks the most running at once never passes the limit
// and reaches it.
func TestQueueBoundsConcurrency(t *testing.T) {
	for _, limit := range []int{1, 2, 5} {
		t.Run("", func(t *testing.T) {
			q := render.NewQueue(limit)
			var running, peak atomic.Int32
			var wg sync.WaitGroup
			for range 12 {
				wg.Go(func() {
					release, err := q.Acquire(context.Background())
					if err != nil {
						t.Error(err)
						return
					}
					defer release()
					n := running.Add(1)
					for {
						p := peak.Load()
						if n <= p || peak.CompareAndSwap(p, n) {
							break
						}
					}
					time.Sleep(20 * time.Millisecond)
					running.Add(-1)
				})
			}
			wg.Wait()
			if got := peak.Load(); got != int32(limit) {
				t.Errorf("peak concurrent renders = %d, want the limit %d", got, limit)
			}
			if q.Running() != 0 || q.Waiting() != 0 {
				t.Errorf("after all: running %d waiting %d, want 0 0", q.Running(), q.Waiting())
			}
		})
	}
}

func TestQueueAcquireCancelled(t *testing.T) {
	q := render.NewQueue(1)
	release, err := q.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	release()
	release() // twice is harmless
	r1, _ := q.Acquire(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := q.Acquire(ctx); err == nil {
		t.Fatal("Acquire on a full queue returned without a slot before its context ended")
	}
	r1()
	if _, ok := q.TryAcquire(); !ok {
		t.Error("slot not free after release")
	}
}

func TestFromEnv(t *testing.T) {
	tests := []struct {
		val     string
		want    int
		wantErr bool
	}{{"", render.DefaultConcurrency, false}, {"4", 4, false}, {"0", 0, true}, {"x", 0, true}}
	for _, tt := range tests {
		t.Run(tt.val, func(t *testing.T) {
			t.Setenv(render.EnvConcurrency, tt.val)
			q, err := render.FromEnv()
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && q.Limit() != tt.want {
				t.Errorf("limit %d, want %d", q.Limit(), tt.want)
			}
		})
	}
}
