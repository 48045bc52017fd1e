//go:build !dais_sandbox_exec

package sandbox

import (
	"encoding/json"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Describe is spec as one line of JSON for a log, with the values of the
// environment left out (content variables set through the API may be
// secrets): "KEY=…".
func Describe(spec *specs.Spec) string {
	c := *spec
	if spec.Process != nil {
		p := *spec.Process
		p.Env = make([]string, len(spec.Process.Env))
		for i, kv := range spec.Process.Env {
			k, _, _ := strings.Cut(kv, "=")
			p.Env[i] = k + "=…"
		}
		c.Process = &p
	}
	b, err := json.Marshal(&c)
	if err != nil {
		return "unprintable spec: " + err.Error()
	}
	return string(b)
}
