//go:build !dais_sandbox_exec

package sandbox

import (
	"strings"
	"testing"
)

// Describe prints the spec for a debug log without the environment's values.
func TestDescribe(t *testing.T) {
	s := wireSample()
	s.Process.Env = append(s.Process.Env, "DB_PASSWORD=hunter2")
	got := Describe(s)
	if strings.Contains(got, "hunter2") || strings.Contains(got, "0f5d") {
		t.Errorf("an environment value is in the description: %s", got)
	}
	for _, want := range []string{`"DB_PASSWORD=…"`, `"CONNECT_CONTENT_GUID=…"`, `shiny::runApp(port = 41234)`, `"/data/apps/1/code"`} {
		if !strings.Contains(got, want) {
			t.Errorf("description lacks %s: %s", want, got)
		}
	}
	if s.Process.Env[len(s.Process.Env)-1] != "DB_PASSWORD=hunter2" {
		t.Error("Describe changed the spec")
	}
}
