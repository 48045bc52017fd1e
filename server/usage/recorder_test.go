package usage_test

import (
	"context"
	"testing"
	"time"

	"github.com/dais-dev/dais/server/store"
	"github.com/dais-dev/dais/server/store/storetest"
	"github.com/dais-dev/dais/server/usage"
)

// TestRecorder: events sent are in the store after Flush, sessions get
// their end, and Stop writes what is still buffered.
func TestRecorder(t *testing.T) {
	st := storetest.SQLite(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r := usage.New(st, nil)
	must(t, r.Start(ctx))
	for range 1000 {
		r.Visit(store.Visit{ContentID: 1, ContentGUID: "doc", Path: "/"})
	}
	end := r.SessionStart(store.ShinySession{ContentID: 2, ContentGUID: "app"})
	r.Flush(ctx)
	if n := countVisits(t, st); n != 1000 {
		t.Fatalf("%d visits stored, want 1000 (dropped %d)", n, r.Dropped())
	}
	end()
	r.Visit(store.Visit{ContentID: 1, ContentGUID: "after", Path: "/"})
	must(t, r.Stop(ctx)) // writes the end and the last visit
	ss, _, err := st.ListShinySessions(ctx, store.UsageFilter{Page: store.Page{Limit: 10, Asc: true}})
	must(t, err)
	if len(ss) != 1 || ss[0].Ended.IsZero() || ss[0].Ended.Before(ss[0].Started) {
		t.Fatalf("sessions %+v", ss)
	}
	last, _, err := st.ListVisits(ctx, store.UsageFilter{Page: store.Page{Limit: 1}, ContentGUIDs: []string{"after"}})
	must(t, err)
	if len(last) != 1 {
		t.Fatal("a visit sent before Stop was lost")
	}
	var nilRec *usage.Recorder // a server without a recorder records nothing
	nilRec.Visit(store.Visit{})
	nilRec.SessionStart(store.ShinySession{})()
}

// countVisits reads every page of visits.
func countVisits(t *testing.T, st store.Store) int {
	n := 0
	p := store.Page{Limit: 500, Asc: true}
	for {
		vs, info, err := st.ListVisits(context.Background(), store.UsageFilter{Page: p})
		must(t, err)
		n += len(vs)
		if !info.HasNext {
			return n
		}
		p.Next = &vs[len(vs)-1].ID
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkRecorderVisit is what recording a visit costs the request that
// makes it (a send on a buffered channel), with the writer storing the
// events in SQLite meanwhile; dropped/op says whether it kept up.
func BenchmarkRecorderVisit(b *testing.B) {
	st := storetest.SQLite(b)
	ctx := context.Background()
	r := usage.New(st, nil)
	must(b, r.Start(ctx))
	v := store.Visit{ContentID: 1, ContentGUID: "0b1c7f9e-5a57-4a3b-9d4e-2f0e7a3c9b11", UserGUID: "u", BundleID: 3, Path: "/"}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r.Visit(v)
		// A page view every 20 µs at most: faster than dais serves a page
		// (hundreds of µs), so the writer's pace is tested, not the buffer's size.
		time.Sleep(20 * time.Microsecond)
	}
	b.StopTimer()
	must(b, r.Stop(ctx))
	b.ReportMetric(float64(r.Dropped())/float64(b.N), "dropped/op")
}

// BenchmarkRecorderSend is the send alone.
func BenchmarkRecorderSend(b *testing.B) {
	st := storetest.SQLite(b)
	r := usage.New(st, nil)
	must(b, r.Start(context.Background()))
	defer r.Stop(context.Background())
	v := store.Visit{ContentID: 1, ContentGUID: "g", Path: "/"}
	b.ReportAllocs()
	for b.Loop() {
		r.Visit(v)
	}
}
