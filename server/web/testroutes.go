package web

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// testRoutes are for the black-box tests only (DAIS_TEST_ENDPOINTS=1).
//
// GET /__test__/slow?lines=N&interval=D streams N lines, one every D,
// flushing each: a long in-flight request for reload and stop tests.
func (s *Server) testRoutes() {
	s.mux.HandleFunc("GET /__test__/slow", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("lines"))
		if err != nil || n < 1 || n > 10000 {
			n = 10
		}
		d, err := time.ParseDuration(r.URL.Query().Get("interval"))
		if err != nil || d < 0 || d > time.Minute {
			d = 100 * time.Millisecond
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		rc := http.NewResponseController(w)
		for i := range n {
			if i > 0 {
				select {
				case <-time.After(d):
				case <-r.Context().Done():
					return
				}
			}
			fmt.Fprintf(w, "line %d\n", i)
			if err := rc.Flush(); err != nil {
				return
			}
		}
	})
}
