package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func init() {
	addCase(batteryCase{Name: "bad values at the door: CONNECT_APPLICATIONS_RUNAS=root / a missing user, an environment value with NUL", Issue: "23.8", Run: testDoor})
}

// testDoor (issue 23, defect 8): CONNECT_APPLICATIONS_RUNAS=root and
// =nosuchuser started cleanly and every deploy then failed with the
// "install python3-venv" hint; so did a content environment value with a
// NUL byte, accepted with 200. The container now exits 78 at start naming
// the setting and the fix, and the NUL value is refused with 400 naming
// the variable.
func testDoor(t *testing.T, r *row) {
	for _, tt := range []struct{ value, want string }{
		{"root", "is root (uid 0)"},
		{"nosuchuser", `"nosuchuser" does not exist`},
	} {
		c := Run(t, Options{Env: []string{"CONNECT_APPLICATIONS_RUNAS=" + tt.value}})
		code := c.WaitExit(2 * time.Minute)
		logs := c.Logs()
		if code != 78 || !strings.Contains(logs, tt.want) || !strings.Contains(logs, "CONNECT_APPLICATIONS_RUNAS") {
			t.Errorf("CONNECT_APPLICATIONS_RUNAS=%s: exit %d, want 78 and a line naming the fix; log:\n%s", tt.value, code, tail(logs, 20))
		}
		line := ""
		for _, l := range strings.Split(logs, "\n") {
			if strings.Contains(l, tt.want) {
				line = strings.TrimSpace(l)
			}
		}
		r.Figure(t, "CONNECT_APPLICATIONS_RUNAS=%s: exit %d: %s", tt.value, code, line)
	}

	c, key := deployServer(t)
	var content struct {
		GUID string `json:"guid"`
	}
	apiJSON(t, c, "POST", "/__api__/v1/content", key, strings.NewReader(`{"name":"door"}`), &content)
	status, body := api(t, c, "PATCH", "/__api__/v1/content/"+content.GUID+"/environment", key,
		strings.NewReader(`[{"name":"TOKEN","value":"abc\u0000def"}]`))
	r.Figure(t, "environment value with NUL: %d %s", status, strings.TrimSpace(string(body)))
	if status != http.StatusBadRequest || !strings.Contains(string(body), "TOKEN") {
		t.Errorf("PATCH environment with a NUL value = %d %s, want 400 naming TOKEN", status, body)
	}
}
