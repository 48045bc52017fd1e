package deploy_test

import (
	"strings"
	"testing"

	"github.com/dais-dev/dais/server/deploy"
)

// TestValidateAtTheDoor (issue 23, defect 8): a content environment value
// with a NUL byte was accepted (200) and the deploy failed later with a
// wrong hint; a run_as no process can run as was accepted too. Both are
// now refused with 400 naming the variable or the user.
func TestValidateAtTheDoor(t *testing.T) {
	f := newFixture(t, deploy.Options{})
	var c struct {
		GUID string `json:"guid"`
	}
	f.must(t, "POST", "/__api__/v1/content", "pub1", `{"name":"door"}`, &c)
	env := "/__api__/v1/content/" + c.GUID + "/environment"
	tests := []struct {
		name, user, method, path, body string
		want                           []string
	}{
		{"NUL in a value", "pub1", "PATCH", env, `[{"name":"GOOD","value":"ok"},{"name":"TOKEN","value":"abc\u0000def"}]`, []string{"TOKEN", "NUL"}},
		{"NUL in a value, PUT", "pub1", "PUT", env, `[{"name":"TOKEN","value":"\u0000"}]`, []string{"TOKEN", "NUL"}},
		{"name with a dash", "pub1", "PATCH", env, `[{"name":"MY-VAR","value":"x"}]`, []string{"MY-VAR", "not valid"}},
		{"name with '='", "pub1", "PATCH", env, `[{"name":"A=B","value":"x"}]`, []string{"A=B", "not valid"}},
		{"name with a NUL", "pub1", "PATCH", env, `[{"name":"A\u0000","value":"x"}]`, []string{"not valid"}},
		{"run_as root", "admin1", "PATCH", "/__api__/v1/content/" + c.GUID, `{"run_as":"root"}`, []string{"run_as", "root", "never run as root"}},
		{"run_as missing", "admin1", "PATCH", "/__api__/v1/content/" + c.GUID, `{"run_as":"dais-no-such-user"}`, []string{"run_as", "does not exist"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := f.do(t, tt.method, tt.path, tt.user, tt.body)
			if a.status != 400 {
				t.Fatalf("%s %s = %d %s, want 400", tt.method, tt.path, a.status, a.body)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(a.body), w) {
					t.Errorf("answer %s lacks %q", a.body, w)
				}
			}
		})
	}
	// Nothing of the refused requests was stored.
	var names []string
	f.must(t, "GET", env, "pub1", nil, &names)
	if len(names) != 0 {
		t.Errorf("environment after refusals = %v, want none", names)
	}
}
