package serve

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunAsRefused (issue 23, defect 8): Applications.RunAs = root or a
// user that does not exist started cleanly, and every deploy then failed
// with a wrong hint. dais serve now refuses to start, exit 78, naming the
// setting, where it came from and the fix.
func TestRunAsRefused(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		runAs string   // in the file
		env   []string // dais-init passes CONNECT_* through its rendered file; here the server reads them itself
		want  []string
	}{
		{"root in the file", "root", nil, []string{"Applications.RunAs = \"root\"", "is root (uid 0)", "never run as root", ".gcfg:"}},
		{"no such user in the file", "dais-no-such-user", nil, []string{"\"dais-no-such-user\" does not exist", "useradd --system dais-no-such-user"}},
		{"root from the environment", "", []string{"CONNECT_APPLICATIONS_RUNAS=root"}, []string{"env CONNECT_APPLICATIONS_RUNAS", "is root"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := filepath.Join(dir, "c"+string(rune('a'+i))+".gcfg")
			var extra []string
			if tt.runAs != "" {
				extra = append(extra, "[Applications]", "RunAs = "+tt.runAs)
			}
			writeConfig(t, cfg, filepath.Join(dir, "data"+string(rune('a'+i))), extra...)
			p := startDaisNoWait(t, cfg, tt.env...)
			if code := p.waitExit(15 * time.Second); code != 78 {
				t.Fatalf("exit code %d, want 78; stderr:\n%s", code, p.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(p.stderr.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, p.stderr)
				}
			}
		})
	}
}
