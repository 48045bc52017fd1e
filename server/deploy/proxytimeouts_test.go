package deploy

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/config"
	"github.com/dais-dev/dais/server/process"
	"github.com/dais-dev/dais/server/store"
)

// TestProxyTimeoutsOfContent: a content's connection_timeout and
// read_timeout (seconds, 0 never) over [Scheduler]'s, and a reloaded
// configuration (HUP) applied to the next request.
func TestProxyTimeoutsOfContent(t *testing.T) {
	var cfg atomic.Pointer[config.Config]
	c := config.Defaults()
	cfg.Store(c)
	s := &Service{o: Options{Config: cfg.Load}}
	n := func(v int) *int { return &v }
	for _, tc := range []struct {
		name       string
		conn, read *int
		want       process.Timeouts
	}{
		{"server defaults", nil, nil, process.Timeouts{Connection: time.Hour, Read: time.Hour}},
		{"content's", n(30), n(5), process.Timeouts{Connection: 30 * time.Second, Read: 5 * time.Second}},
		{"0 is never", n(0), nil, process.Timeouts{Connection: 0, Read: time.Hour}},
	} {
		if got := s.proxyTimeouts(&store.Content{ConnectionTimeout: tc.conn, ReadTimeout: tc.read}); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
	reloaded := config.Defaults()
	reloaded.Scheduler.ConnectionTimeout = config.Duration(2 * time.Minute)
	reloaded.Scheduler.ReadTimeout = 0
	cfg.Store(reloaded)
	if got := s.proxyTimeouts(&store.Content{}); got != (process.Timeouts{Connection: 2 * time.Minute}) {
		t.Errorf("after a reload: %+v, want 2m and 0", got)
	}
}
