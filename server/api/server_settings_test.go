package api_test

import (
	"strings"
	"testing"
)

// TestServerSettingsGate: the licensing gate shows in server_settings.
func TestServerSettingsGate(t *testing.T) {
	f := newFixture(t)
	f.web.SetGate(func() (bool, string) { return false, "no license lease: start the license server" })
	if a := f.do(t, "GET", "/__api__/server_settings", "", ""); !strings.Contains(a.body, `"ok":false`) {
		t.Fatalf("server_settings does not show the gate: %s", a.body)
	}
}

func TestServerSettingsForClients(t *testing.T) {
	f := newFixture(t)
	f.run(t, []apiCase{
		{name: "Connect version", method: "GET", path: "/__api__/server_settings", want: 200, wantIn: `"version":"2024.08.0"`},
		{name: "dais version in build", method: "GET", path: "/__api__/server_settings", want: 200, wantIn: `"build":"dais 1.2.3-test"`},
		{name: "APIs allowed", method: "GET", path: "/__api__/server_settings", want: 200, wantIn: `"allow-apis":true`},
		{name: "applications", method: "GET", path: "/__api__/server_settings/applications", role: "viewer", want: 200, wantIn: `"access_types":["all","logged_in","acl"]`},
		{name: "applications need a key", method: "GET", path: "/__api__/server_settings/applications", want: 401},
		{name: "scheduler", method: "GET", path: "/__api__/server_settings/scheduler", role: "viewer", want: 200, wantIn: `"max_processes":3`},
		{name: "scheduler of a mode", method: "GET", path: "/__api__/server_settings/scheduler/python-api", role: "viewer", want: 200, wantIn: `"idle_timeout":120`},
		{name: "scheduler proxy timeouts", method: "GET", path: "/__api__/server_settings/scheduler", role: "viewer", want: 200, wantIn: `"connection_timeout":3600`},
		{name: "scheduler read timeout", method: "GET", path: "/__api__/server_settings/scheduler", role: "viewer", want: 200, wantIn: `"read_timeout":3600`},
		{name: "scheduler of an unknown mode", method: "GET", path: "/__api__/server_settings/scheduler/cobol", role: "viewer", want: 404, wantIn: "unknown app mode"},
		{name: "python", method: "GET", path: "/__api__/v1/server_settings/python", role: "viewer", want: 200, wantIn: `"installations":[`},
		{name: "r", method: "GET", path: "/__api__/v1/server_settings/r", role: "viewer", want: 200, wantIn: `"installations":[`},
		{name: "quarto", method: "GET", path: "/__api__/v1/server_settings/quarto", role: "viewer", want: 200, wantIn: `"installations":[`},
		{name: "timezones", method: "GET", path: "/__api__/v1/timezones", role: "viewer", want: 200, wantIn: `{"timezone":"Europe/Berlin","offset":"+0`},
		{name: "timezones unversioned", method: "GET", path: "/__api__/timezones", role: "viewer", want: 200, wantIn: `{"timezone":"UTC","offset":"+00:00"}`},
	})
}
