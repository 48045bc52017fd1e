package store_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/dais-dev/dais/server/store"
)

// Processes opening one new SQLite database at once (dais serve and a
// dais users command, say) all succeed: migrations run once.
func TestSQLiteConcurrentOpen(t *testing.T) {
	for round := range 5 {
		path := filepath.Join(t.TempDir(), "dais.db")
		const n = 4
		errs := make(chan error, n)
		for range n {
			go func() {
				s, err := store.OpenSQLite(context.Background(), path, nil)
				if err == nil {
					s.Close()
				}
				errs <- err
			}()
		}
		for range n {
			if err := <-errs; err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
}
