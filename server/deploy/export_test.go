package deploy

import "github.com/dais-dev/dais/server/content/runtime"

// What the package's external tests (deploy_test, which drive the service
// through server/api) may look at inside.

// ProcessAddr is the address of the first process serving guid.
func (s *Service) ProcessAddr(guid string) string {
	return s.proxy.Pool(guid).Stats().Processes[0].Addr
}

// Finder is the runtime finder, whose roots a test may point elsewhere.
func (s *Service) Finder() *runtime.Finder { return s.finder }
